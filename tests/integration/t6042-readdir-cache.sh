#!/bin/bash
# t6042-readdir-cache: the kernel keeps a live directory's listing across
# opens (FOPEN_CACHE_DIR + keep_cache, docs/design.md "Directory
# listings"), and no change of the directory's entries, made through this
# mount or by the daemon itself, is ever listed late.
#  1. repeated ls, ls -l and find of a listed directory send no READDIR
#     (the daemon's -d trace counts them); OPENDIR still reaches the daemon
#     at every open, each audited;
#  2. after each change the next `ls` shows it at once (no sleep): create,
#     unlink (to the trash), rename out of and into the directory,
#     mkdir/rmdir, `mv` back from .trash, `vecvault trash restore` (the
#     control plane: its name not in the dcache, so only an inval_inode of
#     the directory drops the listing), trash purge, snapshot create and
#     delete (.snapshots), `snapshot restore` of a file, `backup restore
#     --into` the directory, the scheduled expiry (--trash-days 1s, after
#     a remount);
#  3. .trash/files and .snapshots are listed afresh each time (their
#     READDIRs counted).
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/lib/backup.sh"
vv_need_fuse

vv_backup_vault
DBG=$T/dbg.log
pidf=$T/.pids/dbg
mkdir -p "$M" "$T/.pids"
"$VV_BIN" mount "$S" "$M" --passfile "$PASSFILE" --pid-file "$pidf" --log "$DBG" -d &
printf '%s\t%s\n' "$M" "$pidf" >> "$VV_MOUNTS"
for i in $(seq 300); do mountpoint -q "$M" && break; sleep 0.1; done
check "mounted with the request trace" mountpoint -q "$M"

C=$M/c
mkdir -p "$C/d" "$M/o"
echo kept > "$C/d/x"
for i in $(seq 1 300); do printf '%s\n' "$i" > "$C/f$i"; done

nreq() { grep -c "opcode: $1\b" "$DBG"; }
# listed DIR NAME / unlisted DIR NAME: the next ls of DIR has NAME or not.
listed() { ls -a "$1" | grep -qxF "$2"; }
unlisted() { ! ls -a "$1" | grep -qxF "$2"; }
# warm DIR: list it twice, so the kernel holds its listing.
warm() { ls -a "$1" >/dev/null; ls -la "$1" >/dev/null; }

# ---- 1. served from the cache, OPENDIR each time ------------------------------
warm "$C"
rd=$(nreq 'READDIR[A-Z]*')
od=$(nreq OPENDIR)
seq0=$(vv_audit_q "$LOG" count)
for i in 1 2 3; do ls "$C" >/dev/null; ls -l "$C" >/dev/null; done
find "$C" -maxdepth 1 >/dev/null
check "9 listings of a listed directory: no READDIR ($(($(nreq 'READDIR[A-Z]*') - rd)) sent)" \
	test "$(nreq 'READDIR[A-Z]*')" -eq "$rd"
check "each open still an OPENDIR ($(($(nreq OPENDIR) - od)) of at least 7)" \
	test "$(($(nreq OPENDIR) - od))" -ge 7
audited() {
	local i
	for i in $(seq 100); do
		[ "$(vv_audit_q "$LOG" count "seq>=$seq0" op=opendir path=/c)" -ge 7 ] && return 0
		sleep 0.1
	done
	return 1
}
check "each opendir audited" audited
check "the listing is the directory's" test "$(ls "$C" | wc -l)" -eq 301

# ---- 2. every change listed at once -----------------------------------------------
warm "$C"
touch "$C/new"
check "create: listed" listed "$C" new
warm "$C"
rm "$C/new"
check "unlink: gone" unlisted "$C" new
warm "$C"; warm "$M/o"
mv "$C/f1" "$M/o/f1"
check "rename out: gone from the source" unlisted "$C" f1
check "rename out: in the target" listed "$M/o" f1
warm "$C"; warm "$M/o"
mv "$M/o/f1" "$C/g1"
check "rename in: listed" listed "$C" g1
check "rename in: gone from the source" unlisted "$M/o" f1
warm "$C"
mv "$C/g1" "$C/f1"
check "rename within: new name" listed "$C" f1
check "rename within: old name gone" unlisted "$C" g1
warm "$C"
mkdir "$C/sub"
check "mkdir: listed" listed "$C" sub
warm "$C"
rmdir "$C/sub"
check "rmdir: gone" unlisted "$C" sub

warm "$C"
rm "$C/f2"
warm "$C"; warm "$M/.trash/files"
mv "$M/.trash/files/f2" "$C/f2"
check "mv back from .trash: listed" listed "$C" f2
check "mv back from .trash: gone from .trash/files" unlisted "$M/.trash/files" f2

# The name leaves the dcache with the rm when the file is held open
# (d_delete unhashes a dentry in use), so the restore's entry
# invalidation finds nothing: only the directory's inode invalidation
# can drop the listing.
exec 3<"$C/f3"
rm "$C/f3"
exec 3<&-
warm "$C"
check "vecvault trash restore" "$VV_BIN" trash restore "$M" /c/f3
check "trash restore (the control plane): listed" listed "$C" f3

rm "$C/f4"
warm "$M/.trash/files"
check "trash purge" "$VV_BIN" trash purge "$M" /c/f4
check "trash purge: gone from .trash/files" unlisted "$M/.trash/files" f4

ls "$M/.snapshots" >/dev/null
"$VV_BIN" snapshot create "$M" s1 >/dev/null
check "snapshot create: listed in .snapshots" listed "$M/.snapshots" s1
ls "$M/.snapshots/s1/c" >/dev/null
"$VV_BIN" snapshot delete "$M" s1 >/dev/null
check "snapshot delete: gone from .snapshots" unlisted "$M/.snapshots" s1

"$VV_BIN" snapshot create "$M" s2 >/dev/null
exec 3<"$C/f5"
rm "$C/f5"
exec 3<&-
warm "$C"
check "snapshot restore of /c/f5" sh -c "'$VV_BIN' snapshot restore '$M' s2 /c/f5 >/dev/null"
check "snapshot restore: listed" listed "$C" f5

vv_sync "$M"
"$VV_BIN" backup init "$D" --passfile "$RP" --kdf test >/dev/null
"$VV_BIN" backup create "$M" "$D" --passfile "$RP" >/dev/null
ID=$(ls "$D/manifests")
mkdir "$C/back"
warm "$C/back"
check "backup restore --into c/back" "$VV_BIN" backup restore "$D" "$ID" --into "$C/back" --path /c/d --passfile "$RP"
check "backup restore --into: listed" listed "$C/back" x

# ---- 3. the trash and .snapshots are never kept -----------------------------------
ls "$M/.trash/files" >/dev/null
ls "$M/.snapshots" >/dev/null
rd=$(nreq 'READDIR[A-Z]*')
ls "$M/.trash/files" >/dev/null
ls "$M/.snapshots" >/dev/null
check "each listing of .trash/files and .snapshots asks the daemon" \
	test "$(($(nreq 'READDIR[A-Z]*') - rd))" -ge 2

# ---- the scheduled expiry -------------------------------------------------------------
vv_umount "$M"
vv_mount "$S" "$M" --trash-days 1s
rm "$C/f6"
check "expiry: f6 waits in .trash/files" listed "$M/.trash/files" f6
expired() {
	local i
	for i in $(seq 100); do
		unlisted "$M/.trash/files" f6 && return 0
		sleep 0.1
	done
	return 1
}
check "expiry: the sweep's purge listed at once" expired
check "expiry: c lists neither f6 nor less" sh -c "! ls '$C' | grep -qx f6 && ls '$C' | grep -qx f7"
test_done
