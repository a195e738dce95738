/*
 * cmd_user.c - `vecvault user add|list|show|delete|passwd|role|uids`: the
 * vault users that remote clients authenticate as (DESIGN.md "Identities,
 * roles and privileges"), managed through the mounted vault's control
 * socket (admin_client.h; the verbs live in engine/vault_user.c).
 *
 * Passwords are read here (a file's first line, or the terminal twice,
 * without echo) into locked memory that is wiped after the request, and
 * travel only on the local control socket; the daemon hashes them
 * (Argon2id) and records only the user's name in the audit log.
 */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin_client.h"
#include "cmd.h"
#include "util.h"

static const char usage[] =
	"usage: vecvault user add NAME [--uid N] [--role R ...] [--password-file F | --no-password]\n"
	"                         [MNT | --store STORE]\n"
	"       vecvault user list [MNT | --store STORE] [--json]\n"
	"       vecvault user show NAME [MNT | --store STORE] [--json]\n"
	"       vecvault user delete NAME [MNT | --store STORE]\n"
	"       vecvault user passwd NAME [--password-file F] [MNT | --store STORE]\n"
	"       vecvault user role NAME --add R | --remove R [MNT | --store STORE]\n"
	"       vecvault user uids [FIRST-LAST] [MNT | --store STORE]\n"
	"Vault users are who remote clients log in as, with a password or an API key\n"
	"(vecvault key).  Each acts as a uid and holds roles (vecvault role); remote\n"
	"requests are then decided like a local user's with those groups.  Only root\n"
	"or the vault's owner manages users.  MNT is the vault's mount point or any\n"
	"path inside it (default: the working directory); --store names the vault by\n"
	"its store directory.  The vault must be mounted.\n"
	"  add NAME           NAME: 1-32 of a-z 0-9 _ -, starting with a letter or _\n"
	"    --uid N          act as uid N (a local account, or any uid but 0); default:\n"
	"                     the lowest uid of the vault's range no user has or had\n"
	"                     (a deleted user's files keep its uid; see uids)\n"
	"    --role R         hold role R (repeat for several)\n"
	"    --password-file F  the password is F's first line (default: ask twice on\n"
	"                     the terminal); at least 8 characters\n"
	"    --no-password    no password: the user logs in with API keys only\n"
	"  list, show NAME    users, uids, roles, whether a password is set, keys\n"
	"  delete NAME        delete the user and revoke all its API keys\n"
	"  passwd NAME        set a new password\n"
	"  role NAME --add R | --remove R   change the roles held (repeatable)\n"
	"  uids [FIRST-LAST]  show or set the range uids are allocated from (default\n"
	"                     2100000000-2100999999; uids of local accounts are skipped)\n"
	"  --json             machine-readable output\n"
	"Exit status: 0 done, 1 refused or failed, 2 usage error or no daemon serves the vault.\n";

#define MAX_ARGS 200

struct req {
	struct vv_admin_arg a[MAX_ARGS];
	size_t n;
};

static int add(struct req *q, const char *k, const char *v)
{
	if (q->n == MAX_ARGS) {
		die_msg("user", "too many arguments");
		return -1;
	}
	q->a[q->n++] = (struct vv_admin_arg){ k, v };
	return 0;
}

/* The new password, from file or the terminal (twice).  0 or -1. */
static int get_password(const char *file, const char *name, struct tool_pass *pw)
{
	struct pass_src src = { .file = file };
	char what[96];

	if (!file) {
		int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);

		if (fd < 0) {
			die_msg("user", "no terminal to ask for the password: use --password-file F "
				"(or --no-password for a user with API keys only)");
			return -1;
		}
		close(fd);
	}
	snprintf(what, sizeof(what), "the password of vault user %s", name);
	return tool_get_pass("user", &src, what, true, pw);
}

int cmd_user(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "uid", required_argument, NULL, 'u' },
		{ "role", required_argument, NULL, 'r' },
		{ "password-file", required_argument, NULL, 'p' },
		{ "no-password", no_argument, NULL, 'P' },
		{ "add", required_argument, NULL, 'a' },
		{ "remove", required_argument, NULL, 'd' },
		{ "store", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sub, *name = NULL, *mnt = NULL, *store = NULL, *uid = NULL, *pwfile = NULL;
	const char *range = NULL, *verb;
	struct req *q = calloc(1, sizeof(*q)), *roles = calloc(1, sizeof(*roles));
	struct tool_pass pw = { 0 };
	bool nopw = false, json = false, adds = false, removes = false;
	char where[8192], first[16], last[16];
	int opt, r = 2;

	if (!q || !roles) {
		die_msg("user", "out of memory");
		goto out;
	}
	if (tool_want_help(argc, argv)) {
		fputs(usage, stdout);
		r = 0;
		goto out;
	}
	if (argc < 2) {
		fputs(usage, stderr);
		goto out;
	}
	sub = argv[1];
	optind = 2;
	while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (opt) {
		case 'u': uid = optarg; break;
		case 'r':
			if (add(roles, "role", optarg) < 0)
				goto out;
			break;
		case 'a':
			adds = true;
			if (add(roles, "add", optarg) < 0)
				goto out;
			break;
		case 'd':
			removes = true;
			if (add(roles, "remove", optarg) < 0)
				goto out;
			break;
		case 'p': pwfile = optarg; break;
		case 'P': nopw = true; break;
		case 's': store = optarg; break;
		case 'j': json = true; break;
		default:
			fputs(usage, stderr);
			goto out;
		}
	}
	if (strcmp(sub, "list") != 0 && strcmp(sub, "uids") != 0) {
		if (strcmp(sub, "add") != 0 && strcmp(sub, "show") != 0 && strcmp(sub, "delete") != 0 &&
		    strcmp(sub, "passwd") != 0 && strcmp(sub, "role") != 0) {
			die_msg("user", "unknown subcommand '%s' (add, list, show, delete, passwd, "
				"role, uids)", sub);
			goto out;
		}
		if (optind >= argc) {
			die_msg("user", "%s needs a user NAME", sub);
			goto out;
		}
		name = argv[optind++];
	} else if (strcmp(sub, "uids") == 0 && optind < argc && strchr(argv[optind], '-') &&
		   argv[optind][0] >= '0' && argv[optind][0] <= '9') {
		range = argv[optind++];
	}
	if (optind < argc)
		mnt = argv[optind++];
	if (optind < argc || (mnt && store)) {
		fputs(usage, stderr);
		goto out;
	}
	/* Options that belong to another subcommand are a mistake, not ignored. */
	if ((uid || nopw || (roles->n && !adds && !removes)) && strcmp(sub, "add") != 0) {
		die_msg("user", "--uid, --role and --no-password belong to user add");
		goto out;
	}
	if (pwfile && strcmp(sub, "add") != 0 && strcmp(sub, "passwd") != 0) {
		die_msg("user", "--password-file belongs to user add and user passwd");
		goto out;
	}
	if ((adds || removes) != (strcmp(sub, "role") == 0)) {
		die_msg("user", strcmp(sub, "role") == 0 ? "user role needs --add R or --remove R"
			: "--add and --remove belong to user role");
		goto out;
	}
	if (nopw && pwfile) {
		die_msg("user", "--no-password and --password-file exclude each other");
		goto out;
	}
	if (admin_where(mnt, store, where, sizeof(where)) < 0) {
		die_msg("user", "path too long");
		goto out;
	}
	if (name && add(q, "name", name) < 0)
		goto out;
	if (json && add(q, "json", "1") < 0)
		goto out;
	for (size_t i = 0; i < roles->n; i++)
		if (add(q, roles->a[i].key, roles->a[i].val) < 0)
			goto out;
	if (strcmp(sub, "add") == 0) {
		verb = "user.add";
		if (uid && add(q, "uid", uid) < 0)
			goto out;
	} else if (strcmp(sub, "passwd") == 0) {
		verb = "user.passwd";
	} else if (strcmp(sub, "role") == 0) {
		verb = "user.role";
	} else if (strcmp(sub, "uids") == 0) {
		verb = "user.uids";
		if (range) {
			const char *dash = strchr(range, '-');

			if ((size_t)(dash - range) >= sizeof(first) || strlen(dash + 1) >= sizeof(last)) {
				die_msg("user", "'%s' is not a uid range FIRST-LAST", range);
				goto out;
			}
			snprintf(first, sizeof(first), "%.*s", (int)(dash - range), range);
			snprintf(last, sizeof(last), "%s", dash + 1);
			if (add(q, "first", first) < 0 || add(q, "last", last) < 0)
				goto out;
		}
	} else {
		verb = strcmp(sub, "list") == 0 ? "user.list" : strcmp(sub, "show") == 0 ?
		       "user.show" : "user.delete";
	}
	if ((strcmp(sub, "add") == 0 && !nopw) || strcmp(sub, "passwd") == 0) {
		if (get_password(pwfile, name, &pw) < 0) {
			r = 1;
			goto out;
		}
		if (add(q, "password", pw.buf) < 0)
			goto out;
	}
	r = admin_run(where, verb, q->a, q->n);
out:
	tool_pass_free(&pw);
	free(q);
	free(roles);
	return r;
}
