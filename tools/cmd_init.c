/*
 * cmd_init.c - `vecvault init STORE`: create a new vault.
 *
 *   vecvault init STORE [--passfile F | --extpass CMD]
 *                       [--kdf interactive|moderate|test]
 *
 * The root directory of the new vault belongs to the caller.  The "test"
 * KDF profile (Argon2id minimum) exists only so test suites run fast; it is
 * refused unless VECVAULT_TEST_KDF=1 is in the environment (tools/env.c).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "env.h"
#include "util.h"
#include "vecvault/error.h"
#include "vecvault/store.h"
#include "vecvault/vault.h"

static const char usage[] =
	"usage: vecvault init STORE [--passfile FILE | --extpass CMD]\n"
	"                           [--kdf interactive|moderate|test]\n"
	"Create a new encrypted vault in STORE (a new or empty directory).\n"
	"  --passfile FILE  passphrase = first line of FILE\n"
	"  --extpass CMD    passphrase = first line printed by /bin/sh -c CMD\n"
	"                   (default: ask twice on the terminal)\n"
	"  --kdf PROFILE    Argon2id cost: interactive (default), moderate, or\n"
	"                   test (tests only; needs VECVAULT_TEST_KDF=1)\n";

int cmd_init(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "passfile", required_argument, NULL, 'p' },
		{ "extpass", required_argument, NULL, 'e' },
		{ "kdf", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct tool_pass pass = { 0 };
	struct pass_src src = { 0 };
	struct vv_store *s = NULL;
	struct vv_store_info info;
	char state[PATH_MAX];
	int profile = VV_KDF_PROFILE_INTERACTIVE;
	unsigned flags = 0;
	const char *store;
	int opt, r, ret = 1;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			src.file = optarg;
			break;
		case 'e':
			src.cmd = optarg;
			break;
		case 'k':
			if (!strcmp(optarg, "interactive")) {
				profile = VV_KDF_PROFILE_INTERACTIVE;
			} else if (!strcmp(optarg, "moderate")) {
				profile = VV_KDF_PROFILE_MODERATE;
			} else if (!strcmp(optarg, "test")) {
				profile = VV_KDF_PROFILE_TEST;
			} else {
				die_msg("init", "unknown KDF profile '%s' (interactive, moderate, test)",
					optarg);
				return 2;
			}
			break;
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
		die_msg("init", "--passfile and --extpass exclude each other");
		return 2;
	}
	if (profile == VV_KDF_PROFILE_TEST) {
		if (!tool_test_kdf_allowed()) {
			die_msg("init", "--kdf test makes a passphrase cheap to guess; it is for "
				"test suites only and needs VECVAULT_TEST_KDF=1");
			return 2;
		}
		flags |= VV_VAULT_ALLOW_TEST_KDF;
	}
	if (tool_get_pass("init", &src, "passphrase", true, &pass) < 0)
		goto out;
	r = vv_vault_create_store(store, pass.buf, pass.len, profile, flags,
				  (uint32_t)getuid(), (uint32_t)getgid(),
				  tool_state_dir(state, sizeof(state)) == 0 ? state : NULL);
	tool_pass_free(&pass);
	if (r < 0) {
		if (r == VV_EEXIST)
			die_msg("init", "%s exists and is not empty (%s)", store, vv_strerror(r));
		else
			die_msg("init", "cannot create vault in %s (%s)", store, vv_strerror(r));
		goto out;
	}
	/* The store id is what the audit log and anchors are named after. */
	if (vv_store_open(store, VV_STORE_NOLOCK, &s) == 0 && vv_store_info(s, &info) == 0)
		printf("created vault %s in %s\n", info.store_id, store);
	else
		printf("created vault in %s\n", store);
	ret = 0;
out:
	vv_store_close(s);
	return ret;
}
