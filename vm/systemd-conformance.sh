#!/bin/bash
# The conformance suite's cgroup and lifecycle sections on the systemd cgroup driver
# (`hako-conformance --systemd-cgroup`: the flag on every runtime command, each case's
# cgroupsPath a unit in hakoconf.slice), in the systemd VM (see README.md): every case must
# pass on hako; runc's result, the oracle's, is printed (prefixed "runc:") and does not gate,
# as in scripts/test.sh. Unified layout only (CI time). Exit status 0 only if hako passed.
set -u
. "$(dirname "$0")/lib.sh"
if [ "$MODE" != unified ]; then
    echo "conformance: skipped on the $MODE layout (unified only)"
    exit 0
fi
filter=${HAKO_VM_SYSTEMD_CONFORMANCE:-cgroups/,lifecycle/}
suite() { # RUNTIME
    timeout 1200 "$(dirname "$0")/hako-conformance" --runtime "$(command -v "$1")" \
        --systemd-cgroup --filter "$filter" 2>&1
}
cd /tmp || exit 2
suite runc | grep -E '^(FAIL|SKIP)|passed, [0-9]+ failed' | sed 's/^/runc: /'
suite hako > /tmp/conformance-hako.out
rc=$?
grep -E '^(FAIL|SKIP)|passed, [0-9]+ failed' /tmp/conformance-hako.out | sed 's/^\([0-9]* passed\)/hako: \1/'
left=$(systemctl list-units --all --no-legend 'conf-*.scope'; ls -d /sys/fs/cgroup/hakoconf.slice/*.scope 2>/dev/null)
[ -z "$left" ] || { echo "FAIL conformance/nothing-left: $left"; rc=1; }
echo "conformance (hako, --systemd-cgroup, $filter): exit status $rc"
exit "$rc"
