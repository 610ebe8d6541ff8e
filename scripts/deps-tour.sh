#!/usr/bin/env bash
# Installs what the tour (examples/tour.sh) needs on a fresh Debian machine, and nothing more
# (run as root), each only when missing: busybox-static makes the bundle's rootfs and python3
# edits its config.json. The tour builds hako for the host (Cargo profile `tour`): the musl
# target that the shipped static binary needs is fetched by scripts/build-release.sh when it
# builds one. The engines, QEMU and the oracles only the tests need are scripts/deps.sh's.
set -euo pipefail
need=()
command -v busybox >/dev/null 2>&1 || [ -x /bin/busybox ] || need+=(busybox-static)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install a Rust toolchain (rustup) first" >&2
  exit 1
fi
