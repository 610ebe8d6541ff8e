#!/bin/busybox sh
# Checkpoint and restore with CRIU, run by the VM's /init (see README.md, "The CRIU lane") on
# Debian 12's kernel, where Debian 12's CRIU works. Every scenario runs against hako
# (/bin/hako) and against runc (/usr/sbin/runc), the oracle, with the same expectations.
#
# A busybox container counts in a loop, one number a line on its stdout (a pipe, as runc's
# own tests use: CRIU reconnects pipes to the restoring runtime's stdio); "continues" means
# the first number after the restore is the last one before the checkpoint plus one.
#
# Each check prints "PASS name", "FAIL name: detail", or "KNOWN-FAIL name: detail (reason)"
# for a check listed in known_failures (which does not fail the lane; one that passes prints
# NOW-PASSES). Exit status: the number of unexpected failures.

. /lane/bundle.sh

WORK=/tmp/criu-checks
T=60 # seconds any single runtime command may take before it counts as hung
COUNTER='["sh","-c","i=0; while :; do i=$((i+1)); echo $i; usleep 100000; done"]'
# A TCP connection on the container's loopback: the counter feeds a client, the server
# prints what arrives (its stdin a pipe that stays open: on end-of-file busybox's nc would
# close the connection). The container brings its loopback up itself (with CAP_NET_ADMIN):
# runc does it for a new network namespace, hako leaves it down (reported).
TCP='["sh","-c","ip link set lo up; sleep 100000 | nc -l -p 5000 & usleep 300000; i=0; while :; do i=$((i+1)); echo $i; usleep 100000; done | nc 127.0.0.1 5000"]'

# "check|reason" per line: failures of the oracle, seen in this lane and not hako's.
known_failures="runc/tcp-restore|runc 1.1.5 with CRIU 3.17: CRIU cannot connect the restored TCP socket back (Network is unreachable in soccr) where the same images restore under hako
runc/tcp-continues|follows from runc/tcp-restore
runc/nothing-left|runc 1.1.5 leaves the cgroup of the container it checkpointed with --lazy-pages (hako-vm-runc-lazy) behind"

passed=0 failed=0 known=0

report() { # NAME RC DETAIL
    reason=$(printf '%s\n' "$known_failures" | awk -F'|' -v n="$1" '$1 == n { print $2 }')
    if [ "$2" = 0 ]; then
        passed=$((passed + 1))
        echo "PASS $1${reason:+ (NOW-PASSES: remove it from known_failures)}"
    elif [ -n "$reason" ]; then
        known=$((known + 1))
        echo "KNOWN-FAIL $1: $(echo "$3" | tr '\n' ' ' | cut -c1-600) ($reason)"
    else
        failed=$((failed + 1))
        echo "FAIL $1: $(echo "$3" | tr '\n' ' ' | cut -c1-1500)"
    fi
}

rt() { timeout "$T" $RT "$@"; }

# start OUT ARGS...: the runtime command with stdin, stdout and stderr anonymous pipes (what
# runc's tests give containers to checkpoint), everything it and the container print appended
# to OUT; returns the command's exit status once it ended (the pipes stay with the container).
start() {
    s_out=$1
    shift
    rm -f "$WORK/rc" "$WORK/closed"
    { : | { timeout "$T" $RT "$@" 2>&1; echo $? > "$WORK/rc"; } | cat >> "$s_out"; : > "$WORK/closed"; } &
    wait_for "$T" test -s "$WORK/rc" || return 124
    return "$(cat "$WORK/rc")"
}

wait_for() { # SECONDS COMMAND...: polls every 0.1 s (a shell has nothing to block on)
    w_n=$(($1 * 10))
    shift
    while [ "$w_n" -gt 0 ]; do
        "$@" && return 0
        usleep 100000
        w_n=$((w_n - 1))
    done
    return 1
}

log_context() { # LOG: what CRIU ran and the lines around its first error, for a failure's detail
    [ -f "$1" ] || return 0
    echo "| log:"
    grep -E 'Running |Error|exited' "$1" | head -n 8
    grep -m1 -B8 -A3 'Error' "$1"
}

numbers() { tr -d '\r' < "$1" | grep -E '^[0-9]+$'; }
count_of() { numbers "$1" | wc -l; }
last_of() { numbers "$1" | tail -n1; }
first_of() { numbers "$1" | head -n1; }
has_lines() { [ "$(count_of "$1")" -ge "$2" ]; }
status_of() { rt state "$1" 2>/dev/null | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p'; }
is_status() { [ "$(status_of "$1")" = "$2" ]; }
gone() { ! rt state "$1" >/dev/null 2>&1; }

# continues NAME BEFORE AFTER: AFTER's first number is BEFORE's last plus one, and it goes on
continues() {
    c_last=$(last_of "$2")
    wait_for 20 has_lines "$3" 3
    c_first=$(first_of "$3")
    [ -n "$c_last" ] && [ "$c_first" = "$((c_last + 1))" ] && has_lines "$3" 3
    report "$1" $? "last before: '$c_last', first after: '$c_first', after: $(count_of "$3") lines; output: $(tail -c 300 "$3")"
}

cleanup() { # ID...
    for c_id in "$@"; do
        rt kill "$c_id" KILL >/dev/null 2>&1
        rt delete -f "$c_id" >/dev/null 2>&1
    done
}

# checkpoint NAME ID IMAGES ARGS...: checkpoints, then waits until the container is gone and
# its output pipe closed (the counter's last number is in the file).
checkpoint() {
    k_name=$1 k_id=$2 k_img=$3
    shift 3
    rt checkpoint --image-path "$k_img" --work-path "$k_img.work" "$@" "$k_id" > "$WORK/ck.out" 2>&1
    report "$k_name" $? "$(cat "$WORK/ck.out"; log_context "$k_img.work/dump.log")"
}

restore() { # NAME ID IMAGES OUT ARGS...
    r_name=$1 r_id=$2 r_img=$3 r_out=$4
    shift 4
    start "$r_out" restore -d --image-path "$r_img" --work-path "$r_img.rwork" --bundle "$B" "$@" "$r_id"
    report "$r_name" $? "$(cat "$r_out"; log_context "$r_img.rwork/restore.log")"
}

# counting ID ARGS [CAPS]: a container running ARGS from `run -d`, its output in $W/run.out,
# once it printed five lines
counting() {
    bundle "$B" "$1" "$2" "" "" "${3:-}"
    start "$W/run.out" run -d --bundle "$B" "$1"
    report "$name/run-$1" $? "$(cat "$W/run.out")"
    wait_for 20 has_lines "$W/run.out" 5
}

# The output pipe of the last `start` closed: every number the container printed is in the file.
output_closed() { wait_for 20 test -e "$WORK/closed"; }

in_its_cgroup() { # PID ID: v2, its one line; v1, every controller's line is the container's
    if [ -z "$CG_TAG" ]; then
        grep -qx "0::/hako-vm-$2" "/proc/$1/cgroup"
        return
    fi
    ! grep -v '^0::' "/proc/$1/cgroup" | grep -v ":/hako-vm-$2\$" | grep -q .
}

scenario_roundtrip() { # the same id; $CG_ARGS: --manage-cgroups-mode for both ends
    id=$name-rt
    counting "$id" "$COUNTER"
    checkpoint "$name/checkpoint" "$id" "$W/img1" $CG_ARGS
    wait_for 10 gone "$id"
    report "$name/checkpoint-removes-container" $? "status $(status_of "$id")"
    output_closed
    restore "$name/restore" "$id" "$W/img1" "$W/r1.out" $CG_ARGS
    is_status "$id" running
    report "$name/restored-running" $? "status '$(status_of "$id")'"
    # The restored tree is in the container's cgroup (every hierarchy on v1).
    pid=$(rt state "$id" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
    [ -n "$pid" ] && in_its_cgroup "$pid" "$id"
    report "$name/restored-in-its-cgroup" $? "pid '$pid': $(tr '\n' ' ' < "/proc/$pid/cgroup" 2>&1)"
    # exec reads the config the restore kept in the state directory, as create keeps it.
    out=$(rt exec "$id" sh -c 'echo exec-in-restored' 2>&1)
    [ "$out" = exec-in-restored ]
    report "$name/exec-in-restored" $? "$out"
    continues "$name/restored-continues" "$W/run.out" "$W/r1.out"
    cleanup "$id"
}

# page server: checkpoint --page-server sends the memory to a `criu page-server` (here on
# the loopback, writing into the same image directory), the rest to --image-path.
scenario_pageserver() {
    id=$name-ps
    case $name in hako) port=27011 ;; *) port=27012 ;; esac
    counting "$id" "$COUNTER"
    mkdir -p "$W/img"
    timeout "$T" criu page-server --address 127.0.0.1 --port "$port" -D "$W/img" \
        -o page-server.log > "$W/ps.out" 2>&1 &
    ps_pid=$!
    wait_for 10 sh -c "netstat -ltn 2>/dev/null | grep -q ':$port '"
    checkpoint "$name/ps-checkpoint" "$id" "$W/img" --page-server "127.0.0.1:$port"
    wait "$ps_pid"
    report "$name/ps-server-done" $? "$(cat "$W/ps.out"; log_context "$W/img/page-server.log")"
    ls "$W/img" | grep -q '^pages-'
    report "$name/ps-pages-received" $? "$(ls "$W/img" | tr '\n' ' ')"
    output_closed
    restore "$name/ps-restore" "$id" "$W/img" "$W/r.out"
    continues "$name/ps-continues" "$W/run.out" "$W/r.out"
    cleanup "$id"
}

# lazy: checkpoint --lazy-pages with a page server (runc's checkpoint.bats "lazy-pages"): CRIU
# dumps everything but the memory, says so on --status-fd, and serves the pages to a
# `criu lazy-pages` daemon while the restored tree faults them in (userfaultfd).
scenario_lazy() {
    id=$name-lazy
    case $name in hako) port=27001 ;; *) port=27002 ;; esac
    counting "$id" "$COUNTER"
    rm -f "$W/status.fifo" "$W/status.byte"
    mkfifo "$W/status.fifo"
    dd if="$W/status.fifo" of="$W/status.byte" bs=1 count=1 2>/dev/null &
    rd_pid=$!
    # Write-only: runc refuses an --status-fd open for reading and writing.
    exec 7>"$W/status.fifo"
    rt checkpoint --lazy-pages --page-server "127.0.0.1:$port" --status-fd 7 \
        --image-path "$W/img" --work-path "$W/img.work" "$id" > "$W/ck.out" 2>&1 &
    ck_pid=$!
    exec 7>&-
    wait_for 30 sh -c "! kill -0 $rd_pid 2>/dev/null"
    [ "$(od -An -tx1 "$W/status.byte" 2>/dev/null | tr -d ' ')" = 00 ]
    report "$name/lazy-status-ready" $? "status byte '$(od -An -tx1 "$W/status.byte" 2>&1)'; $(cat "$W/ck.out"; log_context "$W/img.work/dump.log")"
    [ -e "$W/img/inventory.img" ]
    report "$name/lazy-images-written" $? "$(ls "$W/img" 2>&1 | tr '\n' ' ')"
    mkdir -p "$W/img.rwork"
    # The daemon and the restore share a work directory: the restore finds the daemon's
    # lazy-pages.socket there.
    timeout "$T" criu lazy-pages --page-server --address 127.0.0.1 --port "$port" \
        -D "$W/img" -W "$W/img.rwork" -o lazy-pages.log > "$W/lp.out" 2>&1 &
    lp_pid=$!
    wait_for 10 test -S "$W/img.rwork/lazy-pages.socket"
    # The dumped tree stays frozen in its cgroup until its pages are all served: the restored
    # one needs a cgroup of its own (a bundle for the new id).
    B0=$B B=$W/bundle-new
    bundle "$B" "$id-new" "$COUNTER"
    restore "$name/lazy-restore" "$id-new" "$W/img" "$W/r.out" --lazy-pages
    B=$B0
    continues "$name/lazy-continues" "$W/run.out" "$W/r.out"
    wait "$ck_pid"
    report "$name/lazy-checkpoint-done" $? "$(cat "$W/ck.out"; log_context "$W/img.work/dump.log")"
    wait "$lp_pid"
    report "$name/lazy-daemon-done" $? "$(cat "$W/lp.out"; log_context "$W/img.rwork/lazy-pages.log")"
    cleanup "$id" "$id-new"
}

scenario_predump() {
    id=$name-pre
    counting "$id" "$COUNTER"
    checkpoint "$name/pre-dump" "$id" "$W/pre" --pre-dump
    is_status "$id" running
    report "$name/pre-dump-leaves-running" $? "status '$(status_of "$id")'"
    checkpoint "$name/dump-on-parent" "$id" "$W/final" --parent-path ../pre
    output_closed
    # Under a new id: the checkpointed container's id is free again.
    restore "$name/restore-chain-new-id" "$id-new" "$W/final" "$W/r.out"
    continues "$name/chain-new-id-continues" "$W/run.out" "$W/r.out"
    gone "$id"
    report "$name/old-id-free" $? "status '$(status_of "$id")'"
    cleanup "$id" "$id-new"
}

scenario_leave_running() {
    id=$name-leave
    counting "$id" "$COUNTER"
    checkpoint "$name/leave-running" "$id" "$W/img" --leave-running
    n=$(count_of "$W/run.out")
    is_status "$id" running && wait_for 20 has_lines "$W/run.out" $((n + 3))
    report "$name/left-running-counts-on" $? "status '$(status_of "$id")', $(count_of "$W/run.out") lines (had $n)"
    cleanup "$id"
    output_closed
    restore "$name/restore-left-running" "$id" "$W/img" "$W/r.out"
    wait_for 20 has_lines "$W/r.out" 3
    report "$name/left-running-restored-counts" $? "$(tail -c 200 "$W/r.out")"
    cleanup "$id"
}

scenario_tty() {
    id=$name-tty
    bundle "$B" "$id" "$COUNTER"
    sed -i 's/"terminal": false/"terminal": true/' "$B/config.json"
    /bin/recvtty "$W/tty.sock" "$W/tty.out" &
    tty_pid=$!
    wait_for 10 test -S "$W/tty.sock"
    rt run -d --console-socket "$W/tty.sock" --bundle "$B" "$id" > "$W/run.out" 2>&1
    report "$name/tty-run" $? "$(cat "$W/run.out")"
    wait_for 20 has_lines "$W/tty.out" 5
    checkpoint "$name/tty-checkpoint" "$id" "$W/img"
    wait_for 10 gone "$id"
    cp "$W/tty.out" "$W/tty.before"
    rt restore -d --image-path "$W/img" --work-path "$W/img.rwork" --console-socket "$W/tty.sock" \
        --bundle "$B" "$id" > "$W/r.out" 2>&1
    report "$name/tty-restore" $? "$(cat "$W/r.out"; log_context "$W/img.rwork/restore.log")"
    n=$(count_of "$W/tty.before")
    wait_for 20 has_lines "$W/tty.out" $((n + 3))
    l=$(last_of "$W/tty.before")
    numbers "$W/tty.out" | tail -n +$((n + 1)) > "$W/tty.after"
    [ -n "$l" ] && [ "$(first_of "$W/tty.after")" = "$((l + 1))" ]
    report "$name/tty-continues" $? "last before '$l', after: $(head -c 100 "$W/tty.after")"
    cleanup "$id"
    kill "$tty_pid" 2>/dev/null
}

scenario_tcp() {
    id=$name-tcp
    counting "$id" "$TCP" '"CAP_NET_ADMIN",'
    has_lines "$W/run.out" 5
    report "$name/tcp-flows" $? "$(tail -c 200 "$W/run.out")"
    rt checkpoint --image-path "$W/no" --work-path "$W/no.work" "$id" > "$W/no.out" 2>&1
    [ $? != 0 ] && is_status "$id" running
    report "$name/tcp-refused-without-flag" $? "status '$(status_of "$id")': $(cat "$W/no.out")"
    checkpoint "$name/tcp-checkpoint" "$id" "$W/img" --tcp-established
    output_closed
    restore "$name/tcp-restore" "$id" "$W/img" "$W/r.out" --tcp-established
    continues "$name/tcp-continues" "$W/run.out" "$W/r.out"
    cleanup "$id"
}

# What every host CRIU runs on has and /init does not set up: CRIU probes TCP repair mode on
# the loopback (kerndat_tcp_repair) and the devpts magic at /dev/pts (kerndat).
ip link set lo up
mkdir -p /dev/pts
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
[ -e /dev/ptmx ] || ln -s pts/ptmx /dev/ptmx
echo "criu-checks: $(criu --version | head -n1); kernel $(uname -r)"
# For the record only: `criu check` also wants what no container here uses (veth, /dev/ptmx).
criu check > /tmp/criu-check.out 2>&1
echo "criu-checks: criu check exit $?: $(tail -n 3 /tmp/criu-check.out | tr '\n' ' ')"

run_scenarios() { # SCENARIO...: each, for hako and for runc
    for name in hako runc; do
        case $name in
            hako) RT="/bin/hako --root /run/hako" ;;
            runc) RT="/usr/sbin/runc --root /run/runc" ;;
        esac
        for s in "$@"; do
            W=$WORK/$name/$s$CG_TAG
            B=$W/bundle
            mkdir -p "$W"
            t0=$(cut -d' ' -f1 /proc/uptime)
            "scenario_$s"
            echo "criu-checks: $name $s$CG_TAG in $(echo "$(cut -d' ' -f1 /proc/uptime) $t0" | awk '{printf "%.1f", $1 - $2}') s"
        done
    done
}

CG_ARGS='' CG_TAG=''
run_scenarios roundtrip predump leave_running tty tcp pageserver lazy

# cgroup v1 (what a v1 or hybrid host has, as the development machine): the controllers
# handed over from v2 to v1 hierarchies in this same boot, then the round trip again, with
# CRIU's default and its "full" cgroup mode. A controller moves only once no cgroup uses it on
# v2: memory (and io) keep dying cgroups of the v2 scenarios alive (their page cache), so they
# stay on the unified hierarchy, as on a hybrid host; the containers here ask for no memory
# or io limit. The others, devices and freezer included, are v1 hierarchies.
cgroup_v1() {
    for c in $(cat /sys/fs/cgroup/cgroup.subtree_control); do
        echo "-$c" > /sys/fs/cgroup/cgroup.subtree_control || return 1
    done
    umount /sys/fs/cgroup || return 1
    mount -t tmpfs -o mode=0755 cgroup /sys/fs/cgroup || return 1
    for c in cpu,cpuacct cpuset pids freezer devices blkio memory; do
        mkdir -p "/sys/fs/cgroup/$c"
        mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" 2>/dev/null || {
            rmdir "/sys/fs/cgroup/$c"
            echo "criu-checks: v1: $c stays on v2 (busy)"
        }
    done
    mkdir -p /sys/fs/cgroup/unified
    mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified || return 1
    for c in cpu,cpuacct cpuset pids freezer devices; do
        [ -e "/sys/fs/cgroup/$c/cgroup.procs" ] || return 1
    done
}
cgroup_v1 > "$WORK/v1.out" 2>&1
v1_rc=$?
report v1/mounted $v1_rc "$(cat "$WORK/v1.out"; grep cgroup /proc/mounts | tr '\n' ' ')"
cat "$WORK/v1.out"
echo "criu-checks: v1 mounts: $(grep ' cgroup ' /proc/mounts | cut -d' ' -f2 | tr '\n' ' ')"
if [ "$v1_rc" = 0 ]; then
    CG_ARGS='' CG_TAG=-v1
    run_scenarios roundtrip
    CG_ARGS='--manage-cgroups-mode full' CG_TAG=-v1-full
    run_scenarios roundtrip
fi

for name in hako runc; do
    left=$(ls "/run/$name" 2>/dev/null; find /sys/fs/cgroup -maxdepth 2 -name "hako-vm-$name-*")
    [ -z "$left" ]
    report "$name/nothing-left" $? "$(echo $left)"
done
echo "criu-checks: $passed passed, $failed failed, $known known failures"
[ "$failed" -gt 100 ] && failed=100
exit "$failed"
