/*
 * cmd_fsck.c - `vecvault fsck STORE`: check a vault, free orphans.
 *
 *   vecvault fsck STORE [--passfile F | --extpass CMD] [--dry-run]
 *
 * Opens the vault (unmounted: the daemon holds the lock) and runs the
 * engine's full check: every meta.db page, extent and chunk block is
 * authenticated.  Exit status: 0 nothing found, 1 something found (damage,
 * or orphans, even if freed), 2 the check could not run.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "progress.h"
#include "env.h"
#include "util.h"
#include "vecvault/error.h"
#include "vecvault/vault.h"

static const char usage[] =
	"usage: vecvault fsck STORE [--passfile FILE | --extpass CMD] [--dry-run]\n"
	"Check every page, extent and chunk of the vault; free orphaned chunks and\n"
	"inodes unless --dry-run (which changes no byte of STORE).  Exit status:\n"
	"0 clean, 1 problems found, 2 could not run.  The vault must not be mounted.\n";

/* On a terminal; file scope so the finding printer can clear it. */
static struct tool_progress prog;

static void print_finding(void *ctx, const char *line)
{
	tool_progress_end(&prog);
	printf("%s\n", line);
}

int cmd_fsck(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "passfile", required_argument, NULL, 'p' },
		{ "extpass", required_argument, NULL, 'e' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct tool_pass pass = { 0 };
	struct pass_src src = { 0 };
	struct vv_fsck_report rep;
	struct vv_vault_opts vo;
	struct tool_dirs dirs;
	struct vv_vault *v = NULL;
	bool dry = false, found;
	const char *store;
	char msg[1024];
	int opt, r, ret = 2;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "nh", lopts, NULL)) != -1) {
		switch (opt) {
		case 'p': src.file = optarg; break;
		case 'e': src.cmd = optarg; break;
		case 'n': dry = true; break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return 2;
	}
	store = argv[optind];
	if (src.file && src.cmd) {
		die_msg("fsck", "--passfile and --extpass exclude each other");
		return 2;
	}
	if (tool_get_pass("fsck", &src, "passphrase", false, &pass) < 0)
		return 2;
	memset(&vo, 0, sizeof(vo));
	vo.purpose = "fsck";
	if (dry)
		vo.flags |= VV_VAULT_READONLY;
	tool_env_vault_opts(&dirs, &vo);
	tool_progress_start(&prog, "fsck", "checking blocks");
	vo.progress = tool_progress_cb;
	vo.progress_ctx = &prog;
	tool_progress_note(&prog, "unlocking (key derivation)");
	r = vv_vault_open(store, pass.buf, pass.len, &vo, &v);
	tool_progress_end(&prog);
	tool_pass_free(&pass);
	if (r < 0) {
		tool_open_error(store, r, msg, sizeof(msg));
		die_msg("fsck", "%s", msg);
		goto out;
	}
	memset(&rep, 0, sizeof(rep));
	r = vv_vault_fsck(v, !dry, print_finding, NULL, &rep);
	tool_progress_end(&prog);
	if (r < 0 && r != VV_ECORRUPT) {
		die_msg("fsck", "check of %s stopped (%s)", store, vv_strerror(r));
		goto out;
	}
	printf("%s: %llu inodes (%llu directories, %llu files), %llu chunks, "
	       "%llu blocks checked\n", store, (unsigned long long)rep.inodes,
	       (unsigned long long)rep.dirs, (unsigned long long)rep.files,
	       (unsigned long long)rep.chunks, (unsigned long long)rep.blocks_checked);
	if (rep.snapshots)
		printf("%s: %llu snapshots holding %llu chunk references (counted with the live "
		       "tree's)\n", store, (unsigned long long)rep.snapshots,
		       (unsigned long long)rep.snapshot_refs);
	printf("%s: %llu damaged, %llu missing chunks, %llu errors, "
	       "%llu orphan chunks (%llu freed), %llu orphan inodes (%llu freed)\n",
	       store, (unsigned long long)rep.damaged,
	       (unsigned long long)rep.missing_chunks, (unsigned long long)rep.errors,
	       (unsigned long long)rep.orphan_chunks,
	       (unsigned long long)rep.orphan_chunks_freed,
	       (unsigned long long)rep.orphan_inodes,
	       (unsigned long long)rep.orphan_inodes_freed);
	printf("%s: %llu collection keys, %llu needed by nothing (%llu dropped)\n", store,
	       (unsigned long long)rep.keys, (unsigned long long)rep.orphan_keys,
	       (unsigned long long)rep.orphan_keys_dropped);
	found = r == VV_ECORRUPT || rep.damaged || rep.missing_chunks || rep.errors ||
		rep.orphan_chunks || rep.orphan_inodes || rep.orphan_keys;
	printf("%s: %s\n", store, !found ? "clean" :
	       (rep.damaged || rep.missing_chunks || rep.errors || r == VV_ECORRUPT)
	       ? "DAMAGED" : dry ? "orphans found (run without --dry-run to free them)"
	       : "orphans freed");
	ret = found ? 1 : 0;
out:
	if (v && (r = vv_vault_close(v)) < 0) {
		die_msg("fsck", "closing %s (%s)", store, vv_strerror(r));
		ret = 2;
	}
	return ret;
}
