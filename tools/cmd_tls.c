/*
 * cmd_tls.c - `vecvault tls selfsigned|fingerprint|client-ca|client|revoke`: a
 * first key and certificate for `vecvault serve` / `mount --listen`, the
 * SHA-256 fingerprint that clients pin, and a CA and client certificates
 * for mutual TLS and their revocation list (docs/remote.md).
 *
 *   vecvault tls selfsigned --out DIR [--name HOST]
 *   vecvault tls fingerprint CERT
 *   vecvault tls client-ca --out DIR [--name NAME]
 *   vecvault tls client USER --ca DIR --out DIR [--days N]
 *   vecvault tls revoke [CERT ...] --ca DIR [--days N]
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
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
	"       vecvault tls client-ca --out DIR [--name NAME]\n"
	"       vecvault tls client USER --ca DIR --out DIR [--days N]\n"
	"       vecvault tls revoke [CERT ...] --ca DIR [--days N]\n"
	"  selfsigned   write DIR/key.pem (mode 0600) and DIR/cert.pem: a P-256 key\n"
	"               and a certificate for HOST (default: this host's name), valid\n"
	"               ten years; print its SHA-256 fingerprint for clients' --pin.\n"
	"               Existing files are never overwritten.\n"
	"  fingerprint  print the SHA-256 fingerprint of a PEM certificate\n"
	"  client-ca    mutual TLS: write DIR/key.pem (0600) and DIR/cert.pem, a CA for\n"
	"               client certificates (default NAME vecvault-client-ca), ten\n"
	"               years; give DIR/cert.pem to the server as --client-ca\n"
	"  client       write DIR/key.pem (0600) and DIR/cert.pem: a client\n"
	"               certificate whose CN is the vault user USER, signed by the CA\n"
	"               in --ca DIR, valid N days (default 365); the client mounts\n"
	"               with --cert DIR/cert.pem --cert-key DIR/key.pem\n"
	"  revoke       list the client certificates CERT (issued by the CA in --ca\n"
	"               DIR) in DIR/crl.pem, keeping those listed before, signed by\n"
	"               the CA, next update in N days (default 365; run it with no\n"
	"               CERT to renew); give DIR/crl.pem to the server as\n"
	"               --client-crl: it re-reads the file when it changes and ends\n"
	"               the open sessions of a revoked certificate\n";

int cmd_tls(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "name", required_argument, NULL, 'n' },
		{ "ca", required_argument, NULL, 'c' },
		{ "days", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sub, *out = NULL, *name = NULL, *ca = NULL;
	unsigned long days = 365;
	char *end;
	char host[256], fp[65], why[512];
	int opt, r;

	if ((opt = tool_sub_start(argc, argv, usage, &sub)) >= 0)
		return opt;
	while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (opt) {
		case 'o': out = optarg; break;
		case 'n': name = optarg; break;
		case 'c': ca = optarg; break;
		case 'd':
			errno = 0;
			days = strtoul(optarg, &end, 10);
			if (errno || *end || optarg[0] < '0' || optarg[0] > '9' || days == 0 ||
			    days > 36500) {
				die_msg("tls", "bad --days '%s' (1 to 36500)", optarg);
				return 2;
			}
			break;
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
	if (!strcmp(sub, "revoke")) {
		size_t added, total;

		if (!ca || out || name) {
			die_msg("tls", "usage: tls revoke [CERT ...] --ca DIR [--days N]");
			return 2;
		}
		if (vv_net_client_revoke(ca, (const char *const *)argv + optind,
					 (size_t)(argc - optind), (unsigned)days, &added, &total,
					 why, sizeof(why)) < 0) {
			die_msg("tls", "%s", why);
			return 1;
		}
		printf("wrote %s/crl.pem: %zu certificate(s) newly revoked, %zu listed, next "
		       "update in %lu days\n", ca, added, total, days);
		return 0;
	}
	if (!strcmp(sub, "client-ca") || !strcmp(sub, "client")) {
		bool client = !strcmp(sub, "client");

		if (!out || optind != argc - (client ? 1 : 0) || (client && (!ca || name)) ||
		    (!client && ca)) {
			die_msg("tls", client ? "usage: tls client USER --ca DIR --out DIR [--days N]"
					      : "usage: tls client-ca --out DIR [--name NAME]");
			return 2;
		}
		name = client ? argv[optind] : name ? name : "vecvault-client-ca";
		if (strlen(name) == 0 || strlen(name) > 64 || strspn(name,
		    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != strlen(name)) {
			die_msg("tls", "'%s' is not a %s (letters, digits, _ - ., up to 64)", name,
				client ? "vault user name" : "CA name");
			return 2;
		}
		if (mkdir(out, 0700) < 0 && errno != EEXIST) {
			die_msg("tls", "cannot make %s (%s)", out, strerror(errno));
			return 1;
		}
		r = client ? vv_net_client_cert(out, name, ca, (unsigned)days, fp, why, sizeof(why))
			   : vv_net_client_ca(out, name, fp, why, sizeof(why));
		if (r < 0) {
			die_msg("tls", "%s", why);
			return 1;
		}
		printf("wrote %s/key.pem and %s/cert.pem: %s %s\nsha256:%s\n", out, out,
		       client ? "a client certificate for the vault user" : "the client CA", name, fp);
		return 0;
	}
	if (strcmp(sub, "selfsigned") != 0) {
		die_msg("tls", "unknown subcommand '%s' (selfsigned, fingerprint, client-ca, "
			"client, revoke)", sub);
		return 2;
	}
	if (ca || days != 365) {
		fputs(usage, stderr);
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
