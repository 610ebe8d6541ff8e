#!/bin/busybox sh
# linux.memoryPolicy on a host with two NUMA nodes (runtime/docs/spec-coverage.md): part
# "numa" of the v2 lane, whose VM boots with two nodes (HAKO_VM_NUMA=2, the default), each
# one CPU and half the memory. Alone:
#
#   HAKO_VM_PARTS=numa vm/run.sh
#
# Each container prints the policy of its first mapping (/proc/self/numa_maps, as
# mm/mempolicy.c mpol_to_str writes it). One "PASS name" / "FAIL name: detail" line per check;
# the exit status is the number of failures.

. /lane/bundle.sh

WORK=/tmp/hako-numa
failed=0
echo "online nodes: $(cat /sys/devices/system/node/online)"
if [ "$(cat /sys/devices/system/node/online)" = 0 ]; then
    echo "SKIP numa: one node (HAKO_VM_NUMA=1)"
    exit 0
fi

policy() { # NAME POLICY-JSON WANT: WANT is the start of what numa_maps shows after the address
    bundle "$WORK/$1" "numa-$1" '["head", "-n1", "/proc/self/numa_maps"]' "" "\"memoryPolicy\": $2," ||
        { echo "FAIL $1: bundle"; failed=$((failed + 1)); return; }
    got=$(timeout 30 /bin/hako --root "$WORK/state" run --bundle "$WORK/$1" "numa-$1" 2>&1)
    case "$got" in
    *" $3 "*) echo "PASS $1" ;;
    *) echo "FAIL $1: $got"; failed=$((failed + 1)) ;;
    esac
}

refused() { # NAME POLICY-JSON WHY
    bundle "$WORK/$1" "numa-$1" '["true"]' "" "\"memoryPolicy\": $2," ||
        { echo "FAIL $1: bundle"; failed=$((failed + 1)); return; }
    got=$(timeout 30 /bin/hako --root "$WORK/state" run --bundle "$WORK/$1" "numa-$1" 2>&1)
    case "$got" in
    *"$3"*) echo "PASS $1" ;;
    *) echo "FAIL $1: $got"; failed=$((failed + 1)) ;;
    esac
}

policy bind1 '{"mode": "MPOL_BIND", "nodes": "1"}' "bind:1"
policy bind01 '{"mode": "MPOL_BIND", "nodes": "0-1"}' "bind:0-1"
policy interleave '{"mode": "MPOL_INTERLEAVE", "nodes": "0,1"}' "interleave:0-1"
policy preferred1 '{"mode": "MPOL_PREFERRED", "nodes": "1"}' "prefer:1"
policy many '{"mode": "MPOL_PREFERRED_MANY", "nodes": "0-1"}' "prefer (many):0-1"
policy static1 '{"mode": "MPOL_BIND", "nodes": "1", "flags": ["MPOL_F_STATIC_NODES"]}' "bind=static:1"
policy local '{"mode": "MPOL_LOCAL"}' "local"
refused node2 '{"mode": "MPOL_BIND", "nodes": "2"}' "node 2 is not online"
exit "$failed"
