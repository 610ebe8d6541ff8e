#!/usr/bin/env bash
# A guided tour of what a container is, replayed with hako on a busybox bundle:
# builds hako, makes the bundle, runs the experiments, and cleans up. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps-tour.sh
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "Building hako (Cargo profile 'tour': unoptimised, quick to compile)"
# Not the shipped build (scripts/build-release.sh: static, LTO over one codegen unit), which
# takes twice as long on a fresh checkout; a handful of commands does not notice the speed
# (Cargo.toml, [profile.tour]). `hako --version` names the commit, as the shipped build's does.
HAKO_COMMIT="$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)" \
  cargo build --profile tour --quiet -p hako
HAKO="${CARGO_TARGET_DIR:-$PWD/target}/tour/hako"
"$HAKO" --version

WORK=$(mktemp -d /tmp/hako-tour.XXXXXX)
ROOT="$WORK/state"
ID="tour-$$"
CG="/hako-tour-$$"
cleanup() {
  "$HAKO" --root "$ROOT" delete --force "$ID" >/dev/null 2>&1 || true
  "$HAKO" --root "$ROOT" delete --force "$ID-run" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
h() { "$HAKO" --root "$ROOT" "$@"; }

say "Making a bundle: a busybox rootfs and a config.json (hako spec, then edited)"
mkdir -p "$WORK/bundle/rootfs/bin" "$WORK/bundle/rootfs/"{proc,sys,dev,etc,tmp}
cp /bin/busybox "$WORK/bundle/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$WORK/bundle/rootfs/bin/$a"; done
(cd "$WORK/bundle" && "$HAKO" spec)
python3 - "$WORK/bundle/config.json" "$CG" <<'PY'
import json, sys
path, cg = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = ["sleep", "1000"]
c["root"]["readonly"] = False
c["hostname"] = "inside-hako"
c["linux"]["cgroupsPath"] = cg
c["mounts"] = [m for m in c["mounts"] if m["type"] != "cgroup"]
json.dump(c, open(path, "w"), indent=2)
PY
echo "bundle: $WORK/bundle (rootfs + config.json, cgroupsPath $CG)"

say "1. A container is a process: create it, and its init waits for 'start'"
run h create --bundle "$WORK/bundle" "$ID"
run h state "$ID"
run h start "$ID"
PID=$(h state "$ID" | sed -n 's/.*"pid": \([0-9]*\).*/\1/p')
echo "the container's init is host pid $PID: $(tr '\0' ' ' < /proc/$PID/cmdline)"

say "2. Its own process table: ps inside shows only the container's processes"
run h exec "$ID" ps

say "3. Its own hostname and network: only the loopback device"
echo "host: $(hostname)"
run h exec "$ID" hostname
run h exec "$ID" ls /sys/class/net

say "4. Namespaces: /proc/<pid>/ns/* of the container differ from the host's"
for ns in pid net ipc uts mnt; do
  printf '%-4s host %-22s container %s\n' "$ns" "$(readlink /proc/self/ns/$ns)" "$(readlink /proc/$PID/ns/$ns)"
done

say "5. cgroups decide which devices it may open"
DEV="/sys/fs/cgroup/devices$CG"
[ -d "$DEV" ] || DEV=""
run h exec "$ID" sh -c 'head -c 8 /dev/random | wc -c'
if [ -n "$DEV" ]; then
  echo "\$ echo 'c 1:8 rwm' > $DEV/devices.deny"
  echo 'c 1:8 rwm' > "$DEV/devices.deny"
  printf '$ hako exec %s cat /dev/random\n' "$ID"
  h exec "$ID" cat /dev/random || echo "(exit status $?: the kernel refused, as the cgroup says)"
else
  echo "(no v1 devices controller on this host: the eBPF device filter is covered by the test suite)"
fi

say "6. 'run' in one go: exit status passes through"
python3 - "$WORK/bundle/config.json" "$CG-run" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["args"] = ["sh", "-c", "echo hello from $(hostname); exit 3"]
c["linux"]["cgroupsPath"] = sys.argv[2]
json.dump(c, open(sys.argv[1], "w"), indent=2)
PY
set +e; h run --bundle "$WORK/bundle" "$ID-run"; echo "exit status: $?"; set -e

say "7. Cleaning up: delete --force kills it and removes its cgroup and state"
run h delete --force "$ID"
run h list
ls -d /sys/fs/cgroup/*"$CG" 2>/dev/null && echo "cgroup left!" || echo "no cgroup left behind"
