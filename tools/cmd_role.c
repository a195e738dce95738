/*
 * cmd_role.c - `vecvault role create|list|delete`: roles are POSIX groups
 * registered in a mounted vault (DESIGN.md "Identities, roles and
 * privileges"), managed through the daemon's control socket
 * (admin_client.h; the verbs live in engine/vault_role.c).
 *
 *   vecvault role create NAME [--create] [--gid N] [MNT | --store STORE] [--json]
 *   vecvault role list [MNT | --store STORE] [--json]
 *   vecvault role delete NAME [--revoke-all] [MNT | --store STORE] [--json]
 *
 * --create runs groupadd here, in the CLI (the daemon never changes the
 * system's groups): only when NSS has no such group, and only after the
 * daemon said the caller may create roles, so a refused request leaves no
 * group behind.  The daemon then checks through NSS that the group exists.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "admin_client.h"
#include "cmd.h"
#include "util.h"

static const char usage[] =
	"usage: vecvault role create NAME [--create] [--gid N] [MNT | --store STORE] [--json]\n"
	"       vecvault role list [MNT | --store STORE] [--json]\n"
	"       vecvault role delete NAME [--revoke-all] [MNT | --store STORE] [--json]\n"
	"A role is a POSIX group (from /etc/group, LDAP, SSSD, ...) registered in the\n"
	"vault, which grants then name.  MNT is the vault's mount point or any path\n"
	"inside it (default: the working directory); --store names the vault by its\n"
	"store directory.  The vault must be mounted: requests go to its daemon.\n"
	"  create NAME      register the group NAME as a role (root or the vault's owner)\n"
	"    --create       run 'groupadd [-g N] NAME' first if the group does not exist\n"
	"    --gid N        the group must have gid N (with --create: make it so)\n"
	"  list             the roles, their gids and where they are granted (others\n"
	"                   than the vault's owner see the paths they could reach)\n"
	"  delete NAME      unregister a role no longer granted nor held by vault users\n"
	"    --revoke-all   also revoke its grants and take it from vault users\n"
	"  --json           machine-readable output\n"
	"Exit status: 0 done, 1 refused or failed, 2 no daemon serves the vault.\n";

/* groupadd [-g gid] name, as a child; 0 or -1 with a message. */
static int groupadd(const char *name, const char *gid)
{
	const char *argv[5];
	int n = 0, status;
	pid_t pid;

	argv[n++] = "groupadd";
	if (gid) {
		argv[n++] = "-g";
		argv[n++] = gid;
	}
	argv[n++] = name;
	argv[n] = NULL;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		die_msg("role", "fork (%s)", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		/* "--" is not needed: NAME was checked not to start with '-'. */
		execvp("groupadd", (char *const *)argv);
		fprintf(stderr, "vecvault role: cannot run groupadd (%s)\n", strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		die_msg("role", "groupadd %s failed (status %d); the role was not created", name,
			WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return -1;
	}
	return 0;
}

/* May the caller create roles here?  1 yes, 0 no (message printed), or an
 * exit status >= 2 when no daemon answers. */
static int may_create(const char *where)
{
	static const struct vv_admin_arg json[] = { { "json", "1" } };
	struct vv_admin_reply rep;
	int r;

	vv_admin_reply_init(&rep);
	r = admin_call(where, "vault.ping", json, 1, &rep);
	if (r == 0)
		r = rep.status == 0 && rep.body && strstr(rep.body, "\"owner\":true") ? 1 : 0;
	vv_admin_reply_release(&rep);
	if (r == 0)
		die_msg("role", "role.create: only root or the vault's owner may do this "
			"(no group was created)");
	return r;
}

int cmd_role(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "create", no_argument, NULL, 'c' },
		{ "gid", required_argument, NULL, 'g' },
		{ "store", required_argument, NULL, 's' },
		{ "revoke-all", no_argument, NULL, 'R' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sub, *name = NULL, *mnt = NULL, *store = NULL, *gid = NULL;
	bool create = false, revoke_all = false, json = false;
	struct vv_admin_arg args[4];
	char where[8192];
	size_t n = 0;
	int opt, r;

	if ((opt = tool_sub_start(argc, argv, usage, &sub)) >= 0)
		return opt;
	while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (opt) {
		case 'c': create = true; break;
		case 'g': gid = optarg; break;
		case 's': store = optarg; break;
		case 'R': revoke_all = true; break;
		case 'j': json = true; break;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (strcmp(sub, "create") == 0 || strcmp(sub, "delete") == 0) {
		if (optind >= argc) {
			die_msg("role", "%s needs a role NAME", sub);
			return 2;
		}
		name = argv[optind++];
		if (name[0] == '-' || !name[0]) {
			die_msg("role", "'%s' is not a role name", name);
			return 2;
		}
	} else if (strcmp(sub, "list") != 0) {
		die_msg("role", "unknown subcommand '%s' (create, list, delete)", sub);
		return 2;
	}
	if (optind < argc)
		mnt = argv[optind++];
	if (optind < argc || (mnt && store)) {
		fputs(usage, stderr);
		return 2;
	}
	if ((create || gid) && strcmp(sub, "create") != 0) {
		die_msg("role", "--create and --gid belong to role create");
		return 2;
	}
	if (revoke_all && strcmp(sub, "delete") != 0) {
		die_msg("role", "--revoke-all belongs to role delete");
		return 2;
	}
	if (gid && (!gid[0] || strspn(gid, "0123456789") != strlen(gid))) {
		die_msg("role", "--gid '%s' is not a number", gid);
		return 2;
	}
	if (admin_where(mnt, store, where, sizeof(where)) < 0) {
		die_msg("role", "path too long");
		return 2;
	}
	if (name)
		args[n++] = (struct vv_admin_arg){ "name", name };
	if (json)
		args[n++] = (struct vv_admin_arg){ "json", "1" };
	if (strcmp(sub, "create") == 0) {
		if (gid)
			args[n++] = (struct vv_admin_arg){ "gid", gid };
		if (create && !getgrnam(name)) {
			if ((r = may_create(where)) != 1)
				return r == 0 ? 1 : r;
			if (groupadd(name, gid) < 0)
				return 1;
		}
		return admin_run(where, "role.create", args, n);
	}
	if (strcmp(sub, "delete") == 0) {
		if (revoke_all)
			args[n++] = (struct vv_admin_arg){ "revoke_all", "1" };
		return admin_run(where, "role.delete", args, n);
	}
	return admin_run(where, "role.list", args, n);
}
