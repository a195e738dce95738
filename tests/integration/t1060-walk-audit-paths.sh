#!/bin/bash
# t1060-walk-audit-paths: the path walk (vault_node_path: audit records,
# the trash's record of where an item was) has no depth bound of its own,
# only its 4 KiB buffer, as the walks up the tree it sits beside have
# none (docs/design.md "Walks up the tree").  A tree 600 deep (a path of
# 1221 bytes, well under PATH_MAX): u1000's open of its bottom file is
# recorded with the full path (main stopped naming at 512 levels:
# "<inode N>/secret"), and rm -rf of the tree puts it in the trash (main
# refused every removal below 512 levels, ENOENT, because the trash
# could not name the item).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
vv_mount "$S" "$M"

mkdir -m 755 "$M/c"
chown 1000:1000 "$M/c"

# --- a deep tree: every level "d", made and read through directory fds
deep() {   # deep ACTION: mk (make the chain and the file) or read
	as_u1000 "$PY" - "$M/c" "$1" <<'EOF'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
if sys.argv[2] == "mk":
    os.mkdir("deep", dir_fd=fd)
fd = os.open("deep", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
for i in range(600):
    if sys.argv[2] == "mk":
        os.mkdir("d", dir_fd=fd)
    nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
    os.close(fd)
    fd = nfd
if sys.argv[2] == "mk":
    f = os.open("secret", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd)
    os.write(f, b"deep secret\n")
    os.close(f)
else:
    f = os.open("secret", os.O_RDONLY, dir_fd=fd)
    sys.stdout.write(os.read(f, 100).decode())
    os.close(f)
EOF
}
check "u1000 makes /c/deep and 600 levels below it, and a file at the bottom" deep mk
check "and reads it back" test "$(deep read)" = "deep secret"
DEEP=/c/deep$(printf '/d%.0s' $(seq 600))
check "its read is recorded with its whole path (1221 bytes)" \
	vv_audit_has "$LOG" op=open uid=1000 result=ok "path=$DEEP/secret"
check "nothing is recorded as <inode N>" sh -c "! grep -q '<inode' '$LOG'"
check "u1000 removes the tree (rm -rf)" as_u1000 rm -rf "$M/c/deep"
check "it is gone" test ! -e "$M/c/deep"
check "the tree is in the trash, by its path" sh -c "'$VV_BIN' trash list '$M' | grep -q ' /c/deep/ '"
check "the bottom file's removal was a trash move, recorded with its path" \
	vv_audit_has "$LOG" op=trash uid=1000 result=ok "path=$DEEP/secret"

test_done
