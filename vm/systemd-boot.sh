#!/bin/bash
# Run by hako-lane.service in the systemd VM (the image's /usr/local/sbin/hako-lane
# unpacks the lane's tar to /lane): the lane's parts, one result line, power off.
cd /lane || exit 1
install -m 755 /lane/hako /usr/local/bin/hako
boot_s=$(cut -d' ' -f1 /proc/uptime)
echo "hako-vm: kernel $(uname -r), $(systemctl --version | head -n1), $(runc --version | head -n1)"
echo "hako-vm: cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers); boot $(systemd-analyze 2>/dev/null | head -n1)"
rc=0
summary=''
# What to run is named by the lane's tar (systemd.sh, HAKO_VM_SYSTEMD_PARTS): one word a part.
for part in $(cat /lane/parts); do
    if [ ! -f "/lane/$part.sh" ]; then
        echo "FAIL part $part: no /lane/$part.sh"
        rc=1
        continue
    fi
    t0=$(cut -d' ' -f1 /proc/uptime)
    prc=0
    bash "/lane/$part.sh" 2>&1 || prc=1
    [ "$prc" = 0 ] || rc=1
    t1=$(cut -d' ' -f1 /proc/uptime)
    summary="$summary $part=$prc/$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s"
done
echo "HAKO-VM-RESULT rc=$rc boot_s=$boot_s$summary"
sync
systemctl --no-block poweroff
