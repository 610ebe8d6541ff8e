#!/bin/bash
# Builds the systemd lane's root file system (see README.md), once: Debian
# bookworm, --variant=minbase plus systemd (PID 1), dbus, busybox-static, runc
# (the oracle), jq and procps (`ps` for `hako ps`), and the engines of
# systemd-engines.sh: podman, containerd, and python3-grpcio for its CRI client; made with
# mmdebstrap from Debian's packages and packed as an ext4 image. The image is keyed by this file's hash, so editing
# the package list or a hook makes a new one.
#
#   vm/systemd-image.sh CACHE     prints the image's path
#
# The image boots into multi-user.target, where hako-lane.service extracts the
# tar on the second disk (/dev/vdb) into /lane and runs /lane/boot.sh on the
# serial console: what the lane runs lives outside the image.
set -euo pipefail

cache=$1
vm_lane=vm/systemd-image.sh
. "$(dirname "$0")/lib.sh"
key=$(sha256sum "$0" | cut -c1-12)
image=$cache/systemd-rootfs-$key.ext4
if [ -f "$image" ]; then
    touch "$image" # in use: see the clean-up below
    echo "$image"
    exit 0
fi
command -v mmdebstrap >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mmdebstrap >&2
command -v mkfs.ext4 >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends e2fsprogs >&2

t=$(date +%s.%N)
mkdir -p "$cache"
dir=$(mktemp -d "$cache/systemd-rootfs.XXXXXX")
trap 'rm -rf "$dir" "$image.tmp"' EXIT
vm_say "building the rootfs with mmdebstrap (once: $image)"
# shellcheck disable=SC2016 # the hooks are expanded by mmdebstrap's shell, "$1" is the root
mmdebstrap --variant=minbase --mode=root \
    --include=systemd,systemd-sysv,dbus,busybox-static,runc,jq,procps,podman,containerd,python3-grpcio \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='echo hako-systemd > "$1/etc/hostname"' \
    --customize-hook='printf "/dev/vda / ext4 rw 0 1\n" > "$1/etc/fstab"' \
    --customize-hook='passwd --root "$1" -d root' \
    --customize-hook='for u in serial-getty@ttyS0.service getty@tty1.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do ln -sf /dev/null "$1/etc/systemd/system/$u"; done' \
    --customize-hook='mkdir -p "$1/usr/local/sbin" "$1/etc/systemd/system/multi-user.target.wants"' \
    --customize-hook='printf "#!/bin/sh\n# The lane: its files come as a tar on the second disk.\nmkdir -p /lane && tar -x -f /dev/vdb -C /lane && exec sh /lane/boot.sh\n" > "$1/usr/local/sbin/hako-lane" && chmod 755 "$1/usr/local/sbin/hako-lane"' \
    --customize-hook='printf "[Unit]\nDescription=hako systemd lane\nAfter=multi-user.target dbus.service\n[Service]\nType=oneshot\nExecStart=/usr/local/sbin/hako-lane\nStandardOutput=tty\nStandardError=tty\nTTYPath=/dev/ttyS0\n" > "$1/etc/systemd/system/hako-lane.service"' \
    --customize-hook='ln -sf ../hako-lane.service "$1/etc/systemd/system/multi-user.target.wants/hako-lane.service"' \
    --customize-hook='rm -f "$1/etc/systemd/system/multi-user.target.wants/containerd.service"' \
    bookworm "$dir" >&2
mkfs.ext4 -q -F -L hako-systemd -d "$dir" "$image.tmp" 2G >&2
mv "$image.tmp" "$image"
# Images of other recipes are 2 GiB each (sparse): remove those unused for a day (a lane of
# another branch may be booting one now).
find "$cache" -maxdepth 1 -name 'systemd-rootfs-*.ext4' ! -path "$image" -mmin +1440 -delete
vm_say "image built in $(vm_elapsed "$t") s: $(du -sh --apparent-size "$dir" | cut -f1) of files"
echo "$image"
