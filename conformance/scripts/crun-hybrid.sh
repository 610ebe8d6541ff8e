#!/bin/sh
# crun 1.8 refuses a cgroup v1 hybrid host whose /sys/fs/cgroup/unified/cgroup.controllers is
# not empty-readable; run it in a private mount namespace with /dev/null over that file.
# Usage: hako-conformance --runtime conformance/scripts/crun-hybrid.sh
exec unshare -m --propagation private sh -c \
  'mount --bind /dev/null /sys/fs/cgroup/unified/cgroup.controllers && exec "${CRUN:-/usr/bin/crun}" "$@"' \
  crun-hybrid "$@"
