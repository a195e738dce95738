#!/bin/bash
# t1013-access-attack: the holes an unprivileged local user found, closed.
#  1. open(path, 3) (ioctl-only) needs read and write permission, as on
#     ext4; the query ioctl needs a handle opened for reading; a 0600
#     segment cannot be reconstructed through the offload.
#  3. FIFOs and unix sockets: only users with read and write permission
#     (or the owner) can reach them; no cached entry outlives a chmod.
#  4. protected_hardlinks: no link to a file you could not read and write;
#     audit records name the path the opener used, never another user's
#     link name.
#  6. audit gaps: getxattr (ACLs, computed attributes), listxattr,
#     readlink, access(2), statfs and hidden security.* are recorded (not
#     a security.* name on a file with no stored xattr: nothing hidden);
#     denied opens carry their mode; the computed names stay hidden from
#     callers who cannot read the segment; an ioctl on a file that is no
#     segment is EINVAL, not ECORRUPT.
#  7. exec of a 0711 binary is refused to another user: read is needed too
#     (t1031: the kernel left the process dumpable, /proc/PID/mem showed it).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
vv_mount "$S" "$M"
has() { vv_audit_has "$LOG" "$@"; }
hasnt() { [ "$(vv_audit_q "$LOG" count "$@")" -eq 0 ]; }

C=$M/c
mkdir -m 755 "$C"
# a 0600 segment of root's: 6 rows x 4 float32, distinct values
"$PY" - "$C/secret.npy" <<'PY'
import struct, sys
hdr = b"{'descr': '<f4', 'fortran_order': False, 'shape': (6, 4), }"
hdr += b" " * (64 - 10 - len(hdr) - 1) + b"\n"
rows = [[r * 10 + c + 0.5 for c in range(4)] for r in range(6)]
with open(sys.argv[1], "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr)
    for r in rows: f.write(struct.pack("<4f", *r))
PY
chmod 600 "$C/secret.npy"
cp -p "$C/secret.npy" "$C/open644.npy"; chmod 644 "$C/open644.npy"
cp -p "$C/secret.npy" "$C/open666.npy"; chmod 666 "$C/open666.npy"

# --- 1. mode 3 and the query ioctl --------------------------------------------
cat > "$T/knn.py" <<'PY'
# knn.py PATH MODE: open PATH with flags MODE (0, 1, 2 or 3) and try to
# reconstruct every row through the offload (metric ip, unit queries, k =
# rows).  Prints the open's or the ioctl's errno name, or ROWS:<values>.
import errno, fcntl, os, struct, sys, time
path, mode = sys.argv[1], int(sys.argv[2])
SIZE = 16320
KNN = (3 << 30) | (SIZE << 16) | (ord('v') << 8) | 0x4b
try:
    fd = os.open(path, mode)
except OSError as e:
    print("open:" + errno.errorcode[e.errno]); sys.exit(0)
vals = {}
for d in range(4):
    for tries in range(200):
        b = bytearray(SIZE)
        struct.pack_into("<8I", b, 0, 0x4e4e4b56, 1, 2, 4, 1, 6, 0, 4)
        q = [0.0] * 4; q[d] = 1.0
        struct.pack_into("<4f", b, 48, *q)
        try:
            fcntl.ioctl(fd, KNN, b, True)
            break
        except OSError as e:
            if e.errno == errno.EAGAIN:
                time.sleep(0.05); continue
            print("ioctl:" + errno.errorcode[e.errno]); sys.exit(0)
    for i in range(6):
        dist, _, row = struct.unpack_from("<fIQ", b, 48 + 16 * i)
        vals[(row, d)] = -dist
print("ROWS:" + ",".join("%g" % vals[(r, d)] for r in range(6) for d in range(4)))
PY
knn() { "$PY" "$T/knn.py" "$@"; }
knn_nobody() { as_nobody "$PY" "$T/knn.py" "$@"; }
SECRET=$("$PY" -c 'print("ROWS:" + ",".join("%g" % (r * 10 + c + 0.5) for r in range(6) for c in range(4)))')

check "mode 3 on root's 0600 segment as nobody: EACCES" \
	test "$(knn_nobody "$C/secret.npy" 3)" = "open:EACCES"
check "mode 3 on a 0644 file as nobody (no write permission): EACCES" \
	test "$(knn_nobody "$C/open644.npy" 3)" = "open:EACCES"
check "O_RDONLY on root's 0600 segment as nobody: EACCES" \
	test "$(knn_nobody "$C/secret.npy" 0)" = "open:EACCES"
check "mode 3 on a 0666 file opens, but the ioctl needs a read handle: EBADF" \
	test "$(knn_nobody "$C/open666.npy" 3)" = "ioctl:EBADF"
check "a write-only handle: EBADF" test "$(knn_nobody "$C/open666.npy" 1)" = "ioctl:EBADF"
got=$(knn_nobody "$C/open644.npy" 0)
check "a legitimately readable handle still offloads (rows come back)" test "$got" = "$SECRET"
got=$(knn "$C/secret.npy" 2)
check "root's own O_RDWR handle offloads too" test "$got" = "$SECRET"
check "the refused mode-3 open is audited with its mode" \
	has op=open path=/c/secret.npy uid=65534 result=EACCES mode=ioctl
check "the refused read open is audited with mode r" \
	has op=open path=/c/secret.npy uid=65534 result=EACCES mode=r
check "no successful open of the secret by nobody in the log" \
	hasnt op=open path=/c/secret.npy uid=65534 result=ok
check "SEEK_DATA on a mode-3 handle of root's 0600 file is unreachable" \
	as_nobody "$PY" -c '
import errno, os, sys
try:
    fd = os.open(sys.argv[1], 3)
except OSError as e:
    sys.exit(0 if e.errno == errno.EACCES else 1)
sys.exit(1)' "$C/secret.npy"
printf 'plain text, no segment\n' > "$C/notes.npy"
chmod 644 "$C/notes.npy"
check "ioctl on a file that is no segment: EINVAL" \
	test "$(knn_nobody "$C/notes.npy" 0)" = "ioctl:EINVAL"
check "... audited as EINVAL with why, not as tampering (ECORRUPT)" \
	has op=scan path=/c/notes.npy result=EINVAL detail~segment
check "... and never as ECORRUPT" hasnt op=scan path=/c/notes.npy result=ECORRUPT

# --- 3. FIFOs and unix sockets -----------------------------------------------
mkfifo -m 600 "$C/fifo"
mkfifo -m 666 "$C/fifo666"
mkfifo -m 644 "$C/fifo644"
OPENRW='import os, sys
try:
    os.close(os.open(sys.argv[1], os.O_RDWR | os.O_NONBLOCK)); print("OK")
except OSError as e:
    import errno; print(errno.errorcode[e.errno])'
openrw() { "$@" "$PY" -c "$OPENRW" "$FIFO"; }
FIFO=$C/fifo
check "root's 0600 FIFO: nobody cannot open it (EACCES)" test "$(openrw as_nobody)" = EACCES
check "... nor stat it" test "$(as_nobody "$PY" -c "$VV_PYOP" stat "$FIFO")" = EACCES
check "... and the refusal is audited" has op=lookup path=/c/fifo uid=65534 result=EACCES
check "... root still can" test "$(openrw as_root)" = OK
check "... and ls of the directory still lists it for nobody" \
	sh -c "setpriv --reuid=65534 --regid=65534 --clear-groups -- ls '$C' | grep -qx fifo"
check "ls -l as nobody does not instantiate it either (stat still EACCES after)" \
	sh -c "setpriv --reuid=65534 --regid=65534 --clear-groups -- ls -l '$C' >/dev/null 2>&1; \
	       test \"\$(setpriv --reuid=65534 --regid=65534 --clear-groups -- '$PY' -c '$OPENRW' '$FIFO')\" = EACCES"
FIFO=$C/fifo666
check "a 0666 FIFO opens for nobody" test "$(openrw as_nobody)" = OK
FIFO=$C/fifo644
check "a 0644 FIFO: nobody may only read, so no open at all (stricter than POSIX)" \
	test "$(openrw as_nobody)" = EACCES
chmod 666 "$C/fifo"
FIFO=$C/fifo
check "after chmod 666 nobody opens root's FIFO" test "$(openrw as_nobody)" = OK
chmod 600 "$C/fifo"
check "after chmod 600 again nobody is refused (nothing cached)" test "$(openrw as_nobody)" = EACCES
mkdir -m 1777 "$C/tmp"
as_nobody mkfifo -m 600 "$C/tmp/mine"
FIFO=$C/tmp/mine
check "nobody's own 0600 FIFO opens for nobody" test "$(openrw as_nobody)" = OK
check "... and not for uid 1000" test "$(openrw as_u1000)" = EACCES
check "... nobody can remove it" as_nobody rm "$C/tmp/mine"

SOCKSRV='import os, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], int(sys.argv[2], 8))
s.listen(8); open(sys.argv[1] + ".ready", "w").close(); time.sleep(30)'
CONNECT='import errno, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1]); print("OK")
except OSError as e:
    print(errno.errorcode[e.errno])'
"$PY" -c "$SOCKSRV" "$C/sock" 600 & SP1=$!
"$PY" -c "$SOCKSRV" "$C/sock666" 666 & SP2=$!
for i in $(seq 100); do [ -e "$C/sock.ready" ] && [ -e "$C/sock666.ready" ] && break; sleep 0.1; done
check "connect() to root's 0600 socket as nobody: EACCES" \
	test "$(as_nobody "$PY" -c "$CONNECT" "$C/sock")" = EACCES
check "connect() to a 0666 socket as nobody works" \
	test "$(as_nobody "$PY" -c "$CONNECT" "$C/sock666")" = OK
check "root connects to its 0600 socket" test "$("$PY" -c "$CONNECT" "$C/sock")" = OK
kill "$SP1" "$SP2" 2>/dev/null; wait "$SP1" "$SP2" 2>/dev/null || true

# --- 4. hard links ------------------------------------------------------------
printf 'root only\n' > "$C/tmp/secret"; chmod 600 "$C/tmp/secret"
printf 'world rw\n' > "$C/tmp/shared"; chmod 666 "$C/tmp/shared"
printf 'world r\n' > "$C/tmp/ro"; chmod 644 "$C/tmp/ro"
printf 'suid\n' > "$C/tmp/suid"; chmod 4766 "$C/tmp/suid"
as_nobody sh -c "echo mine > '$C/tmp/own'; chmod 600 '$C/tmp/own'"
want nobody EPERM link "$C/tmp/secret" "$C/tmp/s2"
want nobody EPERM link "$C/tmp/ro" "$C/tmp/r2"
want nobody EPERM link "$C/tmp/suid" "$C/tmp/u2"
want nobody EPERM link "$C/fifo666" "$C/tmp/f2"
want nobody OK link "$C/tmp/own" "$C/tmp/own2"
want nobody OK link "$C/tmp/shared" "$C/tmp/evil"
want root OK link "$C/tmp/secret" "$C/tmp/s3"
check "the refused link is audited" has op=link path=/c/tmp/s2 uid=65534 result=EPERM

# Audit path: nobody looks the file up by the link name it chose; root then
# reads it by its own name: the record names root's path.
as_nobody stat "$C/tmp/evil" >/dev/null
cat "$C/tmp/shared" >/dev/null
as_nobody stat "$C/tmp/evil" >/dev/null
cat "$C/tmp/shared" >/dev/null
check "root's open of /c/tmp/shared is logged under that path" \
	has op=open path=/c/tmp/shared uid=0 result=ok
check "... never under nobody's link name" hasnt op=open path=/c/tmp/evil uid=0
cat "$C/tmp/evil" >/dev/null
check "root's open by the link name is logged under the link name" \
	has op=open path=/c/tmp/evil uid=0 result=ok

# --- 6. audit gaps ------------------------------------------------------------
printf 'x\n' > "$C/attrs"; chmod 644 "$C/attrs"
setfattr -n user.color -v blue "$C/attrs"
setfacl -m u:1000:r "$C/attrs"
ln -s attrs "$C/link"
getfattr -n user.color "$C/attrs" >/dev/null
check "getxattr of a user.* value is recorded" has op=getxattr path=/c/attrs result=ok detail=user.color
getfacl "$C/attrs" >/dev/null 2>&1
check "an ACL read is recorded" has op=getxattr path=/c/attrs result=ok detail=system.posix_acl_access
getfattr -n user.vecvault.count "$C/open644.npy" >/dev/null
check "a computed attribute's read is recorded" \
	has op=getxattr path=/c/open644.npy result=ok detail=user.vecvault.count
getfattr -d "$C/attrs" >/dev/null
check "listxattr is recorded" has op=listxattr path=/c/attrs result=ok
readlink "$C/link" >/dev/null
check "readlink is recorded" has op=readlink path=/c/link result=ok
as_nobody "$PY" -c 'import os, sys; os.access(sys.argv[1], os.R_OK)' "$C/attrs"
check "a granted access(2) is recorded" has op=access path=/c/attrs uid=65534 result=ok detail=r
stat -f "$C" >/dev/null
check "statfs is recorded" has op=statfs result=ok
check "security.* hidden from nobody as ENODATA" \
	test "$(as_nobody "$PY" -c "$VV_PYOP" getxattr "$C/attrs" security.ima)" = ENODATA
check "... and that is recorded as hidden" \
	has op=getxattr path=/c/attrs uid=65534 result=ENODATA detail~hidden
# A file with no stored xattr hides nothing: root gets ENODATA too, so
# nobody's ENODATA is a plain "no such attribute", not recorded (ls -l by a
# non-root user asks it of every file).  The access(2) after it is recorded,
# so once it is in the log the getxattr would be too.
touch "$C/noxattr"
chmod 644 "$C/noxattr"
check "security.* of a file without xattrs: ENODATA for nobody" \
	test "$(as_nobody "$PY" -c "$VV_PYOP" getxattr "$C/noxattr" security.ima)" = ENODATA
as_nobody "$PY" -c 'import os, sys; os.access(sys.argv[1], os.R_OK)' "$C/noxattr"
nothing_hidden() { has op=access path=/c/noxattr uid=65534 && hasnt op=getxattr path=/c/noxattr; }
check "... and not recorded: nothing was withheld" nothing_hidden
names=$(as_nobody "$PY" -c 'import os, sys; print(" ".join(os.listxattr(sys.argv[1])))' "$C/secret.npy")
check "computed names are hidden from those who cannot read the segment" \
	eval '! echo "$names" | grep -q vecvault'
names=$(as_nobody "$PY" -c 'import os, sys; print(" ".join(os.listxattr(sys.argv[1])))' "$C/open644.npy")
check "... and shown to those who can" eval 'echo "$names" | grep -q user.vecvault.count'

# --- 7. exec of a 0711 binary --------------------------------------------------
mkdir -m 755 "$C/bin"
cp /bin/true "$C/bin/t711"; chmod 711 "$C/bin/t711"
cp /bin/true "$C/bin/t700"; chmod 700 "$C/bin/t700"
cp /bin/true "$C/bin/t755"; chmod 755 "$C/bin/t755"
want nobody EACCES exec "$C/bin/t711"
want nobody EACCES read "$C/bin/t711"
want nobody EACCES exec "$C/bin/t700"
check "nobody runs a 0755 binary" as_nobody "$C/bin/t755"
check "the exec open is audited with mode x" has op=open path=/c/bin/t755 uid=65534 mode=x result=ok
check "... and the refused one too" has op=open path=/c/bin/t711 uid=65534 mode=x result=EACCES

vv_umount "$M"
test_done
