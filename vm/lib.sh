# Sourced by the VM lanes (run.sh, systemd.sh): what they share.
#
#   vm_say MSG...             prints "<lane>: MSG" to stderr
#   vm_is_static FILE         true when FILE has no PT_INTERP
#   vm_elapsed START          seconds since START (a `date +%s.%N`)
#   vm_kernel CACHE WORK MOD...  sets $kernel to Debian's vmlinuz (linux-image-amd64's
#                             dependency, unpacked into CACHE, nothing into /boot) and
#                             $modules to the .ko files of MOD... with what they depend on,
#                             in load order (HAKO_VM_KERNEL: another bzImage, no modules)
#   vm_tools                  qemu-system-x86 and busybox-static, installed with apt if missing
#   vm_copy_with_libs ROOT EXE...  EXE and the shared libraries ldd names, at the same paths
#   vm_initramfs_base ROOT    /init, busybox and the directories /init mounts on
#   vm_pack ROOT OUT          a newc cpio of ROOT
#   vm_boot INITRAMFS LOG APPEND  boots under TCG with a timeout (more QEMU arguments in the
#                             array vm_qemu_args); prints the console and keeps
#                             it in LOG (sets qemu_rc and vm_s)
#   vm_verdict LOG START      the digest of failures and the exit status from the result line
#
# A lane sets `vm_lane` (its name, for messages) and `work` (a scratch directory) first; `say`,
# `is_static` and `elapsed` are the short names the lanes use.

vm_say() { printf '%s: %s\n' "${vm_lane:-vm}" "$*" >&2; }
vm_is_static() { local h; h=$(readelf -lW "$1" 2>/dev/null) && [[ $h != *"program interpreter"* ]]; }
vm_elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

vm_kernel() {
    local cache=$1 work=$2 pkg dir
    shift 2
    kernel=${HAKO_VM_KERNEL:-}
    modules=()
    [ -z "$kernel" ] || return 0
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    [ -n "$pkg" ] || { vm_say "cannot resolve linux-image-amd64"; return 2; }
    dir=$cache/$pkg
    command -v depmod >/dev/null ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kmod >&2
    # The whole module tree (and depmod's index of it): lanes pick what they load.
    if ! ls "$dir"/boot/vmlinuz-* >/dev/null 2>&1 || ! ls "$dir"/lib/modules/*/modules.dep >/dev/null 2>&1; then
        vm_say "fetching $pkg"
        mkdir -p "$dir"
        (cd "$work" && apt-get download "$pkg" >&2)
        dpkg-deb --fsys-tarfile "$work"/"$pkg"_*.deb | tar -x -C "$dir" --wildcards './boot/vmlinuz-*' './lib/modules/*'
        depmod -b "$dir" "$(basename "$(ls -d "$dir"/lib/modules/*)")"
    fi
    kernel=$(ls "$dir"/boot/vmlinuz-* | head -n1)
    local version m
    version=$(basename "$(ls -d "$dir"/lib/modules/*)")
    for m in "$@"; do
        while read -r _ ko _; do
            [[ " ${modules[*]} " == *" $ko "* ]] || modules+=("$ko")
        done < <(modprobe -d "$dir" -S "$version" --show-depends "$m" | grep '^insmod ')
    done
}

vm_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { vm_say "$@"; }
is_static() { vm_is_static "$1"; }
elapsed() { vm_elapsed "$1"; }

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
    [ -n "${vm_qemu_args+x}" ] || vm_qemu_args=()
    t=$(date +%s.%N)
    set +e
    timeout --foreground "$timeout_s" qemu-system-x86_64 \
        -accel tcg -machine q35 -cpu max -smp 2 -m 1024 "${vm_qemu_args[@]}" \
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
        sed "s|^|${vm_lane:-vm}:   |" >&2 || true
    say "VM ran ${vm_s} s (qemu exit $qemu_rc), lane $(elapsed "$start") s in total"
    case "$result" in
        "HAKO-VM-RESULT rc=0 "*) say "PASS: $result"; return 0 ;;
        "") say "FAIL: no result line (timeout after ${timeout_s}s or crash; qemu exit $qemu_rc)"; return 1 ;;
        *) say "FAIL: $result"; return 1 ;;
    esac
}
