#!/bin/bash
# t1010-sigkill: crash smoke test (DESIGN invariant 4, process-kill case).
#
# Several rounds of: mount, run a writer that creates, overwrites and
# appends files with fsync (logging every completed fsync to a file OUTSIDE
# the mount), SIGKILL the daemon at a random moment, lazily unmount.  After
# each kill, `vecvault fsck` must find no damage (a first run may free
# orphans, exit 1 "orphans freed"; a second run must then be clean, exit 0),
# and after a remount every file holds its last completed fsync's content,
# or what the writes begun after it may leave when cut short: each byte
# from that fsync-ed version or a later one (a write reaches the daemon in
# pieces, and the daemon commits what it has every 200 ms), zero where a
# later version left a hole or a truncation (O_TRUNC) was committed
# before the data, and a size no larger than the largest of them (no
# smaller than the fsync-ed one unless a later write truncated).  Before
# that, `fsck --dry-run` finds no damage and leaves every byte of the
# crashed store (its WAL too) as it was.
#
# VV_SIGKILL_ROUNDS (default 6), VV_SIGKILL_SEED (default: random, printed).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

ROUNDS=${VV_SIGKILL_ROUNDS:-6}
SEED=${VV_SIGKILL_SEED:-$$}
echo "# seed $SEED (VV_SIGKILL_SEED), $ROUNDS rounds (VV_SIGKILL_ROUNDS)"
RANDOM=$SEED

STORE=$T/store
# sum_store: every name under the store and every file's bytes
sum_store() {
	(cd "$STORE" && find . | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z |
		xargs -0 sha256sum)
}
MNT=$T/mnt
LOG=$T/fsync.log          # outside the mount: survives the daemon
VERS=$T/versions          # each logged version's bytes, by sha256
: > "$LOG"
mkdir -p "$VERS"

vv_init "$STORE" >/dev/null

# Writer: loops until the mount goes away.  Log lines:
#   B name sha256 size trunc   write of that content begun (trunc: O_TRUNC)
#   D name sha256 size trunc   ... and fsync'd (close follows)
# The bytes of each version go to VERS/sha256 (outside the mount) first.
WRITER='
import hashlib, os, random, sys
mnt, log, seed, vers = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
rnd = random.Random(seed)
d = os.path.join(mnt, "coll")
lf = open(log, "a", buffering=1)
cur = {}
def rec(kind, name, data, trunc):
    h = hashlib.sha256(data).hexdigest()
    if kind == "B":
        with open(os.path.join(vers, h), "wb") as vf:
            vf.write(data)
    lf.write("%s %s %s %d %d\n" % (kind, name, h, len(data), trunc))
    lf.flush()
try:
    os.makedirs(d, exist_ok=True)
    names = ["r%d-%d" % (seed, i) for i in range(12)]
    # files from earlier rounds may be rewritten too
    for n in os.listdir(d):
        if n not in names:
            names.append(n)
    while True:
        name = rnd.choice(names)
        p = os.path.join(d, name)
        try:
            with open(p, "rb") as f:
                old = f.read()
        except FileNotFoundError:
            old = None
        op = rnd.random()
        size = rnd.choice([rnd.randint(1, 4000), rnd.randint(4097, 300000)])
        chunk = rnd.randbytes(size)
        if old is None or op < 0.4:
            data, off, trunc = chunk, 0, True
        elif op < 0.7:
            off = rnd.randint(0, len(old))
            data = old[:off] + chunk + old[off + len(chunk):]
            trunc = False
        else:
            off = len(old)
            data = old + chunk
            trunc = False
        rec("B", name, data, int(trunc))
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if trunc else 0), 0o644)
        try:
            os.pwrite(fd, chunk, off)
            os.fsync(fd)
        finally:
            os.close(fd)
        rec("D", name, data, int(trunc))
except OSError as e:
    # ENOTCONN / ECONNABORTED / EIO once the daemon is gone
    print("writer stopped: %s" % e, file=sys.stderr)
'

# Verify: each file named in a D line holds what its last D and the B
# lines after it allow (see the top): byte-wise, each byte from one of
# those versions, or zero past the shortest of them or after a truncating
# B.  Version files no longer needed are removed.
VERIFY='
import hashlib, os, sys
mnt, log, vers = sys.argv[1], sys.argv[2], sys.argv[3]
d = os.path.join(mnt, "coll")
ok = {}      # name -> [fsync-ed sha, size, later shas, any later truncation]
for line in open(log):
    parts = line.split()
    if len(parts) != 5:
        continue            # a torn last line cannot happen (writer flushes), but be lenient
    k, name, h, n, t = parts
    if k == "D":
        ok[name] = [h, int(n), [], False]
    elif name in ok:
        ok[name][2].append(h)
        ok[name][3] = ok[name][3] or t == "1"
def load(h):
    with open(os.path.join(vers, h), "rb") as f:
        return f.read()
bad = 0
for name, (dh, dn, later, trunc) in sorted(ok.items()):
    try:
        with open(os.path.join(d, name), "rb") as f:
            x = f.read()
    except OSError as e:
        print("# %s: %s" % (name, e)); bad += 1; continue
    h = hashlib.sha256(x).hexdigest()
    if h == dh or h in later:
        continue
    vs = [load(dh)] + [load(v) for v in later]
    why = None
    if len(x) > max(len(v) for v in vs):
        why = "size %d is larger than every version since the fsync" % len(x)
    elif len(x) < dn and not trunc:
        why = "size %d is smaller than the fsync-ed %d and nothing truncated" % (len(x), dn)
    else:
        minlen = 0 if trunc else min(len(v) for v in vs)
        for p in range(len(x)):
            if x[p] == 0 and p >= minlen:
                continue
            if not any(p < len(v) and v[p] == x[p] for v in vs):
                why = "byte %d (0x%02x) is from no version since the fsync (fsync-ed: %s)" % (
                    p, x[p], "0x%02x" % vs[0][p] if p < len(vs[0]) else "none")
                break
    if why:
        print("# %s: content is neither its last fsync-ed version nor what a later write "
              "cut short may leave: %s" % (name, why)); bad += 1
    else:
        print("# %s: a write cut short (%d bytes; fsync-ed %d): allowed" % (name, len(x), dn))
print("# %d fsync-ed files checked, %d bad" % (len(ok), bad))
# keep only the versions a later check can need
need = set()
for dh, dn, later, trunc in ok.values():
    need.add(dh); need.update(later)
for f in os.listdir(vers):
    if f not in need:
        os.unlink(os.path.join(vers, f))
sys.exit(1 if bad else 0)
'

daemon_pid() { cat "$T/.pids/$(echo "$MNT" | tr / _)" 2>/dev/null; }

# forget a mount we tore down ourselves (so cleanup does not wait on it)
forget_mount() {
	awk -F '\t' -v m="$MNT" '$1 != m' "$VV_MOUNTS" > "$VV_MOUNTS.new"
	mv "$VV_MOUNTS.new" "$VV_MOUNTS"
}

total_done=0
for round in $(seq 1 "$ROUNDS"); do
	vv_mount "$STORE" "$MNT"
	pid=$(daemon_pid)
	before=$(grep -c '^D ' "$LOG" || true)
	"$PY" -c "$WRITER" "$MNT" "$LOG" "$((SEED * 100 + round))" "$VERS" 2>>"$T/writer.err" &
	wpid=$!
	# wait (bounded) until the writer has completed at least one fsync,
	# then a random extra 0.1-1.5 s
	i=0
	while [ "$(grep -c '^D ' "$LOG" || true)" -le "$before" ] && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	sleep "$((RANDOM % 15 / 10)).$((RANDOM % 10))"
	kill -KILL "$pid"
	# the writer stops with ENOTCONN; a request stuck in the kernel is
	# aborted by the lazy unmount
	fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
	wait "$wpid" || true
	forget_mount
	n=$(( $(grep -c '^D ' "$LOG" || true) - before ))
	total_done=$((total_done + n))
	check "round $round: the writer completed fsyncs before the kill ($n)" test "$n" -gt 0

	# A dry run first: it must judge the crashed store the same way and
	# leave it exactly as the crash left it (meta.db's WAL included).
	sum_store > "$T/sum.before"
	out=$("$VV_BIN" fsck "$STORE" --passfile "$PASSFILE" --dry-run 2>&1) && rc=0 || rc=$?
	if [ "$rc" -eq 1 ] && echo "$out" | grep -q 'orphans found'; then rc=0; fi
	if [ "$rc" -ne 0 ]; then echo "$out" | sed 's/^/#   /'; fi
	check "round $round: fsck --dry-run after SIGKILL finds no damage" test "$rc" -eq 0
	sum_store > "$T/sum.after"
	check "round $round: fsck --dry-run changed no byte of the store" \
		cmp -s "$T/sum.before" "$T/sum.after"

	out=$("$VV_BIN" fsck "$STORE" --passfile "$PASSFILE" 2>&1) && rc=0 || rc=$?
	if [ "$rc" -eq 1 ] && echo "$out" | grep -q 'orphans freed$'; then rc=0; fi
	if [ "$rc" -ne 0 ]; then echo "$out" | sed 's/^/#   /'; fi
	check "round $round: fsck after SIGKILL finds no damage" test "$rc" -eq 0
	out=$("$VV_BIN" fsck "$STORE" --passfile "$PASSFILE" 2>&1) && rc=0 || rc=$?
	if [ "$rc" -ne 0 ]; then echo "$out" | sed 's/^/#   /'; fi
	check "round $round: a second fsck is clean (exit 0)" test "$rc" -eq 0

	vv_mount "$STORE" "$MNT"
	check "round $round: every fsync-ed file holds its content after remount" \
		"$PY" -c "$VERIFY" "$MNT" "$LOG" "$VERS"
	vv_umount "$MNT"
done
echo "# $total_done fsyncs completed in $ROUNDS rounds"
test_done
