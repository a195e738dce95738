#!/bin/bash
# t1049-bulk-namespaces: the bulk read decides as the caller's uid seen
# from the daemon, whatever namespaces the caller made and whatever
# directory handle it used.  u1000 in its own user and pid namespaces
# (root there, a pid of its own numbering) gets what u1000 gets: its
# readable file served, root's 0600 file EACCES; a handle on a
# snapshot's directory the same (the snapshot keeps the file's mode); a
# handle on .snapshots itself answers EINVAL for the snapshot's name (a
# directory), one on .trash/files ENOTTY (no node: nothing is read).
# Regression guards: main passes them all.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

LIB=$VV_SRC/tests/integration/lib
export LIB
vv_init "$T/s" >/dev/null 2>&1
vv_mount "$T/s" "$T/m"
chmod 755 "$T/m"
mkdir "$T/m/c"
head -c 3000 /dev/urandom > "$T/m/c/a"
head -c 100 /dev/urandom > "$T/m/c/secret"
chmod 644 "$T/m/c/a"
chmod 600 "$T/m/c/secret"
vv_sync "$T/m"
"$VV_BIN" snapshot create "$T/m" s1 > /dev/null

# br.py DIR NAME...: the request's answer and per name (err, size)
cat > "$T/br.py" <<'PY'
import os, sys
sys.path.insert(0, os.environ["LIB"])
import bulk as B
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
e, h, st, buf = B.read(fd, sys.argv[2:])
print(e, st)
PY
br() { as_u1000 "$PY" "$T/br.py" "$@"; }
ok='OK [(0, 3000), (-13, 0)]'

got=$(br "$T/m/c" a secret)
check "u1000: a served, root's 0600 secret EACCES" [ "$got" = "$ok" ]
if as_u1000 unshare -Urp --fork true 2>/dev/null; then
	got=$(as_u1000 unshare -Urp --fork --mount-proc "$PY" "$T/br.py" "$T/m/c" a secret)
	check "u1000 as root of its own user and pid namespaces: the same" [ "$got" = "$ok" ]
else
	echo "# no unprivileged user namespaces here: that check skipped"
fi
got=$(br "$T/m/.snapshots/s1/c" a secret)
check "u1000 through a snapshot's directory: the same" [ "$got" = "$ok" ]
got=$(br "$T/m/.snapshots" s1)
check "a handle on .snapshots: the snapshot (a directory) EINVAL" [ "$got" = "OK [(-22, 0)]" ]
rm "$T/m/c/a"
got=$(br "$T/m/.trash/files" a)
check "a handle on .trash/files: ENOTTY" [ "$got" = "ENOTTY None" ]
test_done
