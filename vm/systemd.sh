#!/bin/bash
# The systemd lane: boots Debian with systemd as PID 1 (pure cgroup v2, systemd's
# default) under QEMU and runs hako's systemd-driver checks there, side by side with
# runc (Debian's, the oracle) on the same configs: unit properties from
# `systemctl show`, the cgroup files, update, delete; then podman and containerd's CRI
# on the driver, with each runtime (see README.md).
#
#   vm/systemd.sh          exit 0 only if the VM printed "HAKO-VM-RESULT rc=0"
#
# The VM boots once per cgroup layout in HAKO_VM_SYSTEMD_MODES (default "unified
# hybrid": systemd.unified_cgroup_hierarchy=1, then =0, systemd's v1 controllers with
# cgroup2 beside them). Environment: CARGO_TARGET_DIR, HAKO_VM_CACHE (default
# /var/cache/hako-vm; the root file system image is built there once by
# systemd-image.sh), HAKO_VM_KERNEL, HAKO_VM_TIMEOUT (default 1200 s, per boot),
# HAKO_VM_SYSTEMD_PARTS (default "checks rootless engines conformance": systemd-checks.sh,
# systemd-rootless.sh (an unprivileged user's systemd --user; on hybrid only the refusal), then
# systemd-engines.sh, podman and containerd's CRI, and systemd-conformance.sh, the suite's
# cgroups/ and lifecycle/ with --systemd-cgroup, both on the unified boot only), HAKO_VM_SCRIPT (a bash
# script run in the VM after the parts; HAKO_VM_SYSTEMD_PARTS= runs it alone).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
cache=${HAKO_VM_CACHE:-/var/cache/hako-vm}
timeout_s=${HAKO_VM_TIMEOUT:-1200}
modes=${HAKO_VM_SYSTEMD_MODES:-unified hybrid}
parts=${HAKO_VM_SYSTEMD_PARTS-checks rootless engines conformance}
vm_lane=vm/systemd.sh
. "$repo/vm/lib.sh"
start=$(date +%s.%N)

work=$(mktemp -d /tmp/hako-vm-systemd.XXXXXX)
trap 'rm -rf "$work"' EXIT

command -v qemu-system-x86_64 >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-system-x86 >&2
busybox=/bin/busybox
vm_is_static "$busybox" ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox-static >&2

# 1. Debian's kernel (shared with run.sh), the modules that reach an ext4 virtio disk,
# overlay (the engines' image stores) and loop (the suite opens the block device 7:0 from a
# container: without the driver, ENXIO).
vm_kernel "$cache" "$work" virtio_pci virtio_blk crc32c_generic ext4 overlay loop
vm_say "kernel $kernel"

# 2. The root file system image (built once, cached by its recipe's hash).
t=$(date +%s.%N)
image=$("$repo/vm/systemd-image.sh" "$cache")
vm_say "image $image ($(vm_elapsed "$t") s)"

# 3. hako as it ships, and the conformance suite built as vm/run.sh builds it (static glibc:
# the same flags, so one build serves both lanes).
t=$(date +%s.%N)
hako=$(CARGO_TARGET_DIR="$target_dir" "$repo/scripts/build-release.sh")
triple=x86_64-unknown-linux-gnu
(cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    CARGO_TARGET_DIR="$target_dir" cargo build --release --quiet -p hako-conformance --target "$triple")
conformance=$target_dir/$triple/release/hako-conformance
for exe in "$hako" "$conformance"; do
    vm_is_static "$exe" || { vm_say "$exe is not statically linked"; exit 2; }
done
vm_say "built in $(vm_elapsed "$t") s: $hako $conformance"

# 4. A small initramfs (busybox, the modules, /init) and the lane's files as a tar on
# the second disk; the image itself is booted read-only underneath (snapshot=on).
initrd=$work/initrd
mkdir -p "$initrd/bin" "$initrd/modules"
cp "$busybox" "$initrd/bin/busybox"
cp "$repo/vm/systemd-init" "$initrd/init"
for m in "${modules[@]}"; do
    cp "$m" "$initrd/modules/"
    basename "$m" >> "$initrd/modules.order"
done
(cd "$initrd" && find . | "$busybox" cpio -o -H newc 2>/dev/null) > "$work/initramfs.cpio"
lane=$work/lane
mkdir -p "$lane"
cp "$hako" "$lane/hako"
cp "$repo/vm/systemd-boot.sh" "$lane/boot.sh"
cp "$repo/vm/systemd-lib.sh" "$lane/lib.sh"
cp "$repo/vm/systemd-checks.sh" "$lane/checks.sh"
cp "$repo/vm/systemd-rootless.sh" "$lane/rootless.sh"
cp "$repo/vm/systemd-engines.sh" "$lane/engines.sh"
cp "$repo/vm/cri.py" "$lane/cri.py"
cp "$repo/vm/systemd-conformance.sh" "$lane/conformance.sh"
cp "$conformance" "$lane/hako-conformance"
echo "$parts" > "$lane/parts"
if [ -n "${HAKO_VM_SCRIPT:-}" ]; then
    cp "$HAKO_VM_SCRIPT" "$lane/script.sh"
    echo script >> "$lane/parts"
fi
tar -C "$lane" -cf "$work/lane.tar" .

# 5. Boot, once per mode. panic=-1 and -no-reboot make a crash end QEMU; the timeout
# catches the rest.
boot() { # MODE: prints the VM's result line (empty if none)
    local unified=1 log=$work/console-$1.log
    [ "$1" = unified ] || unified=0
    timeout --foreground "$timeout_s" qemu-system-x86_64 \
        -accel tcg -machine q35 -cpu max -smp 2 -m 1024 \
        -display none -monitor none -serial stdio -no-reboot \
        -kernel "$kernel" -initrd "$work/initramfs.cpio" \
        -drive "file=$image,if=virtio,format=raw,snapshot=on" \
        -drive "file=$work/lane.tar,if=virtio,format=raw,readonly=on" \
        -append "console=ttyS0 root=/dev/vda panic=-1 softlockup_panic=1 loglevel=4 systemd.show_status=0 systemd.unified_cgroup_hierarchy=$unified" \
        </dev/null 2>&1 | tee "$log" >&2
    grep -a -E '^(FAIL |KNOWN-DIFF )' "$log" | tr -d '\r' | cut -c1-240 | sed "s/^/vm\/systemd.sh: $1:   /" >&2 || true
    grep -a -o 'HAKO-VM-RESULT rc=[0-9]*.*' "$log" | tail -n1 | tr -d '\r' || true
}
rc=0
summary=''
for mode in $modes; do
    t=$(date +%s.%N)
    result=$(boot "$mode")
    vm_say "$mode: VM ran $(vm_elapsed "$t") s: ${result:-no result line (timeout after ${timeout_s}s or crash)}"
    summary="$summary $mode=$(vm_elapsed "$t")s"
    case "$result" in "HAKO-VM-RESULT rc=0 "*) ;; *) rc=1 ;; esac
done
vm_say "lane $(vm_elapsed "$start") s in total:$summary"
if [ "$rc" = 0 ]; then vm_say PASS; else vm_say FAIL; fi
exit "$rc"
