/*
 * main.c - `vecvault VERB [args]`: dispatch to cmd_<verb>() (tools/cmd.h).
 *
 * Verbs written in other files that may not be built yet are declared weak,
 * so the binary links without them and says so instead of crashing.
 */
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "env.h"
#include "util.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/version.h"

#ifndef VV_VERSION
#define VV_VERSION "0.1.0"
#endif

extern int cmd_query(int, char **) __attribute__((weak));
extern int cmd_stats(int, char **) __attribute__((weak));
extern int cmd_collection(int, char **) __attribute__((weak));
extern int cmd_audit(int, char **) __attribute__((weak));

struct verb {
	const char *name;
	int (*fn)(int, char **);
	const char *summary;
};

static const struct verb verbs[] = {
	{ "init", cmd_init, "create a new encrypted vault in a store directory" },
	{ "mount", cmd_mount, "mount a vault with FUSE (daemon)" },
	{ "passwd", cmd_passwd, "change, add or remove a key slot passphrase" },
	{ "fsck", cmd_fsck, "check every page, extent and chunk; free orphans" },
	{ "info", cmd_info, "show store parameters (no passphrase needed)" },
	{ "query", cmd_query, "exact k-nearest-neighbour search over a collection" },
	{ "stats", cmd_stats, "describe the segments of a collection" },
	{ "collection", cmd_collection, "create and inspect collections" },
	{ "audit", cmd_audit, "read and verify the audit log" },
	{ "role", cmd_role, "manage roles (POSIX groups) of a mounted vault" },
	{ "snapshot", cmd_snapshot, "create, list, delete and restore snapshots of a mounted vault" },
	{ "backup", cmd_backup, "back up a mounted vault into an encrypted repository; list, verify, restore" },
	{ "user", cmd_user, "manage the vault users remote clients log in as" },
	{ "key", cmd_key, "create, list and revoke vault users' API keys" },
	{ "grant", cmd_grant, "give a role rights on a collection (ACL entries)" },
	{ "revoke", cmd_revoke, "take a role's rights away below a path" },
	{ "grants", cmd_grants, "show which roles have what on a path" },
	{ "serve", cmd_serve, "serve a vault to vv:// clients over TLS, without a mount" },
	{ "allow", cmd_allow, "change a listening daemon's address whitelist" },
	{ "tls", cmd_tls, "make a TLS key and certificate; show a fingerprint" },
	{ "trash", cmd_trash, "list, restore or purge what was removed from a mounted vault" },
	{ "admin", cmd_admin, "send one request to a mounted vault's daemon" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: vecvault VERB [ARGS]\n"
		   "       vecvault help VERB | --help | --version\n\nverbs:\n");
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		fprintf(f, "  %-11s %s\n", verbs[i].name, verbs[i].summary);
	fprintf(f, "\nRun 'vecvault VERB --help' for a verb's options; "
		   "see vecvault(1).\n");
}

/* The formats matter more to an admin than the release: they say which
 * stores, audit logs and daemons this binary can work with. */
static void version(void)
{
	printf("vecvault %s\n"
	       "formats (this build reads and writes exactly these versions):\n"
	       "  store vecvault.conf and key slots  %d\n"
	       "  store meta.db                      %d\n"
	       "  store chunk objects                %d\n"
	       "  audit log                          %d\n"
	       "  query offload ioctl (VV_IOC_KNN)   %u\n",
	       VV_VERSION, VV_FORMAT_CONF, VV_FORMAT_META, VV_FORMAT_CHUNK,
	       VV_FORMAT_AUDIT, VV_KNN_VERSION);
}

static const struct verb *find(const char *name)
{
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (!strcmp(verbs[i].name, name))
			return &verbs[i];
	return NULL;
}

static int run(const struct verb *vb, int argc, char **argv)
{
	if (!vb->fn) {
		fprintf(stderr, "vecvault: %s is not built\n", vb->name);
		return 2;
	}
	return vb->fn(argc, argv);
}

int main(int argc, char **argv)
{
	const struct verb *vb;

	tool_log_stderr();
	tool_env_vector_config();   /* the daemon's offload scans use it too */
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		version();
		return 0;
	}
	if (!strcmp(argv[1], "help")) {
		char *hargv[3];

		if (argc < 3) {
			usage(stdout);
			return 0;
		}
		if (!(vb = find(argv[2]))) {
			fprintf(stderr, "vecvault: unknown verb '%s'\n", argv[2]);
			return 2;
		}
		hargv[0] = argv[2];
		hargv[1] = "--help";
		hargv[2] = NULL;
		return run(vb, 2, hargv);
	}
	if (!(vb = find(argv[1]))) {
		fprintf(stderr, "vecvault: unknown verb '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	return run(vb, argc - 1, argv + 1);
}
