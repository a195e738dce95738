#!/bin/bash
# t1007-tamper: integrity of the store at rest.  A vault holds an inline
# small file, two same-size two-block files (whose chunks look alike) and a
# multi-block file.  On a fresh copy of the unmounted store per case we flip
# bits in a chunk (header, body, tag), swap two chunks, move a chunk under
# another chunk's name, truncate a chunk (mid-block and by one byte), delete
# a chunk, and flip bits in meta.db pages (page 1, a middle page, the last
# page).  Then: the vault either refuses to mount with a clear message
# (allowed for meta.db damage only) or mounts and every read of affected data
# fails with EIO -- a read never succeeds with bytes that differ from the
# original, and a partial read is a prefix of the original; unaffected files
# still read back.  `vecvault fsck` exits non-zero and names the damaged file
# or chunk (or meta.db page).  An untouched copy passes fsck; an orphan chunk
# (a copy under a new valid name) is reported, freed, and a second fsck is
# clean.  `fsck --dry-run` runs before each fsck: it exits 0 on the clean
# store, non-zero naming the same damage on a damaged one, reports the
# orphan without freeing it, and changes no byte (nor name) under STORE.
#
# Every copy shares the store id, so each case runs with its own fresh
# VECVAULT_STATE_DIR (no rollback anchor): the cases must not see each
# other's commits as a rollback.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
O=$T/orig
mkdir -p "$M" "$O"

flip() { # flip FILE OFFSET: xor one bit at OFFSET (negative: from the end)
	"$PY" - "$1" "$2" <<'EOF'
import os, sys
p, o = sys.argv[1], int(sys.argv[2])
n = os.path.getsize(p)
if o < 0: o += n
with open(p, "r+b") as f:
    f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 0x10]))
EOF
}

# read_ok_or_eio FILE ORIG: read FILE in full; pass if it matches ORIG, or
# if the read fails with EIO after delivering a prefix of ORIG.  Prints
# "same", "eio" or a failure description.
read_check() {
	"$PY" - "$1" "$2" <<'EOF'
import errno, sys
p, orig = sys.argv[1], open(sys.argv[2], "rb").read()
got = b""
try:
    with open(p, "rb", buffering=0) as f:
        while True:
            b = f.read(65536)
            if not b: break
            got += b
except OSError as e:
    if e.errno != errno.EIO:
        print("error %s" % errno.errorcode.get(e.errno, e.errno)); sys.exit()
    print("eio" if orig.startswith(got) else "eio-after-wrong-bytes"); sys.exit()
print("same" if got == orig else "WRONG-BYTES")
EOF
}

# The vault.
vv_init "$S" >/dev/null
vv_mount "$S" "$M"
printf 'a small inline file, well under 4 KiB\n' > "$O/small"
head -c 131072 /dev/urandom > "$O/a"          # two 64 KiB blocks
head -c 131072 /dev/urandom > "$O/b"          # same size: look-alike chunk
head -c 400000 /dev/urandom > "$O/big"        # 7 blocks, last one partial
mkdir "$M/coll"
for f in small a b big; do cp "$O/$f" "$M/coll/$f"; done
sync
vv_umount "$M"
check "pristine files read back" true

# Which chunk holds what: each file written in one go has its own chunk;
# a and b have equal sizes, big a distinct one.
chunks_of_size() { find "$1/chunks" -type f -size "$2c" | sort; }
sz() { stat -c %s "$1"; }
all_chunks=$(find "$S/chunks" -type f | sort)
big_sz=
ab_sz=
for c in $all_chunks; do
	case $(sz "$c") in
	13[0-9][0-9][0-9][0-9]|131[0-9][0-9][0-9]) ab_sz=$(sz "$c") ;;
	*) big_sz=$(sz "$c") ;;
	esac
done
check "store has one chunk per data file (a, b, big)" \
	test "$(echo "$all_chunks" | wc -l)" = 3 -a -n "$big_sz" -a -n "$ab_sz"
n_ab=$(chunks_of_size "$S" "$ab_sz" | wc -l)
check "a and b have same-size chunks" test "$n_ab" = 2
BIGCH=$(chunks_of_size "$S" "$big_sz" | head -n1)
BIGCH=${BIGCH#"$S/"}
A1=$(chunks_of_size "$S" "$ab_sz" | sed -n 1p); A1=${A1#"$S/"}
A2=$(chunks_of_size "$S" "$ab_sz" | sed -n 2p); A2=${A2#"$S/"}

# store_sum DIR: every name under DIR and every file's bytes, so a dry run
# that creates, removes or changes anything shows.
store_sum() {
	(cd "$1" && find . | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z |
		xargs -0 sha256sum)
}

# dry_run NAME STORE: fsck --dry-run; its exit status in $rc, output in
# $T/dry.out; checks that no byte of STORE changed.
dry_run() {
	local name=$1 st=$2
	store_sum "$st" > "$T/sum.before"
	rc=0
	"$VV_BIN" fsck "$st" --passfile "$PASSFILE" --dry-run > "$T/dry.out" 2>&1 || rc=$?
	store_sum "$st" > "$T/sum.after"
	if cmp -s "$T/sum.before" "$T/sum.after"; then
		test_ok "$name: fsck --dry-run changed no byte of the store"
	else
		diff "$T/sum.before" "$T/sum.after" | sed 's/^/#   /'
		test_fail "$name: fsck --dry-run changed no byte of the store"
	fi
}

dry_run "untouched" "$S"
check "untouched: fsck --dry-run exits 0 (got $rc)" test "$rc" = 0
check "untouched: fsck --dry-run says clean" grep -q ': clean$' "$T/dry.out"
check "an untouched store passes fsck (exit 0)" "$VV_BIN" fsck "$S" --passfile "$PASSFILE"

NCASE=0
# new_case NAME: fresh copy of the store in $C, fresh state dir.
new_case() {
	NCASE=$((NCASE + 1))
	CN=$1
	C=$T/case$NCASE
	cp -a "$S" "$C"
	mkdir -m 700 "$T/state$NCASE"
	export VECVAULT_STATE_DIR="$T/state$NCASE"
}

# run_case DAMAGED_FILES INTACT_FILES WANT_NAMES [meta]: after damage in $C,
# mount (or for meta damage possibly refuse), read every file, run fsck.
run_case() {
	local damaged=$1 intact=$2 names=$3 meta=${4:-} f res rc out
	local cm=$T/m$NCASE
	mkdir -p "$cm"
	rc=0
	out=$(vv_mount "$C" "$cm" 2>&1) || rc=$?
	if [ "$rc" -ne 0 ]; then
		if [ -n "$meta" ]; then
			check "$CN: mount refused with a clear message" sh -c \
				"echo '$out' | grep -Eqi 'authentic|corrupt|damaged|malformed'"
			echo "# mount said: $out"
		else
			echo "# mount said: $out"
			test_fail "$CN: mount succeeds (chunk damage must not block mounting)"
		fi
	else
		for f in $damaged; do
			res=$(read_check "$cm/coll/$f" "$O/$f")
			check "$CN: read of damaged $f fails with EIO (got $res)" test "$res" = eio
		done
		if [ -n "${EITHER:-}" ]; then
			# Two same-size chunks: which of the files owns the moved one is
			# not known from outside; exactly one must fail, the other read.
			local ne=0 ns=0
			for f in $EITHER; do
				res=$(read_check "$cm/coll/$f" "$O/$f")
				[ "$res" = eio ] && ne=$((ne + 1))
				[ "$res" = same ] && ns=$((ns + 1))
			done
			check "$CN: one of $EITHER fails with EIO, the other reads back" \
				test "$ne" = 1 -a "$ns" = 1
		fi
		for f in $intact; do
			res=$(read_check "$cm/coll/$f" "$O/$f")
			if [ -n "$meta" ]; then
				# Metadata damage may hit any file: never wrong bytes.
				check "$CN: $f reads back or fails with EIO (got $res)" \
					sh -c "test '$res' = same || test '$res' = eio"
			else
				check "$CN: unaffected $f still reads back (got $res)" test "$res" = same
			fi
		done
		check "$CN: unmount" vv_umount "$cm"
	fi
	dry_run "$CN" "$C"
	check "$CN: fsck --dry-run exits non-zero (got $rc)" test "$rc" -ne 0
	if ! grep -Eq "$names" "$T/dry.out"; then
		echo "# fsck --dry-run output (wanted /$names/):"; sed 's/^/#   /' "$T/dry.out"
		test_fail "$CN: fsck --dry-run names the damage"
	else
		test_ok "$CN: fsck --dry-run names the damage"
	fi
	rc=0
	"$VV_BIN" fsck "$C" --passfile "$PASSFILE" > "$T/fsck.out" 2>&1 || rc=$?
	check "$CN: fsck exits non-zero (got $rc)" test "$rc" -ne 0
	if ! grep -Eq "$names" "$T/fsck.out"; then
		echo "# fsck output (wanted /$names/):"; sed 's/^/#   /' "$T/fsck.out"
		test_fail "$CN: fsck names the damage"
	else
		test_ok "$CN: fsck names the damage"
	fi
}

id_of() { basename "$1" | cut -c1-16; }
big_names="coll/big|$(id_of "$BIGCH")"

for off in 0 20 70000 -1; do
	new_case "bit flip at $off in big's chunk"
	flip "$C/$BIGCH" "$off"
	run_case big "small a b" "$big_names"
done

new_case "swap a's and b's chunks"
mv "$C/$A1" "$T/tmpch"; mv "$C/$A2" "$C/$A1"; mv "$T/tmpch" "$C/$A2"
run_case "a b" "small big" "coll/a|coll/b|$(id_of "$A1")|$(id_of "$A2")"

new_case "move a chunk under another chunk's name (other dir)"
mv -f "$C/$A1" "$C/$BIGCH"
EITHER="a b" run_case "big" "small" "coll/a|coll/b|coll/big|$(id_of "$A1")|$(id_of "$A2")|$(id_of "$BIGCH")"

new_case "move a chunk to another chunks/XX dir under a new name"
d2=$(dirname "$BIGCH")
mv "$C/$A1" "$C/$d2/$(basename "$A2")"; rm -f "$C/$A2"
run_case "a b" "small big" "coll/a|coll/b|$(id_of "$A1")|$(id_of "$A2")"

new_case "truncate big's chunk mid-way"
truncate -s $((big_sz / 2)) "$C/$BIGCH"
run_case big "small a b" "$big_names"

new_case "truncate big's chunk by one byte"
truncate -s $((big_sz - 1)) "$C/$BIGCH"
run_case big "small a b" "$big_names"

new_case "truncate big's chunk to 0"
truncate -s 0 "$C/$BIGCH"
run_case big "small a b" "$big_names"

new_case "delete big's chunk"
rm -f "$C/$BIGCH"
run_case big "small a b" "$big_names"

# meta.db pages (the store is cleanly unmounted: WAL checkpointed)
PS=4096
NP=$(( $(sz "$S/meta.db") / PS ))
for pg in 1 $((NP / 2)) $NP; do
	new_case "bit flip in meta.db page $pg"
	flip "$C/meta.db" $(( (pg - 1) * PS + 200 ))
	run_case "" "small a b big" "meta\\.db|page $pg" meta
done

new_case "meta.db pages 2 and 3 swapped"
"$PY" - "$C/meta.db" "$PS" <<'EOF2'
import sys
p, ps = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(ps); a = f.read(ps); b = f.read(ps)
    f.seek(ps); f.write(b + a)
EOF2
run_case "" "small a b big" "meta\\.db|page [23]" meta

new_case "meta.db truncated by one page"
truncate -s $(( (NP - 1) * PS )) "$C/meta.db"
run_case "" "small a b big" "meta\\.db" meta

# An orphan chunk: a valid-looking copy under a new name is reported and
# freed; a second fsck is then clean.
new_case "orphan chunk"
orph=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$C/chunks/${orph:0:2}"
cp "$C/$A1" "$C/chunks/${orph:0:2}/$orph"
dry_run "orphan" "$C"
check "orphan: fsck --dry-run exits 1 (got $rc)" test "$rc" = 1
check "orphan: fsck --dry-run reports the orphan chunk" sh -c \
	"grep -i orphan '$T/dry.out' | grep -q '${orph:0:16}'"
check "orphan: fsck --dry-run left the chunk file" test -e "$C/chunks/${orph:0:2}/$orph"
rc=0
"$VV_BIN" fsck "$C" --passfile "$PASSFILE" > "$T/fsck.out" 2>&1 || rc=$?
check "orphan: fsck exits 1 (found)" test "$rc" = 1
check "orphan: fsck reports the orphan chunk" sh -c \
	"grep -i orphan '$T/fsck.out' | grep -q '${orph:0:16}'"
check "orphan: fsck freed the chunk file" test ! -e "$C/chunks/${orph:0:2}/$orph"
check "orphan: a second fsck is clean (exit 0)" sh -c \
	"'$VV_BIN' fsck '$C' --passfile '$PASSFILE' > /dev/null"
mkdir -p "$T/mo"
check "orphan: mount after repair" vv_mount "$C" "$T/mo"
for f in small a b big; do
	check "orphan: $f intact after repair" cmp -s "$O/$f" "$T/mo/coll/$f"
done
check "orphan: unmount" vv_umount "$T/mo"

test_done
