#!/bin/sh
# A CNI plugin (CNI spec 1.0.0) for the CRI test: it gives a pod a network that never reaches
# the host. ADD creates a veth pair with *both* ends inside the pod's network namespace
# ($CNI_NETNS): $CNI_IFNAME (eth0) with 192.0.2.2/30 and its peer `podnet-peer` with
# 192.0.2.1/30 (TEST-NET-1, RFC 5737: never routed). A packet from the pod to the peer's address
# leaves eth0 and arrives at the peer, inside the same namespace; there is no route elsewhere.
# DEL deletes the pair (deleting either end deletes both); it succeeds when the namespace is
# already gone, as the spec asks. The result names the interface and its address, which the CRI
# plugin reports as the pod's IP.
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin
peer=podnet-peer
version=1.0.0

# The network configuration arrives on stdin; this plugin needs nothing from it.
cat >/dev/null

fail() {
    printf '{"cniVersion":"%s","code":100,"msg":"podnet: %s"}\n' "$version" "$1"
    exit 1
}

in_pod() { nsenter --net="$CNI_NETNS" "$@"; }

case "${CNI_COMMAND:-}" in
VERSION)
    printf '{"cniVersion":"%s","supportedVersions":["0.4.0","1.0.0"]}\n' "$version"
    ;;
ADD)
    in_pod ip link add "$CNI_IFNAME" type veth peer name "$peer" || fail "veth pair in $CNI_NETNS"
    in_pod ip addr add 192.0.2.2/30 dev "$CNI_IFNAME" || fail "address on $CNI_IFNAME"
    in_pod ip addr add 192.0.2.1/30 dev "$peer" || fail "address on $peer"
    in_pod ip link set "$peer" up || fail "$peer up"
    in_pod ip link set "$CNI_IFNAME" up || fail "$CNI_IFNAME up"
    mac=$(in_pod ip -o link show "$CNI_IFNAME" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p')
    printf '{"cniVersion":"%s","interfaces":[{"name":"%s","mac":"%s","sandbox":"%s"}],"ips":[{"interface":0,"address":"192.0.2.2/30"}]}\n' \
        "$version" "$CNI_IFNAME" "$mac" "$CNI_NETNS"
    ;;
DEL)
    if [ -n "${CNI_NETNS:-}" ] && [ -e "$CNI_NETNS" ]; then
        in_pod ip link del "$CNI_IFNAME" 2>/dev/null || true
    fi
    ;;
CHECK)
    in_pod ip link show "$CNI_IFNAME" >/dev/null 2>&1 || fail "no $CNI_IFNAME in $CNI_NETNS"
    ;;
*)
    fail "unknown CNI_COMMAND '${CNI_COMMAND:-}'"
    ;;
esac
