/*
 * cmd_key.c - `vecvault key create|list|revoke`: API keys of vault users
 * (DESIGN.md "Identities, roles and privileges"), through the mounted
 * vault's control socket (admin_client.h; verbs in engine/vault_user.c).
 *
 * `key create` prints the token on stdout and nothing else (the note
 * that it is shown once goes to stderr), so `vecvault key create alice >
 * alice.key` captures exactly the key.  The vault keeps only its id and
 * SHA-256 of its secret: a lost token cannot be shown again, only revoked.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin_client.h"
#include "cmd.h"
#include "util.h"

static const char usage[] =
	"usage: vecvault key create USER [--name LABEL] [--expires DURATION] [--allow CIDR ...]\n"
	"                           [MNT | --store STORE] [--json]\n"
	"       vecvault key list [USER] [MNT | --store STORE] [--json]\n"
	"       vecvault key revoke KEY-ID [MNT | --store STORE]\n"
	"An API key lets a remote client act as a vault user.  It is printed once,\n"
	"as vvk_<id>_<secret>; the vault keeps only the id and a hash of the secret.\n"
	"Only root or the vault's owner manages keys.  MNT is the vault's mount point\n"
	"or any path inside it (default: the working directory); --store names the\n"
	"vault by its store directory.  The vault must be mounted.\n"
	"  create USER        make a key for USER; the token alone goes to stdout\n"
	"    --name LABEL     a label to recognise it by (printable, <= 128 bytes)\n"
	"    --expires D      valid for D: 90d, 12h, 30m, 45s or 2w (at most ten years);\n"
	"                     default: until revoked\n"
	"    --allow CIDR     usable only from this network (10.0.0.0/8, 2001:db8::/32,\n"
	"                     or one address; repeat for several); default: any address.\n"
	"                     A running listener also admits these networks, for this\n"
	"                     key's logins only (docs/remote.md)\n"
	"  list [USER]        keys (of USER): id, state, dates, networks, label; never secrets\n"
	"  revoke KEY-ID      revoke a key for good (the id, or the whole token)\n"
	"  --json             machine-readable output\n"
	"Exit status: 0 done, 1 refused or failed, 2 usage error or no daemon serves the vault.\n";

#define MAX_ARGS 80

int cmd_key(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "expires", required_argument, NULL, 'e' },
		{ "allow", required_argument, NULL, 'a' },
		{ "store", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vv_admin_arg args[MAX_ARGS];
	const char *sub, *arg = NULL, *mnt = NULL, *store = NULL, *label = NULL, *exp = NULL;
	const char *allow[MAX_ARGS - 8], *verb;
	size_t n = 0, nallow = 0;
	bool json = false;
	char where[8192], id[17];
	int opt;

	if ((opt = tool_sub_start(argc, argv, usage, &sub)) >= 0)
		return opt;
	while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (opt) {
		case 'n': label = optarg; break;
		case 'e': exp = optarg; break;
		case 'a':
			if (nallow == sizeof(allow) / sizeof(allow[0])) {
				die_msg("key", "too many --allow");
				return 2;
			}
			allow[nallow++] = optarg;
			break;
		case 's': store = optarg; break;
		case 'j': json = true; break;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0 && strcmp(sub, "revoke") != 0) {
		die_msg("key", "unknown subcommand '%s' (create, list, revoke)", sub);
		return 2;
	}
	if (strcmp(sub, "list") != 0) {
		if (optind >= argc) {
			die_msg("key", "%s needs %s", sub, strcmp(sub, "create") == 0 ? "a USER" : "a KEY-ID");
			return 2;
		}
		arg = argv[optind++];
	} else if (optind < argc && argv[optind][0] != '/' && argv[optind][0] != '.' &&
		   !strchr(argv[optind], '/')) {
		/* key list [USER] [MNT]: a bare word first is a user name when
		 * another argument follows or it is no directory. */
		if (optind + 1 < argc || access(argv[optind], F_OK) != 0)
			arg = argv[optind++];
	}
	if (optind < argc)
		mnt = argv[optind++];
	if (optind < argc || (mnt && store)) {
		fputs(usage, stderr);
		return 2;
	}
	if ((label || exp || nallow) && strcmp(sub, "create") != 0) {
		die_msg("key", "--name, --expires and --allow belong to key create");
		return 2;
	}
	if (admin_where(mnt, store, where, sizeof(where)) < 0) {
		die_msg("key", "path too long");
		return 2;
	}
	if (json)
		args[n++] = (struct vv_admin_arg){ "json", "1" };
	if (strcmp(sub, "create") == 0) {
		verb = "key.create";
		args[n++] = (struct vv_admin_arg){ "user", arg };
		if (label)
			args[n++] = (struct vv_admin_arg){ "label", label };
		if (exp)
			args[n++] = (struct vv_admin_arg){ "expires", exp };
		for (size_t i = 0; i < nallow; i++)
			args[n++] = (struct vv_admin_arg){ "allow", allow[i] };
	} else if (strcmp(sub, "revoke") == 0) {
		verb = "key.revoke";
		/* A whole token: send only its id.  The secret never leaves this
		 * process (the id is the request's audited target). */
		if (strncmp(arg, "vvk_", 4) == 0) {
			size_t idl = strcspn(arg + 4, "_");

			if (idl >= sizeof(id)) {
				die_msg("key", "that is not a key id or a vvk_ token");
				return 2;
			}
			memcpy(id, arg + 4, idl);
			id[idl] = '\0';
			arg = id;
		}
		args[n++] = (struct vv_admin_arg){ "id", arg };
	} else {
		verb = "key.list";
		if (arg)
			args[n++] = (struct vv_admin_arg){ "user", arg };
	}
	return admin_run(where, verb, args, n);
}
