# Sourced by the VM lanes (run.sh, systemd.sh): what they share.
#
#   vm_say MSG...             prints "<lane>: MSG" to stderr
#   vm_is_static FILE         true when FILE has no PT_INTERP
#   vm_elapsed START          seconds since START (a `date +%s.%N`)
#   vm_kernel CACHE WORK MOD...  sets $kernel to Debian's vmlinuz (linux-image-amd64's
#                             dependency, unpacked into CACHE, nothing into /boot) and
#                             $modules to the .ko files of MOD... with what they depend on,
#                             in load order (HAKO_VM_KERNEL: another bzImage, no modules)

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
