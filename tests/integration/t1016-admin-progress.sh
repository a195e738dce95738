#!/bin/bash
# t1016-admin-progress: long operations show a progress line on a terminal
# and nothing in scripts.  fsck (blocks checked), passwd (the key
# derivations it waits for) and the first query on a fresh mount (scanned
# locally while the daemon fills its cache), each run twice: with stderr on
# a pseudo-terminal (lib/ptyrun.py) the line is there, and cleared before
# results; with stderr a file there is not one progress byte, even with
# VECVAULT_PROGRESS_DELAY=0.  Results on stdout are the same both ways.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
PTY="$PY $VV_SRC/tests/integration/lib/ptyrun.py"
export VECVAULT_PROGRESS_DELAY=0

check "init" vv_init "$S"
check "mount" vv_mount "$S" "$M"
check "a few MB of blocks to check" sh -c "head -c 3000000 /dev/urandom > '$M/data.bin'"
mkdir "$M/coll"
# 4000 x 16 f32 in .fvecs: int32 dim, then the floats, per row.
check "a segment to query" "$PY" -c "
import random, struct
r = random.Random(1016)
with open('$M/coll/seg.fvecs', 'wb') as f:
    for i in range(4000):
        f.write(struct.pack('<i16f', 16, *[r.random() for _ in range(16)]))"
check "unmount" vv_umount "$M"

# no_progress FILE: FILE (a captured stderr) holds no progress line.
no_progress() {
	if grep -q $'\r' "$1" || grep -qE '[0-9]+%|\.\.\.' "$1"; then
		echo "# progress bytes in a non-terminal stderr:"; sed 's/^/#   /' "$1" | cat -v
		return 1
	fi
}

# --- fsck --------------------------------------------------------------------
check "fsck, stderr a file: clean" \
	sh -c "'$VV_BIN' fsck '$S' --passfile '$PASSFILE' > '$T/fsck.out' 2> '$T/fsck.err'"
check "fsck, stderr a file: no progress" no_progress "$T/fsck.err"
check "fsck on a terminal: clean" sh -c "$PTY '$T/fsck-tty.out' '$VV_BIN' fsck '$S' --passfile '$PASSFILE' > '$T/fsck.tty'"
check "fsck on a terminal: shows blocks checked up to 100%" \
	grep -q 'vecvault fsck: checking blocks: 100% ' "$T/fsck.tty"
check "fsck on a terminal: the line is cleared at the end" \
	sh -c "tail -c 4 '$T/fsck.tty' | od -An -c | tr -d ' ' | grep -q '\\\\r033\\[K'"
check "fsck prints the same results either way" cmp "$T/fsck.out" "$T/fsck-tty.out"

# --- passwd ------------------------------------------------------------------
printf 'second passphrase\n' > "$T/pass2"
check "passwd, stderr a file" \
	sh -c "'$VV_BIN' passwd '$S' --passfile '$PASSFILE' --new-passfile '$T/pass2' > /dev/null 2> '$T/passwd.err'"
check "passwd, stderr a file: no progress" no_progress "$T/passwd.err"
check "passwd on a terminal" \
	sh -c "$PTY /dev/null '$VV_BIN' passwd '$S' --passfile '$T/pass2' --new-passfile '$PASSFILE' > '$T/passwd.tty'"
check "passwd on a terminal: says it is unlocking" \
	grep -q 'vecvault passwd: unlocking (key derivation)\.\.\.' "$T/passwd.tty"
check "passwd on a terminal: and wrapping the new passphrase" \
	grep -q 'vecvault passwd: wrapping the master key for the new passphrase' "$T/passwd.tty"

# --- query: the first on a fresh mount scans locally --------------------------
Q=0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5
check "mount again" vv_mount "$S" "$M"
check "first query on a terminal" \
	sh -c "$PTY '$T/q-tty.out' '$VV_BIN' query '$M/coll' --vector $Q -k 5 > '$T/q.tty'"
check "first query on a terminal: shows rows scanned up to 100%" \
	grep -q 'vecvault query: rows scanned: 100% (4000/4000)' "$T/q.tty"
check "query, stderr a file (scanned locally: --no-offload)" \
	sh -c "'$VV_BIN' query '$M/coll' --vector $Q -k 5 --no-offload > '$T/q.out' 2> '$T/q.err'"
check "query, stderr a file: no progress" no_progress "$T/q.err"
check "query prints the same results either way" cmp "$T/q.out" "$T/q-tty.out"
check "unmount" vv_umount "$M"
test_done
