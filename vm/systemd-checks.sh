#!/bin/bash
# hako's systemd cgroup driver in a VM with systemd as PID 1 (see README.md), each check
# run on hako and on runc (the oracle) with the same config. Prints "PASS name",
# "FAIL name: detail", or "KNOWN-DIFF name: detail (reason)" where hako differs from
# runc 1.1.5 on purpose. Exit status: the number of failures (at most 100).
set -u
W=/tmp/sd-checks
rm -rf "$W" && mkdir -p "$W"
T=30 # seconds any runtime command may take
. "$(dirname "$0")/lib.sh"
# systemd's memory limit property: MemoryMax on v2, MemoryLimit on v1 (runc's mapping too).
if [ "$MODE" = unified ]; then MEMPROP=MemoryMax; else MEMPROP=MemoryLimit; fi

rt() { # RUNTIME ARGS...: the runtime with the systemd driver and its own state root
    local r=$1
    shift
    timeout "$T" "$r" --root "/run/lane-$r" --systemd-cgroup "$@"
}

bundle() { # DIR ARGS-JSON CGROUPS-PATH [RESOURCES-JSON] [JQ-EXTRA]
    # A merged-/usr rootfs like the VM's own: `busybox --install -s` makes every applet's link
    # in one process (a fork per link costs seconds under TCG), pointing at the busybox it
    # runs as, /usr/bin/busybox.
    mkdir -p "$1/rootfs/usr/bin"
    ln -s usr/bin "$1/rootfs/bin"
    cp /bin/busybox "$1/rootfs/usr/bin/busybox"
    /bin/busybox --install -s "$1/rootfs/usr/bin"
    (cd "$1" && hako spec)
    jq --argjson args "$2" --arg cg "$3" --argjson res "${4:-null}" "
        .process.terminal = false | .process.args = \$args
        | (if \$cg == \"\" then del(.linux.cgroupsPath) else .linux.cgroupsPath = \$cg end)
        | (if \$res == null then . else .linux.resources += \$res end) ${5:-}" \
        "$1/config.json" > "$1/config.json.new" && mv "$1/config.json.new" "$1/config.json"
}

status() { rt "$1" state "$2" 2>/dev/null | jq -r .status; }
wait_status() { # RUNTIME ID WANT: polls every 50 ms for at most 10 s (a shell has nothing to block on)
    local i=0
    while [ "$(status "$1" "$2")" != "$3" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    status "$1" "$2"
}
gone() { # UNIT REL: no unit, and REL in no hierarchy
    local load left
    load=$(show "$1" LoadState)
    left=$(ls -d "$CG$2" "$CG"/*"$2" 2>/dev/null | tr '\n' ' ')
    if [ "$load" = not-found ] && [ -z "$left" ]; then echo gone; else echo "LoadState=$load left: $left"; fi
}

cgdir() { # CONTROLLER REL: REL's directory in CONTROLLER's hierarchy
    if [ "$MODE" = unified ]; then echo "$CG$2"; else echo "$CG/$1$2"; fi
}

PROPS=MemoryLimit,CPUShares,BlockIOWeight,ActiveState,Slice,Delegate,ControlGroup,MemoryMax,MemoryLow,MemorySwapMax,CPUWeight,CPUQuotaPerSecUSec,CPUQuotaPeriodUSec,AllowedCPUs,AllowedMemoryNodes,TasksMax,DevicePolicy,DeviceAllow,IOWeight,MemoryAccounting,CPUAccounting,IOAccounting,TasksAccounting,DefaultDependencies
if [ "$MODE" = unified ]; then
    FILES="memory/memory.max memory/memory.low memory/memory.swap.max cpu/cpu.max cpu/cpu.weight
        cpuset/cpuset.cpus cpuset/cpuset.mems pids/pids.max io/io.weight"
    BLKIO=', "blockIO": {"weight": 500}'
else
    FILES="memory/memory.limit_in_bytes memory/memory.soft_limit_in_bytes
        memory/memory.memsw.limit_in_bytes cpu,cpuacct/cpu.shares cpu,cpuacct/cpu.cfs_quota_us
        cpu,cpuacct/cpu.cfs_period_us cpuset/cpuset.cpus cpuset/cpuset.mems pids/pids.max"
    # No blkio weight file without the bfq scheduler (virtio-blk has none): both runtimes refuse it.
    BLKIO=''
fi
RES='{"memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728},
      "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
      "pids": {"limit": 50}'"$BLKIO"'}'
# Where hako and runc 1.1.5 differ by design: "key|reason".
known_diffs="CPUWeight|runc >= 1.3.2 maps shares 512 to weight 59 (quadratic); runc 1.1.5 maps it to 20 (linear)
cpu.weight|the same conversion, in the file"

# --- the lifecycle of a container with resources, on each runtime ---
lifecycle() { # RUNTIME
    local r=$1 id="$1-res" b="$W/$1-res"
    local unit="lane-$id.scope" rel="/lane.slice/lane-$id.scope"
    bundle "$b" '["sleep", "300"]' "lane.slice:lane:$id" "$RES"
    if ! rt "$r" create --bundle "$b" "$id" >"$W/out" 2>&1; then
        fail "$r/create" "$(cat "$W/out")"
        return
    fi
    pass "$r/create"
    is "$r/created" created "$(status "$r" "$id")"
    local pid
    pid=$(rt "$r" state "$id" | jq -r .pid)
    is "$r/proc-cgroup" "$rel" \
        "$(grep -E '^[0-9]+:(memory|pids|freezer|name=systemd|):' "/proc/$pid/cgroup" | cut -d: -f3- | sort -u)"
    is "$r/unit-active" active "$(show "$unit" ActiveState)"
    is "$r/unit-delegate" yes "$(show "$unit" Delegate)"
    has "$r/unit-holds-init" "$pid" "$(cat "$(cgdir pids "$rel")/cgroup.procs")"
    systemctl show -p "$PROPS" "$unit" | sed "s/$id/ID/g" > "$W/$r.props"
    for f in $FILES; do echo "${f#*/}=$(cat "$(cgdir "${f%/*}" "$rel")/${f#*/}" 2>&1)"; done > "$W/$r.files"
    rt "$r" start "$id" >"$W/out" 2>&1 || fail "$r/start" "$(cat "$W/out")"
    is "$r/running" running "$(wait_status "$r" "$id" running)"
    has "$r/ps" "$pid" "$(rt "$r" ps "$id" 2>&1)"
    rt "$r" pause "$id" >"$W/out" 2>&1 || fail "$r/pause" "$(cat "$W/out")"
    local freeze frozen thawed
    if [ "$MODE" = unified ]; then
        freeze=$(cgdir x "$rel")/cgroup.freeze frozen=1 thawed=0
    else
        freeze=$(cgdir freezer "$rel")/freezer.state frozen=FROZEN thawed=THAWED
    fi
    is "$r/paused" "paused $frozen" "$(status "$r" "$id") $(cat "$freeze")"
    rt "$r" resume "$id" >"$W/out" 2>&1 || fail "$r/resume" "$(cat "$W/out")"
    is "$r/resumed" "running $thawed" "$(status "$r" "$id") $(cat "$freeze")"
    has "$r/events-stats" '"limit":67108864' "$(rt "$r" events --stats "$id" 2>&1)"
    if rt "$r" update --memory 134217728 --pids-limit 60 --cpu-quota 20000 "$id" >"$W/out" 2>&1; then
        is "$r/update-unit" "134217728 60 200ms" \
            "$(show "$unit" "$MEMPROP") $(show "$unit" TasksMax) $(show "$unit" CPUQuotaPerSecUSec)"
        if [ "$MODE" = unified ]; then
            is "$r/update-files" "134217728 60 20000 100000" \
                "$(echo $(cat "$(cgdir x "$rel")"/{memory.max,pids.max,cpu.max}))"
        else
            is "$r/update-files" "134217728 60 20000" "$(echo $(cat "$(cgdir memory "$rel")/memory.limit_in_bytes" \
                "$(cgdir pids "$rel")/pids.max" "$(cgdir cpu,cpuacct "$rel")/cpu.cfs_quota_us"))"
        fi
    else
        fail "$r/update" "$(cat "$W/out")"
    fi
    rt "$r" kill "$id" KILL >"$W/out" 2>&1 || fail "$r/kill" "$(cat "$W/out")"
    is "$r/stopped" stopped "$(wait_status "$r" "$id" stopped)"
    rt "$r" delete "$id" >"$W/out" 2>&1 || fail "$r/delete" "$(cat "$W/out")"
    is "$r/delete-leaves-nothing" gone "$(gone "$unit" "$rel")"
}

# --- hako's own values, then hako against runc line by line ---
expect_props() {
    local p="$W/hako.props" props files
    props="Slice=lane.slice Delegate=yes ControlGroup=/lane.slice/lane-ID.scope
        CPUQuotaPerSecUSec=500ms CPUQuotaPeriodUSec=100ms AllowedCPUs=0 AllowedMemoryNodes=0
        TasksMax=50 DevicePolicy=strict DefaultDependencies=no TasksAccounting=yes"
    if [ "$MODE" = unified ]; then
        props="$props MemoryMax=67108864 MemoryLow=33554432 MemorySwapMax=67108864 CPUWeight=59"
        files="memory.max=67108864 memory.low=33554432 memory.swap.max=67108864
            cpu.max=50000+100000 cpu.weight=59 cpuset.cpus=0 cpuset.mems=0 pids.max=50"
    else
        props="$props MemoryLimit=67108864 CPUShares=512"
        files="memory.limit_in_bytes=67108864 memory.soft_limit_in_bytes=33554432
            memory.memsw.limit_in_bytes=134217728 cpu.shares=512 cpu.cfs_quota_us=50000
            cpu.cfs_period_us=100000 cpuset.cpus=0 cpuset.mems=0 pids.max=50"
    fi
    for want in $props; do
        has "hako/prop/${want%%=*}" "$want" "$(cat "$p")"
    done
    has "hako/prop/DeviceAllow" "/dev/char/1:3 rwm" "$(grep DeviceAllow "$p")"
    for want in $files; do
        has "hako/file/${want%%=*}" "${want//+/ }" "$(cat "$W/hako.files")"
    done
}

norm() { # FILE: systemctl prints a DeviceAllow= line per entry in its own order: one sorted line
    grep -v '^DeviceAllow=' "$1"
    grep -q '^DeviceAllow=' "$1" && echo "DeviceAllow=$(grep '^DeviceAllow=' "$1" | cut -d= -f2- | sort | tr '\n' ';')"
}

compare() { # WHAT: hako's and runc's lines of $W/{hako,runc}.WHAT
    local line key reason theirs
    norm "$W/hako.$1" > "$W/hako.$1.n"
    norm "$W/runc.$1" > "$W/runc.$1.n"
    while IFS= read -r line; do
        key=${line%%=*}
        theirs=$(grep -m1 "^$key=" "$W/runc.$1.n")
        if [ "$line" = "$theirs" ]; then
            pass "same-as-runc/$key"
            continue
        fi
        reason=$(printf '%s\n' "$known_diffs" | awk -F'|' -v k="$key" '$1 == k { print $2 }')
        if [ -n "$reason" ]; then
            echo "KNOWN-DIFF same-as-runc/$key: hako '$line', runc '$theirs' ($reason)"
        else
            fail "same-as-runc/$key" "hako '$line', runc '$theirs'"
        fi
    done < "$W/hako.$1.n"
}

# --- the default path, a nested slice, malformed paths, a failing create, run ---
paths() { # RUNTIME
    local r=$1 id="$1-def" b="$W/$1-def"
    bundle "$b" '["sleep", "300"]' ""
    if rt "$r" create --bundle "$b" "$id" >"$W/out" 2>&1; then
        local cgp
        cgp=$(grep '^0::' "/proc/$(rt "$r" state "$id" | jq -r .pid)/cgroup")
        is "$r/default-path" "0::/system.slice/$r-$id.scope" "$cgp"
        rt "$r" delete --force "$id" >/dev/null 2>&1
        is "$r/default-path-deleted" gone "$(gone "$r-$id.scope" "/system.slice/$r-$id.scope")"
    else
        fail "$r/default-path" "$(cat "$W/out")"
    fi
    id="$r-nest" b="$W/$r-nest"
    bundle "$b" '["sleep", "300"]' "lane-sub.slice:lane:$id"
    if rt "$r" create --bundle "$b" "$id" >"$W/out" 2>&1; then
        is "$r/nested-slice" "/lane.slice/lane-sub.slice/lane-$id.scope" "$(show "lane-$id.scope" ControlGroup)"
        rt "$r" delete --force "$id" >/dev/null 2>&1
        is "$r/nested-slice-deleted" gone "$(gone "lane-$id.scope" "/lane.slice/lane-sub.slice/lane-$id.scope")"
    else
        fail "$r/nested-slice" "$(cat "$W/out")"
    fi
    id="$r-bad" b="$W/$r-bad"
    bundle "$b" '["true"]' "not-a-slice-path"
    if rt "$r" create --bundle "$b" "$id" >"$W/out" 2>&1; then
        fail "$r/malformed-path" "create succeeded"
        rt "$r" delete --force "$id" >/dev/null 2>&1
    else
        pass "$r/malformed-path ($(tail -n1 "$W/out" | cut -c1-160))"
    fi
    is "$r/malformed-path-no-state" "" "$(rt "$r" list -q 2>/dev/null | grep "$id")"
    id="$r-hook" b="$W/$r-hook"
    bundle "$b" '["true"]' "lane.slice:lane:$id" "" \
        '| .hooks.createRuntime = [{"path": "/bin/false"}]'
    if rt "$r" create --bundle "$b" "$id" >"$W/out" 2>&1; then
        fail "$r/failed-create" "create succeeded"
        rt "$r" delete --force "$id" >/dev/null 2>&1
    else
        # runc leaves the state of a failed create behind on some paths; clean it like an engine.
        rt "$r" delete --force "$id" >/dev/null 2>&1
        is "$r/failed-create-leaves-nothing" gone "$(gone "lane-$id.scope" "/lane.slice/lane-$id.scope")"
    fi
    id="$r-run" b="$W/$r-run"
    bundle "$b" '["sh", "-c", "grep -c ^0:: /proc/self/cgroup; exit 7"]' "lane.slice:lane:$id"
    rt "$r" run --bundle "$b" "$id" >"$W/out" 2>"$W/err"
    got="$? $(head -n1 "$W/out")"
    # What the runtime said, where it did not end as the container did.
    [ "$got" = "7 1" ] || got="$got; stderr: $(tr '\n' ' ' <"$W/err" | cut -c1-300)"
    is "$r/run-exit-status" "7 1" "$got"
    is "$r/run-leaves-nothing" gone "$(gone "lane-$id.scope" "/lane.slice/lane-$id.scope")"
}

for r in hako runc; do
    lifecycle "$r"
    paths "$r"
done
if [ -f "$W/hako.props" ] && [ -f "$W/runc.props" ]; then
    expect_props
    compare props
    compare files
else
    fail "compare" "a runtime produced no properties"
fi
sed 's/^/hako: /' "$W/hako.props" "$W/hako.files" 2>/dev/null
sed 's/^/runc: /' "$W/runc.props" "$W/runc.files" 2>/dev/null
# Slices stay (lane.slice, lane-sub.slice): systemd keeps a slice it made for a unit, with
# either runtime; scopes must go.
left=$(systemctl list-units --all --no-legend 'lane-*.scope' '*-def.scope' 2>&1
    ls -d "$CG"/lane.slice/lane-*.scope "$CG"/*/lane.slice/lane-*.scope "$CG"/system.slice/*-def.scope \
        "$CG"/*/system.slice/*-def.scope "$CG"/lane.slice/lane-sub.slice/*.scope 2>/dev/null)
is "final/nothing-left" "" "$left"
echo "systemd checks ($MODE): $passed passed, $failed failed"
[ "$failed" -lt 100 ] || failed=100
exit "$failed"
