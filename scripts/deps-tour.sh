#!/usr/bin/env bash
# Installs what building hako and its tour (examples/tour.sh) need on a fresh Debian machine,
# and nothing more (run as root): busybox-static makes the bundle's rootfs, python3 edits its
# config.json, and the musl target builds the binary as it ships. The engines, QEMU and the
# oracles only the tests need are scripts/deps.sh's.
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
# The shipped binary links musl statically (scripts/build-release.sh says why; it falls back to
# static glibc where the target cannot be fetched).
rustup target add x86_64-unknown-linux-musl >/dev/null 2>&1 || true
