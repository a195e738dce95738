#!/bin/bash
# t6030-backup-live-unchanged: a create without --snapshot whose every
# chunk DEST holds already takes no snapshot: it reads the live rows under
# the vault's lock (docs/design.md "Backups").  Such a backup is still a
# real one: it verifies, restores byte for byte, and holds what changed in
# the metadata only (modes, names, xattrs, ACLs, times, inline files) and
# what a writer had not yet flushed or closed.  A chunk DEST lost, or a new
# chunk, goes the snapshot way and is sent.  Audited either way.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/lib/backup.sh"
vv_need_fuse

vv_backup_vault
vv_mount "$S" "$M"
sent() { sed -n 's/.* objects, \([0-9]*\) sent .*/\1/p'; }
bk() { "$VV_BIN" backup create "$M" "$D" --passfile "$RP" "$@"; }
lastid() { "$VV_BIN" backup list "$D" --passfile "$RP" | tail -1 | awk '{ print $1 }'; }
n=0
# counts C L: wait until the log holds C create records, L of them live
# (the audit writer flushes every second: polled, no timing asserted).
counts() {
	local i c l
	for i in $(seq 1 100); do
		c=$(vv_audit_q "$LOG" count op=backup 'detail~^create [0-9a-f]+ to ')
		l=$(vv_audit_q "$LOG" count op=backup 'detail~^create .*not taken: every chunk was in the repository')
		[ "$c $l" = "$1 $2" ] && return 0
		sleep 0.1
	done
	echo "# create records $c, live $l; wanted $1 $2"
	return 1
}
# restored ID: restore backup ID into a new store, mounted at $T/rN; R names it.
restored() {
	n=$((n + 1)); R=$T/r$n
	"$VV_BIN" backup restore "$D" "$1" "$T/rs$n" --repo-passfile "$RP" --passfile "$NP" --kdf test >/dev/null &&
	mkdir "$R" && "$VV_BIN" mount "$T/rs$n" "$R" --passfile "$NP" --pid-file "$T/.pids/r$n" --log "$T/rd$n.log" &&
	printf '%s\t%s\n' "$R" "$T/.pids/r$n" >> "$VV_MOUNTS"
}
same() {   # same tree, metadata, ACLs and xattrs in $M and $R
	[ "$(cd "$M" && find . -path ./.snapshots -prune -o -printf '%p %M %U %G %s %n %l %T@\n' | sort)" = \
	  "$(cd "$R" && find . -path ./.snapshots -prune -o -printf '%p %M %U %G %s %n %l %T@\n' | sort)" ] &&
	diff -r --no-dereference -x .snapshots "$M" "$R" >/dev/null &&
	[ "$(cd "$M" && getfacl -R -p . 2>/dev/null | grep -v snapshots)" = "$(cd "$R" && getfacl -R -p . 2>/dev/null | grep -v snapshots)" ] &&
	[ "$(cd "$M" && getfattr -R -d -m - -e hex . 2>/dev/null | grep -v snapshots)" = "$(cd "$R" && getfattr -R -d -m - -e hex . 2>/dev/null | grep -v snapshots)" ]
}

mkdir -p "$M/c/sub"
head -c 3000000 /dev/urandom > "$M/c/big.bin"
printf 'inline\n' > "$M/c/small.txt"
ln "$M/c/big.bin" "$M/c/big-link"
ln -s big.bin "$M/c/sym"
setfattr -n user.k -v v1 "$M/c/small.txt"
setfacl -m u:1000:r "$M/c/small.txt"
vv_sync "$M"
"$VV_BIN" backup init "$D" --passfile "$RP" --kdf test >/dev/null
out=$(bk)
echo "# $out"
check "the first backup sends its objects" test "$(echo "$out" | sent)" -gt 0
check "and took a snapshot (audited as such)" counts 1 0

out=$(bk)
echo "# $out"
check "an unchanged re-run sends nothing" test "$(echo "$out" | sent)" -eq 0
check "and writes no metadata pack (the same rows, the same packs)" \
	test "$(echo "$out" | sed -n 's/.* packs, \([0-9]*\) written .*/\1/p')" -eq 0
check "and takes no snapshot (audited: the live rows were read)" counts 2 1
check "no snapshot is left over" sh -c "! ls '$M/.snapshots' | grep -q ."
check "verify --read-data" "$VV_BIN" backup verify "$D" --read-data --passfile "$RP"
check "the live backup restores" restored "$(lastid)"
check "byte for byte, with owners, modes, times, links, ACLs and xattrs" same
vv_umount "$R"

# Metadata only (and an inline file, whose bytes live in meta.db): still
# no new chunk, so no snapshot; the backup must hold the new state.
chmod 600 "$M/c/big.bin"
chown 1000:1001 "$M/c/big-link"
mv "$M/c/sym" "$M/c/sub/sym2"
setfattr -n user.k -v v2 "$M/c/small.txt"
setfacl -m u:1001:rw "$M/c/small.txt"
printf 'inline, changed\n' > "$M/c/small.txt"
touch -d '2021-05-06 07:08:09' "$M/c/big.bin"
# A writer that has neither flushed nor closed: its bytes are in the backup.
python3 -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"written, not closed\n")
sys.stdout.write("ready\n"); sys.stdout.flush()
time.sleep(30)
' "$M/c/open.txt" > "$T/writer.out" &
wp=$!
for i in $(seq 1 100); do grep -q ready "$T/writer.out" 2>/dev/null && break; sleep 0.1; done
out=$(bk)
echo "# $out"
check "after metadata changes: nothing sent" test "$(echo "$out" | sent)" -eq 0
check "and no snapshot taken" counts 3 2
check "it restores" restored "$(lastid)"
check "holding the new modes, owners, names, xattrs, ACLs, times, inline bytes" same
check "and the bytes of the file still open for writing" test "$(cat "$R/c/open.txt")" = "written, not closed"
vv_umount "$R"
kill "$wp" 2>/dev/null; wait "$wp" 2>/dev/null || true

# A chunk DEST lost: not trusted; the snapshot way sends it again.
obj=$(find "$D/objects" -type f ! -name '.tmp-*' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2-)
rm -f "$obj"
out=$(bk)
echo "# $out"
check "an object removed from DEST is sent again" test "$(echo "$out" | sent)" -ge 1
check "that run took a snapshot" counts 4 2
check "verify --read-data after it" "$VV_BIN" backup verify "$D" --read-data --passfile "$RP"

# New data: the snapshot way, and only the new objects.
head -c 500000 /dev/urandom > "$M/c/new.bin"
vv_sync "$M"
out=$(bk)
echo "# $out"
check "new data is sent" test "$(echo "$out" | sent)" -ge 1
check "with a snapshot" counts 5 2
out=$(bk --tag again)
check "and the next run is live again" counts 6 3
"$VV_BIN" snapshot create "$M" mine >/dev/null
bk --snapshot mine >/dev/null
check "an explicit --snapshot is exported as it is, never live" counts 7 3
check "naming it" vv_audit_has "$LOG" op=backup 'detail~^create .* snapshot mine, '
"$VV_BIN" snapshot delete "$M" mine >/dev/null
check "the final restore matches the vault" restored "$(lastid)"
check "byte for byte" sh -c "diff -r --no-dereference -x .snapshots '$M' '$R' >/dev/null"
vv_umount "$R"
vv_umount "$M"
test_done
