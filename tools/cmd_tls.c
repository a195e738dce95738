/*
 * cmd_tls.c - `vecvault tls selfsigned|fingerprint`: a first key and
 * certificate for `vecvault serve` / `mount --listen`, and the SHA-256
 * fingerprint that clients pin (docs/remote.md).
 *
 *   vecvault tls selfsigned --out DIR [--name HOST]
 *   vecvault tls fingerprint CERT
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd.h"
#include "util.h"
#include "vecvault/error.h"
#include "vecvault/net.h"

static const char usage[] =
	"usage: vecvault tls selfsigned --out DIR [--name HOST]\n"
	"       vecvault tls fingerprint CERT\n"
	"  selfsigned   write DIR/key.pem (mode 0600) and DIR/cert.pem: a P-256 key\n"
	"               and a certificate for HOST (default: this host's name), valid\n"
	"               ten years; print its SHA-256 fingerprint for clients' --pin.\n"
	"               Existing files are never overwritten.\n"
	"  fingerprint  print the SHA-256 fingerprint of a PEM certificate\n";

int cmd_tls(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "name", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sub, *out = NULL, *name = NULL;
	char host[256], fp[65], why[512];
	int opt, r;

	if ((opt = tool_sub_start(argc, argv, usage, &sub)) >= 0)
		return opt;
	while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (opt) {
		case 'o': out = optarg; break;
		case 'n': name = optarg; break;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (!strcmp(sub, "fingerprint")) {
		if (optind != argc - 1 || out || name) {
			fputs(usage, stderr);
			return 2;
		}
		if (vv_net_fingerprint(argv[optind], fp, why, sizeof(why)) < 0) {
			die_msg("tls", "%s", why);
			return 1;
		}
		printf("sha256:%s\n", fp);
		return 0;
	}
	if (strcmp(sub, "selfsigned") != 0) {
		die_msg("tls", "unknown subcommand '%s' (selfsigned, fingerprint)", sub);
		return 2;
	}
	if (!out || optind != argc) {
		die_msg("tls", "selfsigned needs --out DIR");
		return 2;
	}
	if (!name) {
		if (gethostname(host, sizeof(host)) < 0 || !host[0])
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = 0;
		name = host;
	}
	if (strlen(name) > 200 || strpbrk(name, ",/\\\"\n ")) {
		die_msg("tls", "--name '%s' is not a host name or address", name);
		return 2;
	}
	if (mkdir(out, 0700) < 0 && errno != EEXIST) {
		die_msg("tls", "cannot make %s (%s)", out, strerror(errno));
		return 1;
	}
	if ((r = vv_net_selfsigned(out, name, fp, why, sizeof(why))) < 0) {
		die_msg("tls", "%s", why);
		return 1;
	}
	printf("wrote %s/key.pem and %s/cert.pem for %s\nsha256:%s\n", out, out, name, fp);
	return 0;
}
