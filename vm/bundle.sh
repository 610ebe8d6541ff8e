# Sourced by the VM's check scripts: busybox bundles whose config.json is
# `hako spec`'s output edited with awk (the initramfs has no python or jq).
#
#   bundle DIR ID ARGS [RESOURCES] [LINUX] [CAPS]
#
# makes DIR/rootfs (/bin/busybox and a symlink per applet) and DIR/config.json:
# `hako spec` with "terminal": false, process.args = ARGS (a JSON array),
# linux.cgroupsPath = /hako-vm-ID, RESOURCES (JSON members, each followed by a
# comma) put before the spec's linux.resources.devices, LINUX (JSON members,
# comma-terminated) put first in linux, CAPS (quoted names, comma-terminated)
# added to every capability set.

# The awk edit relies on `hako spec` printing one key per line with sorted keys
# (serde_json's pretty printer): "args": [ ... ] spans lines up to a line "],".
spec_edit() {
    awk -v args="$1" -v cg="$2" -v res="$3" -v lnx="$4" -v caps="$5" '
        skip { if ($0 ~ /^ *\],?$/) skip = 0; next }
        /"terminal": true/ { sub(/true/, "false") }
        /^ *"args": \[$/ { print "    \"args\": " args ","; skip = 1; next }
        /^  "linux": \{$/ { print; if (lnx != "") print "    " lnx; next }
        /^    "resources": \{$/ {
            print "    \"cgroupsPath\": \"" cg "\","; print
            if (res != "") print "      " res
            next
        }
        /^ *"CAP_AUDIT_WRITE",$/ { print; if (caps != "") print "        " caps; next }
        { print }
    '
}

bundle() {
    b_dir=$1
    mkdir -p "$b_dir/rootfs/bin" || return 1
    cp /bin/busybox "$b_dir/rootfs/bin/busybox" || return 1
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] || ln -s busybox "$b_dir/rootfs/bin/$applet"
    done
    (cd "$b_dir" && /bin/hako spec) || return 1
    spec_edit "$3" "/hako-vm-$2" "${4:-}" "${5:-}" "${6:-}" \
        < "$b_dir/config.json" > "$b_dir/config.json.new" || return 1
    mv "$b_dir/config.json.new" "$b_dir/config.json"
}
