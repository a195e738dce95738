# backup.sh - sourced by the backup tests (t6020-t6029) after test-lib.sh.

# vv_backup_vault [MODE]: the backup tests' vault: S (the store, made), M
# (its mount point, not mounted), D (the repository's DEST, not made), RP
# and NP (the repository's and a restored vault's passphrase files, mode
# MODE: 600 unless given; 644 lets other uids try them), LOG (the vault's
# audit log).
vv_backup_vault() {
	S=$T/store M=$T/mnt D=$T/dest RP=$T/.rpass NP=$T/.npass
	printf 'repository passphrase\n' > "$RP"
	printf 'new vault passphrase\n' > "$NP"
	chmod "${1:-600}" "$RP" "$NP"
	vv_init "$S" >/dev/null 2>&1
	LOG=$(vv_audit_log "$S")
}

# vv_bk_objs DEST: the objects under DEST (chunks and metadata packs; not a
# batch's tmp files).  vv_bk_sent: from `backup create`'s summary on stdin,
# the objects it sent (chunks copied plus packs written: both are files
# vv_bk_objs counts).  vv_bk DEST [ARGS]: backup create of $M into DEST.
vv_bk_objs() { find "$1/objects" -type f ! -name '.tmp-*' | wc -l; }
vv_bk_sent() { sed -n 's/.* objects, \([0-9]*\) sent .* packs, \([0-9]*\) written .*/\1 \2/p' | awk '{ print $1 + $2 }'; }
vv_bk() { "$VV_BIN" backup create "$M" "$1" --passfile "$RP" "${@:2}"; }
