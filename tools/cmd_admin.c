/*
 * cmd_admin.c - `vecvault admin (MNT | --store STORE) VERB [KEY=VALUE ...]`:
 * send any request to a vault's daemon, as it is (debugging, scripts, and
 * verbs that have no subcommand of their own yet).
 *
 * The verbs with a CLI of their own (role, grant, ...) translate mount
 * paths into vault paths; here "path" values are sent unchanged, so they
 * must already be vault paths ("/products/a.npy").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_client.h"
#include "cmd.h"
#include "util.h"

static const char usage[] =
	"usage: vecvault admin (MNT | --store STORE) VERB [KEY=VALUE ...] [--json]\n"
	"Send one request to the daemon serving the vault mounted at MNT (or any\n"
	"path inside it), or the vault in STORE, and print its reply.  Arguments\n"
	"are sent as given: paths are vault paths (/collection/file), not mount\n"
	"paths.  \"vecvault admin MNT vault.verbs\" lists the requests the daemon\n"
	"knows.  Exit status: 0 done, 1 refused or failed, 2 no daemon serves the\n"
	"vault.\n";

int cmd_admin(int argc, char **argv)
{
	char where[4096 + 8];
	struct vv_admin_arg *args = NULL;
	const char *verb;
	size_t nargs = 0;
	int i = 1, r;

	if (tool_want_help(argc, argv)) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "--store") == 0) {
		snprintf(where, sizeof(where), "store:%s", argv[2]);
		i = 3;
	} else if (argc >= 2 && argv[1][0] != '-') {
		snprintf(where, sizeof(where), "%s", argv[1]);
		i = 2;
	} else {
		fputs(usage, stderr);
		return 2;
	}
	if (i >= argc) {
		fputs(usage, stderr);
		return 2;
	}
	verb = argv[i++];
	args = calloc((size_t)(argc - i) + 1, sizeof(*args));
	if (!args) {
		die_msg("admin", "out of memory");
		return 1;
	}
	for (; i < argc; i++) {
		char *eq = strchr(argv[i], '=');

		if (strcmp(argv[i], "--json") == 0) {
			args[nargs].key = "json";
			args[nargs++].val = "1";
			continue;
		}
		if (!eq || eq == argv[i]) {
			die_msg("admin", "argument '%s' is not KEY=VALUE", argv[i]);
			free(args);
			return 2;
		}
		*eq = '\0';
		args[nargs].key = argv[i];
		args[nargs++].val = eq + 1;
	}
	r = admin_run(where, verb, args, nargs);
	free(args);
	return r;
}
