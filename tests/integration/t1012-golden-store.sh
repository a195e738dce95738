#!/usr/bin/env bash
# t1012-golden-store.sh - a store written by format version 1 (made once by
# tests/data/make-golden.sh, never regenerated) still opens, checks clean
# and serves exactly what was written: guards on-disk format compatibility.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

vv_golden golden-v1 'golden passphrase v1'
S=$T/golden-v1
export TZ=UTC
G() { "$VV_BIN" "$1" "$S" --passfile "$S.pass" "${@:2}"; }

check "info reads the v1 conf" sh -c "'$VV_BIN' info '$S' | grep -q 'format'"
check "fsck of the v1 store is clean" G fsck
M=$T/mnt
check "the v1 store mounts" vv_mount "$S" "$M" --passfile "$S.pass"
P=$M/products

check "inline file content" test "$(cat "$P/notes.txt")" = "a small inline file"
check "multi-block file content (seeded random bytes)" "$PY" - "$P/big.bin" <<'PY'
import sys, random
r = random.Random(1)
want = bytes(r.getrandbits(8) for _ in range(200000))
sys.exit(0 if open(sys.argv[1], "rb").read() == want else 1)
PY
check "symlink target" test "$(readlink "$P/link")" = notes.txt
check "hard link count" test "$(stat -c %h "$P/notes.txt")" = 2
check "nanosecond mtime" test "$(stat -c %y "$P/notes.txt")" = "2024-01-02 03:04:05.123456789 +0000"
check "mode" test "$(stat -c %a "$P/big.bin")" = 640
check "user xattr" test "$(getfattr --only-values -n user.note "$P/notes.txt")" = golden
check "ACL entry" sh -c "getfacl -cn '$P/shared' 2>/dev/null | grep -qx 'user:1000:r-x'"
check "collection schema" test "$(getfattr --only-values -n user.vecvault.dim "$P")" = 4
check "segment computed xattr" test "$(getfattr --only-values -n user.vecvault.count "$P/seg.fvecs")" = 10
check "query over the v1 segment" sh -c \
	"'$VV_BIN' query '$P' --vector 3,3.5,-3,1 -k 1 | grep -q 'seg.fvecs'"
check "the v1 store accepts new writes" sh -c "echo new > '$P/new.txt' && test \"\$(cat '$P/new.txt')\" = new"
check "unmount" vv_umount "$M"
check "fsck after writing with this build" G fsck
test_done
