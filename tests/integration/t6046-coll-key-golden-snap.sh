#!/bin/bash
# t6046-coll-key-golden-snap: row snapshots of an older build keep a
# removed collection's key (their snap_colls rows name it: the golden
# store golden-snap-v1, made by the row-copy code), so the pass at mount
# and the removal drop nothing they need; after the last of them no key
# is left that nothing needs.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

vv_golden golden-snap-v1 'golden snap passphrase v1'
S=$T/golden-snap-v1
M=$T/mnt
gmount() { vv_mount "$S" "$M" --passfile "$S.pass" "$@"; }
keys() {
	"$VV_BIN" fsck "$S" --passfile "$S.pass" --dry-run 2>/dev/null |
		grep -qx "$S: $1 collection keys, 0 needed by nothing (0 dropped)"
}
check "the old store: the root's and products' keys" keys 2
check "mount it (the pass at mount)" gmount --trash-days 0
check "products removed for good" rm -r "$M/products"
vv_umount "$M"
check "the key stays: old1 and old2 hold products" keys 2
gmount --trash-days 0
check "old1 still reads notes.txt" test "$(cat "$M/.snapshots/old1/products/notes.txt")" = "version one"
check "old1 still reads big.bin" sh -c "cat '$M/.snapshots/old1/products/big.bin' | wc -c | grep -qx 300000"
check "delete old1" "$VV_BIN" snapshot delete "$M" old1
check "old2 still reads" test "$(cat "$M/.snapshots/old2/products/notes.txt")" = "version two"
check "delete old2" "$VV_BIN" snapshot delete "$M" old2
vv_umount "$M"
check "no key is left that nothing needs" "$VV_BIN" fsck "$S" --passfile "$S.pass" --dry-run
check "fsck is clean" "$VV_BIN" fsck "$S" --passfile "$S.pass"
test_done
