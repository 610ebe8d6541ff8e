#!/bin/bash
# Engines on hako's systemd cgroup driver in the systemd VM (see README.md): podman with
# `--cgroup-manager systemd`, and containerd's CRI plugin with `SystemdCgroup = true` running a
# pod through cri.py, each with hako (registered by `hako setup`, verbatim) and with runc (the
# oracle), the same steps and the same expectations. The image is busybox, made here (no
# registry is reachable). Unified layout only: the engines add minutes, and the driver's
# hybrid paths are the checks' (systemd-checks.sh). Exit status: the number of failures.
set -u
. "$(dirname "$0")/lib.sh"
if [ "$MODE" != unified ]; then
    echo "engines: skipped on the $MODE layout (unified only)"
    exit 0
fi
W=/tmp/sd-engines
rm -rf "$W" && mkdir -p "$W"
T=120 # seconds any engine command may take
IMAGE=localhost/lane-busybox:1
CRI="timeout $T python3 $(dirname "$0")/cri.py"

# --- the image: busybox's applets in a merged-/usr tree, imported by podman, saved for ctr ---
image() {
    local r=$W/rootfs
    mkdir -p "$r/usr/bin" /etc/containers
    ln -s usr/bin "$r/bin"
    cp /bin/busybox "$r/usr/bin/busybox"
    /bin/busybox --install -s "$r/usr/bin"
    tar -C "$r" -cf "$W/rootfs.tar" .
    # containers-policy.json(5): a local image has no signature to check.
    [ -f /etc/containers/policy.json ] ||
        echo '{"default": [{"type": "insecureAcceptAnything"}]}' > /etc/containers/policy.json
    # PATH in the image: containerd sets none of its own for the pod's sandbox, and runc 1.1.5
    # then finds no `sleep` (hako searches execvp(3)'s default path, as the spec's args say).
    timeout "$T" podman import --change 'CMD ["sleep", "3600"]' --change 'ENV PATH=/usr/bin:/bin' \
        "$W/rootfs.tar" "$IMAGE" >"$W/out" 2>&1 &&
        timeout "$T" podman save --format docker-archive -o "$W/image.tar" "$IMAGE" >>"$W/out" 2>&1
}

# --- podman ---
podman_lifecycle() { # RUNTIME: hako (registered in containers.conf) or runc
    local r=$1 name="lane-$1" id unit dir
    local p="timeout $T podman --cgroup-manager systemd --runtime $r"
    if ! $p run -d --name "$name" --memory 67108864 --network host "$IMAGE" sleep 300 >"$W/out" 2>&1; then
        fail "podman/$r/run" "$(cat "$W/out")"
        return
    fi
    id=$(podman inspect -f '{{.Id}}' "$name")
    unit=libpod-$id.scope dir=$CG/machine.slice/libpod-$id.scope
    is "podman/$r/unit" "active machine.slice yes 67108864" \
        "$(show "$unit" ActiveState) $(show "$unit" Slice) $(show "$unit" Delegate) $(show "$unit" MemoryMax)"
    is "podman/$r/memory.max" 67108864 "$(cat "$dir/memory.max" 2>&1)"
    is "podman/$r/exec" "in 3" "$($p exec "$name" sh -c 'echo in; exit 3' 2>&1) $?"
    $p pause "$name" >"$W/out" 2>&1 || fail "podman/$r/pause" "$(cat "$W/out")"
    is "podman/$r/paused" "paused 1" "$(podman inspect -f '{{.State.Status}}' "$name") $(cat "$dir/cgroup.freeze" 2>&1)"
    $p unpause "$name" >"$W/out" 2>&1 || fail "podman/$r/unpause" "$(cat "$W/out")"
    is "podman/$r/unpaused" "running 0" "$(podman inspect -f '{{.State.Status}}' "$name") $(cat "$dir/cgroup.freeze" 2>&1)"
    $p stop -t 1 "$name" >"$W/out" 2>&1 || fail "podman/$r/stop" "$(cat "$W/out")"
    is "podman/$r/stopped" exited "$(podman inspect -f '{{.State.Status}}' "$name")"
    $p rm "$name" >"$W/out" 2>&1 || fail "podman/$r/rm" "$(cat "$W/out")"
    is "podman/$r/rm-leaves-nothing" "not-found absent" \
        "$(show "$unit" LoadState) $([ -e "$dir" ] && echo present || echo absent)"
    # The path of issue 15's flake: the container exits, the engine deletes it at once.
    $p run --rm --network host "$IMAGE" sh -c 'exit 7' >"$W/out" 2>&1
    is "podman/$r/run-rm-exit-status" 7 "$?"
}

# --- containerd's CRI plugin ---
containerd_config() {
    mkdir -p /etc/containerd
    containerd config default > /etc/containerd/config.toml
    # runc's handler on the systemd driver, as the kubelet's `cgroupDriver: systemd` needs; the
    # pod's sandbox image is the local one.
    sed -i -e 's/SystemdCgroup = false/SystemdCgroup = true/' \
        -e "s|sandbox_image = .*|sandbox_image = \"$IMAGE\"|" /etc/containerd/config.toml
    hako --systemd-cgroup setup containerd --write >"$W/out" 2>&1 || {
        fail "cri/setup" "$(cat "$W/out")"
        return 1
    }
    timeout "$T" systemctl start containerd >"$W/out" 2>&1 || {
        fail "cri/containerd" "$(cat "$W/out"; journalctl -u containerd --no-pager | tail -n 5)"
        return 1
    }
    timeout "$T" ctr -n k8s.io images import "$W/image.tar" >"$W/out" 2>&1 || {
        fail "cri/import" "$(cat "$W/out")"
        return 1
    }
}

cri_pod() { # HANDLER: hako or runc
    local h=$1 pod cid uid="lane$1" parent="kubepods-besteffort-podlane$1.slice"
    local podname="lane-$1" dir=$CG/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podlane$1.slice
    if ! pod=$($CRI runp "$podname" "$uid" "$parent" "$h" 2>"$W/err"); then
        fail "cri/$h/runp" "$(cat "$W/err"; journalctl -u containerd --no-pager -n 8 -o cat)"
        return
    fi
    if ! cid=$($CRI create "$pod" "$podname" "$uid" "$parent" app 67108864 "$IMAGE" sleep 300 2>"$W/err"); then
        fail "cri/$h/create" "$(cat "$W/err")"
    elif ! $CRI start "$cid" 2>"$W/err"; then
        fail "cri/$h/start" "$(cat "$W/err")"
    else
        is "cri/$h/running" "1 0" "$($CRI status "$cid" 2>&1)"
        # Both of the pod's containers (the sandbox and the app) in the pod's slice.
        is "cri/$h/pod-slice" "$parent active $parent active" \
            "$(show "cri-containerd-$pod.scope" Slice) $(show "cri-containerd-$pod.scope" ActiveState) $(show "cri-containerd-$cid.scope" Slice) $(show "cri-containerd-$cid.scope" ActiveState)"
        is "cri/$h/memory" "67108864 67108864" \
            "$(show "cri-containerd-$cid.scope" MemoryMax) $(cat "$dir/cri-containerd-$cid.scope/memory.max" 2>&1)"
        is "cri/$h/exec" "in 0" "$($CRI exec "$cid" sh -c 'echo in' 2>&1) $?"
        $CRI stop "$cid" 2>"$W/err" || fail "cri/$h/stop" "$(cat "$W/err")"
        is "cri/$h/exited" 2 "$($CRI status "$cid" 2>&1 | cut -d' ' -f1)"
        $CRI rm "$cid" 2>"$W/err" || fail "cri/$h/rm" "$(cat "$W/err")"
    fi
    $CRI stopp "$pod" 2>"$W/err" || fail "cri/$h/stopp" "$(cat "$W/err")"
    $CRI rmp "$pod" 2>"$W/err" || fail "cri/$h/rmp" "$(cat "$W/err")"
    is "cri/$h/rm-leaves-nothing" "not-found not-found" \
        "$(show "cri-containerd-$pod.scope" LoadState) $(show "cri-containerd-${cid:-none}.scope" LoadState)"
    is "cri/$h/no-cgroup-left" "" "$(ls -d "$dir"/cri-containerd-* 2>/dev/null)"
}

if image; then
    pass engines/image
    hako setup podman --write >"$W/out" 2>&1 || fail "podman/setup" "$(cat "$W/out")"
    for r in hako runc; do podman_lifecycle "$r"; done
    if containerd_config; then
        for h in hako runc; do cri_pod "$h"; done
    fi
else
    fail engines/image "$(cat "$W/out")"
fi
echo "engines: $passed passed, $failed failed"
[ "$failed" -lt 100 ] || failed=100
exit "$failed"
