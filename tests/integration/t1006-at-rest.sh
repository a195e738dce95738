#!/bin/bash
# t1006-at-rest: nothing under STORE but vecvault.conf is plaintext.  Unique
# random marker strings are used as names of collections, nested
# directories, files (inline small and multi-block), hard links, rename
# targets, symlink targets, user xattr names and values, ACL'd files, in
# file contents (small inline files, big multi-block files, a file that is
# then deleted, and in overwritten blocks), and the passphrase itself is a
# marker.  None of them may appear in any byte (or file name) under STORE,
# in the state dir (rollback anchors), or in any file created or modified in
# /tmp, /var/tmp or $TMPDIR during the test (under 64 MiB) -- checked while mounted (after
# sync) and again after unmount.  STORE holds only vecvault.conf, meta.db,
# meta.db-wal, the full-disk reserve (random bytes) and chunks/XX/<id> (no
# -shm, no -journal, no temp files), and
# the conf holds only its known fields (salts and wrapped keys in hex).
# The audit log and daemon log live outside STORE by design and are not
# checked here.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
mkdir -p "$M"

mk() { printf 'VVMK%s' "$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"; }
MARKS=$T/markers
: > "$MARKS"
newmark() { local m; m=$(mk); echo "$m" >> "$MARKS"; echo "$m"; }

# The passphrase is a marker too.
PASS=$(newmark)
printf '%s\n' "$PASS" > "$PASSFILE"

REF=$T/.ref
touch "$REF"
sleep 1   # -newer has whole-second granularity on some filesystems

vv_init "$S" >/dev/null
vv_mount "$S" "$M"

COLL=$(newmark); NEST=$(newmark); NEST2=$(newmark)
SMALLN=$(newmark); BIGN=$(newmark); LINKN=$(newmark); SYMN=$(newmark)
SYMT=$(newmark); XN=$(newmark); XV=$(newmark); XV2=$(newmark)
ACLN=$(newmark); DELN=$(newmark); DELC=$(newmark); RENN=$(newmark)
SMALLC=$(newmark); BIGC=$(newmark); OVERC=$(newmark); TOPN=$(newmark)
DIRX=$(newmark); DIRXV=$(newmark)

check "mkdir a collection with a marker name" mkdir "$M/$COLL"
check "nested directories" mkdir -p "$M/$COLL/$NEST/$NEST2"
check "a small inline file" sh -c "printf '%s\n' '$SMALLC' > '$M/$COLL/$NEST/$SMALLN'"
check "a top-level file" sh -c "printf 'top %s\n' '$SMALLC' > '$M/$TOPN'"
# A multi-block file: random data with the marker repeated at many offsets
# (including across a 64 KiB block boundary).
"$PY" - "$T/big.src" "$BIGC" <<'EOF'
import os, sys
m = sys.argv[2].encode()
b = bytearray(os.urandom(1_000_000))
for off in list(range(0, 990_000, 7919)) + [65536 - 5, 131072 - 10]:
    b[off:off + len(m)] = m
open(sys.argv[1], "wb").write(b)
EOF
check "a big multi-block file" cp "$T/big.src" "$M/$COLL/$NEST/$NEST2/$BIGN"
check "a compressible big file of markers" sh -c \
	"yes '$BIGC' | head -c 300000 > '$M/$COLL/repeated'"
check "overwrite a block in the middle" sh -c \
	"printf '%s' '$OVERC' | dd of='$M/$COLL/$NEST/$NEST2/$BIGN' bs=1 seek=200000 conv=notrunc status=none"
check "a hard link with a marker name" ln "$M/$COLL/$NEST/$SMALLN" "$M/$COLL/$LINKN"
check "a symlink (marker name and target)" ln -s "../$SYMT/x" "$M/$COLL/$SYMN"
check "user xattr with marker name and value" setfattr -n "user.$XN" -v "$XV" "$M/$COLL/$NEST/$SMALLN"
check "user xattr on the big file" setfattr -n user.tag -v "$XV2" "$M/$COLL/$NEST/$NEST2/$BIGN"
check "user xattr on a directory" setfattr -n "user.$DIRX" -v "$DIRXV" "$M/$COLL/$NEST"
check "an ACL'd file" sh -c "echo acl > '$M/$COLL/$ACLN' && setfacl -m u:nobody:rw,g:nogroup:r '$M/$COLL/$ACLN'"
check "a default ACL on a directory" setfacl -d -m u:nobody:rx "$M/$COLL/$NEST"
check "a file then deleted" sh -c "printf '%s' '$DELC' > '$M/$COLL/$DELN' && sync && rm '$M/$COLL/$DELN'"
check "a rename to a marker name" sh -c "echo r > '$M/$COLL/plain' && mv '$M/$COLL/plain' '$M/$COLL/$RENN'"
check "content reads back" cmp -s <(printf '%s\n' "$SMALLC") "$M/$COLL/$NEST/$SMALLN"
check "getfacl shows the ACL" sh -c "getfacl -p '$M/$COLL/$ACLN' 2>/dev/null | grep -q 'user:nobody:rw-'"

# Places to look: STORE, the state dir, and every file under the temp
# directories created or modified since the start (outside this test's $T,
# where the audit log and the original copies live).
tmpfiles() {
	local d
	for d in /tmp /var/tmp ${TMPDIR:+"$TMPDIR"}; do
		[ -d "$d" ] || continue
		find "$d" -xdev \( -path "$T" -prune \) -o -type f -newer "$REF" -size -65536k -print 2>/dev/null
	done | sort -u
}

# scan PHASE: fail if any marker appears in any byte or name.
scan() {
	local phase=$1 hits
	hits=$(grep -r -a -l -F -f "$MARKS" "$S" "$VECVAULT_STATE_DIR" 2>/dev/null || true)
	check "$phase: no marker in any byte under STORE or the state dir${hits:+ (found in: $hits)}" \
		test -z "$hits"
	hits=$(find "$S" "$VECVAULT_STATE_DIR" | grep -F -f "$MARKS" || true)
	check "$phase: no marker in any file name under STORE" test -z "$hits"
	hits=$(tmpfiles | while read -r f; do
		grep -a -l -F -f "$MARKS" "$f" 2>/dev/null || true; done)
	check "$phase: no marker in new temp files${hits:+ (found in: $hits)}" test -z "$hits"
	# A lowercase/uppercase hex dump of a marker would be a leak too.
	local hexes=$T/hexes
	while read -r m; do printf '%s' "$m" | od -An -tx1 | tr -d ' \n'; echo; done < "$MARKS" > "$hexes"
	hits=$(grep -r -a -l -i -F -f "$hexes" "$S" 2>/dev/null || true)
	check "$phase: no hex-encoded marker under STORE" test -z "$hits"
	# Only the known files.
	hits=$(cd "$S" && find . -mindepth 1 | grep -Ev \
		'^\./(vecvault\.conf|meta\.db|meta\.db-wal|reserve|chunks|chunks/[0-9a-f]{2}|chunks/[0-9a-f]{2}/[0-9a-f]{64})$' || true)
	check "$phase: STORE holds only vecvault.conf, meta.db[-wal], reserve, chunks/${hits:+ (extra: $hits)}" \
		test -z "$hits"
	check "$phase: no -shm or -journal file" sh -c \
		"! ls -a '$S' | grep -Eq -- '-shm|-journal'"
}

# Positive control: the scanner does find markers in plaintext.
check "control: the scan finds markers in a plaintext copy" sh -c \
	"grep -r -a -l -F -f '$MARKS' '$T/big.src' > /dev/null"

sync
scan "mounted"
check "unmount" vv_umount "$M"
scan "unmounted"

# The conf: only the known fields, hex, no marker (scan above), nothing
# beyond salts / wrapped keys / MAC.
check "conf has only known fields" sh -c "grep -Ev \
	'^(vecvault-conf [0-9]+|store_id = [0-9a-f]{32}|page_size = [0-9]+|created = [0-9]+|slot\.[0-9]+ = argon2id ops=[0-9]+ mem=[0-9]+ salt=[0-9a-f]+ wrapped=[0-9a-f]+|mac = [0-9a-f]{64})$' \
	'$S/vecvault.conf' | { ! grep -q .; }"
check "conf is small" test "$(stat -c %s "$S/vecvault.conf")" -lt 4096

# A remount, read and fsck change nothing: still no marker anywhere.
check "remount" vv_mount "$S" "$M"
check "big file reads back after remount" sh -c "printf '%s' '$OVERC' |
	dd of='$T/big.src' bs=1 seek=200000 conv=notrunc status=none && cmp -s '$T/big.src' '$M/$COLL/$NEST/$NEST2/$BIGN'"
check "xattr reads back" test "$(getfattr --absolute-names --only-values -n "user.$XN" "$M/$COLL/$NEST/$SMALLN")" = "$XV"
check "symlink reads back" test "$(readlink "$M/$COLL/$SYMN")" = "../$SYMT/x"
check "unmount again" vv_umount "$M"
check "fsck" sh -c "'$VV_BIN' fsck '$S' --passfile '$PASSFILE' > /dev/null"
scan "after remount and fsck"

test_done
