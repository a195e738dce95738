/*
 * cmd_snapshot.c - `vecvault snapshot create|list|delete|restore`: read-only
 * snapshots of a mounted vault (docs/design.md "Snapshots"), made and
 * managed by its daemon through the control socket (admin_client.h; the
 * verbs live in engine/vault_snap.c).
 *
 *   vecvault snapshot create MNT [NAME] [--json]
 *   vecvault snapshot list MNT [--json]
 *   vecvault snapshot delete MNT NAME
 *   vecvault snapshot restore MNT NAME [PATH ...] [--json]
 *
 * MNT may also be --store STORE.  A restore PATH is a path under MNT
 * (/vv/products/a.npy), under the snapshot (/vv/.snapshots/NAME/products),
 * or a vault path (/products/a.npy); none restores everything.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_client.h"
#include "cmd.h"
#include "util.h"

#define MAX_PATHS 256

static const char usage[] =
	"usage: vecvault snapshot create MNT [NAME] [--json]\n"
	"       vecvault snapshot list MNT [--json]\n"
	"       vecvault snapshot delete MNT NAME\n"
	"       vecvault snapshot restore MNT NAME [PATH ...] [--json]\n"
	"Read-only snapshots of a mounted vault, browsable under MNT/.snapshots/NAME/.\n"
	"MNT is the vault's mount point or any path inside it; --store STORE names the\n"
	"vault by its store directory instead.  The vault must be mounted.\n"
	"  create [NAME]    snapshot the vault now (metadata only; write buffers are\n"
	"                   flushed first); NAME defaults to the UTC time, e.g.\n"
	"                   2026-12-06T10:00:00Z (root or the vault's owner)\n"
	"  list             the snapshots: name, time, files, bytes, scheduled or not\n"
	"                   (anyone)\n"
	"  delete NAME      delete a snapshot; chunks nothing else names are freed\n"
	"                   (root or the vault's owner)\n"
	"  restore NAME [PATH ...]\n"
	"                   put back files, collections or (no PATH) every top-level\n"
	"                   entry as they were in the snapshot, as one new commit;\n"
	"                   what is at a PATH now is renamed to NAME.pre-restore-TIME\n"
	"                   beside it, never deleted.  PATH: MNT/a/b, MNT/.snapshots/\n"
	"                   NAME/a/b or the vault path /a/b (root or the vault's owner)\n"
	"  --json           machine-readable output\n"
	"Exit status: 0 done, 1 refused or failed, 2 no daemon serves the vault.\n";

/* The vault path to restore for arg, given the mount point mnt ("" when
 * the vault was named by --store): see the top of the file. */
static int restore_path(const char *arg, const char *mnt, const char *name, char *out, size_t cap)
{
	size_t ml = strlen(mnt), pre = strlen("/.snapshots/") + strlen(name);
	const char *p = arg;

	if (arg[0] != '/')
		return -1;
	if (ml > 1 && strncmp(arg, mnt, ml) == 0 && (arg[ml] == '/' || arg[ml] == 0))
		p = arg[ml] ? arg + ml : "/";
	/* /.snapshots/NAME/x -> /x */
	if (strncmp(p, "/.snapshots/", 12) == 0 && strncmp(p + 12, name, strlen(name)) == 0 &&
	    (p[pre] == '/' || p[pre] == 0))
		p = p[pre] ? p + pre : "/";
	if (snprintf(out, cap, "%s", p) >= (int)cap)
		return -1;
	return 0;
}

int cmd_snapshot(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sub, *mnt = NULL, *store = NULL, *name = NULL;
	struct vv_admin_arg args[MAX_PATHS + 3];
	static char paths[MAX_PATHS][PATH_MAX];
	char where[8192];
	bool json = false;
	size_t n = 0;
	int opt;

	if ((opt = tool_sub_start(argc, argv, usage, &sub)) >= 0)
		return opt;
	while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (opt) {
		case 's': store = optarg; break;
		case 'j': json = true; break;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (strcmp(sub, "create") && strcmp(sub, "list") && strcmp(sub, "delete") &&
	    strcmp(sub, "restore")) {
		die_msg("snapshot", "unknown subcommand '%s' (create, list, delete, restore)", sub);
		return 2;
	}
	if (!store) {
		if (optind >= argc) {
			die_msg("snapshot", "%s needs the vault's mount point MNT (or --store STORE)", sub);
			return 2;
		}
		mnt = argv[optind++];
	}
	if (strcmp(sub, "list") != 0 && optind < argc)
		name = argv[optind++];
	if ((strcmp(sub, "delete") == 0 || strcmp(sub, "restore") == 0) && !name) {
		die_msg("snapshot", "%s needs the snapshot's NAME", sub);
		return 2;
	}
	if (strcmp(sub, "restore") != 0 && optind < argc) {
		fputs(usage, stderr);
		return 2;
	}
	if (admin_where(mnt, store, where, sizeof(where)) < 0) {
		die_msg("snapshot", "path too long");
		return 2;
	}
	if (name)
		args[n++] = (struct vv_admin_arg){ "name", name };
	if (json)
		args[n++] = (struct vv_admin_arg){ "json", "1" };
	if (strcmp(sub, "restore") == 0) {
		char mroot[PATH_MAX] = "", vp[PATH_MAX];
		if (mnt && admin_vault_path(mnt, mroot, sizeof(mroot), vp, sizeof(vp)) < 0)
			return 2;
		if (argc - optind > MAX_PATHS) {
			die_msg("snapshot", "at most %d paths at once", MAX_PATHS);
			return 2;
		}
		for (int i = 0; optind < argc; i++, optind++) {
			if (restore_path(argv[optind], mroot, name, paths[i], sizeof(paths[i])) < 0) {
				die_msg("snapshot", "'%s' is not an absolute path (MNT/a/b or the "
					"vault path /a/b)", argv[optind]);
				return 2;
			}
			args[n++] = (struct vv_admin_arg){ "path", paths[i] };
		}
	}
	return admin_run(where, strcmp(sub, "create") == 0 ? "snapshot.create" :
			 strcmp(sub, "list") == 0 ? "snapshot.list" :
			 strcmp(sub, "delete") == 0 ? "snapshot.delete" : "snapshot.restore",
			 args, n);
}
