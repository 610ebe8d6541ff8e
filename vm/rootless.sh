#!/bin/busybox sh
# Rootless hako on a pure cgroup v2 host with a delegated subtree (issue 14): root delegates
# /hako-deleg to uid 1000 (owner of the directory, cgroup.procs, cgroup.subtree_control and
# cgroup.threads, as systemd delegates a user's subtree) and moves the user's shell into it;
# the user runs a container with memory and pids limits in /hako-deleg/ctr, and the limits
# are in the cgroup files and enforced (a fork beyond pids.max fails, a shell outgrowing
# memory.max is OOM-killed). Prints PASS/FAIL lines; exit status = failures.

CG=/sys/fs/cgroup
U=1000
W=/tmp/hako-rootless
T=30
failed=0

report() { # NAME RC DETAIL
    if [ "$2" = 0 ]; then echo "PASS rootless-$1"; else
        failed=$((failed + 1))
        echo "FAIL rootless-$1: $(echo "$3" | tr '\n' ' ')"
    fi
}

# The user's session: root moves a shell into the delegated subtree (moving a process needs
# write access to cgroup.procs of the common ancestor, the root's) and it becomes uid 1000,
# with its own runtime dir.
as_user() { # COMMAND...: run in /hako-deleg/session as uid 1000
    timeout "$T" sh -c 'echo $$ > /sys/fs/cgroup/hako-deleg/session/cgroup.procs &&
        exec /usr/local/bin/setpriv --reuid=1000 --regid=1000 --clear-groups env -i PATH=/bin:/usr/local/bin \
            XDG_RUNTIME_DIR=/tmp/hako-rootless/xdg HOME=/tmp/hako-rootless "$@"' sh "$@"
}

echo "+memory +pids" > $CG/cgroup.subtree_control
mkdir -p $CG/hako-deleg/session $W/xdg $W/b/rootfs/bin
for d in $CG/hako-deleg $CG/hako-deleg/session; do
    chown $U:$U $d $d/cgroup.procs $d/cgroup.subtree_control $d/cgroup.threads
done
cp /bin/busybox $W/b/rootfs/bin/busybox
for a in sh sleep cat true; do ln -s busybox $W/b/rootfs/bin/$a; done

config() { # ARGS-JSON: a rootless config with the limits, in /hako-deleg/ctr
    cat > $W/b/config.json <<JSON
{"ociVersion": "1.0.2",
 "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": $1,
             "env": ["PATH=/bin"], "cwd": "/", "noNewPrivileges": true},
 "root": {"path": "rootfs"},
 "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
 "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "user"}],
           "uidMappings": [{"containerID": 0, "hostID": $U, "size": 1}],
           "gidMappings": [{"containerID": 0, "hostID": $U, "size": 1}],
           "cgroupsPath": "/hako-deleg/ctr",
           "resources": {"memory": {"limit": 33554432, "swap": 33554432},
                         "pids": {"limit": 5}}}}
JSON
}
chown -R $U:$U $W

# The limits are written into the user's cgroup.
config '["sleep", "100"]'
chown $U:$U $W/b/config.json
# Output goes through a file, not $(...): the container's init inherits hako's stdout.
(cd $W/b && as_user /bin/hako create c1 >$W/out 2>&1 </dev/null)
report create $? "$(cat $W/out)"
report memory.max "$([ "$(cat $CG/hako-deleg/ctr/memory.max 2>&1)" = 33554432 ]; echo $?)" \
    "$(cat $CG/hako-deleg/ctr/memory.max 2>&1)"
report pids.max "$([ "$(cat $CG/hako-deleg/ctr/pids.max 2>&1)" = 5 ]; echo $?)" \
    "$(cat $CG/hako-deleg/ctr/pids.max 2>&1)"
as_user /bin/hako start c1 >$W/out 2>&1 && as_user /bin/hako pause c1 >>$W/out 2>&1 &&
    as_user /bin/hako resume c1 >>$W/out 2>&1
report pause-resume $? "$(cat $W/out)"
# exec joins the container, in its cgroup (no cgroup namespace: the path shows); ps lists the
# init, the one process in the cgroup.
as_user /bin/hako exec c1 cat /proc/self/cgroup >$W/out 2>&1
report exec "$([ "$(cat $W/out)" = "0::/hako-deleg/ctr" ]; echo $?)" "$(cat $W/out)"
init=$(cat $CG/hako-deleg/ctr/cgroup.procs 2>/dev/null | head -n1)
as_user /bin/hako ps --format json c1 >$W/out 2>&1
report ps "$([ "$(cat $W/out)" = "[$init]" ]; echo $?)" "ps: $(cat $W/out), cgroup.procs: $init"
# kill, then delete without --force once stopped (polled under a deadline: nothing to wait on
# from a shell).
as_user /bin/hako kill c1 KILL >$W/out 2>&1
report kill $? "$(cat $W/out)"
n=100
until as_user /bin/hako state c1 2>/dev/null | grep -q '"status": *"stopped"'; do
    n=$((n - 1)); [ $n -gt 0 ] || break; sleep 0.05
done
report stopped "$([ $n -gt 0 ]; echo $?)" "$(as_user /bin/hako state c1 2>&1)"
as_user /bin/hako delete c1 >$W/out 2>&1
report delete $? "$(cat $W/out)"
report cgroup-removed "$([ ! -e $CG/hako-deleg/ctr ]; echo $?)" "$CG/hako-deleg/ctr left"

# pids.max: the sixth process cannot be forked.
config '["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 10 & done; echo forked"]'
(cd $W/b && as_user /bin/hako run c2 >$W/out 2>&1 </dev/null)
out=$(cat $W/out)
case "$out" in *"can't fork"*) report pids-enforced 0 ;; *) report pids-enforced 1 "$out" ;; esac
as_user /bin/hako delete --force c2 >/dev/null 2>&1

# memory.max: a shell doubling a string outgrows 32 MiB (no swap: memory.swap.max is 0) and
# the kernel's OOM killer ends it inside the user's cgroup; --keep leaves the cgroup to read.
config '["sh", "-c", "x=a; while :; do x=$x$x; done"]'
(cd $W/b && as_user /bin/hako run --keep c3 >$W/out 2>&1 </dev/null)
rc=$?
report oom-exit-status "$([ $rc = 137 ]; echo $?)" "exit $rc: $(cat $W/out)"
# "oom" counts the times this cgroup's own limit left an allocation failing (a global OOM would
# not count there), "oom_kill" the processes killed in it (cgroup-v2.rst, memory.events).
ev=$CG/hako-deleg/ctr/memory.events
n=$(sed -n 's/^oom //p' $ev 2>/dev/null) k=$(sed -n 's/^oom_kill //p' $ev 2>/dev/null)
report oom-kill-counted "$([ "${n:-0}" -ge 1 ] && [ "${k:-0}" -ge 1 ]; echo $?)" \
    "oom '$n', oom_kill '$k' in $ev: $(cat $ev 2>&1)"
as_user /bin/hako delete --force c3 >$W/out 2>&1
report oom-delete $? "$(cat $W/out)"
report oom-cgroup-removed "$([ ! -e $CG/hako-deleg/ctr ]; echo $?)" "$CG/hako-deleg/ctr left"

rmdir $CG/hako-deleg/session $CG/hako-deleg 2>/dev/null
rm -rf $W
exit $failed
