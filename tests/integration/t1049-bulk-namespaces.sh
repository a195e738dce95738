#!/bin/bash
# t1049-bulk-namespaces: the bulk read decides as the caller's uid seen
# from the daemon, whatever namespaces the caller made and whatever
# directory handle it used.  u1000 in its own user and pid namespaces
# (root there, a pid of its own numbering) gets what u1000 gets: its
# readable file served, root's 0600 file EACCES; a handle on a
# snapshot's directory the same (the snapshot keeps the file's mode); a
# handle on .snapshots itself answers EINVAL for the snapshot's name (a
# directory), one on .trash/files ENOTTY (no node: nothing is read).  A
# handle u1000 opened before a chmod, an ACL or a rename answers as its
# openat(2) of the name would then.  Regression guards: main passes all.
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

# a handle u1000 opened before a change answers as its openat(2) then:
# chmod of the directory and an ACL on the file refuse, chmod of the
# parent and a rename of it do not (POSIX: a held handle needs no path)
mkdir -p "$T/m/p/d"
chmod 755 "$T/m/p" "$T/m/p/d"
cp "$T/m/c/a" "$T/m/p/d/a"
chmod 644 "$T/m/p/d/a"
cat > "$T/held.py" <<'PY'
import os, sys
sys.path.insert(0, os.environ["LIB"])
import bulk as B
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
print(B.read(fd, ["a"])[2], flush=True)
sys.stdin.readline()
try:
    os.close(os.open("a", os.O_RDONLY, dir_fd=fd)); o = 0
except OSError as e:
    o = -e.errno
print(B.read(fd, ["a"])[2][0][0], o, flush=True)
PY
held() {
	local l
	chmod 755 "$T/m/p" "$T/m/p/d"
	setfacl -b "$T/m/p/d/a"
	coproc H { as_u1000 "$PY" "$T/held.py" "$T/m/p/d" 2>&1; }
	read -r l <&"${H[0]}"
	"$@"
	echo >&"${H[1]}"
	read -r l <&"${H[0]}"
	wait
	[ -d "$T/m/q" ] && mv "$T/m/q" "$T/m/p"
	echo "$l"
}
check "held handle, chmod 700 of the directory: bulk and openat EACCES" \
	[ "$(held chmod 700 "$T/m/p/d")" = "-13 -13" ]
check "held handle, an ACL denying u1000 the file: bulk and openat EACCES" \
	[ "$(held setfacl -m u:1000:--- "$T/m/p/d/a")" = "-13 -13" ]
check "held handle, chmod 700 of the parent: bulk and openat served" \
	[ "$(held chmod 700 "$T/m/p")" = "0 0" ]
check "held handle, the parent renamed: bulk and openat served" \
	[ "$(held mv "$T/m/p" "$T/m/q")" = "0 0" ]

rm "$T/m/c/a"
got=$(br "$T/m/.trash/files" a)
check "a handle on .trash/files: ENOTTY" [ "$got" = "ENOTTY None" ]
test_done
