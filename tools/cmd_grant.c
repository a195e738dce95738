/*
 * cmd_grant.c - `vecvault grant | revoke | grants`: a role's rights on a
 * collection as POSIX ACL entries, through the daemon's control socket
 * (admin_client.h; the verbs live in engine/vault_grant.c).
 *
 *   vecvault grant ROLE readonly|readwrite|admin|PERMS PATH... [--json]
 *   vecvault revoke ROLE PATH... [--json]
 *   vecvault grants PATH [--json]
 *
 * PATHs are paths under a mount (/vv/products); every PATH of one request
 * must be in the same vault.  The daemon decides who may do it.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "admin_client.h"
#include "cmd.h"
#include "util.h"

#define MAX_PATHS 64

static const char usage[] =
	"usage: vecvault grant ROLE readonly|readwrite|admin|PERMS PATH... [--json]\n"
	"       vecvault revoke ROLE PATH... [--json]\n"
	"       vecvault grants PATH [--json]\n"
	"A grant is an ACL entry: 'grant analysts readonly /vv/products' writes\n"
	"group:analysts:r-X into the access and default ACL of /vv/products and of\n"
	"every directory below it, and into the access ACL of every file below it\n"
	"(like setfacl -R -m g:analysts:rX -d -m g:analysts:rX), in one transaction.\n"
	"  ROLE       a role of the vault (vecvault role create)\n"
	"  readonly   r-X      readwrite  rwX\n"
	"  admin      rwX, and the role's members may change modes, ACLs and grants\n"
	"             inside that collection (PATH must be the collection itself)\n"
	"  PERMS      letters of r, w, x, X (X: x on directories and on files that\n"
	"             already have an execute bit)\n"
	"  PATH       a collection or a directory or file inside one, under a mount\n"
	"revoke removes the role's entries below PATH (and its admin privilege when\n"
	"PATH is the collection); grants lists who has what on PATH.\n"
	"Who may: root, the vault's owner, or a member of a role with admin on the\n"
	"collection (grant, revoke); anyone who may stat PATH (grants).\n"
	"  --json     machine-readable output\n"
	"Exit status: 0 done, 1 refused or failed, 2 no daemon serves the vault.\n"
	"See vecvault-grant(1).\n";

/* Translate every PATH into args as "path"; all in one mount, into mnt. */
static int paths(const char *verb, char **pv, int np, char *mnt, size_t mntcap,
		 char vpaths[][PATH_MAX], struct vv_admin_arg *args, size_t *n)
{
	if (np > MAX_PATHS) {
		die_msg(verb, "at most %d paths at once", MAX_PATHS);
		return ADMIN_EXIT_FAILED;
	}
	for (int i = 0; i < np; i++) {
		char m[PATH_MAX];

		if (admin_vault_path(pv[i], m, sizeof(m), vpaths[i], PATH_MAX) < 0)
			return ADMIN_EXIT_NODAEMON;
		if (i == 0)
			snprintf(mnt, mntcap, "%s", m);
		else if (strcmp(m, mnt) != 0) {
			die_msg(verb, "%s is in the vault at %s, %s in the one at %s: one vault "
				"per request", pv[0], mnt, pv[i], m);
			return ADMIN_EXIT_FAILED;
		}
		args[(*n)++] = (struct vv_admin_arg){ "path", vpaths[i] };
	}
	return 0;
}

/* Split argv into positional words and --json.  -1 on a bad option. */
static int words(int argc, char **argv, char **pos, int *npos, bool *json)
{
	*npos = 0;
	*json = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			*json = true;
		else if (strcmp(argv[i], "--") == 0) {
			while (++i < argc)
				pos[(*npos)++] = argv[i];
		} else if (argv[i][0] == '-' && argv[i][1])
			return -1;
		else
			pos[(*npos)++] = argv[i];
	}
	return 0;
}

static int run(const char *verb, int argc, char **argv, int fixed)
{
	static char vpaths[MAX_PATHS][PATH_MAX];
	struct vv_admin_arg args[MAX_PATHS + 4];
	char *pos[MAX_PATHS + 8], mnt[PATH_MAX];
	size_t n = 0;
	bool json;
	int npos, r;

	if (tool_want_help(argc, argv)) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc > MAX_PATHS + 8 || words(argc, argv, pos, &npos, &json) < 0 || npos <= fixed) {
		fputs(usage, stderr);
		return 2;
	}
	if (fixed >= 1)
		args[n++] = (struct vv_admin_arg){ "role", pos[0] };
	if (fixed >= 2)
		args[n++] = (struct vv_admin_arg){ "perms", pos[1] };
	if (strcmp(verb, "grants") == 0 && npos != 1) {
		die_msg(verb, "one PATH at a time");
		return 2;
	}
	if ((r = paths(verb, pos + fixed, npos - fixed, mnt, sizeof(mnt), vpaths, args, &n)) != 0)
		return r;
	if (json)
		args[n++] = (struct vv_admin_arg){ "json", "1" };
	return admin_run(mnt, verb, args, n);
}

int cmd_grant(int argc, char **argv)
{
	return run("grant", argc, argv, 2);
}

int cmd_revoke(int argc, char **argv)
{
	return run("revoke", argc, argv, 1);
}

int cmd_grants(int argc, char **argv)
{
	return run("grants", argc, argv, 0);
}
