/*
 * cmd_allow.c - `vecvault allow add|remove|list`: the address whitelist of
 * a running daemon that listens for vv:// clients (docs/remote.md), over
 * its control socket (the verbs live in engine/vault_remote.c).
 *
 *   vecvault allow add CIDR [MNT | --store STORE] [--json]
 *   vecvault allow remove CIDR [MNT | --store STORE] [--json]
 *   vecvault allow list [MNT | --store STORE] [--json]
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "admin_client.h"
#include "cmd.h"
#include "util.h"

static const char usage[] =
	"usage: vecvault allow add CIDR [MNT | --store STORE] [--json]\n"
	"       vecvault allow remove CIDR [MNT | --store STORE] [--json]\n"
	"       vecvault allow list [MNT | --store STORE] [--json]\n"
	"Change the whitelist of a daemon started with --listen (vecvault mount or\n"
	"vecvault serve): clients whose address is in no CIDR are closed before TLS.\n"
	"Root or the vault's owner only; every change is audited.  MNT is the mount\n"
	"point or a path inside it; --store names a served vault by its store.\n"
	"  add CIDR      admit ADDRESS or ADDRESS/BITS from now on (0.0.0.0/0 and\n"
	"                ::/0 admit everyone and must be given explicitly)\n"
	"  remove CIDR   stop admitting it (open sessions stay; revoke their keys)\n"
	"  list          the CIDRs, then counters: accepted, refused (before TLS),\n"
	"                handshakes, authenticated, auth_failed\n";

int cmd_allow(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sub, *cidr = NULL, *mnt = NULL, *store = NULL;
	struct vv_admin_arg args[2];
	char where[8192], verb[32];
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
	if (!strcmp(sub, "add") || !strcmp(sub, "remove")) {
		if (optind >= argc) {
			die_msg("allow", "%s needs a CIDR (e.g. 10.0.0.0/8)", sub);
			return 2;
		}
		cidr = argv[optind++];
	} else if (strcmp(sub, "list") != 0) {
		die_msg("allow", "unknown subcommand '%s' (add, remove, list)", sub);
		return 2;
	}
	if (optind < argc)
		mnt = argv[optind++];
	if (optind < argc || (mnt && store)) {
		fputs(usage, stderr);
		return 2;
	}
	if (admin_where(mnt, store, where, sizeof(where)) < 0) {
		die_msg("allow", "path too long");
		return 2;
	}
	if (cidr)
		args[n++] = (struct vv_admin_arg){ "cidr", cidr };
	if (json)
		args[n++] = (struct vv_admin_arg){ "json", "1" };
	snprintf(verb, sizeof(verb), "allow.%s", sub);
	return admin_run(where, verb, args, n);
}
