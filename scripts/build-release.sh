#!/usr/bin/env bash
# Builds the release hako, statically linked and not position-independent, and prints its path.
# Every hako command is a short-lived process: the benchmark (bench/) measured 13% of hako's
# CPU in the dynamic loader and its relocations, so the shipped binary has neither.
# (The explicit --target keeps proc-macros and build scripts dynamically linked.)
set -euo pipefail
cd "$(dirname "$0")/.."
triple=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C relocation-model=static" \
  cargo build --release --quiet -p hako --target "$triple"
echo "${CARGO_TARGET_DIR:-$PWD/target}/$triple/release/hako"
