#!/bin/bash
# The cgroup v2 test lane: boots a Debian kernel with cgroup_no_v1=all under
# QEMU (software emulation: no KVM needed) and runs, on a pure cgroup v2
# hierarchy with every controller: the hako-cgroups root tests, hako's own
# lifecycle checks (hako-checks.sh) and the conformance suite's cgroup cases.
#
#   vm/run.sh [TEST-HARNESS-ARGS...]     e.g. vm/run.sh ebpf --nocapture
#
# Exits 0 only if the VM printed "HAKO-VM-RESULT rc=0". Environment:
#   CARGO_TARGET_DIR      where cargo builds (default: <repo>/target)
#   HAKO_VM_PARTS         which parts run (default "root hako conformance rootless numa")
#   HAKO_VM_CONFORMANCE   the suite's --filter, e.g. "cgroups/" (default "all": every case)
#   HAKO_VM_SCRIPT        a busybox sh script to run in the VM too (part "script")
#   HAKO_VM_KERNEL        a bzImage/vmlinuz to boot instead of Debian's
#   HAKO_VM_CACHE         where Debian's kernel is kept (default /var/cache/hako-vm)
#   HAKO_VM_TIMEOUT       seconds before the VM is killed (default 600)
#   HAKO_VM_NUMA          2 (default): two NUMA nodes (one CPU, 512 MiB each; part numa,
#                         vm/numa.sh); 1: one node (part numa then has nothing to check)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
cache=${HAKO_VM_CACHE:-/var/cache/hako-vm}
timeout_s=${HAKO_VM_TIMEOUT:-600}
parts=${HAKO_VM_PARTS:-root hako conformance rootless numa}
conformance_filter=${HAKO_VM_CONFORMANCE:-all}
triple=x86_64-unknown-linux-gnu
start=$(date +%s.%N)

vm_lane=vm/run.sh
# shellcheck source=vm/lib.sh
. "$repo/vm/lib.sh"

work=$(mktemp -d /tmp/hako-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT

# 1. Tools: QEMU and a static busybox (the initramfs has no libc).
vm_tools

# 2. Kernel: Debian's linux-image-amd64, unpacked from the .deb into the
# cache (nothing is installed into /boot), with its loop module: the
# conformance suite opens the block device 7:0 (a loop device) from inside
# a container, and without the driver that open fails with ENXIO.
vm_kernel "$cache" "$work" loop
say "kernel $kernel"

# 3. Static executables (no PT_INTERP, nothing to load from the initramfs):
# the root tests, hako as it ships, and the conformance suite.
t=$(date +%s.%N)
tests=$(cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$target_dir" \
    cargo test -p hako-cgroups --test root --no-run --target "$triple" --message-format=json |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "root" and .executable != null) | .executable' |
    tail -n1)
[ -x "$tests" ] || { say "no test executable built"; exit 2; }
hako=$(CARGO_TARGET_DIR="$target_dir" "$repo/scripts/build-release.sh")
# Static glibc like the root tests (the suite is a test driver, not shipped; it
# uses glibc's sched_param and rlimit types, so it does not build against musl).
(cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    CARGO_TARGET_DIR="$target_dir" cargo build --release --quiet -p hako-conformance --target "$triple")
conformance=$target_dir/$triple/release/hako-conformance
for exe in "$tests" "$hako" "$conformance"; do
    is_static "$exe" || { say "$exe is not statically linked"; exit 2; }
done
say "built in $(elapsed "$t") s: $tests $hako $conformance"

# 4. The initramfs: busybox, /init, the executables and the parts' arguments.
root=$work/root
vm_initramfs_base "$root"
cp "$tests" "$root/hako-root-tests"
cp "$hako" "$root/bin/hako"
cp "$conformance" "$root/bin/hako-conformance"
cp "$repo"/vm/{bundle.sh,hako-checks.sh,conformance.sh,rootless.sh,numa.sh} "$root/lane/"
# The conformance harness runs `ldd` on itself to copy its libraries into each
# rootfs; busybox has no ldd, and a static executable needs no libraries: this
# prints what glibc's ldd prints for one.
printf '#!/bin/sh\necho "\tnot a dynamic executable" >&2\nexit 1\n' > "$root/bin/ldd"
chmod 755 "$root/bin/ldd"
# Its namespace-joining cases start util-linux's unshare(1) with --kill-child,
# which busybox's lacks: the host's, with its libraries at the same paths,
# first in the VM's PATH.
# The rootless part runs hako as another user through util-linux's setpriv(1).
mkdir -p "$root/usr/local/bin"
for tool in unshare setpriv; do
    cp "$(command -v "$tool")" "$root/usr/local/bin/$tool"
    vm_copy_with_libs "$root" "$(command -v "$tool")"
done
for m in "${modules[@]}"; do cp "$m" "$root/lib/modules/"; done
if [ -n "${HAKO_VM_SCRIPT:-}" ]; then
    cp "$HAKO_VM_SCRIPT" "$root/lane/script.sh"
    parts="$parts script"
fi
printf '%s ' "$@" > "$root/lane/root-test-args"
printf '%s\n' "$parts" > "$root/lane/parts"
printf '%s\n' "$conformance_filter" > "$root/lane/conformance-filter"
vm_pack "$root" "$work/initramfs.cpio"

# 5. Boot. panic=-1 and -no-reboot turn a kernel panic (e.g. /init dying)
# into QEMU exiting; softlockup_panic=1 makes a soft lockup such a panic
# (one was seen once in the conformance part: the run then sat out the whole
# timeout), and loglevel=5 prints the backtraces; the timeout catches the rest.
vm_qemu_args=() extra_append=""
if [ "${HAKO_VM_NUMA:-2}" = 2 ]; then
    vm_qemu_args=(-object memory-backend-ram,id=m0,size=512M -object memory-backend-ram,id=m1,size=512M
        -numa node,nodeid=0,cpus=0,memdev=m0 -numa node,nodeid=1,cpus=1,memdev=m1)
    # Its first boot on a loaded host panicked in the IO-APIC timer check ("IO-APIC + timer
    # doesn't work"): TCG's timer is too slow for the check's window; skip the check.
    extra_append=" no_timer_check"
fi
log=$work/console.log
vm_boot "$work/initramfs.cpio" "$log" "cgroup_no_v1=all$extra_append"
vm_verdict "$log" "$start"
