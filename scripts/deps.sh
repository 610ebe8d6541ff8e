#!/usr/bin/env bash
# Installs what building and testing hako needs on a fresh Debian machine (run as root):
# busybox-static makes the example and test rootfs; runc and crun are the behaviour oracles.
set -euo pipefail
need=()
command -v busybox >/dev/null 2>&1 || [ -x /bin/busybox ] || need+=(busybox-static)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v crun >/dev/null 2>&1 || need+=(crun)
command -v ps >/dev/null 2>&1 || need+=(procps)
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
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install a Rust toolchain (rustup) first" >&2
  exit 1
fi
rustup component add clippy rustfmt >/dev/null 2>&1 || true
# The shipped binary links musl statically (scripts/build-release.sh says why; it falls back to
# static glibc where the target cannot be fetched).
rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1 || true
