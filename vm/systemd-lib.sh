# Sourced by the systemd lane's parts in the VM (systemd-checks.sh, systemd-engines.sh):
# results as "PASS name" / "FAIL name: detail", counted in $passed and $failed.
passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1: $(echo "$2" | tr '\n' ' ' | cut -c1-400)"; }
is() { if [ "$2" = "$3" ]; then pass "$1"; else fail "$1" "want '$2', got '$3'"; fi; }
has() { case "$3" in *"$2"*) pass "$1" ;; *) fail "$1" "no '$2' in: $3" ;; esac; }
show() { systemctl show -p "$2" "$1" | cut -d= -f2-; }
# systemd's own layout: "unified" (cgroup2 only) or "hybrid" (v1 controllers, and cgroup2
# at /sys/fs/cgroup/unified without controllers): systemd.unified_cgroup_hierarchy=0.
CG=/sys/fs/cgroup
if [ -d "$CG/unified" ]; then MODE=hybrid; else MODE=unified; fi
