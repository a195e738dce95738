#!/bin/bash
# t1028-open-revalidate: the per-file open and close path (docs/design.md
# "Small files: per-file daemon cost") decides every open afresh and audits
# every open and close.  After each kind of change - chmod, setfacl -m and
# -x, chown, rename of a parent under a directory others cannot search,
# unlink and re-create under the same name, purge from the trash - a new
# open by u1000 or nobody gets the new answer at once, while handles opened
# before keep what POSIX gives them (and a purged file reads EIO).  O_PATH
# handles reopened through /proc/self/fd are checked like opens, mode 3
# (O_ACCMODE) needs read and write permission and can do neither, a handle
# passed to another user keeps its opener's rights and no more, and N opens
# make exactly N open and N close records, the reads' bytes counted.
# The open push: a cold read of a small file by u1000 sends no READ (its
# bytes came with the open), reads the same bytes, audited as read; a
# file in chunks is read by READ; a pushed file purged reads EIO through
# the handle opened before; a pushed file changed reads the change.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
command -v setfacl >/dev/null || { echo "1..0 # SKIP no setfacl"; vv_done=1 vv_rc=77; exit 77; }

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
LOG=$(vv_audit_log "$S")
check "mount" vv_mount "$S" "$M" --trash-days 1
mkdir -m 755 "$M/c" "$M/c/d" "$M/c/priv"
chmod 700 "$M/c/priv"
# For the open push (below): small files and one in chunks, made now.
mkdir -m 755 "$M/push" "$T/src"
"$PY" -c '
import os, random, sys
rng = random.Random(5)
for i in range(30):
    with open(os.path.join(sys.argv[1], "s%02d" % i), "wb") as f:
        f.write(rng.randbytes(rng.choice((1, 100, 4095, 4097, 30000, 65536))))
with open(os.path.join(sys.argv[1], "big"), "wb") as f:
    f.write(rng.randbytes(100000))' "$T/src"
cp -p "$T/src"/* "$M/push/"
chmod 644 "$M"/push/*
for f in f g h k p q n d/t; do
	printf 'hello-%s' "${f#d/}" > "$M/c/$f"
	chmod 644 "$M/c/$f"
done
chmod 666 "$M/c/q"

# A holder keeps handles of one user open across the changes: it reads
# commands on stdin and answers one line each (OK, DATA:bytes or the errno
# name).  Two holders (u1000 and nobody) share a socket pair for passing
# descriptors.
cat > "$T/holder.py" <<'PYEOF'
import array, errno, os, socket, sys
sock = socket.socket(fileno=int(sys.argv[1]))
fds = {}
flags = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR, "3": 3, "path": os.O_PATH}
def do(c):
    if c[0] == "open":
        fds[c[1]] = os.open(c[2], flags[c[3]])
    elif c[0] == "reopen":
        fds[c[2]] = os.open("/proc/self/fd/%d" % fds[c[1]], flags[c[3]])
    elif c[0] == "read":
        return "DATA:" + os.pread(fds[c[1]], 100, 0).decode(errors="replace")
    elif c[0] == "write":
        os.pwrite(fds[c[1]], b"x", 0)
    elif c[0] == "close":
        os.close(fds.pop(c[1]))
    elif c[0] == "send":
        sock.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fds[c[1]]]))])
    elif c[0] == "recv":
        _, anc, _, _ = sock.recvmsg(1, socket.CMSG_SPACE(4))
        fds[c[1]] = array.array("i", anc[0][2][:4])[0]
    return "OK"
for line in sys.stdin:
    try:
        r = do(line.split())
    except OSError as e:
        r = errno.errorcode.get(e.errno, str(e.errno))
    except Exception as e:           # a test bug: say so, keep serving
        r = "ERROR:" + type(e).__name__
    print(r, flush=True)
PYEOF

cat > "$T/drive.py" <<'PYEOF'
import os, socket, subprocess, sys
M, VV, HOLDER = sys.argv[1], sys.argv[2], sys.argv[3]
C = M + "/c"
a, b = socket.socketpair()
def holder(uid, s):
    return subprocess.Popen(["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups",
                             "--", "/usr/bin/python3", HOLDER, str(s.fileno())],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            pass_fds=[s.fileno()])
u = holder(1000, a)
nb = holder(65534, b)
def ask(h, cmd):
    h.stdin.write(cmd + "\n")
    h.stdin.flush()
    return h.stdout.readline().strip()
def want(name, h, cmd, exp):
    got = ask(h, cmd)
    if got == exp:
        print("PASS %s" % name, flush=True)
    else:
        print("FAIL %s (%s: got %s, want %s)" % (name, cmd, got, exp), flush=True)
def sh(*cmd):
    subprocess.check_call(cmd, stdout=subprocess.DEVNULL)

# N opens and closes of one file, each audited (with_bytes checked by the shell).
for i in range(20):
    ask(u, "open n%d %s/n r" % (i, C))
    ask(u, "read n%d" % i)
    ask(u, "close n%d" % i)
print("PASS 20 opens of c/n done", flush=True)

# chmod
want("u1000 opens f (0644)", u, "open f1 %s/f r" % C, "OK")
os.chmod(C + "/f", 0o600)
want("after chmod 600: a new open by u1000 is refused", u, "open f2 %s/f r" % C, "EACCES")
want("after chmod 600: nobody too", nb, "open f2 %s/f r" % C, "EACCES")
want("the handle opened before still reads", u, "read f1", "DATA:hello-f")
os.chmod(C + "/f", 0o644)
want("after chmod 644: u1000 opens again", u, "open f3 %s/f r" % C, "OK")

# setfacl -m / -x
sh("setfacl", "-m", "u:1000:---", C + "/g")
want("after setfacl -m u:1000:---: u1000 refused", u, "open g1 %s/g r" % C, "EACCES")
want("nobody still reads (other r)", nb, "open g1 %s/g r" % C, "OK")
sh("setfacl", "-x", "u:1000", C + "/g")
want("after setfacl -x: u1000 opens", u, "open g2 %s/g r" % C, "OK")
sh("setfacl", "-m", "u:1000:rw", C + "/g")
want("after setfacl -m u:1000:rw: u1000 opens to write", u, "open g3 %s/g w" % C, "OK")
sh("setfacl", "-b", C + "/g")
want("after setfacl -b: u1000 cannot open to write", u, "open g4 %s/g w" % C, "EACCES")
want("the write handle from before still writes", u, "write g3", "OK")

# chown: the owner class has no bits
os.chmod(C + "/h", 0o064)
want("h 0064 owned by root: u1000 reads as other", u, "open h1 %s/h r" % C, "OK")
os.chown(C + "/h", 1000, 0)
want("after chown to u1000: the owner class (---) applies", u, "open h2 %s/h r" % C, "EACCES")
os.chown(C + "/h", 0, 0)
want("after chown back: other again", u, "open h3 %s/h r" % C, "OK")

# rename of a parent under a directory others cannot search
want("u1000 opens d/t", u, "open t1 %s/d/t r" % C, "OK")
os.rename(C + "/d", C + "/priv/d")
want("after moving d under priv (0700): refused", u, "open t2 %s/priv/d/t r" % C, "EACCES")
want("the old path is gone", u, "open t3 %s/d/t r" % C, "ENOENT")
want("the handle from before still reads", u, "read t1", "DATA:hello-t")

# unlink and re-create under the same name
want("u1000 opens k", u, "open k1 %s/k r" % C, "OK")
os.unlink(C + "/k")
fd = os.open(C + "/k", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
os.write(fd, b"secret")
os.close(fd)
want("the re-created k (0600): refused", u, "open k2 %s/k r" % C, "EACCES")
want("the handle from before reads the old file", u, "read k1", "DATA:hello-k")

# purge from the trash
want("u1000 opens p", u, "open p1 %s/p r" % C, "OK")
want("and reads it", u, "read p1", "DATA:hello-p")
os.unlink(C + "/p")
want("in the trash: the old handle still reads", u, "read p1", "DATA:hello-p")
sh(VV, "trash", "purge", M, "--all")
want("purged: the old handle reads EIO", u, "read p1", "EIO")
want("purged: no new open", u, "open p2 %s/p r" % C, "ENOENT")

# O_PATH, reopened through /proc/self/fd
want("u1000 takes an O_PATH handle of f", u, "open o1 %s/f path" % C, "OK")
want("reopened for reading: allowed", u, "reopen o1 o2 r", "OK")
os.chmod(C + "/f", 0o600)
want("after chmod 600: the O_PATH reopen is refused", u, "reopen o1 o3 r", "EACCES")
want("the O_PATH handle cannot read", u, "read o1", "EBADF")
os.chmod(C + "/f", 0o644)

# mode 3 (O_ACCMODE): read and write permission, neither right
want("mode 3 on a 0644 file: refused", u, "open m1 %s/f 3" % C, "EACCES")
want("mode 3 on a 0666 file: allowed", u, "open m2 %s/q 3" % C, "OK")
want("mode 3 cannot read", u, "read m2", "EBADF")
want("mode 3 cannot write", u, "write m2", "EBADF")

# a handle passed to another user
want("u1000 opens q read-only", u, "open s1 %s/q r" % C, "OK")
want("and passes it", u, "send s1", "OK")
want("nobody receives it", nb, "recv s1", "OK")
want("nobody reads through it", nb, "read s1", "DATA:hello-q")
want("but cannot write through it", nb, "write s1", "EBADF")
want("nobody closes it", nb, "close s1", "OK")
os.chmod(C + "/q", 0o600)
want("after chmod 600 the passed handle's own reopen is refused", u, "reopen s1 s2 r", "EACCES")

u.stdin.close()
nb.stdin.close()
u.wait()
nb.wait()
PYEOF

"$PY" "$T/drive.py" "$M" "$VV_BIN" "$T/holder.py" > "$T/drive.out" 2>"$T/drive.err" || true
while read -r res name; do
	if [ "$res" = PASS ]; then test_ok "$name"; else test_fail "$name"; fi
done < "$T/drive.out"
[ -s "$T/drive.err" ] && sed 's/^/# /' "$T/drive.err"
check "the driver ran to its end" grep -q 'passed handle' "$T/drive.out"

# Every open and close audited: 20 of each for c/n, by u1000, the bytes
# of the first read counted (later ones come from the page cache).
vv_audit_has "$LOG" op=close path=/c/n uid=1000 rbytes'>='7 || true
sleep 1.5
check "20 open records for c/n" test "$(vv_audit_q "$LOG" count op=open path=/c/n uid=1000)" = 20
check "20 close records for c/n" test "$(vv_audit_q "$LOG" count op=close path=/c/n uid=1000 result=ok)" = 20
check "the close records count the bytes read" \
	test "$(vv_audit_q "$LOG" rbytes op=close path=/c/n uid=1000 | awk '{ s += $1 } END { print s }')" -ge 7
check "denials audited (chmod 600 on f)" vv_audit_has "$LOG" op=open path=/c/f uid=1000 result=EACCES
check "the passed handle's close names its opener" vv_audit_has "$LOG" op=close path=/c/q uid=1000

# --- the open push ----------------------------------------------------------
# The first open of a small file whose node is new hands its bytes to the
# page cache with the reply: a cold read sends no READ.  A second daemon
# traces its FUSE requests (-d, in the foreground).
vv_umount "$M"
sync
echo 3 > /proc/sys/vm/drop_caches
D=$T/dmnt
mkdir -p "$D"
pidf=$T/.pids/dbg
"$VV_BIN" mount "$S" "$D" --passfile "$PASSFILE" --pid-file "$pidf" --log "$T/dbg.log" \
	--trash-days 1 -d &
printf '%s\t%s\n' "$D" "$pidf" >> "$VV_MOUNTS"
for i in $(seq 300); do mountpoint -q "$D" && break; sleep 0.1; done
ls "$D/push" > /dev/null
before=$(grep -c 'opcode:' "$T/dbg.log")
bad=0
for i in $(seq -w 0 29); do
	as_u1000 cat "$D/push/s$i" > "$T/got" && cmp -s "$T/got" "$T/src/s$i" || bad=$((bad + 1))
done
nread=$(tail -n +"$((before + 1))" "$T/dbg.log" | grep -c 'opcode: READ (' || true)
check "30 small files read cold by u1000, each the same bytes" test "$bad" = 0
[ "$nread" = 0 ] || tail -n +"$((before + 1))" "$T/dbg.log" | grep -A2 'opcode: READ (' | sed 's/^/# /' | head -20
# Other tests running beside this one may drop the page cache between an
# open and its read (vv_cold): a few READs then; main sends one per file.
check "at most a few READ requests for them (got $nread; one each without the push)" \
	test "$nread" -le 5
check "again, now from the page cache" sh -c "for i in \$(seq -w 0 29); do cmp -s $D/push/s\$i $T/src/s\$i || exit 1; done"
before=$(grep -c 'opcode:' "$T/dbg.log")
check "a file in chunks reads the same" cmp "$D/push/big" "$T/src/big"
nread=$(tail -n +"$((before + 1))" "$T/dbg.log" | grep -c 'opcode: READ (' || true)
check "through READ requests ($nread)" test "$nread" -ge 1
check "the pushed bytes are audited at close as read" \
	vv_audit_has "$LOG" op=close path=/push/s03 uid=1000 rbytes">=$(stat -c %s "$T/src/s03")"

# A pushed file purged: the handle opened before reads EIO, not the pages.
# A pushed file changed: the next open reads the change.
cat > "$T/pushpurge.py" <<'PYEOF'
import errno, os, subprocess, sys
D, VV = sys.argv[1], sys.argv[2]
def rd(fd):
    try:
        return os.pread(fd, 64, 0).decode(errors="replace")
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
fd = os.open(D + "/push/s10", os.O_RDONLY)      # pushed at this open
a = rd(fd)
os.unlink(D + "/push/s10")
subprocess.check_call([VV, "trash", "purge", D, "--all"], stdout=subprocess.DEVNULL)
print("before=%s after=%s" % ("DATA" if a else "EMPTY", rd(fd)))
PYEOF
got=$("$PY" "$T/pushpurge.py" "$D" "$VV_BIN" 2>"$T/pushpurge.err")
check "a pushed file purged reads EIO through the old handle ($got)" test "$got" = "before=DATA after=EIO"
cat "$D/push/s11" > /dev/null
printf 'changed' > "$D/push/s11"
check "a pushed file changed: the next open reads the change" test "$(cat "$D/push/s11")" = changed
vv_umount "$D"
test_done
