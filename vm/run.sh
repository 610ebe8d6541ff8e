#!/bin/bash
# The cgroup v2 test lane: boots a Debian kernel with cgroup_no_v1=all under
# QEMU (software emulation: no KVM needed) and runs the hako-cgroups root
# tests inside it, on a pure cgroup v2 hierarchy with every controller.
#
#   vm/run.sh [TEST-HARNESS-ARGS...]     e.g. vm/run.sh ebpf --nocapture
#
# Exits 0 only if the VM printed "HAKO-VM-RESULT rc=0". Environment:
#   CARGO_TARGET_DIR   where cargo builds (default: <repo>/target)
#   HAKO_VM_KERNEL     a bzImage/vmlinuz to boot instead of Debian's
#   HAKO_VM_CACHE      where Debian's kernel is kept (default /var/cache/hako-vm)
#   HAKO_VM_TIMEOUT    seconds before the VM is killed (default 600)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
cache=${HAKO_VM_CACHE:-/var/cache/hako-vm}
timeout_s=${HAKO_VM_TIMEOUT:-600}
triple=x86_64-unknown-linux-gnu
start=$(date +%s.%N)

say() { printf 'vm/run.sh: %s\n' "$*" >&2; }
# No PT_INTERP: the kernel can exec it without a libc in the initramfs.
is_static() { local h; h=$(readelf -lW "$1" 2>/dev/null) && [[ $h != *"program interpreter"* ]]; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

work=$(mktemp -d /tmp/hako-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT

# 1. Tools: QEMU and a static busybox (the initramfs has no libc).
if ! command -v qemu-system-x86_64 >/dev/null; then
    say "installing qemu-system-x86"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-system-x86 >&2
fi
busybox=/bin/busybox
if ! is_static "$busybox"; then
    say "installing busybox-static"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox-static >&2
fi

# 2. Kernel: Debian's linux-image-amd64, unpacked from the .deb into the
# cache (nothing is installed into /boot).
kernel=${HAKO_VM_KERNEL:-}
if [ -z "$kernel" ]; then
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    [ -n "$pkg" ] || { say "cannot resolve linux-image-amd64"; exit 2; }
    kernel=$(ls "$cache/$pkg"/boot/vmlinuz-* 2>/dev/null | head -n1 || true)
    if [ -z "$kernel" ]; then
        say "fetching $pkg"
        mkdir -p "$cache/$pkg"
        (cd "$work" && apt-get download "$pkg" >&2)
        dpkg-deb --fsys-tarfile "$work"/"$pkg"_*.deb | tar -x -C "$cache/$pkg" --wildcards './boot/vmlinuz-*'
        kernel=$(ls "$cache/$pkg"/boot/vmlinuz-* | head -n1)
    fi
fi
say "kernel $kernel"

# 3. The root tests as one statically linked executable.
t=$(date +%s.%N)
tests=$(cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$target_dir" \
    cargo test -p hako-cgroups --test root --no-run --target "$triple" --message-format=json |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "root" and .executable != null) | .executable' |
    tail -n1)
[ -x "$tests" ] || { say "no test executable built"; exit 2; }
if ! is_static "$tests"; then
    say "$tests is not statically linked"; exit 2
fi
say "tests built in $(elapsed "$t") s: $tests"

# 4. The initramfs: busybox, /init, the tests and their arguments.
root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp}
cp "$busybox" "$root/bin/busybox"
cp "$repo/vm/init" "$root/init"
cp "$tests" "$root/hako-root-tests"
printf '%s ' "$@" > "$root/test-args"
(cd "$root" && find . | "$busybox" cpio -o -H newc 2>/dev/null) > "$work/initramfs.cpio"

# 5. Boot. panic=-1 and -no-reboot turn a kernel panic (e.g. /init dying)
# into QEMU exiting; the timeout catches everything else.
t=$(date +%s.%N)
log=$work/console.log
set +e
timeout --foreground "$timeout_s" qemu-system-x86_64 \
    -accel tcg -machine q35 -cpu max -smp 2 -m 1024 \
    -display none -monitor none -serial stdio -no-reboot \
    -kernel "$kernel" -initrd "$work/initramfs.cpio" \
    -append "console=ttyS0 cgroup_no_v1=all panic=-1 loglevel=4" </dev/null | tee "$log"
qemu_rc=${PIPESTATUS[0]}
set -e
vm_s=$(elapsed "$t")

result=$(grep -a -o 'HAKO-VM-RESULT rc=[0-9]*.*' "$log" | tail -n1 | tr -d '\r' || true)
say "VM ran ${vm_s} s (qemu exit $qemu_rc), lane ${start:+$(elapsed "$start")} s in total"
case "$result" in
    "HAKO-VM-RESULT rc=0 "*) say "PASS: $result"; exit 0 ;;
    "") say "FAIL: no result line (timeout after ${timeout_s}s or crash; qemu exit $qemu_rc)"; exit 1 ;;
    *) say "FAIL: $result"; exit 1 ;;
esac
