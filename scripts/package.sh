#!/usr/bin/env bash
# Builds hako's Debian package and prints its path: the static release binary
# (scripts/build-release.sh), then the man pages, shell completions and package description that
# hako-docgen generates from the CLI's own definitions next to the binary, then
# `cargo deb -p hako --no-build` (the packaging metadata is in runtime/Cargo.toml).
# cargo-deb comes from crates.io and is installed only when missing: about 6 minutes of
# compiling on 2 cores, once per machine (CI caches ~/.cargo/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deb --version >/dev/null 2>&1; then
  echo "package.sh: installing cargo-deb from crates.io (once per machine)" >&2
  cargo install --locked --quiet cargo-deb >&2
fi
bin=$(./scripts/build-release.sh)
# build-release.sh picks the target (musl, or static glibc where musl is missing).
triple=$(basename "$(dirname "$(dirname "$bin")")")
release_dir=$(dirname "$bin")
rm -rf "$release_dir/package" target/package
cargo run --quiet -p hako-docgen -- "$release_dir/package" >&2
# Debian policy: man pages compressed (cargo-deb compresses only files it did not find under
# target/release/).
gzip -9n "$release_dir"/package/man/*.8
# cargo-deb reads the description file relative to where it runs, not through target/release/.
mkdir -p target/package
cp "$release_dir/package/description.txt" target/package/description.txt
cargo deb -p hako --no-build --no-strip --target "$triple" --output target/package/deb/ >/dev/null
ls "$PWD"/target/package/deb/hako_*.deb
