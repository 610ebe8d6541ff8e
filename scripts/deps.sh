#!/usr/bin/env bash
# Installs what building and testing hako needs on a fresh Debian machine (run as root): what the
# tour needs (scripts/deps-tour.sh), plus the musl target of the shipped binary, runc and crun,
# the behaviour oracles, the engines the client tests drive, and QEMU for the cgroup v2 lane.
set -euo pipefail
"$(dirname "$0")/deps-tour.sh"
# The shipped binary links musl statically (scripts/build-release.sh says why; it falls back to
# static glibc, and says so, where the target cannot be fetched).
rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1 || true
need=()
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v crun >/dev/null 2>&1 || need+=(crun)
command -v ps >/dev/null 2>&1 || need+=(procps)
# The systemd driver's D-Bus client is tested against a private bus daemon (no systemd needed).
command -v dbus-daemon >/dev/null 2>&1 || need+=(dbus-daemon)
# The cgroup v2 lane boots a Debian kernel under QEMU (vm/run.sh).
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
command -v readelf >/dev/null 2>&1 || need+=(binutils)
# The engines the client tests drive (tests/tests/clients_*.rs), installed once here so that
# parallel tests never race for the dpkg lock.
[ -x /usr/bin/podman ] || need+=(podman)
[ -x /usr/bin/conmon ] || need+=(conmon)
# Rootless containers with several id ranges (tests/tests/rootless.rs): newuidmap, newgidmap.
[ -x /usr/bin/newuidmap ] || need+=(uidmap)
[ -x /usr/bin/containerd ] || need+=(containerd)
[ -x /usr/sbin/dockerd ] || need+=(docker.io)
# CRI: containerd's CRI plugin with a CNI plugin, driven by a small Python gRPC client.
[ -x /usr/lib/cni/loopback ] || need+=(containernetworking-plugins)
[ -x /usr/bin/protoc ] || need+=(protobuf-compiler)
[ -f /usr/lib/python3/dist-packages/grpc/__init__.py ] || need+=(python3-grpcio)
# The package lane (scripts/package-check.sh) reads the man pages it installs and tries its
# completions in each shell.
command -v man >/dev/null 2>&1 || need+=(man-db)
command -v zsh >/dev/null 2>&1 || need+=(zsh)
command -v fish >/dev/null 2>&1 || need+=(fish)
# Checkpoint/restore (tests/tests/checkpoint.rs, vm/criu.sh): CRIU, iproute2's ip and iptables
# (CRIU runs both on a network namespace; the lane carries them into its VM) and a C compiler for
# the lane's recvtty.
command -v criu >/dev/null 2>&1 || need+=(criu)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
[ -x /usr/sbin/xtables-nft-multi ] || need+=(iptables)
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
rustup component add clippy rustfmt >/dev/null 2>&1 || true
