# Sourced by the QEMU lanes (run.sh: cgroup v2; criu.sh: checkpoint/restore): the parts they
# share. Each lane sets `lane` (its name, for messages) and `work` (a scratch directory) first.
#
#   vm_tools                         qemu-system-x86 and busybox-static, installed with apt if missing
#   vm_kernel CACHE MODULE...        Debian's kernel (linux-image-amd64's dependency) unpacked into
#                                    CACHE; sets `kernel` and `modules` (MODULE: paths under
#                                    lib/modules/VERSION/, e.g. kernel/drivers/block/loop.ko)
#   vm_copy_with_libs ROOT EXE...    EXE and the shared libraries ldd names, at the same paths
#   vm_initramfs_base ROOT           /init, busybox and the directories /init mounts on
#   vm_pack ROOT OUT                 a newc cpio of ROOT
#   vm_boot INITRAMFS LOG APPEND     boots under TCG with a timeout; prints the console and keeps it in LOG
#   vm_verdict LOG START             the digest of failures and the exit status from the result line

vm_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

say() { printf '%s: %s\n' "$lane" "$*" >&2; }
# No PT_INTERP: the kernel can exec it without a libc in the initramfs.
is_static() { local h; h=$(readelf -lW "$1" 2>/dev/null) && [[ $h != *"program interpreter"* ]]; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

vm_tools() {
    if ! command -v qemu-system-x86_64 >/dev/null; then
        say "installing qemu-system-x86"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-system-x86 >&2
    fi
    if ! is_static /bin/busybox; then
        say "installing busybox-static"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox-static >&2
    fi
}

# Debian's kernel from linux-image-amd64's dependency, unpacked from the .deb into the cache
# (nothing is installed into /boot), with the modules asked for.
vm_kernel() {
    local cache=$1 pkg m missing=0
    shift
    modules=()
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    [ -n "$pkg" ] || { say "cannot resolve linux-image-amd64"; return 2; }
    kernel=$(ls "$cache/$pkg"/boot/vmlinuz-* 2>/dev/null | head -n1 || true)
    for m in "$@"; do
        ls "$cache/$pkg"/lib/modules/*/"$m" >/dev/null 2>&1 || missing=1
    done
    if [ -z "$kernel" ] || [ "$missing" = 1 ]; then
        say "fetching $pkg"
        mkdir -p "$cache/$pkg"
        (cd "$work" && apt-get download "$pkg" >&2)
        local globs=('./boot/vmlinuz-*')
        for m in "$@"; do globs+=("./lib/modules/*/$m"); done
        dpkg-deb --fsys-tarfile "$work"/"$pkg"_*.deb | tar -x -C "$cache/$pkg" --wildcards "${globs[@]}"
        kernel=$(ls "$cache/$pkg"/boot/vmlinuz-* | head -n1)
    fi
    for m in "$@"; do
        modules+=("$(ls "$cache/$pkg"/lib/modules/*/"$m" | head -n1)")
    done
}

vm_copy_with_libs() {
    local root=$1 exe lib
    shift
    for exe in "$@"; do
        mkdir -p "$root$(dirname "$exe")"
        cp -L "$exe" "$root$exe"
        for lib in $(ldd "$exe" 2>/dev/null | grep -o '/[^ ]*'); do
            mkdir -p "$root$(dirname "$lib")"
            cp -L "$lib" "$root$lib"
        done
    done
}

vm_initramfs_base() {
    local root=$1
    mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,lane,lib/modules}
    cp /bin/busybox "$root/bin/busybox"
    cp "$vm_repo/vm/init" "$root/init"
}

vm_pack() {
    (cd "$1" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) > "$2"
}

# panic=-1 and -no-reboot turn a kernel panic (e.g. /init dying) into QEMU exiting;
# softlockup_panic=1 makes a soft lockup such a panic (one was seen once in the conformance
# part: the run then sat out the whole timeout), and loglevel=5 prints the backtraces; the
# timeout catches the rest. Sets `qemu_rc` and `vm_s`.
vm_boot() {
    local t
    t=$(date +%s.%N)
    set +e
    timeout --foreground "$timeout_s" qemu-system-x86_64 \
        -accel tcg -machine q35 -cpu max -smp 2 -m 1024 \
        -display none -monitor none -serial stdio -no-reboot \
        -kernel "$kernel" -initrd "$1" \
        -append "console=ttyS0 panic=-1 softlockup_panic=1 loglevel=5 $3" </dev/null | tee "$2"
    qemu_rc=${PIPESTATUS[0]}
    set -e
    vm_s=$(elapsed "$t")
}

vm_verdict() {
    local log=$1 start=$2 result
    result=$(grep -a -o 'HAKO-VM-RESULT rc=[0-9]*.*' "$log" | tail -n1 | tr -d '\r' || true)
    # A digest of what did not pass: failures, and known failures with the reason each carries.
    grep -a -E '^(FAIL [^ ]|UNEXPECTED-FAIL |KNOWN-FAIL |NOW-PASSES |PASS .*NOW-PASSES|test .* FAILED)' "$log" | tr -d '\r' | cut -c1-240 |
        sed "s|^|$lane:   |" >&2 || true
    say "VM ran ${vm_s} s (qemu exit $qemu_rc), lane $(elapsed "$start") s in total"
    case "$result" in
        "HAKO-VM-RESULT rc=0 "*) say "PASS: $result"; return 0 ;;
        "") say "FAIL: no result line (timeout after ${timeout_s}s or crash; qemu exit $qemu_rc)"; return 1 ;;
        *) say "FAIL: $result"; return 1 ;;
    esac
}
