#!/bin/bash
# t4014-query-bulk-read: the bulk read (knn_ioctl.h "the bulk read"):
# many small files of a directory written into the caller's memfd in one
# request, each checked and audited as its read-only open would be.
# The daemon's side by hand (lib/bulk.py): bytes equal to the files'; per
# name the open's answer (missing, directory, symlink, FIFO, unreadable,
# a 0700 directory, larger than the slot) and the open's audit records;
# checks made as the caller whoever opened the directory handle (passed
# descriptor); revocation (chmod, rm, rename: the next request refuses);
# buffers that are no memfd of the caller's, sealed, read-only, too small,
# with holes or not the identity named, and hostile headers, refused whole
# with nothing written; a flood (EBUSY, nothing held after); a SIGKILL'd
# reader.  The tool's side: `vecvault query` on the mount without the
# offload reads the small segments in bulk (--stats), with the plain
# directory's output byte for byte (at the float64 reference), as root and
# as uid 1000, for 1, 4 and 300 queries, each segment opened once (the
# re-ranking takes the exact distances the scan computed, it opens none
# again); bad segments refused in
# the plain directory's words; VV_BULK=0 and a daemon with
# VECVAULT_BULK=0 (an old daemon: ENOTTY) open each file as before, with
# the same output.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
vv_need_numpy

P=$T/plain
S=$T/store
M=$T/mnt
LIB=$VV_SRC/tests/integration/lib
mkdir -p "$P"
"$PY" - "$T" "$LIB" <<'PY'
import numpy as np, sys
sys.path.insert(0, sys.argv[2])
from seg_layout import layout as cut, odd
T = sys.argv[1]; P = T + "/plain"
rng = np.random.default_rng(4014)
d = 16
X = rng.standard_normal((6000, d)).astype('<f4')
X[[5, 950, 951, 4200]] = X[5]            # ties across segments: by (segment, row)
q = rng.standard_normal((4, d)).astype('<f4'); q[0] = X[5]
np.save(T + "/q.npy", q)
np.save(T + "/q1.npy", q[:1])
np.save(T + "/q300.npy", rng.standard_normal((300, d)).astype('<f4'))
def layout(name, sizes): cut(P, name, X, sizes, T + "/X.%s.npy" % name)
layout("many", [20] * 300)
layout("odd", [20] * 300)
odd(P, rng, d)
PY
chmod 600 "$P/odd/t0044.npy"
refcheck() { "$PY" "$LIB/knn_ref.py" --strict "$T/X.$2.npy" - "$3" "$1" l2 10; }
# q WHO DIR QFILE OUT [args]: query as WHO (root or u1000)
q() {
	local who=$1 dir=$2 qf=$3 out=$4
	shift 4
	if [ "$who" = u1000 ]; then
		as_u1000 "$VV_BIN" query "$dir" -q "$qf" -k 10 --stats "$@" > "$out" 2> "$out.err"
	else
		"$VV_BIN" query "$dir" -q "$qf" -k 10 --stats "$@" > "$out" 2> "$out.err"
	fi
}
bulk() { grep -q "bulk read: $1 segments read in" "$2.err"; }

q root "$P/many" "$T/q1.npy" "$T/ref1"
check "plain: at the float64 reference" refcheck "$T/ref1" many "$T/q1.npy"
q root "$P/many" "$T/q.npy" "$T/ref"
q root "$P/many" "$T/q300.npy" "$T/ref300"
check "plain, 4 and 300 queries: at the float64 reference" \
	eval 'refcheck "$T/ref" many "$T/q.npy" && refcheck "$T/ref300" many "$T/q300.npy"'

vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
cp -r "$P/many" "$P/odd" "$M/"
chmod 755 "$M"
chmod 600 "$M/odd/t0044.npy"
C=$M/c
mkdir "$C" "$C/sub" "$M/locked"
head -c 3000 /dev/urandom > "$C/a"
head -c 5000 /dev/urandom > "$C/b"
head -c 70000 /dev/urandom > "$C/big"
head -c 100 /dev/urandom > "$C/secret"
head -c 100 /dev/urandom > "$M/locked/f"
chmod 600 "$C/secret"
chmod 700 "$M/locked"
chmod 644 "$M/locked/f"
ln -s a "$C/link"
mkfifo "$C/fifo"
vv_sync "$M"
LOG=$(vv_audit_log "$S")

# br.py DIR [opts] NAME...: one bulk read of NAMEs in DIR into a fresh
# memfd of 64 KiB slots; prints the request's answer, then per name its
# err and whether the slot holds the file's bytes (checked against a read
# of DIR/NAME by this process, when it may)
cat > "$T/br.py" <<'PY'
import os, sys
sys.path.insert(0, os.environ["LIB"])
import bulk as B
d, names = sys.argv[1], sys.argv[2:]
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
e, h, st, buf = B.read(fd, names)
print(e)
for i, (err, size) in enumerate(st or []):
    try:
        same = err == 0 and buf.get(i, size) == open(d + "/" + names[i], "rb").read()
    except OSError:
        same = None
    same = None if err else same
    print(names[i], err, size, "same" if same else "-" if same is None else "DIFFERENT")
PY
export LIB
br() { "$PY" "$T/br.py" "$@"; }
br "$C" a b nope sub link fifo big secret > "$T/r.root"
sed 's/^/#   /' "$T/r.root"
check "root: a and b served, their bytes" \
	eval 'grep -qx "a 0 3000 same" "$T/r.root" && grep -qx "b 0 5000 same" "$T/r.root" &&
	      grep -qx "secret 0 100 same" "$T/r.root"'
check "root: missing ENOENT, directory, symlink and FIFO EINVAL, larger than the slot EFBIG" \
	eval 'grep -qx "nope -2 0 -" "$T/r.root" && grep -qx "sub -22 0 -" "$T/r.root" &&
	      grep -qx "link -22 0 -" "$T/r.root" && grep -qx "fifo -22 0 -" "$T/r.root" &&
	      grep -qx "big -27 0 -" "$T/r.root"'
as_u1000 "$PY" "$T/br.py" "$C" a secret > "$T/r.u"
check "uid 1000: a 0600 file of root's refused, a readable one served" \
	eval 'grep -qx "a 0 3000 same" "$T/r.u" && grep -qx "secret -13 0 -" "$T/r.u"'
# the audit: what the opens and releases would have written
vv_sync "$M"
check "audit: a served: an open and a close with its 3000 bytes, by uid 1000" \
	eval 'vv_audit_has "$LOG" op=open uid=1000 path=/c/a result=ok mode=r rcount=0 &&
	      vv_audit_has "$LOG" op=close uid=1000 path=/c/a result=ok rbytes=3000 rcount=1'
check "audit: the refusals as refused opens (secret, locked/f, the FIFO)" \
	eval 'vv_audit_has "$LOG" op=open uid=1000 path=/c/secret result=EACCES &&
	      vv_audit_has "$LOG" op=open uid=0 path=/c/fifo result=EINVAL'
check "audit: no close for a refused name, no record for a missing one or for big" \
	eval '[ "$(vv_audit_q "$LOG" count op=close path=/c/secret uid=1000)" = 0 ] &&
	      [ "$(vv_audit_q "$LOG" count path=/c/nope)" = 0 ] &&
	      [ "$(vv_audit_q "$LOG" count path=/c/big op=open)" = 0 ]'

# a directory handle opened by root and passed to uid 1000 grants nothing:
# the names are checked as the caller (uid 1000 cannot open the 0700
# directory itself)
cat > "$T/passed.py" <<'PY'
import os, sys
sys.path.insert(0, os.environ["LIB"])
import bulk as B
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
if os.fork() == 0:
    os.setgroups([]); os.setgid(1000); os.setuid(1000)
    e, h, st, buf = B.read(fd, sys.argv[2:])
    print(e, st)
    os._exit(0)
os.wait()
PY
"$PY" "$T/passed.py" "$C" secret a > "$T/passed"
"$PY" "$T/passed.py" "$M/locked" f > "$T/passed.locked"
check "a handle passed from root to uid 1000: secret refused, a served" \
	grep -qx 'OK \[(-13, 0), (0, 3000)\]' "$T/passed"
check "a handle of a 0700 directory passed to uid 1000: its file refused" \
	grep -qx 'OK \[(-13, 0)\]' "$T/passed.locked"

# revocation: each request checks again (there is no later read)
chmod 600 "$C/a"
as_u1000 "$PY" "$T/br.py" "$C" a > "$T/r.chmod"
chmod 644 "$C/a"
mv "$C/b" "$C/b2"
br "$C" b b2 > "$T/r.mv"
rm "$C/b2"
br "$C" b2 > "$T/r.rm"
check "after chmod 600: refused" grep -qx "a -13 0 -" "$T/r.chmod"
check "after a rename: the old name ENOENT, the new served" \
	eval 'grep -qx "b -2 0 -" "$T/r.mv" && grep -qx "b2 0 5000 same" "$T/r.mv"'
check "after rm (to the trash): ENOENT" grep -qx "b2 -2 0 -" "$T/r.rm"

# buffers and headers: refused whole, nothing written
cat > "$T/bad.py" <<'PY'
import fcntl, os, sys, tempfile
sys.path.insert(0, os.environ["LIB"])
import bulk as B
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
def ask(what, buf, **over):
    before = bytes(buf.m[:4096]) if buf.m else None
    e, b = B.call(fd, B.req(buf, ["a"], **over))
    left = buf.m is None or bytes(buf.m[:4096]) == before
    print(what, e, "untouched" if left else "WRITTEN")
good = B.Buf(1, 1 << 16)
ask("good", good)
good.m[:4096] = b"\0" * 4096
class Other:                                 # a file that is no memfd
    def __init__(self, fd):
        self.fd = fd; st = os.fstat(fd); self.dev, self.ino = st.st_dev, st.st_ino
        self.slot = 1 << 16; self.m = None
ask("regular file", Other(os.open(tempfile.mkstemp(dir=os.environ["T"])[1], os.O_RDWR)))
shm = os.open("/dev/shm/vv-t4014-%d" % os.getpid(), os.O_RDWR | os.O_CREAT, 0o600)
os.ftruncate(shm, 1 << 16)
ask("tmpfs file", Other(shm))
holes = Other(os.memfd_create("h", os.MFD_ALLOW_SEALING))
os.ftruncate(holes.fd, 1 << 16)              # never written: all hole
fcntl.fcntl(holes.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK)
ask("not populated", holes)
os.unlink("/dev/shm/vv-t4014-%d" % os.getpid())
sealed = Other(os.memfd_create("s", os.MFD_ALLOW_SEALING))
os.ftruncate(sealed.fd, 1 << 16)
fcntl.fcntl(sealed.fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE)
ask("sealed", sealed)
nosealing = B.Buf(1, 1 << 16, flags=0, seal=False)
ask("no sealing allowed", nosealing)
ro = B.Buf(1, 1 << 16)
rofd = os.open("/proc/self/fd/%d" % ro.fd, os.O_RDONLY)
ask("read-only", ro, memfd=rofd)
ask("write-only", ro, memfd=os.open("/proc/self/fd/%d" % ro.fd, os.O_WRONLY))
ask("may shrink", B.Buf(1, 1 << 16, seal=False))
ask("another identity", good, mem_ino=good.ino + 1)
ask("no such descriptor", good, memfd=900)
small = B.Buf(1, 1 << 16)
ask("slots past its end", small, off=4096)
ask("bad magic", good, magic=1)
ask("no names", good, nnames=0)
ask("slot too small", good, slot=100)
ask("slot too large", good, slot=64 << 20)
ask("span too large", good, nnames=200, slot=1 << 20)
ask("offset wraps", good, off=(1 << 64) - 4096)
ask("names_len past the payload", good, names_len=20000)
ask("a slash in a name", good, area=b"../a\0", names_len=5)
ask("a name without NUL", good, area=b"a", names_len=1)
ask("flags", good, flags=1)
PY
T=$T "$PY" "$T/bad.py" "$C" > "$T/bad"
sed 's/^/#   /' "$T/bad"
check "a good buffer is written" grep -qx "good OK WRITTEN" "$T/bad"
for w in "regular file EINVAL" "tmpfs file EINVAL" "sealed EINVAL" "no sealing allowed EINVAL" \
	"read-only EBADF" "write-only EBADF" "may shrink EINVAL" "another identity EBADF" "no such descriptor EBADF" "not populated EINVAL" \
	"slots past its end ENOSPC" "bad magic EINVAL" "no names EINVAL" "slot too small EINVAL" \
	"slot too large EINVAL" "span too large E2BIG" "offset wraps E2BIG" \
	"names_len past the payload E2BIG" "a slash in a name EINVAL" "a name without NUL EINVAL" \
	"flags EINVAL"; do
	check "refused whole: $w, nothing written" grep -qx "$w untouched" "$T/bad"
done

# a flood of requests from uid 1000: some EBUSY (4 in flight per uid), and
# nothing held after: every request served again, unmount clean (a drain
# waits for every holder)
cat > "$T/flood.py" <<'PY'
import os, sys
sys.path.insert(0, os.environ["LIB"])
import bulk as B
d = sys.argv[1]
names = ["big%02d" % i for i in range(64)]
kids = []
for _ in range(16):                          # processes: 16 requests at once
    r, w = os.pipe()
    if os.fork() == 0:
        os.close(r)
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        buf = B.Buf(64, 1 << 16)
        out = [B.read(fd, names, buf=buf)[0] for _ in range(20)]
        os.write(w, (" ".join(out) + "\n").encode())
        os._exit(0)
    os.close(w)
    kids.append(r)
res = []
for r in kids:
    res += os.read(r, 1 << 16).decode().split()
    os.wait()
print("OK", res.count("OK"), "EBUSY", res.count("EBUSY"), "other", len(res) - res.count("OK") - res.count("EBUSY"))
PY
mkdir "$M/flood"
for i in $(seq -w 0 63); do head -c 60000 /dev/urandom > "$M/flood/big$i"; done
chmod -R a+rX "$M/flood"
as_u1000 "$PY" "$T/flood.py" "$M/flood" > "$T/flood"
sed 's/^/#   /' "$T/flood"
check "flood: some requests EBUSY, the others served, nothing else" \
	eval 'read -r _ ok _ busy _ other < "$T/flood"; [ "$ok" -gt 0 ] && [ "$busy" -gt 0 ] && [ "$other" = 0 ]'
as_u1000 "$PY" "$T/br.py" "$M/flood" big00 big63 > "$T/after"
check "after the flood: served again" \
	eval 'grep -qx "big00 0 60000 same" "$T/after" && grep -qx "big63 0 60000 same" "$T/after"'

# SIGKILL of a reader in the middle of its requests: the daemon goes on
setpriv --reuid=1000 --regid=1000 --clear-groups -- "$PY" "$LIB/bulk.py" loop "$M/flood" big \
	> "$T/looping" &
lp=$!
for _ in $(seq 50); do [ -s "$T/looping" ] && break; sleep 0.1; done
sleep 0.5
kill -9 $lp; wait $lp 2>/dev/null || true
as_u1000 "$PY" "$T/br.py" "$M/flood" big01 > "$T/afterkill"
vv_sync "$M"
check "audit: the name refused through a passed handle, as uid 1000" \
	vv_audit_has "$LOG" op=open uid=1000 path=/locked/f result=EACCES
check "after a reader was killed mid-request: served" grep -qx "big01 0 60000 same" "$T/afterkill"

# the tool: small segments read in bulk without the offload, for 1 query
# and for batches (their candidates' exact distances computed in the scan,
# so no segment is opened again for the re-ranking)
ahead() { grep -q "open ahead: $1 segments opened while the scan ran" "$2.err"; }
for who in root u1000; do
	q "$who" "$M/many" "$T/q1.npy" "$T/m.$who" --no-offload
	check "$who, --no-offload: 299 segments in bulk, the plain output" \
		eval 'bulk 299 "$T/m.$who" && cmp -s "$T/m.$who" "$T/ref1"'
	q "$who" "$M/many" "$T/q.npy" "$T/m.$who.4" --no-offload
	check "$who, 4 queries (104 candidates): in bulk, the plain output" \
		eval 'bulk 299 "$T/m.$who.4" && cmp -s "$T/m.$who.4" "$T/ref"'
	q "$who" "$M/many" "$T/q300.npy" "$T/m.$who.300"
	check "$who, 300 queries: in bulk, the plain output" \
		eval 'bulk 299 "$T/m.$who.300" && cmp -s "$T/m.$who.300" "$T/ref300"'
done
# a batch of 300 queries has candidates in most segments: each segment is
# opened once (its bulk read or the first one's open), none again; counted
# from a marker's open on, so that no record of the queries above (the
# daemon writes them each second) is counted
echo mark > "$M/mark46"
cat "$M/mark46" > /dev/null
vv_audit_has "$LOG" op=open uid=0 path=/mark46 result=ok
m2=$(( $(vv_audit_q "$LOG" seq op=open uid=0 path=/mark46 | tail -1) + 1 ))
q u1000 "$M/many" "$T/q300.npy" "$T/a.300"
vv_sync "$M"
opens() { vv_audit_q "$LOG" path "seq>=$m2" op=open uid=1000 result=ok "path~^/many/t" | wc -l; }
for _ in $(seq 50); do [ "$(opens)" -ge 300 ] && break; sleep 0.1; done
check "audit: 300 queries open each of the 300 segments once, none again for the re-ranking" \
	eval '[ "$(opens)" = 300 ] && cmp -s "$T/a.300" "$T/ref300"'
VV_BULK=0 q root "$M/many" "$T/q1.npy" "$T/m.nobulk" --no-offload
check "VV_BULK=0: every segment opened (ahead), the plain output" \
	eval 'bulk 0 "$T/m.nobulk" && ahead 299 "$T/m.nobulk" && cmp -s "$T/m.nobulk" "$T/ref1"'
# audit of one query: every segment read (an open and a close) by uid 1000;
# segments of candidates are opened again for the re-ranking
m1=$(( $(vv_audit_q "$LOG" seq | tail -1) + 1 ))
q u1000 "$M/many" "$T/q1.npy" "$T/a.no" --no-offload
vv_sync "$M"
# closed LOG SEQ: the distinct segments of /many closed by uid 1000 since SEQ
closed() { vv_audit_q "$1" path "seq>=$2" op=close uid=1000 result=ok "path~^/many/t" | sort -u | wc -l; }
for _ in $(seq 50); do [ "$(closed "$LOG" "$m1")" = 300 ] && break; sleep 0.1; done
check "audit: each of the 300 segments opened and closed by the query" \
	eval '[ "$(closed "$LOG" "$m1")" = 300 ] &&
	      [ "$(vv_audit_q "$LOG" path "seq>=$m1" op=open uid=1000 result=ok "path~^/many/t" |
		   sort -u | wc -l)" = 300 ]'
# bad segments: the plain directory's output and words
for who in root u1000; do
	for sb in "" --skip-bad; do
		q "$who" "$P/odd" "$T/q1.npy" "$T/p.odd.$who$sb" $sb || true
		q "$who" "$M/odd" "$T/q1.npy" "$T/m.odd.$who$sb" --no-offload $sb || true
		check "$who, odd ${sb:-without --skip-bad}: the plain output" \
			cmp -s "$T/m.odd.$who$sb" "$T/p.odd.$who$sb"
		check "$who, odd ${sb:-without --skip-bad}: the same messages" \
			vv_same_errors "$T/p.odd.$who$sb" "$T/m.odd.$who$sb" "$P" "$M"
	done
done
check "root --skip-bad: in bulk but the three bad files" \
	grep -q "bulk read: 299 segments" "$T/m.odd.root--skip-bad.err"
check "u1000 --skip-bad: the unreadable one left out, its refusal audited" \
	eval 'grep -q "skipping $M/odd/t0044.npy: Permission denied" "$T/m.odd.u1000--skip-bad.err" &&
	      vv_audit_has "$LOG" uid=1000 path=/odd/t0044.npy "result~EACCES|EPERM"'
vv_umount "$M"

# a daemon without the request (VECVAULT_BULK=0 answers ENOTTY, as an
# older one): the tool opens every file, the same output
VECVAULT_BULK=0 vv_mount "$S" "$M"
br "$M/many" t0000.npy > "$T/r.old"
check "a daemon without it: ENOTTY" grep -qx "ENOTTY" "$T/r.old"
q root "$M/many" "$T/q1.npy" "$T/m.old" --no-offload
check "a daemon without it: opened ahead, the plain output" \
	eval 'bulk 0 "$T/m.old" && ahead 299 "$T/m.old" && cmp -s "$T/m.old" "$T/ref1"'
vv_umount "$M"
test_done
