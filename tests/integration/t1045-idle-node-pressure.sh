#!/bin/bash
# t1045-idle-node-pressure: idle nodes (vault_node.c) evicted under their
# bytes bound while everything else that takes, changes or drops nodes
# runs at once.  600 files of 60 KB live in meta.db (inline): a node whose
# bytes a directory request loaded costs 64 KiB idle, so 32 MiB hold about
# 500 and the LRU evicts all the time.  Three role members' directory
# requests over random names, `vecvault grant` and `revoke` of the role on
# the directory (walks that update the idle nodes they find), chmod and
# setfacl of random files, root's reads of random files (lookups and
# opens) and the kernel made to forget (drop_caches), all at once for a
# fixed number of rounds: every request answered OK or EBUSY, every name
# 0, EACCES or EAGAIN; the daemon up; then what the idle nodes answer
# (every name's request as the member, stat and getfacl) equals what a
# remount answers from the rows, and fsck is clean.  (main passes; under
# tools/check.sh --asan a node used after its eviction would stop the
# daemon.)
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
GR=vv1045rd UR=vv1045us
vv_role_member "$UR" "$GR"
vv_init "$S" >/dev/null 2>&1
vv_mount "$S" "$M"
mkdir -m 0755 "$M/c" "$M/c/d"
"$PY" - "$M/c/d" <<'PY'
import struct, sys
for i in range(600):
    open("%s/f%03d.fvecs" % (sys.argv[1], i), "wb").write(struct.pack("<i4f", 4, float(i), 0, 0, 0) * 3000)
PY
chmod 0640 "$M"/c/d/*
"$VV_BIN" role create "$GR" "$M" >/dev/null

# member ROUNDS [all]: directory requests of 64 random names (all: every
# name once, in order), one line of answers per request
member() {
	setpriv --reuid="$UR" --regid=nogroup --init-groups -- /usr/bin/python3 - "$M/c/d" \
		"$VV_SRC/tests/integration/lib" "$@" <<'PY'
import os, random, sys
sys.path.insert(0, sys.argv[2])
import knn_dir as K
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
every = len(sys.argv) > 4
for r in range(int(sys.argv[3])):
    if every:
        names = ["f%03d.fvecs" % i for i in range(64 * r, min(600, 64 * r + 64))]
    else:
        names = ["f%03d.fvecs" % random.randrange(600) for _ in range(64)]
    e, h, st, c = K.knn_dir(fd, [0.0] * 4, names, 4)
    print(e, " ".join(str(s[0]) for s in st) if st else "")
PY
}
rnd() { printf '%s/c/d/f%03d.fvecs' "$M" $((RANDOM % 600)); }

for i in 1 2 3; do member 150 > "$T/m$i" 2>&1 & done
(for i in $(seq 40); do
	"$VV_BIN" grant "$GR" readonly "$M/c/d" >/dev/null && "$VV_BIN" revoke "$GR" "$M/c/d" >/dev/null
done) > "$T/grants" 2>&1 &
(for i in $(seq 150); do
	f=$(rnd)
	chmod 0600 "$f" && setfacl -m u:65534:r "$f" && chmod 0640 "$f" && setfacl -b "$f"
done) > "$T/chmods" 2>&1 &
(for i in $(seq 400); do cat "$(rnd)" > /dev/null; done) > "$T/cats" 2>&1 &
(for i in $(seq 30); do echo 2 > /proc/sys/vm/drop_caches; sleep 0.2; done) &
wait

check "the daemon is up" eval 'mountpoint -q "$M" && ls "$M/c/d" > /dev/null'
check "every request answered OK or EBUSY" \
	eval '! cat "$T"/m1 "$T"/m2 "$T"/m3 | grep -v "^OK \|^EBUSY" | grep . | sed "s/^/# /" | head -5 | grep .'
check "every name 0, EACCES or EAGAIN" \
	eval '! cat "$T"/m1 "$T"/m2 "$T"/m3 | grep "^OK " | tr " " "\n" | grep -vx "OK\|0\|-13\|-11" | sort | uniq -c | sed "s/^/# /" | grep .'
check "450 requests" test "$(cat "$T"/m1 "$T"/m2 "$T"/m3 | wc -l)" -eq 450
check "grants, chmods and reads went through" \
	eval '! cat "$T/grants" "$T/chmods" "$T/cats" | sed "s/^/# /" | grep .'

answers() {
	echo 2 > /proc/sys/vm/drop_caches
	member 10 all
	(cd "$M/c/d" && stat -c '%n %i %a %h %s %Y %Z' -- * && getfacl -p -n -- * 2>/dev/null)
}
"$VV_BIN" grant "$GR" readonly "$M/c/d" >/dev/null    # setfacl -b took some
answers > "$T/idle"
check "granted again: the member is served every name" \
	eval '[ "$(head -10 "$T/idle" | tr " " "\n" | grep -cx 0)" -eq 600 ]'
vv_umount "$M"
check "fsck is clean" eval '"$VV_BIN" fsck "$S" --passfile "$PASSFILE" --dry-run > "$T/fsck" 2>&1 || { sed "s/^/# /" "$T/fsck"; false; }'
vv_mount "$S" "$M"
answers > "$T/rows"
check "idle nodes answer as the rows after a remount" \
	eval 'diff "$T/idle" "$T/rows" | sed "s/^/# /" | head -10; cmp -s "$T/idle" "$T/rows"'
test_done
