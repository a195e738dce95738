#!/bin/bash
# t6047-coll-key-shred: a dropped collection key is shredded on disk, not
# only in meta.db's live rows (docs/design.md "Collections and keys").
# Each key's wrapped bytes are read before the drop (test_keys keys); after
# each way a key goes on a real mount (rm -r of a collection, the last
# close of a file unlinked across its collection's rmdir, `trash purge`, a
# snapshot's delete) and its settle (the next commit), every page of
# meta.db and of the snapshot files and every frame of the WAL, decrypted
# with the store's meta key (test_keys scan), holds no third of it, while
# the mount runs, after unmount, and after a SIGKILL right after a drop
# (the next mount settles); the kept keys are found throughout.  Main
# left the dropped keys in the WAL's older frames and in free space.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
TK=$VV_BUILD/test_keys
[ -x "$TK" ] || { echo "# no $TK"; exit 77; }

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null 2>&1
head -c 300000 /dev/urandom > "$T/big"          # past inline: in chunks

vv_mount "$S" "$M" --trash-days 0
for c in a b c d e f; do
	mkdir "$M/$c"
	cp "$T/big" "$M/$c/seg"
	echo small > "$M/$c/small"
done
vv_umount "$M"
# ids in creation order, the root collection's first
"$TK" keys "$S" "$PASSFILE" > "$T/keys"
check "seven keys (the root's and six collections')" test "$(wc -l < "$T/keys")" = 7
declare -A K
i=0
for c in root a b c d e f; do
	i=$((i + 1))
	K[$c]=$(sed -n "${i}p" "$T/keys" | cut -d' ' -f2)
done

# found KEY...: each key is somewhere; absent KEY...: none is, anywhere
hits() { "$TK" scan "$S" "$PASSFILE" "$@" | awk 'NF == 2 { print $2 }'; }
found() {
	local h n=0
	for h in $(hits "$@"); do [ "$h" -gt 0 ] || return 1; n=$((n + 1)); done
	[ $n -eq $# ]
}
absent() {
	local h n=0
	for h in $(hits "$@"); do [ "$h" -eq 0 ] || return 1; n=$((n + 1)); done
	[ $n -eq $# ]
}
# gone KEY: absent, within 10 s (the settle follows the drop's commit)
gone() {
	local i=0
	while [ $i -lt 100 ]; do
		absent "$@" && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}
check "the scanner finds every key" found "${K[root]}" "${K[a]}" "${K[b]}" "${K[c]}" "${K[d]}" "${K[e]}" "${K[f]}"
check "every page and frame decrypts" \
	test "$("$TK" scan "$S" "$PASSFILE" | awk '$1 == "pages" { print $6 }')" = 0

# 1. rm -r of a collection (the trash off)
vv_mount "$S" "$M" --trash-days 0
rm -r "$M/a"
vv_sync "$M"
check "rm -r: the key is shredded while mounted" gone "${K[a]}"
check "rm -r: the others are kept" found "${K[root]}" "${K[b]}" "${K[c]}" "${K[d]}" "${K[e]}"

# 2. the last close of a file unlinked across its collection's rmdir
"$PY" - "$M/b" "$T/big" <<'PY' &
import os, sys, time
d, want = sys.argv[1], open(sys.argv[2], "rb").read()
fd = os.open(d + "/seg", os.O_RDONLY)
os.unlink(d + "/seg")
os.unlink(d + "/small")
os.rmdir(d)
open(sys.argv[2] + ".rmdir", "w").close()
time.sleep(1)
assert os.pread(fd, len(want) + 1, 0) == want
os.close(fd)
PY
hp=$!
i=0
while [ ! -e "$T/big.rmdir" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
vv_sync "$M"
check "open file: its key is kept while open" found "${K[b]}"
check "open file: it read whole after its collection's rmdir" wait "$hp"
vv_sync "$M"
check "open file: the key is shredded after the last close" gone "${K[b]}"
vv_umount "$M"

# 3. trash purge
vv_mount "$S" "$M"
rm -r "$M/c"
vv_sync "$M"
check "trash: the key is kept while its files are in the trash" found "${K[c]}"
check "trash purge" "$VV_BIN" trash purge "$M" /c
vv_sync "$M"
vv_umount "$M"
# the kernel may hold a lookup of a purged item until unmount; the next
# writable open frees its row and key (docs/design.md)
vv_mount "$S" "$M" --trash-days 0
check "trash purge: the key is shredded" gone "${K[c]}"

# 4. a snapshot's delete
"$VV_BIN" snapshot create "$M" s1 >/dev/null
rm -r "$M/d"
vv_sync "$M"
check "snapshot: the key is kept (its row and the snapshot's copy)" found "${K[d]}"
check "snapshot delete" "$VV_BIN" snapshot delete "$M" s1
check "snapshot: the snapshot file is gone" test -z "$(ls -A "$S/snapshots" 2>/dev/null)"
vv_sync "$M"
check "snapshot: the key is shredded" gone "${K[d]}"
vv_umount "$M"
check "after unmount: none of the dropped keys" absent "${K[a]}" "${K[b]}" "${K[c]}" "${K[d]}"
check "after unmount: the kept keys" found "${K[root]}" "${K[e]}" "${K[f]}"

# 5. SIGKILL right after a drop's commit: the next mount settles
vv_mount "$S" "$M" --trash-days 0
rm -r "$M/e"
vv_sync "$M"
pidf=$(awk -F '\t' -v m="$M" '$1 == m { p = $2 } END { print p }' "$VV_MOUNTS")
kill -KILL "$(cat "$pidf")"
fusermount3 -uz "$M" 2>/dev/null || umount -l "$M" 2>/dev/null || true
vv_wait_daemon "$pidf" || true
awk -F '\t' -v m="$M" '$1 != m' "$VV_MOUNTS" > "$VV_MOUNTS.new" && mv "$VV_MOUNTS.new" "$VV_MOUNTS"
vv_mount "$S" "$M" --trash-days 0
check "crash: the next mount shredded it" absent "${K[e]}"
check "crash: the kept collection reads" cmp "$M/f/seg" "$T/big"
vv_umount "$M"
check "crash: kept keys" found "${K[root]}" "${K[f]}"
check "fsck is clean" "$VV_BIN" fsck "$S" --passfile "$PASSFILE"
test_done
