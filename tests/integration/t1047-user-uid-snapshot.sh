#!/bin/bash
# t1047-user-uid-snapshot: the upgrade to retired_uids retires the uids of
# files that exist only in snapshots.  A store from before retired_uids
# knows its deleted users' uids only from their files; the upgrade scanned
# the live inodes alone, so the uid of alice (deleted there, her 0700
# directory and 0600 notes removed but kept by snapshot s1) was handed to
# bob, the first user added after the upgrade, who then read her notes
# through .snapshots (main: 4 checks fail).  Golden stores (tests/data/
# make-golden-uids.sh): v1 keeps the snapshot as rows of meta.db (older
# builds), v2 as a snapshot file.
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse
export XDG_RUNTIME_DIR="$T/run"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"

M=$T/mnt
A=2100000000                                 # alice's uid (make-golden-uids.sh)
uid_of() { "$VV_BIN" user show "$1" "$M" --json | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["uid"])'; }
as_uid() { local u=$1; shift; setpriv --reuid="$u" --regid=65534 --clear-groups -- "$PY" -c "$VV_PYOP" "$@" 2>&1; }

for g in golden-uids-v1 golden-uids-v2; do
	vv_golden "$g" "golden uids passphrase ${g##*-}"
	vv_mount "$T/$g" "$M" --passfile "$T/$g.pass"
	check "$g: alice's notes are in snapshot s1, as hers" \
		test "$(stat -c %u "$M/.snapshots/s1/c/alice/notes")" = "$A"
	check "$g: and nowhere in the live tree" test ! -e "$M/c/alice"
	check "$g: bob added" "$VV_BIN" user add bob --no-password "$M"
	B=$(uid_of bob)
	check "$g: bob's uid is not alice's" eval '[ "$B" != "$A" ] || { echo "# bob: uid $B"; false; }'
	check "$g: bob cannot read alice's notes in the snapshot" \
		test "$(as_uid "$B" read "$M/.snapshots/s1/c/alice/notes")" = EACCES
	chown 1000:1000 "$M"
	rc=0
	setpriv --reuid=1000 --regid=1000 --clear-groups -- "$VV_BIN" user add eve --no-password \
		--uid "$A" "$M" > "$T/out" 2>&1 || rc=$?
	check "$g: u1000, the vault's owner, cannot give alice's uid to eve" test "$rc" -ne 0
	check "$g:   the message names why" grep -q "another vault user" "$T/out"
	vv_umount "$M"
done
test_done
