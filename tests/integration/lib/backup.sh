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
