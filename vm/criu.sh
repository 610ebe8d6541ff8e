#!/bin/bash
# The checkpoint/restore lane: boots Debian 12's own kernel under QEMU (software emulation)
# with Debian 12's CRIU, whose kernel probe fails on newer kernels such as the development
# host's, and runs vm/criu-checks.sh there against hako and runc, the oracle.
#
#   vm/criu.sh
#
# Exits 0 only if the VM printed "HAKO-VM-RESULT rc=0". Environment: CARGO_TARGET_DIR,
# HAKO_VM_CACHE (default /var/cache/hako-vm), HAKO_VM_TIMEOUT (default 900 s).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
cache=${HAKO_VM_CACHE:-/var/cache/hako-vm}
timeout_s=${HAKO_VM_TIMEOUT:-900}
start=$(date +%s.%N)

vm_lane=vm/criu.sh
# shellcheck source=vm/lib.sh
. "$repo/vm/lib.sh"

work=$(mktemp -d /tmp/hako-criu-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT

# 1. Tools: QEMU, a static busybox, CRIU and runc (Debian 12's).
vm_tools
for p in criu:criu runc:runc gcc:gcc ip:iproute2 xtables-nft-multi:iptables; do
    command -v "${p%%:*}" >/dev/null || {
        say "installing ${p#*:}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${p#*:}" >&2
    }
done

# 2. The kernel and the modules CRIU needs from it: socket diagnostics (it finds every
# socket of the tree through sock_diag: unix, netlink, packet, TCP/UDP), what Debian's
# iptables (the nf_tables flavour) needs for the rules CRIU locks the container's network
# with while it dumps and restores, and conntrack's netlink interface (CRIU dumps the
# namespace's connection tracking; with nfnetlink loaded and ctnetlink missing, the kernel
# answers EINVAL and the dump fails). The crc32c and defrag ones are dependencies. Loaded by
# /init in the order vm_kernel gives (dependencies first; the prefixes keep it).
mods=(nfnetlink nf_tables x_tables xt_mark nft_compat nf_conntrack nf_conntrack_netlink
    inet_diag tcp_diag udp_diag unix_diag netlink_diag af_packet_diag)
vm_kernel "$cache" "$work" "${mods[@]}"
say "kernel $kernel"

# 3. hako as it ships (static musl), and the console-socket receiver (static C: the
# initramfs has no libc of its own).
t=$(date +%s.%N)
hako=$(CARGO_TARGET_DIR="$target_dir" "$repo/scripts/build-release.sh")
is_static "$hako" || { say "$hako is not statically linked"; exit 2; }
gcc -static -O2 -Wall -o "$work/recvtty" "$repo/vm/recvtty.c"
say "built in $(elapsed "$t") s: $hako"

# 4. The initramfs: CRIU, runc, iproute2's ip (CRIU saves and restores the container's
# addresses and routes with `ip ... save/restore`), iptables in both flavours (CRIU locks the
# container's network with iptables-restore, saves its rules with iptables-legacy-save when
# iptables is the nf_tables one, whose rules it saves itself) and GNU tar and gzip
# (CRIU archives a tmpfs's content with GNU tar's options, which busybox's lacks), with their
# shared libraries at the same paths, iptables' extensions, the modules, the checks.
root=$work/root
vm_initramfs_base "$root"
cp "$hako" "$root/bin/hako"
cp "$work/recvtty" "$root/bin/recvtty"
xtables=/usr/sbin/xtables-nft-multi
legacy=/usr/sbin/xtables-legacy-multi
tools=(criu runc ip tar gzip)
vm_copy_with_libs "$root" "$xtables" "$legacy" $(for t in "${tools[@]}"; do command -v "$t"; done)
mkdir -p "$root/usr/local/bin" "$root/usr/lib/x86_64-linux-gnu"
cp -a /usr/lib/x86_64-linux-gnu/xtables "$root/usr/lib/x86_64-linux-gnu/"
# /init's PATH is /usr/local/bin:/bin; runc and hako run "criu" from PATH, CRIU runs the rest.
for exe in "${tools[@]}"; do ln -s "$(command -v "$exe")" "$root/usr/local/bin/$exe"; done
for exe in iptables-save iptables-restore ip6tables-save ip6tables-restore; do
    ln -s "$xtables" "$root/usr/local/bin/$exe"
    ln -s "$legacy" "$root/usr/local/bin/${exe/tables-/tables-legacy-}"
done
i=10
for m in "${modules[@]}"; do
    cp "$m" "$root/lib/modules/$i-$(basename "$m")"
    i=$((i + 1))
done
cp "$repo"/vm/{bundle.sh,criu-checks.sh} "$root/lane/"
printf 'criu\n' > "$root/lane/parts"
: > "$root/lane/root-test-args"
: > "$root/lane/conformance-filter"
vm_pack "$root" "$work/initramfs.cpio"

# 5. Boot (/init mounts cgroup v2; without cgroup_no_v1=all, so that criu-checks.sh can hand
# the controllers over to v1 hierarchies for its v1 part), and the verdict from the result line.
log=$work/console.log
vm_boot "$work/initramfs.cpio" "$log" ""
vm_verdict "$log" "$start"
