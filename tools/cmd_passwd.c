/*
 * cmd_passwd.c - `vecvault passwd STORE`: manage key slots.
 *
 *   vecvault passwd STORE [--passfile OLD | --extpass CMD]
 *                         [--new-passfile NEW | --new-extpass CMD]
 *                         [--add [--kdf PROFILE] | --remove SLOT]
 *
 * Default: give the slot that the current passphrase unlocks a new
 * passphrase.  --add: add a slot for a new passphrase.  --remove: drop a
 * slot (never the last).  Only vecvault.conf changes; the data does not,
 * since slots wrap the same master key.  Needs the store unmounted (the
 * daemon holds the store's lock).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "progress.h"
#include "env.h"
#include "util.h"
#include "vecvault/error.h"
#include "vecvault/store.h"

static const char usage[] =
	"usage: vecvault passwd STORE [--passfile OLD | --extpass CMD]\n"
	"                       [--new-passfile NEW | --new-extpass CMD]\n"
	"                       [--add [--kdf interactive|moderate|test] | --remove SLOT]\n"
	"Change the passphrase of the key slot the current passphrase opens\n"
	"(default), add a key slot, or remove one.  Data is not re-encrypted.\n"
	"The vault must not be mounted.\n";

int cmd_passwd(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "passfile", required_argument, NULL, 'p' },
		{ "extpass", required_argument, NULL, 'e' },
		{ "new-passfile", required_argument, NULL, 'P' },
		{ "new-extpass", required_argument, NULL, 'E' },
		{ "add", no_argument, NULL, 'a' },
		{ "remove", required_argument, NULL, 'r' },
		{ "kdf", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct tool_pass old = { 0 }, new = { 0 };
	struct pass_src osrc = { 0 }, nsrc = { 0 };
	enum vv_store_kdf kdf = VV_STORE_KDF_INTERACTIVE;
	struct vv_store *s = NULL;
	struct tool_progress prog;
	unsigned flags = 0;
	bool add = false;
	long remove = -1;
	const char *store;
	char msg[1024], *end;
	int opt, r, slot = -1, ret = 1;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (opt) {
		case 'p': osrc.file = optarg; break;
		case 'e': osrc.cmd = optarg; break;
		case 'P': nsrc.file = optarg; break;
		case 'E': nsrc.cmd = optarg; break;
		case 'a': add = true; break;
		case 'r':
			remove = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end || remove < 0 || remove >= VV_STORE_MAX_SLOTS) {
				die_msg("passwd", "bad slot '%s' (0..%d)", optarg,
					VV_STORE_MAX_SLOTS - 1);
				return 2;
			}
			break;
		case 'k':
			if (!strcmp(optarg, "interactive")) {
				kdf = VV_STORE_KDF_INTERACTIVE;
			} else if (!strcmp(optarg, "moderate")) {
				kdf = VV_STORE_KDF_MODERATE;
			} else if (!strcmp(optarg, "test")) {
				if (!tool_test_kdf_allowed()) {
					die_msg("passwd", "--kdf test is for test suites only "
						"and needs VECVAULT_TEST_KDF=1");
					return 2;
				}
				kdf = VV_STORE_KDF_TEST;
			} else {
				die_msg("passwd", "unknown KDF profile '%s'", optarg);
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
	if (optind != argc - 1 || (add && remove >= 0)) {
		fputs(usage, stderr);
		return 2;
	}
	if ((osrc.file && osrc.cmd) || (nsrc.file && nsrc.cmd)) {
		die_msg("passwd", "a file and a command for the same passphrase exclude each other");
		return 2;
	}
	store = argv[optind];
	/* Each key derivation (Argon2id) takes seconds with the real profiles
	 * and cannot report from inside: say what is running instead. */
	tool_progress_start(&prog, "passwd", "");
	if (tool_test_kdf_allowed())
		flags |= VV_STORE_ALLOW_TEST_KDF;

	/* Open (and lock) first: no point asking for passphrases otherwise. */
	if ((r = vv_store_open(store, flags, &s)) < 0) {
		tool_open_error(store, r, msg, sizeof(msg));
		die_msg("passwd", "%s", msg);
		goto out;
	}
	if (tool_get_pass("passwd", &osrc, remove >= 0 ? "passphrase" : "current passphrase",
			  false, &old) < 0)
		goto out;
	tool_progress_note(&prog, "unlocking (key derivation)");
	r = vv_store_unlock(s, old.buf, old.len, &slot);
	tool_progress_end(&prog);
	tool_pass_free(&old);
	if (r < 0) {
		if (r == VV_EBADPASS)
			tool_audit_admin(s, "passwd", r, "wrong passphrase");
		tool_open_error(store, r, msg, sizeof(msg));
		die_msg("passwd", "%s", msg);
		goto out;
	}
	if (remove >= 0) {
		r = vv_store_slot_remove(s, (int)remove);
		snprintf(msg, sizeof(msg), "remove key slot %ld", remove);
		tool_audit_admin(s, "passwd", r, msg);
		if (r < 0) {
			if (r == VV_EINVAL)
				die_msg("passwd", "slot %ld is the last key slot of %s; refusing "
					"to remove it (%s)", remove, store, vv_strerror(r));
			else
				die_msg("passwd", "cannot remove slot %ld of %s (%s)", remove,
					store, vv_strerror(r));
			goto out;
		}
		printf("removed key slot %ld%s\n", remove,
		       remove == slot ? " (the one this passphrase opened)" : "");
		ret = 0;
		goto out;
	}
	if (tool_get_pass("passwd", &nsrc, "new passphrase", true, &new) < 0)
		goto out;
	if (add) {
		int added = -1;

		tool_progress_note(&prog, "wrapping the master key for the new passphrase "
				   "(key derivation)");
		r = vv_store_slot_add(s, new.buf, new.len, kdf, &added);
		tool_progress_end(&prog);
		snprintf(msg, sizeof(msg), "add key slot %d", added);
		tool_audit_admin(s, "passwd", r, msg);
		if (r < 0) {
			die_msg("passwd", "cannot add a key slot to %s (%s)", store, vv_strerror(r));
			goto out;
		}
		printf("added key slot %d\n", added);
	} else {
		tool_progress_note(&prog, "wrapping the master key for the new passphrase "
				   "(key derivation)");
		r = vv_store_slot_change(s, slot, new.buf, new.len);
		tool_progress_end(&prog);
		snprintf(msg, sizeof(msg), "change the passphrase of key slot %d", slot);
		tool_audit_admin(s, "passwd", r, msg);
		if (r < 0) {
			die_msg("passwd", "cannot change slot %d of %s (%s)", slot, store,
				vv_strerror(r));
			goto out;
		}
		printf("changed the passphrase of key slot %d\n", slot);
	}
	ret = 0;
out:
	tool_pass_free(&old);
	tool_pass_free(&new);
	vv_store_close(s);
	return ret;
}
