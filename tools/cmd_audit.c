/*
 * cmd_audit.c - `vecvault audit verify|show`: check and read the audit log.
 *
 *   vecvault audit verify STORE [--passfile F | --extpass CMD] [--audit-log PATH]
 *   vecvault audit show STORE [--audit-log PATH] [--user U] [--uid N]
 *                       [--path GLOB] [--since T] [--until T] [--denied] [--json]
 *
 * verify needs the passphrase (the chain MAC key is a subkey of the master
 * key); it reads the conf without taking the store lock, so it also works
 * while the vault is mounted, up to the last checkpoint in the sidecar file.
 * show needs no key: the log is plaintext by design (outside STORE, 0600).
 * Exit status: 0 ok, 1 the chain does not verify, 2 usage or cannot run.
 */
#include <fnmatch.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "env.h"
#include "util.h"
#include "vecvault/audit.h"
#include "vecvault/error.h"
#include "vecvault/store.h"
#include "vecvault/vault.h"

static const char usage[] =
	"usage: vecvault audit verify STORE [--passfile FILE | --extpass CMD]\n"
	"                                   [--audit-log PATH]\n"
	"       vecvault audit show STORE [--audit-log PATH] [--user U] [--uid N]\n"
	"                                 [--path GLOB] [--since T] [--until T]\n"
	"                                 [--denied] [--json]\n"
	"verify: check the hash chain of every record and that the log reaches its\n"
	"        last checkpoint; name the first bad record.  Exit 1 if it fails.\n"
	"show:   print records (a table, or the raw JSON lines with --json).\n"
	"  --audit-log PATH  the log (default: beside the store id, see vecvault-audit(1))\n"
	"  --user U          vault user or API key id U\n"
	"  --uid N           local uid N\n"
	"  --path GLOB       path matches the shell pattern GLOB ('*' crosses '/')\n"
	"  --since T         records at or after T; --until T: before T.  T is\n"
	"                    YYYY-MM-DD[THH:MM[:SS]] (UTC) or -N[smhd] (N ago)\n"
	"  --denied          only records whose result is not ok\n";

/* T -> a UTC timestamp prefix comparable with the records' "time". */
static int parse_when(const char *t, char *out, size_t n)
{
	char *end;
	long v;
	time_t now;
	struct tm tm;

	if (t[0] == '-') {
		v = strtol(t + 1, &end, 10);
		if (end == t + 1 || v < 0)
			return -1;
		if (!*end || !strcmp(end, "s"))
			;
		else if (!strcmp(end, "m"))
			v *= 60;
		else if (!strcmp(end, "h"))
			v *= 3600;
		else if (!strcmp(end, "d"))
			v *= 86400;
		else
			return -1;
		now = time(NULL) - v;
		gmtime_r(&now, &tm);
		return strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm) ? 0 : -1;
	}
	/* Dates: digits and separators only, normalised to 'T'. */
	if (strlen(t) < 10 || strlen(t) >= n)
		return -1;
	for (size_t i = 0; t[i]; i++) {
		char c = t[i];
		if (!((c >= '0' && c <= '9') || c == '-' || c == ':' || c == 'T' || c == ' ' ||
		      c == '.' || c == 'Z'))
			return -1;
		out[i] = c == ' ' ? 'T' : c;
		out[i + 1] = '\0';
	}
	return 0;
}

/* Print s with anything that could drive a terminal made visible. */
static void put_safe(const char *s, int width)
{
	int n = 0;

	if (!s)
		s = "-";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		/* Controls (ESC ...) and every non-ASCII byte: keep output plain
		 * ASCII, so a crafted file name cannot drive the terminal. */
		if (*p < 0x20 || *p >= 0x7f) {
			n += printf("\\x%02x", *p);
		} else {
			putchar(*p);
			n++;
		}
	}
	for (; n < width; n++)
		putchar(' ');
}

static int log_path_for(const char *verb, const char *store, const char *opt,
			char *out, size_t n, struct vv_store **sp)
{
	char dir[PATH_MAX];
	int r;

	/* verify unlocks this store: a test-KDF slot needs the explicit flag */
	if ((r = vv_store_open(store, VV_STORE_NOLOCK |
			       (tool_test_kdf_allowed() ? VV_STORE_ALLOW_TEST_KDF : 0), sp)) < 0) {
		die_msg(verb, "cannot open %s (%s)", store, vv_strerror(r));
		return -1;
	}
	if (opt) {
		if (snprintf(out, n, "%s", opt) >= (int)n)
			return -1;
		return 0;
	}
	if ((r = tool_audit_dir(dir, sizeof(dir))) < 0 ||
	    (r = vv_audit_default_path(dir, vv_store_id(*sp), out, n)) < 0) {
		die_msg(verb, "no default audit log location (%s); use --audit-log",
			vv_strerror(r));
		return -1;
	}
	return 0;
}

static int do_verify(const char *store, const char *logopt, const struct pass_src *src)
{
	struct vv_store *s = NULL;
	struct tool_pass pass = { 0 };
	struct vv_audit_verify_result res;
	char path[PATH_MAX];
	uint8_t key[VV_STORE_KEY_BYTES];
	int r, ret = 2;

	if (log_path_for("audit verify", store, logopt, path, sizeof(path), &s) < 0)
		goto out;
	if (tool_get_pass("audit verify", src, "passphrase", false, &pass) < 0)
		goto out;
	r = vv_store_unlock(s, pass.buf, pass.len, NULL);
	if (r < 0) {
		char msg[256];
		if (r == VV_EBADPASS) {
			/* A failed unlock is an audited event, kept unauthenticated
			 * until the next successful unlock imports it. */
			struct vv_audit_rec rec = { .op = "unlock", .uid = (uint32_t)getuid(),
						    .gid = (uint32_t)getgid(),
						    .pid = (uint32_t)getpid(),
						    .comm = "vecvault", .result = r,
						    .detail = "audit verify: wrong passphrase" };
			(void)vv_audit_preauth_append(path, &rec);
		}
		tool_open_error(store, r, msg, sizeof(msg));
		die_msg("audit verify", "%s", msg);
		goto out;
	}
	if ((r = vv_store_subkey(s, VV_AUDIT_SUBKEY_ID, VV_SUBKEY_AUDIT, key)) < 0) {
		die_msg("audit verify", "cannot derive the audit key (%s)", vv_strerror(r));
		goto out;
	}
	/* The checkpoint sealed in meta.db: readable only while no daemon holds
	 * the store; when mounted, the MAC'd sidecar checkpoint is what catches
	 * a cut tail (see docs/audit.md). */
	{
		struct vv_vault_opts vo = { .flags = VV_VAULT_READONLY | VV_VAULT_NO_AUDIT,
					    .purpose = "audit verify" };
		struct tool_dirs dirs;
		struct vv_vault *v = NULL;
		uint8_t smac[32];
		uint64_t sseq = 0;
		int vr;
		tool_env_vault_opts(&dirs, &vo);
		vv_store_close(s);
		s = NULL;
		vr = vv_vault_open(store, pass.buf, pass.len, &vo, &v);
		if (vr == 0) {
			vr = vv_vault_audit_sealed(v, &sseq, smac);
			vv_vault_close(v);
		}
		if (vr == VV_EBUSY)
			printf("vault is mounted: verifying up to the sidecar checkpoint\n");
		else if (vr < 0)
			fprintf(stderr, "vecvault audit verify: cannot read the sealed checkpoint (%s); "
				"using the sidecar\n", vv_strerror(vr));
		r = vv_audit_verify(path, key, vr == 0 ? sseq : 0, vr == 0 && sseq ? smac : NULL, &res);
	}
	tool_pass_free(&pass);
	memset(key, 0, sizeof(key));
	if (r < 0) {
		die_msg("audit verify", "cannot read %s (%s)", path, vv_strerror(r));
		goto out;
	}
	if (res.ok) {
		printf("audit log OK: %llu records (last seq %llu), checkpoint seq %llu (%s)\n",
		       (unsigned long long)res.records, (unsigned long long)res.last_seq,
		       (unsigned long long)res.ck_seq, res.ck_source);
		ret = 0;
		goto out;
	}
	printf("audit log FAILED: %s", res.why);
	if (res.first_bad_seq)
		printf(" at record %llu", (unsigned long long)res.first_bad_seq);
	if (res.file[0]) {
		printf(" (");
		put_safe(res.file, 0);
		if (res.first_bad_line)
			printf(" line %llu", (unsigned long long)res.first_bad_line);
		printf(")");
	}
	printf("\n%llu records before it verify (last good seq %llu); checkpoint seq %llu (%s)\n",
	       (unsigned long long)res.records, (unsigned long long)res.last_seq,
	       (unsigned long long)res.ck_seq, res.ck_source);
	if (res.torn && !strcmp(res.why, "torn last line"))
		printf("the last line is incomplete: the writer was interrupted (crash?); "
		       "the next mount cuts it and records the cut\n");
	ret = 1;
out:
	tool_pass_free(&pass);
	vv_store_close(s);
	return ret;
}

struct filter {
	const char *user, *glob, *since, *until;
	long long uid;
	bool denied, json;
	char since_b[64], until_b[64];
};

static bool keep(const struct filter *f, const struct vv_audit_entry *e)
{
	if (f->user && (!e->user || strcmp(f->user, e->user)))
		return false;
	if (f->uid >= 0 && e->uid != f->uid)
		return false;
	if (f->glob && (!e->path || fnmatch(f->glob, e->path, 0) != 0))
		return false;
	if (f->since && (!e->time || strcmp(e->time, f->since_b) < 0))
		return false;
	if (f->until && (!e->time || strcmp(e->time, f->until_b) >= 0))
		return false;
	if (f->denied && e->result && !strcmp(e->result, "ok"))
		return false;
	return true;
}

static int do_show(const char *store, const char *logopt, const struct filter *f)
{
	struct vv_store *s = NULL;
	struct vv_audit_iter *it = NULL;
	struct vv_audit_entry e;
	char path[PATH_MAX];
	int r, ret = 2, bad = 0;

	if (log_path_for("audit show", store, logopt, path, sizeof(path), &s) < 0)
		goto out;
	if ((r = vv_audit_iter_open(path, &it)) < 0) {
		die_msg("audit show", "cannot read %s (%s)", path, vv_strerror(r));
		goto out;
	}
	if (!f->json)
		printf("%-23s %7s %-10s %-9s %6s %7s %-12s %-10s %-8s %s\n", "TIME (UTC)", "SEQ",
		       "OP", "RESULT", "UID", "PID", "COMM", "USER", "CLIENT", "PATH");
	while ((r = vv_audit_iter_next(it, &e)) != 0) {
		if (r < 0) {
			bad++;
			continue;
		}
		if (!keep(f, &e))
			continue;
		if (f->json) {
			puts(e.line);   /* as written: valid JSON, ASCII-safe escapes */
			continue;
		}
		printf("%-23.23s %7llu ", e.time ? e.time : "-", (unsigned long long)e.seq);
		put_safe(e.op, 10);
		putchar(' ');
		put_safe(e.result, 9);
		printf(" %6lld %7lld ", (long long)e.uid, (long long)e.pid);
		put_safe(e.comm, 12);
		putchar(' ');
		put_safe(e.user, 10);
		putchar(' ');
		put_safe(e.client, 8);
		putchar(' ');
		put_safe(e.path, 0);
		if (e.unauth)
			printf("  [unauthenticated]");
		if (e.detail) {
			printf("  (");
			put_safe(e.detail, 0);
			printf(")");
		}
		putchar('\n');
	}
	if (bad)
		fprintf(stderr, "vecvault audit show: %d malformed lines skipped "
			"(run 'vecvault audit verify')\n", bad);
	ret = 0;
out:
	vv_audit_iter_free(it);
	vv_store_close(s);
	return ret;
}

int cmd_audit(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "passfile", required_argument, NULL, 'p' },
		{ "extpass", required_argument, NULL, 'e' },
		{ "audit-log", required_argument, NULL, 'l' },
		{ "user", required_argument, NULL, 'u' },
		{ "uid", required_argument, NULL, 'U' },
		{ "path", required_argument, NULL, 'g' },
		{ "since", required_argument, NULL, 's' },
		{ "until", required_argument, NULL, 't' },
		{ "denied", no_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct pass_src src = { 0 };
	struct filter f = { .uid = -1 };
	const char *logopt = NULL, *sub;
	char *end;
	int opt;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	sub = argv[1];
	argc--;
	argv++;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (opt) {
		case 'p': src.file = optarg; break;
		case 'e': src.cmd = optarg; break;
		case 'l': logopt = optarg; break;
		case 'u': f.user = optarg; break;
		case 'g': f.glob = optarg; break;
		case 'd': f.denied = true; break;
		case 'j': f.json = true; break;
		case 'U':
			f.uid = strtoll(optarg, &end, 10);
			if (*end || end == optarg || f.uid < 0) {
				die_msg("audit", "--uid wants a number, not '%s'", optarg);
				return 2;
			}
			break;
		case 's':
		case 't':
			if (parse_when(optarg, opt == 's' ? f.since_b : f.until_b, sizeof(f.since_b)) < 0) {
				die_msg("audit", "bad time '%s' (YYYY-MM-DD[THH:MM[:SS]] or -N[smhd])",
					optarg);
				return 2;
			}
			if (opt == 's')
				f.since = optarg;
			else
				f.until = optarg;
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
	if (src.file && src.cmd) {
		die_msg("audit", "--passfile and --extpass exclude each other");
		return 2;
	}
	if (!strcmp(sub, "verify"))
		return do_verify(argv[optind], logopt, &src);
	if (!strcmp(sub, "show"))
		return do_show(argv[optind], logopt, &f);
	die_msg("audit", "unknown subcommand '%s' (verify, show)", sub);
	return 2;
}
