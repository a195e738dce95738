#!/bin/bash
# t1029-knn-dir-attack: the query offload's directory request
# (VV_IOC_KNN_DIR) attacked by u1000 and nobody on a real mount.  Malformed
# name areas ('/', ".", "..", empty, 256 bytes, no NUL, nnames lying) fail
# the whole request; each name is decided as the caller's own lookup and
# read-only open would decide it now: another user's 0600 file, an ACL
# deny, a FIFO, a device, a directory, a symlink, a missing name, a
# directory without search right whose handle root opened and passed over
# SCM_RIGHTS, a handle opened before chmod 000 / setfacl u:1000:--- /
# chmod of the directory / rm / its directory removed and purged / its
# role's grant revoked; no candidate or row count of a
# refused file in any reply (the secret rows are the nearest ones); every
# refusal audited.  O_PATH handles (EBADF), the wrong command on either
# kind of handle (ENOTTY), .trash (ENOTTY) and .snapshots (as open); a
# rewritten file answers with its new bytes; floods of full requests get
# answers or EBUSY and leave the daemon up; requests killed while queued.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
GR=vv1029rd UR=vv1029us          # a role (group) and its member, made here
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
ALOG=$(vv_audit_log "$S")
C=$M/c
mkdir -m 755 "$C" "$C/sub" "$C/gone" "$M/c2"
chmod 700 "$M/c2"
# fvecs of dim 4; row i = (i + base, 0, 0, 0); the secret files hold the
# query itself (distance 0): any of their rows in a reply shows
"$PY" - "$C" "$M/c2" <<'PY'
import struct, sys
def fv(path, base, n=8):
    with open(path, "wb") as f:
        for i in range(n): f.write(struct.pack("<i4f", 4, i + base, 0, 0, 0))
C, C2 = sys.argv[1], sys.argv[2]
fv(C + "/pub.fvecs", 10)
fv(C + "/.hidden.fvecs", 20)
fv(C + "/sec.fvecs", 0)
fv(C + "/acl.fvecs", 0)
fv(C + "/moving.fvecs", 30)
fv(C + "/sub/x.fvecs", 0)
fv(C2 + "/in.fvecs", 0)
fv(C + "/gone/g.fvecs", 40)
PY
chmod 600 "$C/sec.fvecs"
setfacl -m u:1000:--- "$C/acl.fvecs"
mkfifo -m 644 "$C/fifo"
mknod -m 644 "$C/null" c 1 3
ln -s sub/x.fvecs "$C/lnk"
ln -s /tmp "$C/out"
"$VV_BIN" snapshot create "$M" s >/dev/null

timeout 300 "$PY" - "$M" "$VV_SRC/tests/integration/lib" "$VV_BIN" > "$T/out" 2>&1 <<'PY' || true
import errno, fcntl, os, signal, socket, struct, subprocess, sys, time
M, lib, VV = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, lib)
import knn_dir as K
C = M + "/c"
bad = 0
def fail(msg):
    global bad
    bad += 1
    print("# FAIL " + msg)
def as_user(uid, fn):
    """run fn() as uid in a child: its return value (repr) back"""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([]); os.setresgid(uid, uid, uid); os.setresuid(uid, uid, uid)
            out = repr(fn())
        except BaseException as e:
            out = repr(("EXC", str(e)))
        os.write(w, out.encode()); os._exit(0)
    os.close(w)
    data = b""
    while True:
        b = os.read(r, 65536)
        if not b: break
        data += b
    os.close(r); os.waitpid(pid, 0)
    return eval(data.decode(), {"inf": float("inf")})
Q = [0.0, 0.0, 0.0, 0.0]
def ask(fd, names, kk=4, **kw):
    for t in range(100):
        e, h, st, c = K.knn_dir(fd, Q, names, 4, kk, **kw)
        if e != "OK" or all(s[0] != -errno.EAGAIN for s in st): break
        time.sleep(0.05)
    return e, h, st, c
def leak(names, st, c, denied, secret=True):
    """a candidate or a row count of a refused name"""
    for qrow in c:
        for d, n, row in qrow:
            if n != K.NO_NAME and (names[n] in denied or st[n][0] != 0): return "candidate of " + names[n]
            if secret and n != K.NO_NAME and d < 1.0: return "a row at distance < 1 (the secret rows)"
    for i, (e, rows) in enumerate(st):
        if e != 0 and rows: return "rows of " + names[i]
    return None

# 1. malformed areas: the whole request refused, as u1000
def malformed():
    fd = os.open(C, os.O_RDONLY | os.O_DIRECTORY)
    out = {}
    for tag, names in (("slash", ["a/b"]), ("dotdot", [".."]), ("dot", ["."]), ("empty", [""]),
                       ("256", ["x" * 256]), ("slashonly", ["/"]), ("up", ["../c2/in.fvecs"])):
        out[tag] = K.call(fd, K.req(4, 1, 1, Q, names))[0]
    out["noNUL"] = K.call(fd, K.req(4, 1, 1, Q, ["pub.fvecs"], area=b"pub.fvecs", names_len=9))[0]
    out["nnames+1"] = K.call(fd, K.req(4, 1, 1, Q, ["pub.fvecs"], nnames=2))[0]
    out["nnames-1"] = K.call(fd, K.req(4, 1, 1, Q, ["pub.fvecs", "sec.fvecs"], nnames=1))[0]
    out["len2^32"] = K.call(fd, K.req(4, 1, 1, Q, ["pub.fvecs"], names_len=0xffffffff))[0]
    out["257"] = K.call(fd, K.req(4, 1, 1, Q, ["n"] * 257))[0]
    out["255ok"] = K.call(fd, K.req(4, 1, 1, Q, ["x" * 255]))[0]
    return out
got = as_user(1000, malformed)
want = {"slash": "EINVAL", "dotdot": "EINVAL", "dot": "EINVAL", "empty": "EINVAL", "256": "EINVAL",
        "slashonly": "EINVAL", "up": "EINVAL", "noNUL": "EINVAL", "nnames+1": "EINVAL",
        "nnames-1": "EINVAL", "len2^32": "E2BIG", "257": "EINVAL", "255ok": "OK"}
if got != want: fail("malformed requests: %s" % got)
else: print("ok malformed")

# 2. per name, u1000 and nobody
NAMES = ["pub.fvecs", "sec.fvecs", "acl.fvecs", "fifo", "null", "sub", "lnk", "out", "missing",
         ".hidden.fvecs", "moving.fvecs"]
WANT = {1000: [0, -13, -13, -13, -22, -22, -22, -22, -2, 0, 0],
        65534: [0, -13, 0, -13, -22, -22, -22, -22, -2, 0, 0]}
for uid in (1000, 65534):
    def per_name():
        fd = os.open(C, os.O_RDONLY | os.O_DIRECTORY)
        return ask(fd, NAMES)
    e, h, st, c = as_user(uid, per_name)
    if e != "OK": fail("uid %d: %s" % (uid, e)); continue
    errs = [s[0] for s in st]
    if errs != WANT[uid]: fail("uid %d per-name %s want %s" % (uid, errs, WANT[uid]))
    denied = {n for n, w in zip(NAMES, WANT[uid]) if w}
    # u1000 may read neither file of rows at distance 0; nobody may read acl.fvecs
    l = leak(NAMES, st, c, denied, uid == 1000)
    if l: fail("uid %d: %s" % (uid, l))
    if h["served"] != WANT[uid].count(0): fail("uid %d served %d" % (uid, h["served"]))
    best = (100.0, 0, 0) if uid == 1000 else (0.0, 2, 0)
    if c[0][0] != best: fail("uid %d best %s want %s" % (uid, c[0][0], best))
    print("# per-name uid %d done" % uid)

# 3. a directory handle root opened on c2 (0700), passed to nobody over SCM_RIGHTS
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
def passed():
    msg, fds, flags, addr = socket.recv_fds(b, 16, 1)
    return ask(fds[0], ["in.fvecs"])
pid_r, pid_w = os.pipe()
pid = os.fork()
if pid == 0:
    a.close()
    os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
    r = passed()
    os.write(pid_w, repr(r).encode()); os._exit(0)
b.close(); os.close(pid_w)
dfd = os.open(M + "/c2", os.O_RDONLY | os.O_DIRECTORY)
socket.send_fds(a, [b"x"], [dfd])
data = os.read(pid_r, 65536); os.waitpid(pid, 0)
e, h, st, c = eval(data.decode(), {"inf": float("inf")})
if e != "OK" or st[0][0] != -13 or st[0][1] or c[0][0][1] != K.NO_NAME:
    fail("passed handle of c2 (0700) to nobody: %s %s %s" % (e, st, c and c[0][0]))
else: print("ok passed handle")
os.close(dfd); a.close(); os.close(pid_r)

# 4. handles opened before a change: u1000 holds one handle on c across
# chmod 000, setfacl, chmod 700 of c, rm + purge; the parent changes
cmd_r, cmd_w = os.pipe(); res_r, res_w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(cmd_w); os.close(res_r)      # else the command pipe never ends
    os.setgroups([]); os.setresgid(1000, 1000, 1000); os.setresuid(1000, 1000, 1000)
    fd = os.open(C, os.O_RDONLY | os.O_DIRECTORY)
    gfd = os.open(C + "/gone", os.O_RDONLY | os.O_DIRECTORY)
    f = os.fdopen(cmd_r); w = os.fdopen(res_w, "w")
    for line in f:
        if line.strip() == "gone": e, h, st, c = ask(gfd, ["g.fvecs"])
        else: e, h, st, c = ask(fd, ["moving.fvecs"])
        w.write("%s %d %d\n" % (e, st[0][0] if st else 0, st[0][1] if st else 0)); w.flush()
    os._exit(0)
os.close(cmd_r); os.close(res_w)
cw = os.fdopen(cmd_w, "w"); rr = os.fdopen(res_r)
def step(what="go"):
    cw.write(what + "\n"); cw.flush()
    return rr.readline().split()
mv = C + "/moving.fvecs"
steps = [("before", None, ["OK", "0", "8"]),
         ("chmod 000", lambda: os.chmod(mv, 0), ["OK", "-13", "0"]),
         ("chmod 644", lambda: os.chmod(mv, 0o644), ["OK", "0", "8"]),
         ("setfacl u:1000:---", lambda: subprocess.run(["setfacl", "-m", "u:1000:---", mv], check=True), ["OK", "-13", "0"]),
         ("setfacl -b", lambda: subprocess.run(["setfacl", "-b", mv], check=True), ["OK", "0", "8"]),
         ("chmod 700 c", lambda: os.chmod(C, 0o700), ["OK", "-13", "0"]),
         ("chmod 755 c", lambda: os.chmod(C, 0o755), ["OK", "0", "8"]),
         ("rm", lambda: os.unlink(mv), ["OK", "-2", "0"]),
         ("gone: before", None, ["OK", "0", "8"]),
         ("gone: rm -r and purge", lambda: (subprocess.run(["rm", "-r", C + "/gone"], check=True),
          subprocess.run([VV, "trash", "purge", M, "--all"], check=True, stdout=subprocess.DEVNULL)),
          ["OK", "-2", "0"])]
for tag, change, w in steps:
    if change: change()
    got = step("gone" if tag.startswith("gone") else "go")
    if got != w: fail("handle opened before %s: %s want %s" % (tag, got, w))
    else: print("ok before/after " + tag)
cw.close(); os.waitpid(pid, 0)

# 5. handle kinds: O_PATH, the wrong command on each kind
def kinds():
    out = {}
    p = os.open(C, os.O_PATH | os.O_DIRECTORY)
    out["opath"] = K.call(p, K.req(4, 1, 1, Q, ["pub.fvecs"]))[0]
    d = os.open(C, os.O_RDONLY | os.O_DIRECTORY)
    out["dir+KNN"] = K.call(d, bytearray(K.SIZE), K.KNN)[0]
    f = os.open(C + "/pub.fvecs", os.O_RDONLY)
    out["file+DIR"] = K.call(f, K.req(4, 1, 1, Q, ["pub.fvecs"]))[0]
    t = os.open(M + "/.trash", os.O_RDONLY | os.O_DIRECTORY)
    out["trash"] = K.call(t, K.req(4, 1, 1, Q, ["pub.fvecs"]))[0]
    s = os.open(M + "/.snapshots", os.O_RDONLY | os.O_DIRECTORY)
    e, h, st, c = ask(s, ["s"])
    out["snapdir"] = (e, st and st[0][0])
    s = os.open(M + "/.snapshots/s/c", os.O_RDONLY | os.O_DIRECTORY)
    e, h, st, c = ask(s, ["pub.fvecs", "sec.fvecs", "acl.fvecs"])
    out["snap"] = (e, st and [x[0] for x in st])
    return out
got = as_user(1000, kinds)
want = {"opath": "EBADF", "dir+KNN": "ENOTTY", "file+DIR": "ENOTTY", "trash": "ENOTTY",
        "snapdir": ("OK", -22), "snap": ("OK", [0, -13, -13])}
if got != want: fail("handle kinds: %s" % got)
else: print("ok handle kinds")

# 6. a rewritten file: the next answer is the new bytes
def rewrite_q():
    fd = os.open(C, os.O_RDONLY | os.O_DIRECTORY)
    e, h, st, c = ask(fd, ["pub.fvecs"], kk=1)
    return c[0][0]
before = as_user(1000, rewrite_q)
with open(C + "/pub.fvecs", "r+b") as f:
    f.write(struct.pack("<i4f", 4, 1.0, 0, 0, 0))
after = as_user(1000, rewrite_q)
if before != (100.0, 0, 0) or after != (1.0, 0, 0): fail("rewrite: %s then %s" % (before, after))
else: print("ok rewrite")
print("bad %d" % bad)
PY
check "attacks on the directory request" eval 'cat "$T/out"; grep -qx "bad 0" "$T/out"'
check "u1000's refusal of sec.fvecs audited" \
	vv_audit_has "$ALOG" op=scan uid=1000 result=EACCES 'path~^/c/sec.fvecs$'
check "u1000's refusal of acl.fvecs (ACL deny) audited" \
	vv_audit_has "$ALOG" op=scan uid=1000 result=EACCES 'path~^/c/acl.fvecs$'
check "nobody's refusal through the passed handle audited" \
	vv_audit_has "$ALOG" op=scan uid=65534 result=EACCES 'path~^/c2/in.fvecs$'
check "a served name audited with its bytes" \
	vv_audit_has "$ALOG" op=scan uid=1000 result=ok 'path~^/c/pub.fvecs$' rbytes=160
check "the FIFO's refusal audited" vv_audit_has "$ALOG" op=scan uid=1000 result=EACCES 'path~^/c/fifo$'

# floods: nobody, 6 processes x 60 requests of 256 names and k 400; killed
# requests (SIGKILL while queued or running); then the daemon still answers
"$PY" - "$C" 300 <<'PY'
import struct, sys
for i in range(int(sys.argv[2])):
    with open("%s/sub/f%03d.fvecs" % (sys.argv[1], i), "wb") as f:
        f.write(struct.pack("<i4f", 4, i, 0, 0, 0) * 3)
PY
pid=$(cat "$T/.pids/$(echo "$M" | tr / _)")
rss0=$(awk '/VmRSS/ { print $2 }' /proc/$pid/status)
cat > "$T/flood.py" <<'PY'
import collections, os, sys
sys.path.insert(0, sys.argv[2])
import knn_dir as K
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
names = ["f%03d.fvecs" % i for i in range(256)]
cnt = collections.Counter()
for r in range(int(sys.argv[3])):
    cnt[K.call(fd, K.req(4, 1, 400, [0.0] * 4, names))[0]] += 1
print(dict(cnt))
PY
for i in 1 2 3 4 5 6; do
	as_nobody "$PY" "$T/flood.py" "$C/sub" "$VV_SRC/tests/integration/lib" 60 > "$T/flood.$i" 2>&1 &
done
for i in 1 2 3 4 5 6; do
	# setpriv itself, not the as_nobody function: $! must be the
	# process that becomes Python, or the kill leaves the flooder running
	setpriv --reuid=65534 --regid=65534 --clear-groups -- \
		"$PY" "$T/flood.py" "$C/sub" "$VV_SRC/tests/integration/lib" 100000 > /dev/null 2>&1 &
	k=$!
	sleep 0.$i
	kill -KILL "$k" 2>/dev/null || true
	wait "$k" 2>/dev/null || true
done
wait
rss1=$(awk '/VmRSS/ { print $2 }' /proc/$pid/status)
check "floods: every answer OK or EBUSY, some OK" \
	eval 'cat "$T"/flood.[1-6]; "$PY" -c "
import ast, sys
c = [ast.literal_eval(open(f).read()) for f in sys.argv[1:]]
sys.exit(0 if all(set(x) <= {\"OK\", \"EBUSY\"} and sum(x.values()) == 60 for x in c) and
         sum(x.get(\"OK\", 0) for x in c) else 1)" "$T"/flood.[1-6]' 
check "the daemon is alive and answers after the floods and kills" \
	eval '[ "$(as_u1000 "$PY" -c "
import os, sys; sys.path.insert(0, \"$VV_SRC/tests/integration/lib\"); import knn_dir as K
fd = os.open(\"$C\", os.O_RDONLY | os.O_DIRECTORY)
print(K.knn_dir(fd, [0.0] * 4, [\"pub.fvecs\"], 4)[2][0])")" = "(0, 8)" ]'
echo "# daemon RSS ${rss0} kB -> ${rss1} kB"
# ASan keeps freed blocks in a quarantine of up to 256 MiB (to catch uses
# after free) and their shadow besides: bounded too, so added to the bound
quar=0
[ "$(vv_sanitizer)" = asan ] && quar=$((256 * 1024 + 64 * 1024))
check "no unbounded memory (RSS grew < 256 MiB)" test $((rss1 - rss0)) -lt $((262144 + quar))

# a role revoked while its member holds a directory handle: the next
# request refuses every name (the grant was its only way in)
vv_role_member "$UR" "$GR"
mkdir -m 0750 "$M/rc"
"$PY" -c 'import struct, sys; open(sys.argv[1], "wb").write(struct.pack("<i4f", 4, 1, 0, 0, 0) * 3)' "$M/rc/r.fvecs"
chmod 0640 "$M/rc/r.fvecs"
"$VV_BIN" role create "$GR" "$M" >/dev/null
"$VV_BIN" grant "$GR" readonly "$M/rc" >/dev/null
mkdir -m 777 "$T/sync"
setpriv --reuid="$UR" --regid=nogroup --init-groups -- "$PY" - "$M/rc" "$VV_SRC/tests/integration/lib" "$T/sync" > "$T/role.out" 2>&1 <<'PY' &
import os, sys, time
sys.path.insert(0, sys.argv[2])
import knn_dir as K
d, sync = sys.argv[1], sys.argv[3]
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
e, h, st, c = K.knn_dir(fd, [0.0] * 4, ["r.fvecs"], 4)
print("granted", e, st and st[0][0])
open(sync + "/opened", "w").close()
for _ in range(600):
    if os.path.exists(sync + "/revoked"): break
    time.sleep(0.05)
e, h, st, c = K.knn_dir(fd, [0.0] * 4, ["r.fvecs"], 4)
print("revoked", e, st and st[0][0], st and st[0][1], c and c[0][0][1] == K.NO_NAME)
PY
rp=$!
for _ in $(seq 1 200); do [ -e "$T/sync/opened" ] && break; sleep 0.05; done
"$VV_BIN" revoke "$GR" "$M/rc" >/dev/null
touch "$T/sync/revoked"
wait "$rp" || true
check "a role's member: served while granted, every name -EACCES after the revoke (same handle)" \
	eval 'cat "$T/role.out"; [ "$(cat "$T/role.out")" = "$(printf "granted OK 0\nrevoked OK -13 0 True")" ]'

# vv:// mounts: the client daemon forwards the directory request on a
# directory handle (t7036, t7037), but neither VV_IOC_KNN on a directory
# nor the directory request on a file (ENOTTY)
S=$T/rstore M=$T/rmnt
vv_listen_mount
vv_alice_coll
check "mount vv://" vv_rmount "vv://alice@127.0.0.1:$P/coll" "$R" --key-file "$T/key" --pin "$FP"
"$PY" - "$R" "$VV_SRC/tests/integration/lib" > "$T/rout" 2>&1 <<'PY' || true
import os, struct, sys, time
sys.path.insert(0, sys.argv[2])
import knn_dir as K
R = sys.argv[1]
with open(R + "/x.fvecs", "wb") as f:
    f.write(struct.pack("<i4f", 4, 1, 2, 3, 4) * 4)
d = os.open(R, os.O_RDONLY | os.O_DIRECTORY)
f = os.open(R + "/x.fvecs", os.O_RDONLY)
for t in range(200):
    e = K.knn(f, [0.0] * 4, 4)[0]
    if e != "EAGAIN": break
    time.sleep(0.05)
print("file", e)
print("dir", K.call(d, K.req(4, 1, 1, [0.0] * 4, ["x.fvecs"]))[0])
print("dir+KNN", K.call(d, bytearray(K.SIZE), K.KNN)[0])
print("file+DIR", K.call(f, K.req(4, 1, 1, [0.0] * 4, ["x.fvecs"]))[0])
PY
check "vv://: the directory request and the file request served, each only on its kind" \
	eval 'cat "$T/rout"; [ "$(cat "$T/rout")" = "$(printf "file OK\ndir OK\ndir+KNN ENOTTY\nfile+DIR ENOTTY")" ]'
test_done
