#!/bin/bash
# t1010-sigkill: crash smoke test (DESIGN invariant 4, process-kill case).
#
# Several rounds of: mount, run a writer that creates, overwrites and
# appends files with fsync (logging every completed fsync to a file OUTSIDE
# the mount), SIGKILL the daemon at a random moment, lazily unmount.  After
# each kill, `vecvault fsck` must find no damage (a first run may free
# orphans, exit 1 "orphans freed"; a second run must then be clean, exit 0),
# and after a remount every file holds the content of its last completed
# fsync or of a write begun after it.  Before that, `fsck --dry-run` finds no
# damage and leaves every byte of the crashed store (its WAL too) as it was.
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
: > "$LOG"

vv_init "$STORE" >/dev/null

# Writer: loops until the mount goes away.  Log lines:
#   B name sha256 size   write of that content begun
#   D name sha256 size   ... and fsync'd (close follows)
WRITER='
import hashlib, os, random, sys
mnt, log, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(seed)
d = os.path.join(mnt, "coll")
lf = open(log, "a", buffering=1)
cur = {}
def rec(kind, name, data):
    lf.write("%s %s %s %d\n" % (kind, name, hashlib.sha256(data).hexdigest(), len(data)))
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
        rec("B", name, data)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if trunc else 0), 0o644)
        try:
            os.pwrite(fd, chunk, off)
            os.fsync(fd)
        finally:
            os.close(fd)
        rec("D", name, data)
except OSError as e:
    # ENOTCONN / ECONNABORTED / EIO once the daemon is gone
    print("writer stopped: %s" % e, file=sys.stderr)
'

# Verify: each file named in a D line holds its last D content or the content
# of a B line written after that D.
VERIFY='
import hashlib, os, sys
mnt, log = sys.argv[1], sys.argv[2]
d = os.path.join(mnt, "coll")
ok = {}      # name -> set of acceptable hashes (last D and later Bs)
for line in open(log):
    parts = line.split()
    if len(parts) != 4:
        continue            # a torn last line cannot happen (writer flushes), but be lenient
    k, name, h, n = parts
    if k == "D":
        ok[name] = {h}
    elif name in ok:
        ok[name].add(h)
bad = 0
for name, hs in sorted(ok.items()):
    try:
        with open(os.path.join(d, name), "rb") as f:
            h = hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        print("# %s: %s" % (name, e)); bad += 1; continue
    if h not in hs:
        print("# %s: content is neither its last fsync-ed version nor a later one" % name); bad += 1
print("# %d fsync-ed files checked, %d bad" % (len(ok), bad))
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
	"$PY" -c "$WRITER" "$MNT" "$LOG" "$((SEED * 100 + round))" 2>>"$T/writer.err" &
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
		"$PY" -c "$VERIFY" "$MNT" "$LOG"
	vv_umount "$MNT"
done
echo "# $total_done fsyncs completed in $ROUNDS rounds"
test_done
