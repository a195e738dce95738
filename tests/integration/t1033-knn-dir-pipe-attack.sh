#!/bin/bash
# t1033-knn-dir-pipe-attack: the directory request (VV_IOC_KNN_DIR) in two
# steps (docs/design.md "The directory request": each name prepared on the
# FUSE worker that received the ioctl, the scan on the offload's pool)
# attacked on a real mount.  Floods from u1000 and nobody (6 processes
# each, full requests of 256 names) are answered OK or EBUSY only, some
# EBUSY, while root's lookups and reads go on; the tools SIGKILLed while
# their requests are queued; a file purged (open, so revoked) and
# recreated while u1000's requests race it: each reply serves one whole
# version of it or refuses it (ENOENT, EAGAIN), never rows of two; then
# the daemon answers, the flooded files are removed and purged, the daemon
# drains and exits at unmount and fsck finds the vault clean.  (A pin or
# cache reference lost by a cancel is not visible from here: test_knn_dir
# counts them.)
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
C=$M/c
mkdir -m 755 "$C" "$C/sub"
LIB=$VV_SRC/tests/integration/lib
"$PY" - "$C" 300 <<'PY'
import struct, sys
for i in range(int(sys.argv[2])):
    with open("%s/sub/f%03d.fvecs" % (sys.argv[1], i), "wb") as f:
        f.write(struct.pack("<i4f", 4, i, 0, 0, 0) * 200)
with open(sys.argv[1] + "/s.fvecs", "wb") as f:
    f.write(struct.pack("<i4f", 4, 5, 0, 0, 0) * 2)
PY
# setpriv itself in the background, not the as_* functions: $! is then
# the tool (setpriv execs it), not a subshell whose kill leaves it running
u1k() { echo setpriv --reuid=1000 --regid=1000 --clear-groups --; }
nob() { echo setpriv --reuid=65534 --regid=65534 --clear-groups --; }

# floods: u1000 and nobody, 6 processes of 4 threads each, 30 full
# requests (256 names, 30 queries) per thread
cat > "$T/flood.py" <<'PY'
import collections, os, sys, threading
sys.path.insert(0, sys.argv[2])
import knn_dir as K
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
names = ["f%03d.fvecs" % i for i in range(256)]
cnt = collections.Counter()
mu = threading.Lock()
def run():
    for r in range(int(sys.argv[3])):
        e = K.call(fd, K.req(4, 30, 16, [0.0] * 120, names))[0]
        with mu: cnt[e] += 1
ts = [threading.Thread(target=run) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print(dict(cnt))
PY
for i in 1 2 3 4 5 6; do
	$(u1k) "$PY" "$T/flood.py" "$C/sub" "$LIB" 30 > "$T/flood.u$i" 2>&1 &
	$(nob) "$PY" "$T/flood.py" "$C/sub" "$LIB" 30 > "$T/flood.n$i" 2>&1 &
done
# meanwhile root's lookups, listings and reads are answered
ok_side=0
for i in $(seq 20); do
	if timeout 60 ls "$C/sub" > /dev/null && timeout 60 cat "$C/sub/f$(printf %03d "$i").fvecs" > /dev/null &&
	   timeout 60 stat "$C/s.fvecs" > /dev/null; then
		ok_side=$((ok_side + 1))
	fi
done
wait
check "during the floods root's ls, cat and stat are answered" test "$ok_side" -eq 20
check "floods: every answer OK or EBUSY, some of each" \
	eval 'cat "$T"/flood.[un][1-6]; "$PY" -c "
import ast, sys
c = [ast.literal_eval(open(f).read()) for f in sys.argv[1:]]
sys.exit(0 if all(set(x) <= {\"OK\", \"EBUSY\"} and sum(x.values()) == 120 for x in c) and
         sum(x.get(\"OK\", 0) for x in c) and sum(x.get(\"EBUSY\", 0) for x in c) else 1)" "$T"/flood.[un][1-6]'

# the tools SIGKILLed while their requests are queued or being prepared
for i in 1 2 3 4 5 6; do
	$(nob) "$PY" "$T/flood.py" "$C/sub" "$LIB" 100000 > /dev/null 2>&1 &
	k1=$!
	$(u1k) "$PY" "$T/flood.py" "$C/sub" "$LIB" 100000 > /dev/null 2>&1 &
	k2=$!
	sleep 0.$i
	kill -KILL "$k1" "$k2" 2>/dev/null || true
	wait "$k1" "$k2" 2>/dev/null || true
done
ask_s() {
	as_u1000 "$PY" -c "
import os, sys; sys.path.insert(0, \"$LIB\"); import knn_dir as K
fd = os.open(\"$C\", os.O_RDONLY | os.O_DIRECTORY)
print(K.knn_dir(fd, [0.0] * 4, [\"s.fvecs\"], 4)[2][0])"
}
check "after the kills u1000's request is served" eval '[ "$(ask_s)" = "(0, 2)" ]'

# a purge racing requests: u1000 holds r.fvecs open (so the purge revokes
# it) and asks for it in a loop while nobody floods the pool; root removes
# it, purges it from the trash and renames version j (rows 1000 j + i) in,
# ten times.  Each reply serves one whole version (3 rows, all of version
# j) or refuses it (which requests waited across a purge is not observable
# here: test_knn_dir holds the pool for that)
mkwr() {
	"$PY" -c 'import struct, sys
j = int(sys.argv[2])
open(sys.argv[1], "wb").write(b"".join(struct.pack("<i4f", 4, 1000 * j + i, 0, 0, 0) for i in range(3)))' "$1" "$2"
}
mkwr "$C/r.fvecs" 0
mkdir -m 777 "$T/sync"
$(u1k) "$PY" - "$C" "$LIB" "$T/sync" > "$T/race.out" 2>&1 <<'PY' &
import errno, os, sys, time
sys.path.insert(0, sys.argv[2])
import knn_dir as K
C, sync = sys.argv[1], sys.argv[3]
hold = os.open(C + "/r.fvecs", os.O_RDONLY)
fd = os.open(C, os.O_RDONLY | os.O_DIRECTORY)
bad, served, refused, n = 0, 0, 0, 0
while not os.path.exists(sync + "/stop"):
    e, h, st, c = K.knn_dir(fd, [0.0] * 4, ["r.fvecs", "s.fvecs"], 4, 8)
    n += 1
    if e == "EBUSY":
        continue
    if e != "OK":
        bad += 1; print("# whole request", e); continue
    if st[1] != (0, 2):
        bad += 1; print("# s.fvecs", st[1])
    rows = sorted(d for d, name, row in c[0] if name == 0)
    if st[0][0] == 0:
        served += 1
        vers = {int(round(d ** 0.5)) // 1000 for d in rows}
        if st[0][1] != 3 or len(rows) != 3 or len(vers) != 1:
            bad += 1; print("# r.fvecs served", st[0], rows)
    elif st[0][0] in (-errno.ENOENT, -errno.EAGAIN):
        refused += 1
        if rows:
            bad += 1; print("# rows of a refused r.fvecs", st[0], rows)
    else:
        bad += 1; print("# r.fvecs", st[0])
print("requests", n, "served", served, "refused", refused, "bad", bad)
PY
racer=$!
# nobody's full requests keep the pool busy, so u1000's wait prepared in
# the queue while the purges run (the window the scan-time check closes)
ks=
for i in 1 2; do
	$(nob) "$PY" "$T/flood.py" "$C/sub" "$LIB" 100000 > /dev/null 2>&1 &
	ks="$ks $!"
done
sleep 0.3
purges=0
for j in 1 2 3 4 5 6 7 8 9 10; do
	rm "$C/r.fvecs"
	t=$(ls "$M/.trash/files" | grep '^r\.fvecs' | head -1)
	rm "$M/.trash/files/$t" && purges=$((purges + 1))
	mkwr "$C/.r.tmp" "$j"                  # whole, then renamed in
	mv "$C/.r.tmp" "$C/r.fvecs"
	sleep 0.1
done
touch "$T/sync/stop"
wait "$racer" || true
kill -KILL $ks 2>/dev/null || true
wait $ks 2>/dev/null || true
cat "$T/race.out"
check "ten purges of r.fvecs while u1000 held it open and asked" test "$purges" -eq 10
check "the race: each reply served one whole version of r.fvecs or refused it" \
	grep -q ' bad 0$' "$T/race.out"

check "the daemon answers after all" eval '[ "$(ask_s)" = "(0, 2)" ]'
# a last flood still queued when the mount goes away: the daemon drains it
ks=
for i in 1 2 3; do
	$(nob) "$PY" "$T/flood.py" "$C/sub" "$LIB" 100000 > /dev/null 2>&1 &
	ks="$ks $!"
done
sleep 0.5
kill -KILL $ks 2>/dev/null || true
wait $ks 2>/dev/null || true
# every file the killed and drained requests named removed for good
rm -r "$C/sub"
t=$(ls "$M/.trash/files" | grep '^sub' | head -1)
check "the flooded directory removed and purged" rm -r "$M/.trash/files/$t"
check "unmount: the daemon drains and exits" vv_umount "$M"
check "fsck is clean" "$VV_BIN" fsck "$S" --passfile "$PASSFILE"
test_done
