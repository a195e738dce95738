/*
 * cmd_trash.c - `vecvault trash list|restore|purge`: the recycle bin of a
 * mounted vault (DESIGN.md "Recycle bin"), through the daemon's control
 * socket (admin_client.h; the verbs live in engine/vault_trash_verbs.c).
 *
 *   vecvault trash list [MNT | --store STORE] [--json]
 *   vecvault trash restore MNT PATH... [--json]
 *   vecvault trash purge MNT [PATH... | --older-than AGE | --all] [--json]
 *
 * PATHs are the original vault paths (/products/part-3.npy), as `trash
 * list` shows them; a path under the mount point (/vv/products/...) is
 * accepted too.  The daemon decides per item: each user lists what they
 * could read when it was removed, and restores or purges what they could
 * have removed.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_client.h"
#include "cmd.h"
#include "util.h"

static const char usage[] =
	"usage: vecvault trash list [MNT | --store STORE] [--json]\n"
	"       vecvault trash restore MNT PATH... [--json]\n"
	"       vecvault trash purge MNT [PATH... | --older-than AGE | --all] [--json]\n"
	"Removed files and directories wait in MNT/.trash (FreeDesktop layout: files/,\n"
	"info/NAME.trashinfo) until they expire (vecvault mount --trash-days, default\n"
	"30) or are purged.  MNT is the vault's mount point or any path inside it\n"
	"(list defaults to the working directory); --store names the vault by its\n"
	"store directory.  PATH is the original path in the vault, as listed\n"
	"(/products/part-3.npy), or the same under MNT.\n"
	"  list             the items you could read when they were removed: original\n"
	"                   path, size, who removed it, when, when it expires\n"
	"  restore PATH...  put each back where it was (a removed tree at once:\n"
	"                   rm -rf /vv/products, then restore /products; of a path\n"
	"                   removed more than once, the newest you could have removed);\n"
	"                   refused if the name exists again or its directory is gone\n"
	"  purge PATH...    delete for good now (frees the space)\n"
	"    --older-than AGE   every item removed more than AGE ago (7d, 12h, 30m, 90s)\n"
	"    --all              every item\n"
	"                   you can restore or purge what you could have removed\n"
	"  --json           machine-readable output\n"
	"Exit status: 0 done, 1 refused or failed, 2 no daemon serves the vault.\n";

/* "7d", "12h", "30m", "90s", "7" (days) into seconds: 0 or -1. */
static int parse_age(const char *s, char *out, size_t cap)
{
	char *end;
	unsigned long long n = strtoull(s, &end, 10), mul = 86400;

	if (!*s || *s == '-' || end == s)
		return -1;
	if (*end) {
		if (end[1])
			return -1;
		switch (*end) {
		case 'd': mul = 86400; break;
		case 'h': mul = 3600; break;
		case 'm': mul = 60; break;
		case 's': mul = 1; break;
		default: return -1;
		}
	}
	if (n > 100ULL * 365 * 86400 / mul)
		return -1;
	snprintf(out, cap, "%llu", n * mul);
	return 0;
}

/* Ask verb (with json=1) of the daemon at where; count the objects of the
 * reply and add up their key's numbers (the daemon's own JSON: one key per
 * object; a name holding the key is escaped, so never matches). */
static int json_sum(const char *where, const char *verb, const char *key, uint64_t *n, uint64_t *sum)
{
	static const struct vv_admin_arg json[] = { { "json", "1" } };
	struct vv_admin_reply rep;
	size_t kl = strlen(key);
	int r;

	*n = *sum = 0;
	vv_admin_reply_init(&rep);
	r = admin_call(where, verb, json, 1, &rep);
	if (r == 0 && rep.status == 0 && rep.body) {
		for (const char *p = rep.body; (p = strstr(p, key)); p += kl) {
			(*n)++;
			*sum += strtoull(p + kl, NULL, 10);
		}
	} else if (r == 0) {
		r = 1;
	}
	vv_admin_reply_release(&rep);
	return r;
}

int trash_summary(const char *where, uint64_t *items, uint64_t *bytes)
{
	return json_sum(where, "trash.list", "\"size\":", items, bytes);
}

int snap_summary(const char *where, uint64_t *count, uint64_t *bytes)
{
	return json_sum(where, "snapshot.list", "\"bytes\":", count, bytes);
}

int cmd_trash(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "older-than", required_argument, NULL, 'o' },
		{ "all", no_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sub, *mnt = NULL, *store = NULL, *older = NULL;
	bool all = false, json = false;
	struct vv_admin_arg *args = NULL;
	char where[8192], secs[32], mpoint[4096] = "", (*vpaths)[4096] = NULL;
	size_t n = 0, np;
	int opt, ret = 2;

	if ((opt = tool_sub_start(argc, argv, usage, &sub)) >= 0)
		return opt;
	while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (opt) {
		case 's': store = optarg; break;
		case 'o': older = optarg; break;
		case 'a': all = true; break;
		case 'j': json = true; break;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (strcmp(sub, "list") && strcmp(sub, "restore") && strcmp(sub, "purge")) {
		die_msg("trash", "unknown subcommand '%s' (list, restore, purge)", sub);
		return 2;
	}
	if (optind < argc && !store)
		mnt = argv[optind++];
	np = (size_t)(argc - optind);
	if ((older || all) && strcmp(sub, "purge") != 0) {
		die_msg("trash", "--older-than and --all belong to trash purge");
		return 2;
	}
	if (strcmp(sub, "list") == 0 && np) {
		fputs(usage, stderr);
		return 2;
	}
	if (strcmp(sub, "restore") == 0 && np == 0) {
		die_msg("trash", "restore needs the original PATH of what to restore (see trash list)");
		return 2;
	}
	if (strcmp(sub, "purge") == 0 && (np > 0) + (older != NULL) + all != 1) {
		die_msg("trash", "purge needs PATHs, or --older-than AGE, or --all (one of them)");
		return 2;
	}
	if (np > 256) {
		die_msg("trash", "at most 256 paths at once");
		return 2;
	}
	if (older && parse_age(older, secs, sizeof(secs)) < 0) {
		die_msg("trash", "bad --older-than '%s' (such as 7d, 12h, 30m, 90s)", older);
		return 2;
	}
	if (admin_where(mnt, store, where, sizeof(where)) < 0) {
		die_msg("trash", "path too long");
		return 2;
	}
	if (!(args = calloc(np + 4, sizeof(*args))) || !(vpaths = calloc(np + 1, sizeof(*vpaths)))) {
		die_msg("trash", "out of memory");
		goto out;
	}
	/* The mount point, to accept /vv/products/a.npy for /products/a.npy. */
	if (np && mnt && admin_vault_path(mnt, mpoint, sizeof(mpoint), vpaths[0], sizeof(vpaths[0])) < 0) {
		ret = 2;
		goto out;
	}
	for (size_t i = 0; i < np; i++) {
		const char *p = argv[optind + i];
		size_t ml = strlen(mpoint);
		if (p[0] != '/') {
			die_msg("trash", "'%s': give the original path in the vault, as trash list "
				"shows it (/products/part-3.npy)", p);
			goto out;
		}
		if (ml > 1 && strncmp(p, mpoint, ml) == 0 && (p[ml] == '/' || !p[ml]))
			p = p[ml] ? p + ml : "/";
		snprintf(vpaths[i], sizeof(vpaths[i]), "%s", p);
		args[n++] = (struct vv_admin_arg){ "path", vpaths[i] };
	}
	if (json)
		args[n++] = (struct vv_admin_arg){ "json", "1" };
	if (older)
		args[n++] = (struct vv_admin_arg){ "older", secs };
	if (all)
		args[n++] = (struct vv_admin_arg){ "all", "1" };
	ret = admin_run(where, strcmp(sub, "list") == 0 ? "trash.list" :
			strcmp(sub, "restore") == 0 ? "trash.restore" : "trash.purge", args, n);
out:
	free(args);
	free(vpaths);
	return ret;
}
