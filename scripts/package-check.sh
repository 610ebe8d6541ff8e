#!/usr/bin/env bash
# The package as a user meets it: builds the .deb (scripts/package.sh), installs it with apt,
# checks what it installed (binary, man pages, completions, description), runs a container with
# the installed /usr/sbin/hako, and removes the package again, pass or fail, so the machine is
# left as it was found. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
if dpkg-query -W -f '${Status}' hako 2>/dev/null | grep -q '^install ok installed'; then
  echo "package-check.sh: a hako package is installed already; remove it first" >&2
  exit 1
fi
deb=$(./scripts/package.sh)
echo "built $deb ($(du -k "$deb" | cut -f1) KiB)"
work=$(mktemp -d /tmp/hako-package.XXXXXX)
id="package-check-$$"
cleanup() {
  /usr/sbin/hako --root "$work/state" delete --force "$id" >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get remove --purge -y -qq hako >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "package-check.sh: $*" >&2; exit 1; }
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >"$work/apt.log" 2>&1 ||
  { cat "$work/apt.log" >&2; fail "apt-get install $deb"; }

echo "-- installed files"
files=$(dpkg -L hako)
for f in /usr/sbin/hako /usr/bin/hako /usr/share/man/man8/hako.8.gz /usr/share/man/man8/hako-create.8.gz \
  /usr/share/man/man8/hako-setup.8.gz /usr/share/bash-completion/completions/hako \
  /usr/share/zsh/vendor-completions/_hako /usr/share/fish/vendor_completions.d/hako.fish \
  /usr/share/doc/hako/README.md /usr/share/doc/hako/copyright; do
  grep -qx "$f" <<<"$files" || fail "the package does not install $f"
done
[ "$(readlink -f /usr/bin/hako)" = /usr/sbin/hako ] || fail "/usr/bin/hako does not lead to /usr/sbin/hako"
grep -q "Apache License" /usr/share/doc/hako/copyright || fail "no licence in the copyright file"
dpkg-query -W -f '${Description}\n' hako | grep -q "namespaces: cgroup, ipc, mount" ||
  fail "the description does not carry what hako features says"
hako --version | tee "$work/version"
grep -q '^commit: [0-9a-f]' "$work/version" || fail "--version names no commit"

echo "-- man hako-create, and completions"
MANPAGER=cat MANWIDTH=100 man hako-create 2>/dev/null | grep -q -- '--console-socket' || fail "man hako-create"
words=$(bash -c 'source /usr/share/bash-completion/completions/hako
  COMP_WORDS=(hako cr); COMP_CWORD=1; _hako hako cr hako; echo "${COMPREPLY[*]}"')
[ "$words" = create ] || fail "bash completes 'hako cr' to '$words', not 'create'"
words=$(bash -c 'source /usr/share/bash-completion/completions/hako
  COMP_WORDS=(hako create --pid); COMP_CWORD=2; _hako hako --pid create; echo "${COMPREPLY[*]}"')
[ "$words" = --pid-file ] || fail "bash completes 'hako create --pid' to '$words'"
# fish loads the installed file from its vendor directory by itself.
words=$(fish -c "complete -C 'hako create --pid'" | cut -f1)
[ "$words" = --pid-file ] || fail "fish completes 'hako create --pid' to '$words'"
zsh -n /usr/share/zsh/vendor-completions/_hako || fail "zsh cannot parse its completion"

echo "-- a container run by the installed hako"
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/"
ln -s busybox "$work/bundle/rootfs/bin/sh"
(cd "$work/bundle" && hako spec)
python3 - "$work/bundle/config.json" "/hako-package-check-$$" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/busybox", "sh", "-c", "echo hello from $(/bin/busybox hostname)"]
c["hostname"] = "packaged-hako"
c["linux"]["cgroupsPath"] = sys.argv[2]
c["mounts"] = [m for m in c["mounts"] if m["type"] != "cgroup"]
json.dump(c, open(sys.argv[1], "w"))
PY
out=$(hako --root "$work/state" run --bundle "$work/bundle" "$id")
echo "$out"
[ "$out" = "hello from packaged-hako" ] || fail "the container said '$out'"
echo "package-check.sh: the package installs, documents, completes and runs containers"
