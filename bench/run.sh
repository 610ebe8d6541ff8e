#!/usr/bin/env bash
# hako vs runc vs crun, paired, in one run: see bench/README.md.
#   bench/run.sh [--quick]      (as root; full run ~5 min, --quick ~1 min)
#   bench/run.sh --profile      strace -f syscall counts and perf stat per runtime (profile.py)
# Builds hako in release, bench/floor.c and bench/spawn.c (the measuring launcher), then runs bench.py in a private mount namespace in
# which /sys/fs/cgroup/unified/cgroup.controllers reads empty: crun 1.8 refuses this hybrid host
# otherwise, and runc and hako run under the same wrapper so that the comparison is fair.
set -euo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$BENCH")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"

if [ "$(id -u)" != 0 ]; then
  echo "bench/run.sh: run as root (containers, cgroups, mounts)" >&2
  exit 2
fi
"$REPO/scripts/deps.sh"
command -v gcc >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq gcc libc6-dev >/dev/null; }
python3 -c 'import matplotlib' 2>/dev/null || python3 -m pip install --quiet matplotlib
PROGRAM=bench.py
if [ "${1:-}" = --profile ]; then
  shift
  PROGRAM=profile.py
  command -v strace >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq strace >/dev/null; }
  command -v perf >/dev/null 2>&1 || apt-get install -y -qq linux-perf >/dev/null || true
fi

# The shipped build: static, not position-independent (scripts/build-release.sh says why).
HAKO="$(CARGO_TARGET_DIR="$CARGO_TARGET_DIR" "$REPO/scripts/build-release.sh")"

WORK="$(mktemp -d /tmp/hako-bench-run.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
gcc -O2 -static -Wall -Wextra -o "$WORK/floor" "$BENCH/floor.c"
gcc -O2 -static -Wall -Wextra -o "$WORK/spawn" "$BENCH/spawn.c"
: >"$WORK/empty-controllers"

mkdir "$WORK/tmpfs"

# The mounts die with the namespace; util-linux unshare makes the namespace's mounts private.
# The bundles and every runtime's --root go on a tmpfs, as /run is on a usual host (here /run
# and /tmp are on the ext4 root, where creating the state files costs ~7% of hako's CPU).
# shellcheck disable=SC2016
unshare --mount --propagation private -- sh -c '
  mount --bind "$1" /sys/fs/cgroup/unified/cgroup.controllers || exit 1
  mount -t tmpfs -o mode=0700 hako-bench "$2" || exit 1
  shift 2
  exec python3 "$@"
' sh "$WORK/empty-controllers" "$WORK/tmpfs" "$BENCH/$PROGRAM" \
  --hako "$HAKO" --runc "$(command -v runc)" --crun "$(command -v crun)" \
  --floor "$WORK/floor" --spawn "$WORK/spawn" --workdir "$WORK/tmpfs" "$@"
