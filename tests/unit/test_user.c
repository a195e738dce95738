/*
 * test_user.c - vault users and API keys (vault_user.c, user_parse.c,
 * meta_user.c): the request parsers, the user.* and key.* verbs through
 * the dispatcher, and the authentication API the remote server will call
 * (vecvault/users.h): expiry, revocation, CIDRs, wrong secrets, unknown
 * users, and that no secret or password reaches the audit log, meta.db or
 * a reply.
 *
 * Uses the system groups "users" and "adm" as roles (as test_admin does).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin_int.h"
#include "crypto_int.h"
#include "tap.h"
#include "user_int.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/users.h"
#include "vecvault/vault.h"

#define PASS "users unit test"
#define PW_ALICE "alice's first password"
#define PW_ALICE2 "alice's second password"

static char top[256], store[300], state[300], alog[300];
static int64_t fake_ns;

static int64_t fake_now(void)
{
	return fake_ns;
}

static int call(struct vv_vault *v, uint32_t uid, const char *verb,
		const struct vv_admin_arg *args, size_t nargs, struct vv_admin_reply *rep)
{
	struct vv_admin_req rq = { .peer = { .uid = uid, .gid = uid, .pid = 1 },
				   .client = "local", .verb = verb, .nargs = nargs, .args = args };

	return vv_admin_call(v, &rq, rep);
}

#define ARGS(...) (struct vv_admin_arg[]){ __VA_ARGS__ }, \
	sizeof((struct vv_admin_arg[]){ __VA_ARGS__ }) / sizeof(struct vv_admin_arg)

/* A TCP peer at address a (IPv4, or IPv6 when it holds a ':'), port 40000. */
static struct sockaddr_storage peer(const char *a)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (void *)&ss;
	struct sockaddr_in6 *in6 = (void *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(a, ':')) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(40000);
		inet_pton(AF_INET6, a, &in6->sin6_addr);
	} else {
		in->sin_family = AF_INET;
		in->sin_port = htons(40000);
		inet_pton(AF_INET, a, &in->sin_addr);
	}
	return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

struct pw_try {
	struct vv_vault *v;
	const char *user, *pw;
	int r;
};

static void *pw_thread(void *arg)
{
	struct pw_try *t = arg;
	struct vv_auth a;

	t->r = vv_vault_auth_password(t->v, t->user, t->pw, strlen(t->pw), NULL, &a);
	return NULL;
}

/* n password checks at once (user, pw); how many returned want. */
static int pw_flood(struct vv_vault *v, int n, const char *user, const char *pw, int want)
{
	pthread_t th[32];
	struct pw_try t[32];
	int got = 0;

	for (int i = 0; i < n && i < 32; i++) {
		t[i] = (struct pw_try){ v, user, pw, 1 };
		if (pthread_create(&th[i], NULL, pw_thread, &t[i]) != 0)
			t[i].v = NULL;
	}
	for (int i = 0; i < n && i < 32; i++)
		if (t[i].v) {
			pthread_join(th[i], NULL);
			got += t[i].r == want;
		}
	return got;
}

static void test_parsers(void)
{
	struct vault_cidr c;
	char buf[64], id[VV_KEY_ID_CHARS + 1];
	uint8_t sec[32];
	int64_t ns = 0;
	uint32_t uid = 0;
	struct sockaddr_storage p;

	ok(vv_user_name_ok("alice"), "name: alice");
	ok(vv_user_name_ok("_svc-01"), "name: _svc-01");
	ok(vv_user_name_ok("abcdefghijklmnopqrstuvwxyz012345"), "name: 32 bytes");
	ok(!vv_user_name_ok("abcdefghijklmnopqrstuvwxyz0123456"), "name: 33 bytes refused");
	ok(!vv_user_name_ok(""), "name: empty refused");
	ok(!vv_user_name_ok(NULL), "name: NULL refused");
	ok(!vv_user_name_ok("Alice"), "name: upper case refused");
	ok(!vv_user_name_ok("-x"), "name: leading '-' refused");
	ok(!vv_user_name_ok("1x"), "name: leading digit refused");
	ok(!vv_user_name_ok("a b"), "name: space refused");
	ok(!vv_user_name_ok("a/b"), "name: slash refused");
	ok(!vv_user_name_ok("a$"), "name: machine account refused");
	ok(!vv_user_name_ok("al\xc3\xa9"), "name: non-ASCII refused");

	is_int(vault_user_parse_uid("5000", &uid), 0, "uid: 5000");
	is_int(uid, 5000, "uid: value");
	is_int(vault_user_parse_uid("0", &uid), VV_EINVAL, "uid: 0 (root) refused");
	is_int(vault_user_parse_uid("4294967295", &uid), VV_EINVAL, "uid: -1 refused");
	is_int(vault_user_parse_uid("4294967294", &uid), 0, "uid: 4294967294");
	is_int(vault_user_parse_uid("99999999999", &uid), VV_EINVAL, "uid: too large");
	is_int(vault_user_parse_uid("-5", &uid), VV_EINVAL, "uid: negative");
	is_int(vault_user_parse_uid("5x", &uid), VV_EINVAL, "uid: trailing junk");
	is_int(vault_user_parse_uid("", &uid), VV_EINVAL, "uid: empty");

	is_int(vault_user_parse_duration("90d", &ns), 0, "duration: 90d");
	ok(ns == 90LL * 86400 * 1000000000LL, "duration: 90d in ns");
	is_int(vault_user_parse_duration("12h", &ns), 0, "duration: 12h");
	ok(ns == 12LL * 3600 * 1000000000LL, "duration: 12h in ns");
	is_int(vault_user_parse_duration("2w", &ns), 0, "duration: 2w");
	is_int(vault_user_parse_duration("45s", &ns), 0, "duration: 45s");
	is_int(vault_user_parse_duration("30m", &ns), 0, "duration: 30m");
	is_int(vault_user_parse_duration("3653d", &ns), 0, "duration: ten years");
	is_int(vault_user_parse_duration("3654d", &ns), VV_EINVAL, "duration: past ten years");
	is_int(vault_user_parse_duration("0d", &ns), VV_EINVAL, "duration: zero");
	is_int(vault_user_parse_duration("90", &ns), VV_EINVAL, "duration: no unit");
	is_int(vault_user_parse_duration("d", &ns), VV_EINVAL, "duration: no count");
	is_int(vault_user_parse_duration("9y", &ns), VV_EINVAL, "duration: unknown unit");
	is_int(vault_user_parse_duration("-1d", &ns), VV_EINVAL, "duration: negative");
	is_int(vault_user_parse_duration("1.5d", &ns), VV_EINVAL, "duration: fraction");
	is_int(vault_user_parse_duration("99999999999d", &ns), VV_EINVAL, "duration: huge");
	is_int(vault_user_parse_duration(NULL, &ns), VV_EINVAL, "duration: NULL");

	ok(vault_user_label_ok("gpu box 7 (prod)"), "label: text");
	ok(!vault_user_label_ok("a\nb"), "label: newline refused");
	ok(!vault_user_label_ok(""), "label: empty refused");

	is_int(vault_cidr_parse("10.0.0.0/8", &c), 0, "cidr: 10.0.0.0/8");
	vault_cidr_format(&c, buf, sizeof(buf));
	is_str(buf, "10.0.0.0/8", "cidr: canonical text");
	is_int(vault_cidr_parse("192.0.2.7", &c), 0, "cidr: a lone address");
	vault_cidr_format(&c, buf, sizeof(buf));
	is_str(buf, "192.0.2.7/32", "cidr: is a /32");
	is_int(vault_cidr_parse("2001:DB8::/32", &c), 0, "cidr: IPv6");
	vault_cidr_format(&c, buf, sizeof(buf));
	is_str(buf, "2001:db8::/32", "cidr: IPv6 canonical");
	is_int(vault_cidr_parse("::ffff:10.1.0.0/112", &c), 0, "cidr: IPv4-mapped IPv6");
	vault_cidr_format(&c, buf, sizeof(buf));
	is_str(buf, "10.1.0.0/16", "cidr: IPv4-mapped kept as IPv4");
	is_int(vault_cidr_parse("0.0.0.0/0", &c), 0, "cidr: the world, explicitly");
	is_int(vault_cidr_parse("10.0.0.1/8", &c), VV_EINVAL, "cidr: host bits refused");
	is_int(vault_cidr_parse("10.0.0.0/33", &c), VV_EINVAL, "cidr: /33 refused");
	is_int(vault_cidr_parse("10.0.0.0/", &c), VV_EINVAL, "cidr: empty length");
	is_int(vault_cidr_parse("10.0.0.0/08", &c), VV_EINVAL, "cidr: leading zero length");
	is_int(vault_cidr_parse("10.0.0/8", &c), VV_EINVAL, "cidr: short address");
	is_int(vault_cidr_parse("10.0.0.0/8x", &c), VV_EINVAL, "cidr: junk");
	is_int(vault_cidr_parse("example.com", &c), VV_EINVAL, "cidr: a host name refused");
	is_int(vault_cidr_parse("::1/129", &c), VV_EINVAL, "cidr: /129 refused");
	is_int(vault_cidr_parse("", &c), VV_EINVAL, "cidr: empty");

	vault_cidr_parse("127.0.0.2/32", &c);
	p = peer("127.0.0.2");
	ok(vault_cidr_match(&c, SA(p)), "match: IPv4 peer inside");
	p = peer("127.0.0.3");
	ok(!vault_cidr_match(&c, SA(p)), "match: IPv4 peer outside");
	p = peer("::ffff:127.0.0.2");
	ok(vault_cidr_match(&c, SA(p)), "match: IPv4-mapped peer judged as IPv4");
	p = peer("::1");
	ok(!vault_cidr_match(&c, SA(p)), "match: IPv6 peer against an IPv4 net");
	ok(!vault_cidr_match(&c, NULL), "match: no peer matches nothing");
	vault_cidr_parse("10.64.0.0/10", &c);
	p = peer("10.127.255.255");
	ok(vault_cidr_match(&c, SA(p)), "match: /10 upper edge");
	p = peer("10.128.0.0");
	ok(!vault_cidr_match(&c, SA(p)), "match: /10 just outside");
	vault_cidr_parse("2001:db8::/32", &c);
	p = peer("2001:db8:ffff::1");
	ok(vault_cidr_match(&c, SA(p)), "match: IPv6 inside");
	p = peer("2001:db9::1");
	ok(!vault_cidr_match(&c, SA(p)), "match: IPv6 outside");
	p = peer("::ffff:10.0.0.1");
	ok(!vault_cidr_match(&c, SA(p)), "match: mapped peer against an IPv6 net");
	p = peer("10.0.0.1");
	ok(vault_cidr_list_match("", SA(p)), "list: empty allows all");
	ok(vault_cidr_list_match("192.0.2.0/24,10.0.0.0/8", SA(p)), "list: second entry");
	ok(!vault_cidr_list_match("192.0.2.0/24,junk", SA(p)), "list: no entry");

	is_int(vault_key_token_parse("vvk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
				     id, sec), 0, "token: well formed");
	is_str(id, "0123456789abcdef", "token: id");
	is_int(vault_key_token_parse("vvk_0123456789ABCDEF_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
				     id, sec), VV_EINVAL, "token: upper-case id refused");
	is_int(vault_key_token_parse("vvk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
				     id, sec), VV_EINVAL, "token: short secret refused");
	is_int(vault_key_token_parse("vvx_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
				     id, sec), VV_EINVAL, "token: wrong prefix refused");
	is_int(vault_key_token_parse("vvk_0123456789abcdef-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
				     id, sec), VV_EINVAL, "token: wrong separator refused");
	is_int(vault_key_token_parse(NULL, id, sec), VV_EINVAL, "token: NULL refused");
	p = peer("2001:db8::5");
	vault_peer_text(SA(p), buf, sizeof(buf));
	is_str(buf, "[2001:db8::5]:40000", "peer text: IPv6");
}

static double secs(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Median seconds of n logins by password (user, pass): a measurement
 * printed, never asserted (timings on a shared machine are noise). */
static double median_login(struct vv_vault *v, const char *user, const char *pass, int n)
{
	double t[9];
	struct vv_auth a;

	for (int i = 0; i < n && i < 9; i++) {
		double t0 = secs();

		if (vv_vault_auth_password(v, user, pass, strlen(pass), NULL, &a)) {
			/* refusals are what is timed too */
		}
		t[i] = secs() - t0;
	}
	qsort(t, (size_t)n, sizeof(t[0]), cmp_d);
	return t[n / 2];
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; p && (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* Does any file under dir hold needle (raw bytes)? */
static bool tree_has(const char *dir, const char *needle)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;
	size_t nl = strlen(needle);

	while (d && !found && (e = readdir(d))) {
		char p[1024];
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (lstat(p, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			found = tree_has(p, needle);
		} else if (S_ISREG(st.st_mode)) {
			FILE *f = fopen(p, "rb");
			char *buf = malloc((size_t)st.st_size + 1);

			if (f && buf && fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size)
				found = memmem(buf, (size_t)st.st_size, needle, nl) != NULL;
			if (f)
				fclose(f);
			free(buf);
		}
	}
	if (d)
		closedir(d);
	return found;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, len = 0, n;

	if (!f)
		return NULL;
	do {
		if (len + 4096 + 1 > cap) {
			cap = cap ? 2 * cap : 65536;
			buf = realloc(buf, cap);
		}
		n = fread(buf + len, 1, 4096, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/* The audit log as written so far: the writer thread is asynchronous, so
 * flush the vault's queue first. */
static char *slurp_audit(struct vv_vault *v)
{
	if (v && v->aud.log)
		vv_audit_flush(v->aud.log);
	return slurp(alog);
}

int main(void)
{
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF, .state_dir = state,
				   .audit_log = alog };
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	static const char *const verbs[] = { "user.add", "user.list", "user.show", "user.delete",
					     "user.passwd", "user.role", "user.uids", "key.create",
					     "key.list", "key.revoke" };
	char token[128], token2[128], token3[128], token4[128], secret[128], cmd[700], gidtxt[32];
	struct sockaddr_storage in2 = peer("127.0.0.2"), in3 = peer("127.0.0.3");
	struct sockaddr_storage mapped = peer("::ffff:127.0.0.2");
	struct vv_admin_reply rep;
	struct vv_vault *v = NULL;
	struct vv_auth a;
	struct vv_ident id;
	uint64_t before;
	uint32_t gid;
	char *audit;

	if (vv_crypto_init() < 0)
		tap_skip_all("no crypto");
	test_parsers();

	snprintf(top, sizeof(top), "%s/vv-user-XXXXXX", tmp);
	if (!mkdtemp(top))
		tap_skip_all("cannot make a temp dir");
	snprintf(store, sizeof(store), "%s/store", top);
	snprintf(state, sizeof(state), "%s/state", top);
	snprintf(alog, sizeof(alog), "%s/audit.log", top);
	is_int(vv_vault_create_store(store, PASS, strlen(PASS), VV_KDF_PROFILE_TEST,
				     VV_VAULT_ALLOW_TEST_KDF, 1000, 1000, state), 0, "create a store owned by 1000");
	is_int(vv_vault_open(store, PASS, strlen(PASS), &o, &v), 0, "open it");
	vault_user_clock(fake_now);
	fake_ns = 1780000000LL * 1000000000LL;
	vv_admin_reply_init(&rep);

	if (call(v, 0, "role.create", ARGS({ "name", "users" }), &rep) != 0 ||
	    call(v, 0, "role.create", ARGS({ "name", "adm" }), &rep) != 0) {
		tap_diag("no groups 'users' and 'adm': cannot test roles");
		return tap_done();
	}
	pthread_mutex_lock(&v->mu);
	vault_role_gid(v, "users", &gid);
	pthread_mutex_unlock(&v->mu);
	snprintf(gidtxt, sizeof(gidtxt), "%u", gid);

	/* Nobody but root and the owner touches users or keys. */
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		char msg[96];

		snprintf(msg, sizeof(msg), "%s as uid 1001: EACCES", verbs[i]);
		is_int(call(v, 1001, verbs[i], ARGS({ "name", "mallory" }, { "user", "mallory" },
						     { "password", "mallory's password" }), &rep),
		       VV_EACCES, msg);
		snprintf(msg, sizeof(msg), "%s as uid 65534: EACCES", verbs[i]);
		is_int(call(v, 65534, verbs[i], ARGS({ "name", "mallory" }), &rep), VV_EACCES, msg);
	}
	ok(strstr(rep.msg, "only root or the vault's owner") != NULL, "the refusal says who may");
	is_int(call(v, 0, "user.list", NULL, 0, &rep), 0, "user.list");
	ok(!strstr(rep.body, "mallory"), "no refused request made a user");

	/* user.add: the happy path and every mistake, each changing nothing. */
	is_int(call(v, 0, "user.add", ARGS({ "name", "alice" }, { "uid", "5000" }, { "role", "users" },
					  { "password", PW_ALICE }), &rep), 0, "user.add alice");
	ok(strstr(rep.body, "uid 5000") != NULL, "user.add says the uid");
	is_int(call(v, 0, "user.add", ARGS({ "name", "alice" }, { "uid", "5001" }), &rep), VV_EEXIST,
	       "user.add alice again: EEXIST");
	ok(strstr(rep.msg, "alice") && strstr(rep.msg, "exists"), "duplicate: the message says so");
	is_int(call(v, 0, "user.add", ARGS({ "name", "Bad Name" }), &rep), VV_EINVAL,
	       "user.add a bad name: EINVAL");
	ok(strstr(rep.msg, "user name") != NULL, "bad name: the message says what a name is");
	is_int(call(v, 0, "user.add", NULL, 0, &rep), VV_EINVAL, "user.add without a name: EINVAL");
	is_int(call(v, 0, "user.add", ARGS({ "name", "carol" }, { "uid", "0" }), &rep), VV_EINVAL,
	       "user.add uid 0: EINVAL");
	ok(strstr(rep.msg, "root") != NULL, "uid 0: the message says why");
	is_int(call(v, 0, "user.add", ARGS({ "name", "carol" }, { "uid", "12x" }), &rep), VV_EINVAL,
	       "user.add uid 12x: EINVAL");
	is_int(call(v, 0, "user.add", ARGS({ "name", "carol" }, { "role", "no-such-role" }), &rep),
	       VV_ENOENT, "user.add with an unknown role: ENOENT");
	ok(strstr(rep.msg, "no-such-role") != NULL, "unknown role: the message names it");
	is_int(call(v, 0, "user.add", ARGS({ "name", "carol" }, { "password", "short" }), &rep),
	       VV_EINVAL, "user.add with a short password: EINVAL");
	is_int(call(v, 0, "user.show", ARGS({ "name", "carol" }), &rep), VV_ENOENT,
	       "no failed user.add left a user");

	/* Allocation from the range, skipping local accounts and vault users. */
	is_int(call(v, 0, "user.add", ARGS({ "name", "bob" }, { "role", "users" }, { "role", "adm" }),
		     &rep), 0, "user.add bob, uid allocated");
	ok(strstr(rep.body, "uid 2100000000") != NULL, "the first uid of the default range");
	is_int(call(v, 0, "user.add", ARGS({ "name", "bob2" }), &rep), 0, "user.add bob2");
	ok(strstr(rep.body, "uid 2100000001") != NULL, "the next one");
	is_int(call(v, 0, "user.uids", ARGS({ "first", "65534" }, { "last", "65534" }), &rep), 0,
	       "user.uids 65534-65534 (nobody's uid)");
	is_int(call(v, 0, "user.add", ARGS({ "name", "dave" }), &rep), VV_ENOSPC,
	       "a range holding only a local account: ENOSPC");
	ok(strstr(rep.msg, "65534") != NULL, "the message names the range");
	is_int(call(v, 0, "user.uids", ARGS({ "first", "12" }, { "last", "20" }), &rep), VV_EINVAL,
	       "user.uids below 1000: EINVAL");
	is_int(call(v, 0, "user.uids", ARGS({ "first", "3000" }, { "last", "2000" }), &rep), VV_EINVAL,
	       "user.uids reversed: EINVAL");
	is_int(call(v, 0, "user.uids", NULL, 0, &rep), 0, "user.uids shows the range");
	ok(strstr(rep.body, "65534-65534") != NULL, "unchanged by the refused requests");
	is_int(call(v, 0, "user.uids", ARGS({ "first", "2100000000" }, { "last", "2100999999" }),
		     &rep), 0, "user.uids back to the default");

	/* Lists: names, uids, roles; never a hash. */
	is_int(call(v, 0, "user.list", NULL, 0, &rep), 0, "user.list");
	ok(strstr(rep.body, "alice") && strstr(rep.body, "bob") && strstr(rep.body, "5000"),
	   "lists the users");
	ok(strstr(rep.body, "adm,users") != NULL, "with their roles");
	ok(!strstr(rep.body, "argon2"), "no password hash in the list");
	is_int(call(v, 1000, "user.list", ARGS({ "json", "1" }), &rep), 0, "user.list json, as the owner");
	ok(strstr(rep.body, "{\"name\":\"alice\",\"uid\":5000,\"password\":true,\"roles\":[\"users\"]"),
	   "json: alice");
	ok(strstr(rep.body, "\"name\":\"bob\"") && strstr(rep.body, "\"password\":false"),
	   "json: bob without password");
	is_int(call(v, 0, "user.show", ARGS({ "name", "alice" }), &rep), 0, "user.show alice");
	ok(strstr(rep.body, "password  set") && !strstr(rep.body, "argon2"), "show: no hash");

	/* Keys. */
	is_int(call(v, 0, "key.create", ARGS({ "user", "alice" }, { "label", "gpu box" },
					    { "expires", "1h" }, { "allow", "127.0.0.2" },
					    { "allow", "2001:db8::/32" }), &rep), 0,
	       "key.create for alice, 1h, two networks");
	ok(rep.body && strlen(rep.body) == VV_KEY_TOKEN_CHARS + 1 && rep.body[VV_KEY_TOKEN_CHARS] == '\n',
	   "the body is the token and a newline, nothing else");
	snprintf(token, sizeof(token), "%.*s", VV_KEY_TOKEN_CHARS, rep.body ? rep.body : "");
	snprintf(secret, sizeof(secret), "%s", token + 21);
	ok(strstr(rep.msg, "shown once") != NULL, "the message says it is shown once");
	is_int(call(v, 0, "key.create", ARGS({ "user", "alice" }), &rep), 0,
	       "key.create for alice, no expiry, any address");
	snprintf(token2, sizeof(token2), "%.*s", VV_KEY_TOKEN_CHARS, rep.body ? rep.body : "");
	ok(strcmp(token, token2) != 0, "two keys differ");
	is_int(call(v, 0, "key.create", ARGS({ "user", "bob" }, { "json", "1" }), &rep), 0,
	       "key.create for bob, json");
	ok(rep.body && strstr(rep.body, "\"token\":\"vvk_"), "json: the token");
	{
		const char *t = rep.body ? strstr(rep.body, "vvk_") : NULL;

		snprintf(token3, sizeof(token3), "%.*s", VV_KEY_TOKEN_CHARS, t ? t : "");
	}

	is_int(call(v, 0, "key.list", NULL, 0, &rep), 0, "key.list");
	is_int((int)count(rep.body, "active"), 3, "three active keys");
	ok(!strstr(rep.body, secret), "key.list never shows a secret");
	ok(strstr(rep.body, "127.0.0.2/32,2001:db8::/32") != NULL, "key.list shows the networks");
	is_int(call(v, 0, "key.list", ARGS({ "user", "bob" }, { "json", "1" }), &rep), 0,
	       "key.list bob json");
	is_int((int)count(rep.body, "\"id\""), 1, "bob has one key");
	is_int(call(v, 0, "key.list", ARGS({ "user", "nobody-here" }), &rep), VV_ENOENT,
	       "key.list of an unknown user: ENOENT");

	/* Mistakes in key.create change nothing. */
	is_int(call(v, 0, "key.create", ARGS({ "user", "alice" }, { "allow", "10.0.0.1/8" }), &rep),
	       VV_EINVAL, "key.create with host bits in a CIDR: EINVAL");
	ok(strstr(rep.msg, "10.0.0.1/8") != NULL, "bad CIDR: the message names it");
	is_int(call(v, 0, "key.create", ARGS({ "user", "alice" }, { "allow", "10.0.0.0/8" },
					    { "allow", "fe80::/xx" }), &rep),
	       VV_EINVAL, "key.create with a bad second CIDR: EINVAL");
	is_int(call(v, 0, "key.create", ARGS({ "user", "alice" }, { "expires", "90" }), &rep),
	       VV_EINVAL, "key.create with a bad duration: EINVAL");
	ok(strstr(rep.msg, "90d") != NULL, "bad duration: the message shows the form");
	is_int(call(v, 0, "key.create", ARGS({ "user", "alice" }, { "label", "a\tb" }), &rep),
	       VV_EINVAL, "key.create with a control character in the label: EINVAL");
	is_int(call(v, 0, "key.create", ARGS({ "user", "zed" }), &rep), VV_ENOENT,
	       "key.create for an unknown user: ENOENT");
	is_int(call(v, 0, "key.list", NULL, 0, &rep), 0, "key.list");
	is_int((int)count(rep.body, "active"), 3, "still three keys");

	/* Authentication by key. */
	is_int(vv_vault_auth_key(v, token, SA(in2), &a), 0, "auth: alice's key from 127.0.0.2");
	is_int(a.uid, 5000, "auth: acts as uid 5000");
	is_int(a.ngroups, 1, "auth: one role");
	is_int(a.groups[0], gid, "auth: the gid of 'users'");
	is_str(a.user, "alice", "auth: the user");
	ok(strlen(a.key_id) == 16 && strncmp(token + 4, a.key_id, 16) == 0, "auth: the key id");
	vv_auth_ident(&a, 77, &id);
	ok(id.uid == 5000 && id.pid == 77 && id.ngroups == 1 && id.groups == a.groups,
	   "vv_auth_ident");
	is_int(vv_vault_auth_key(v, token, SA(mapped), &a), 0, "auth: from ::ffff:127.0.0.2 (IPv4)");
	is_int(vv_vault_auth_key(v, token, SA(in3), &a), VV_EACCES, "auth: from 127.0.0.3: EACCES");
	is_int(a.uid, 0, "auth: a refusal leaves nothing behind");
	is_int(vv_vault_auth_key(v, token, NULL, &a), VV_EACCES, "auth: no address, key with CIDRs");
	is_int(vv_vault_auth_key(v, token2, NULL, &a), 0, "auth: a key without CIDRs, no address");
	is_int(vv_vault_auth_key(v, token3, SA(in3), &a), 0, "auth: bob's key");
	is_int(a.ngroups, 2, "auth: bob has two roles");
	{
		char bad[128];

		snprintf(bad, sizeof(bad), "%s", token);
		bad[30] = bad[30] == 'A' ? 'B' : 'A';
		is_int(vv_vault_auth_key(v, bad, SA(in2), &a), VV_EACCES, "auth: wrong secret");
		snprintf(bad, sizeof(bad), "%s", token);
		bad[5] = bad[5] == '0' ? '1' : '0';
		is_int(vv_vault_auth_key(v, bad, SA(in2), &a), VV_EACCES, "auth: unknown id");
		is_int(vv_vault_auth_key(v, "vvk_nonsense", SA(in2), &a), VV_EACCES, "auth: malformed");
		is_int(vv_vault_auth_key(v, NULL, SA(in2), &a), VV_EACCES, "auth: no token");
		/* Another key's secret under alice's id. */
		snprintf(bad, sizeof(bad), "%.21s%s", token, token2 + 21);
		is_int(vv_vault_auth_key(v, bad, SA(in2), &a), VV_EACCES, "auth: a swapped secret");
	}
	is_int(call(v, 0, "key.list", ARGS({ "user", "alice" }, { "json", "1" }), &rep), 0, "key.list");
	ok(strstr(rep.body, "\"last_used\":\"2026-") != NULL, "last use recorded");

	/* The listener's pre-TLS question: does some key's CIDR admit peer? */
	{
		struct sockaddr_storage v6in = peer("2001:db8:1::9"), v6out = peer("2001:db9::9");

		ok(vv_vault_keys_admit(v, SA(in2)), "admit: 127.0.0.2 is in alice's key's CIDRs");
		ok(vv_vault_keys_admit(v, SA(mapped)), "admit: so is ::ffff:127.0.0.2");
		ok(vv_vault_keys_admit(v, SA(v6in)), "admit: 2001:db8:1::9 too");
		ok(!vv_vault_keys_admit(v, SA(in3)), "admit: 127.0.0.3 is in none (a key without "
		   "CIDRs widens nothing)");
		ok(!vv_vault_keys_admit(v, SA(v6out)), "admit: nor 2001:db9::9");
		ok(!vv_vault_keys_admit(v, NULL), "admit: no address, no");
	}

	/* It is asked for every connection from outside --allow, a flood
	 * included: answered from memory, meta.db read again only after the
	 * keys changed; a key made or revoked counts at the next question. */
	{
		struct sockaddr_storage in9 = peer("127.0.0.9"), v6in = peer("2001:db8:1::9");
		char tok9[VV_KEY_TOKEN_CHARS + 1], id9[VV_KEY_ID_CHARS + 1];
		unsigned reads;
		int yes = 0;

		vault_admit_max_set(0);
		for (int i = 0; i < 1000; i++)
			yes += vv_vault_keys_admit(v, i % 2 ? SA(in3) : SA(in2));
		is_int(yes, 500, "admit: 1000 questions, the same answers");
		reads = vault_admit_reads();
		ok(reads <= 1, "admit: the keys were read from meta.db once at most");
		ok(!vv_vault_keys_admit(v, SA(in9)), "admit: 127.0.0.9 in no key's CIDRs");
		is_int(call(v, 0, "key.create", ARGS({ "user", "bob" }, { "allow", "127.0.0.9" }), &rep),
		       0, "key.create for bob from 127.0.0.9");
		snprintf(tok9, sizeof(tok9), "%.*s", VV_KEY_TOKEN_CHARS, rep.body ? rep.body : "");
		snprintf(id9, sizeof(id9), "%.16s", tok9 + 4);
		ok(vv_vault_keys_admit(v, SA(in9)), "admit: the new key's CIDR admits at once");
		is_int((int)vault_admit_reads(), (int)reads + 1, "admit: read again after the change, once");
		is_int(vv_vault_auth_key_cidr(v, tok9, SA(in9), &a), 0,
		       "key-only: a key whose CIDRs hold the address logs in");
		is_int(vv_vault_auth_key_cidr(v, token2, SA(in9), &a), VV_EACCES,
		       "key-only: a key without CIDRs is refused");
		is_int(vv_vault_auth_key(v, token2, SA(in9), &a), 0,
		       "(which logs in from a whitelisted address)");
		is_int(vv_vault_auth_key_cidr(v, token, SA(in9), &a), VV_EACCES,
		       "key-only: another key's CIDRs do not hold it: refused");
		is_int(vv_vault_auth_not_key(v, "password", NULL, SA(in9)), VV_EACCES,
		       "key-only: a password login is refused");
		{
			char *au = slurp_audit(v);
			ok(au && strstr(au, "address admitted for a key only: this key lists no CIDRs"),
			   "key-only: audited: the key lists no CIDRs");
			ok(au && strstr(au, "password: address admitted for a key only"),
			   "key-only: audited: the password refused");
			free(au);
		}
		/* More CIDRs than the table holds (1, from the next read on):
		 * meta.db answers the rest. */
		vault_admit_max_set(1);
		is_int(call(v, 0, "key.revoke", ARGS({ "id", id9 }), &rep), 0, "key.revoke bob's");
		ok(!vv_vault_keys_admit(v, SA(in9)), "admit: the revoked key's CIDR admits no more");
		ok(vv_vault_keys_admit(v, SA(in2)), "admit, table of 1: the first CIDR");
		ok(vv_vault_keys_admit(v, SA(v6in)), "admit, table of 1: the second, from meta.db");
		ok(!vv_vault_keys_admit(v, SA(in3)), "admit, table of 1: still not 127.0.0.3");
		vault_admit_max_set(0);
	}

	/* Expiry: an hour later the first key is refused, the second is not. */
	fake_ns += 3600LL * 1000000000LL;
	is_int(vv_vault_auth_key(v, token, SA(in2), &a), VV_EACCES, "auth: expired key: EACCES");
	ok(!vv_vault_keys_admit(v, SA(in2)), "admit: an expired key's CIDRs admit no one");
	is_int(vv_vault_auth_key(v, token2, NULL, &a), 0, "auth: the key without expiry still works");
	is_int(call(v, 0, "key.list", NULL, 0, &rep), 0, "key.list");
	is_int((int)count(rep.body, "expired"), 1, "one key expired");

	/* Revocation. */
	is_int(call(v, 0, "key.revoke", ARGS({ "id", a.key_id }), &rep), 0, "key.revoke");
	is_int(vv_vault_auth_key(v, token2, NULL, &a), VV_EACCES, "auth: revoked key: EACCES");
	is_int(call(v, 0, "key.revoke", ARGS({ "id", "0123456789abcdef" }), &rep), VV_ENOENT,
	       "key.revoke of an unknown id: ENOENT");
	is_int(call(v, 0, "key.revoke", ARGS({ "id", "vvk_x" }), &rep), VV_EINVAL,
	       "key.revoke of a malformed id: EINVAL");
	/* A whole token as the id (a leaked key pasted to revoke it) revokes
	 * its key; the audit record names only the id, and no verb's target
	 * nor an unknown verb's name keeps a token's secret. */
	is_int(call(v, 0, "key.create", ARGS({ "user", "bob" }), &rep), 0, "key.create: a 4th key");
	snprintf(token4, sizeof(token4), "%.*s", VV_KEY_TOKEN_CHARS, rep.body ? rep.body : "");
	is_int(call(v, 0, "key.revoke", ARGS({ "id", token4 }), &rep), 0, "key.revoke id=<full token>");
	ok(!strstr(rep.body, token4 + 21) && strstr(rep.body, "revoked"), "the reply names only the id");
	is_int(vv_vault_auth_key(v, token4, NULL, &a), VV_EACCES, "auth: that key is revoked");
	{
		char junk[160];
		snprintf(junk, sizeof(junk), "%.20sZZ%s", token4, token4 + 20);
		is_int(call(v, 0, "key.revoke", ARGS({ "id", junk }), &rep), VV_EINVAL,
		       "key.revoke of a token-like id with a bad id part: EINVAL");
		ok(!strstr(rep.msg, token4 + 21), "the refusal does not echo it");
	}
	is_int(call(v, 0, "user.show", ARGS({ "name", token4 }), &rep), VV_EINVAL,
	       "user.show name=<token>: EINVAL");
	is_int(call(v, 0, "key.list", ARGS({ "user", token4 }), &rep) < 0, 1,
	       "key.list user=<token>: refused");
	is_int(call(v, 0, "role.create", ARGS({ "name", token4 }), &rep) < 0, 1,
	       "role.create name=<token>: refused");
	is_int(call(v, 0, token4, NULL, 0, &rep), VV_EINVAL, "a token as the verb: EINVAL");
	is_int(call(v, 0, "user.passwd", ARGS({ "name", "alice" }, { "password", token4 }), &rep), 0,
	       "user.passwd with a token as the password");
	is_int(call(v, 0, "user.passwd", ARGS({ "name", "alice" }, { "password", PW_ALICE }), &rep), 0,
	       "and back");
	{
		char *au = slurp_audit(v);
		ok(au && !strstr(au, token4 + 21), "no part of the 4th key's secret in the audit log");
		ok(au && strstr(au, "key.revoke ") && strstr(au, token4 + 4) == NULL,
		   "(not even the id with its separator)");
		{
			char idrec[64];
			snprintf(idrec, sizeof(idrec), "key.revoke %.16s", token4 + 4);
			ok(au && strstr(au, idrec), "key.revoke is recorded with the key id");
		}
		ok(au && strstr(au, "key.revoke (not a key id)"), "a bad id is recorded as such");
		ok(au && strstr(au, "(secret withheld)"), "other targets keep the id, withhold the secret");
		free(au);
	}

	/* Authentication by password: every failure costs one Argon2id. */
	before = vv_pwhash_verify_count();
	is_int(vv_vault_auth_password(v, "alice", PW_ALICE, strlen(PW_ALICE), SA(in2), &a), 0,
	       "auth: alice's password");
	is_int(a.uid, 5000, "auth: uid");
	ok(a.key_id[0] == '\0', "auth: no key id after a password login");
	is_int(vv_vault_auth_password(v, "alice", "wrong password", 14, SA(in2), &a), VV_EACCES,
	       "auth: wrong password");
	is_int(vv_vault_auth_password(v, "nosuchuser", PW_ALICE, strlen(PW_ALICE), SA(in2), &a),
	       VV_EACCES, "auth: unknown user");
	is_int(vv_vault_auth_password(v, "bob", "anything at all", 15, SA(in2), &a), VV_EACCES,
	       "auth: a user without a password");
	is_int(vv_vault_auth_password(v, "Not A Name", "anything at all", 15, SA(in2), &a), VV_EACCES,
	       "auth: an invalid name");
	is_int(vv_vault_auth_password(v, "alice", NULL, 0, SA(in2), &a), VV_EACCES,
	       "auth: no password");
	is_int((int)(vv_pwhash_verify_count() - before), 6,
	       "every attempt, known user or not, cost exactly one Argon2id");
	{
		double known = median_login(v, "alice", "wrong password", 3);
		double unknown = median_login(v, "nosuchuser", "wrong password", 3);
		double nopw = median_login(v, "bob", "wrong password", 3);
		char d[160];

		snprintf(d, sizeof(d), "login medians of 3: wrong password %.3f s, unknown user "
			 "%.3f s (x%.2f), user without password %.3f s (x%.2f)", known, unknown,
			 unknown / known, nopw, nopw / known);
		tap_diag(d);
	}

	/* A password session is re-checked without Argon2id: same user row,
	 * same stored hash; a passwd ends it. */
	{
		struct vv_auth was, now_;

		is_int(vv_vault_auth_password(v, "alice", PW_ALICE, strlen(PW_ALICE), NULL, &was), 0,
		       "auth for a session");
		before = vv_pwhash_verify_count();
		is_int(vv_vault_auth_password_recheck(v, &was, NULL, &now_), 0,
		       "recheck: the session's login still holds");
		is_int((int)(vv_pwhash_verify_count() - before), 0, "recheck costs no Argon2id");
		is_int(now_.uid, was.uid, "recheck: the user as now");
		ok(now_.user_id == was.user_id && now_.user_id > 0, "recheck: the same user row");
		is_int(call(v, 0, "user.passwd", ARGS({ "name", "alice" }, { "password", PW_ALICE2 }),
			    &rep), 0, "user.passwd alice");
		is_int(vv_vault_auth_password_recheck(v, &was, NULL, &now_), VV_EACCES,
		       "recheck after passwd: EACCES");
		char *au = slurp_audit(v);
		ok(au && strstr(au, "password session: the user's password was changed") != NULL,
		   "the end is audited with its reason");
		free(au);
		is_int(call(v, 0, "user.passwd", ARGS({ "name", "alice" }, { "password", PW_ALICE }),
			    &rep), 0, "user.passwd back to the first password");
		is_int(vv_vault_auth_password_recheck(v, &was, NULL, &now_), VV_EACCES,
		       "recheck after a passwd to the same password: EACCES (salted anew)");
		is_int(call(v, 0, "user.add", ARGS({ "name", "carol" }, { "password", PW_ALICE }),
			    &rep), 0, "user.add carol with a password");
		is_int(vv_vault_auth_password(v, "carol", PW_ALICE, strlen(PW_ALICE), NULL, &was), 0,
		       "carol's session");
		is_int(call(v, 0, "user.delete", ARGS({ "name", "carol" }), &rep), 0, "carol deleted");
		is_int(vv_vault_auth_password_recheck(v, &was, NULL, &now_), VV_EACCES,
		       "recheck after the user's delete: EACCES");
		is_int(call(v, 0, "user.add", ARGS({ "name", "carol" }, { "password", PW_ALICE }),
			    &rep), 0, "a new carol, same name and password");
		is_int(vv_vault_auth_password_recheck(v, &was, NULL, &now_), VV_EACCES,
		       "the old session is not the new carol's: EACCES");
		is_int(call(v, 0, "user.delete", ARGS({ "name", "carol" }), &rep), 0, "carol gone");
		memset(&now_, 0, sizeof(now_));
		snprintf(now_.user, sizeof(now_.user), "nosuchuser");
		is_int(vv_vault_auth_password_recheck(v, &now_, NULL, &now_), VV_EACCES,
		       "recheck of an unknown user: EACCES");
	}
	is_int(call(v, 0, "user.passwd", ARGS({ "name", "alice" }, { "password", PW_ALICE2 }), &rep),
	       0, "user.passwd alice");
	is_int(vv_vault_auth_password(v, "alice", PW_ALICE, strlen(PW_ALICE), NULL, &a), VV_EACCES,
	       "auth: the old password no longer works");
	is_int(vv_vault_auth_password(v, "alice", PW_ALICE2, strlen(PW_ALICE2), NULL, &a), 0,
	       "auth: the new one does");
	is_int(call(v, 0, "user.passwd", ARGS({ "name", "alice" }, { "password", "2short" }), &rep),
	       VV_EINVAL, "user.passwd too short: EINVAL");
	is_int(call(v, 0, "user.passwd", ARGS({ "name", "alice" }), &rep), VV_EINVAL,
	       "user.passwd without a password: EINVAL");
	is_int(call(v, 0, "user.passwd", ARGS({ "name", "zed" }, { "password", PW_ALICE }), &rep),
	       VV_ENOENT, "user.passwd of an unknown user: ENOENT");

	/* Roles. */
	is_int(call(v, 0, "user.role", ARGS({ "name", "alice" }, { "add", "adm" }), &rep), 0,
	       "user.role alice add adm");
	ok(strstr(rep.body, "adm,users") != NULL, "shows the roles now held");
	is_int(call(v, 0, "user.role", ARGS({ "name", "alice" }, { "add", "adm" }), &rep), VV_EEXIST,
	       "adding a held role: EEXIST");
	is_int(call(v, 0, "user.role", ARGS({ "name", "alice" }, { "remove", "users" },
					   { "add", "no-such-role" }), &rep),
	       VV_ENOENT, "adding an unknown role: ENOENT");
	is_int(call(v, 0, "user.role", ARGS({ "name", "alice" }, { "remove", "nogroup" }), &rep),
	       VV_ENOENT, "removing a role not held: ENOENT");
	is_int(call(v, 0, "user.role", ARGS({ "name", "alice" }), &rep), VV_EINVAL,
	       "user.role without add or remove: EINVAL");
	is_int(call(v, 0, "user.show", ARGS({ "name", "alice" }, { "json", "1" }), &rep), 0, "show");
	ok(strstr(rep.body, "\"roles\":[\"adm\",\"users\"]") != NULL,
	   "the refused changes changed nothing");
	is_int(call(v, 0, "user.role", ARGS({ "name", "alice" }, { "remove", "users" }), &rep), 0,
	       "user.role alice remove users");
	is_int(vv_vault_auth_password(v, "alice", PW_ALICE2, strlen(PW_ALICE2), NULL, &a), 0, "auth");
	is_int(a.ngroups, 1, "one role now");
	ok(a.groups[0] != gid, "not 'users'");

	/* Deleting a role that vault users hold: refused, naming who, unless
	 * revoke_all; then taken from them with the role, so a role of the
	 * same name created later gives nothing back. */
	is_int(call(v, 0, "role.delete", ARGS({ "name", "adm" }), &rep), VV_EBUSY,
	       "role.delete of a role alice and bob hold: EBUSY");
	ok(strstr(rep.msg, "held by 2 vault users (e.g. alice)") && strstr(rep.msg, "--revoke-all"),
	   "the message names the holder and the way out");
	is_int(call(v, 0, "user.show", ARGS({ "name", "alice" }, { "json", "1" }), &rep), 0, "show");
	ok(strstr(rep.body, "\"roles\":[\"adm\"]") != NULL, "the refusal changed nothing");
	is_int(call(v, 0, "role.delete", ARGS({ "name", "adm" }, { "revoke_all", "1" }), &rep), 0,
	       "role.delete adm revoke_all");
	ok(strstr(rep.body, "taken from 2 vault users") != NULL, "says it was taken from both");
	is_int(call(v, 0, "role.create", ARGS({ "name", "adm" }), &rep), 0, "role adm created again");
	is_int(call(v, 0, "user.show", ARGS({ "name", "alice" }, { "json", "1" }), &rep), 0, "show");
	ok(strstr(rep.body, "\"roles\":[]") != NULL, "alice holds no role: the new adm is not hers");
	is_int(vv_vault_auth_password(v, "alice", PW_ALICE2, strlen(PW_ALICE2), NULL, &a), 0, "auth");
	is_int(a.ngroups, 0, "her login carries no role's gid");
	is_int(call(v, 0, "user.role", ARGS({ "name", "alice" }, { "add", "adm" }), &rep), 0,
	       "given back explicitly, it counts again");

	/* Delete: keys revoked with the user, and a new user of the same name
	 * does not inherit them. */
	is_int(call(v, 0, "user.delete", ARGS({ "name", "bob" }), &rep), 0, "user.delete bob");
	ok(strstr(rep.body, "1 API key(s) revoked") != NULL, "says its key was revoked");
	is_int(vv_vault_auth_key(v, token3, SA(in3), &a), VV_EACCES, "auth: the deleted user's key");
	is_int(call(v, 0, "user.add", ARGS({ "name", "bob" }), &rep), 0, "a new bob");
	is_int(vv_vault_auth_key(v, token3, SA(in3), &a), VV_EACCES, "auth: the old key stays dead");
	is_int(call(v, 0, "user.delete", ARGS({ "name", "bob" }), &rep), 0, "user.delete bob again");
	is_int(call(v, 0, "user.delete", ARGS({ "name", "bob" }), &rep), VV_ENOENT,
	       "user.delete of an unknown user: ENOENT");

	/* The Argon2id gate: at most 2 checks at once (each 64 MiB); a flood
	 * waits its turn, or is refused with EBUSY (audited) when the queue
	 * is full or the wait runs out; a login afterwards works. */
	vault_auth_gate_set(2, 64, 120000);
	is_int(pw_flood(v, 12, "alice", PW_ALICE2, 0), 12, "12 logins at once all succeed (they wait)");
	ok(vault_auth_gate_peak() >= 1 && vault_auth_gate_peak() <= 2,
	   "never more than 2 Argon2id evaluations at once");
	is_int(pw_flood(v, 12, "alice", "wrong password", VV_EACCES), 12,
	       "12 wrong passwords at once: each EACCES");
	ok(vault_auth_gate_peak() <= 2, "still at most 2 at once");
	vault_auth_gate_set(0, 0, 0);
	is_int(vv_vault_auth_password(v, "alice", PW_ALICE2, strlen(PW_ALICE2), NULL, &a), VV_EBUSY,
	       "queue full: EBUSY at once");
	vault_auth_gate_set(0, 8, 50);
	is_int(pw_flood(v, 6, "alice", PW_ALICE2, VV_EBUSY), 6, "no room within the wait: EBUSY");
	vault_auth_gate_set(2, 64, 10000);
	is_int(vv_vault_auth_password(v, "alice", PW_ALICE2, strlen(PW_ALICE2), NULL, &a), 0,
	       "then a legitimate login succeeds");
	{
		char *au = slurp_audit(v);
		ok(au && strstr(au, "too many password checks at once") && strstr(au, "EBUSY"),
		   "the refusals are audited as EBUSY");
		free(au);
	}

	/* Reopen: everything persisted; read-only: verbs refuse, auth works. */
	is_int(vv_vault_close(v), 0, "close");
	v = NULL;
	is_int(vv_vault_open(store, PASS, strlen(PASS), &o, &v), 0, "reopen");
	is_int(call(v, 0, "user.show", ARGS({ "name", "alice" }), &rep), 0, "alice survived");
	is_int(vv_vault_auth_password(v, "alice", PW_ALICE2, strlen(PW_ALICE2), NULL, &a), 0,
	       "her password too");
	is_int(vv_vault_close(v), 0, "close");
	o.flags |= VV_VAULT_READONLY;
	v = NULL;
	is_int(vv_vault_open(store, PASS, strlen(PASS), &o, &v), 0, "open read-only");
	if (v) {
		is_int(call(v, 0, "user.add", ARGS({ "name", "erin" }), &rep), VV_EROFS,
		       "user.add read-only: EROFS");
		ok(strstr(rep.msg, "read-only") != NULL, "the message says read-only");
		is_int(vv_vault_auth_password(v, "alice", PW_ALICE2, strlen(PW_ALICE2), NULL, &a), 0,
		       "auth works read-only");
		is_int(vv_vault_close(v), 0, "close");
	}

	/* The audit log: the refusals, each with its reason; no secrets. */
	audit = slurp(alog);
	ok(audit != NULL, "read the audit log");
	if (audit) {
		ok(strstr(audit, "wrong secret") && strstr(audit, "unknown key") &&
		   strstr(audit, "expired") && strstr(audit, "revoked") &&
		   strstr(audit, "address not allowed") && strstr(audit, "malformed token") &&
		   strstr(audit, "wrong password") && strstr(audit, "unknown user") &&
		   strstr(audit, "no password set") && strstr(audit, "invalid user name"),
		   "each refusal has its own audit detail");
		ok(strstr(audit, "\"op\":\"auth\"") != NULL, "op auth");
		ok(strstr(audit, "127.0.0.3:40000") != NULL, "the client address");
		ok(strstr(audit, "user.add alice") != NULL, "admin records name the user");
		ok(strstr(audit, "user.passwd alice") != NULL, "user.passwd is recorded by name");
		ok(!strstr(audit, secret) && !strstr(audit, token2 + 21) && !strstr(audit, token3 + 21),
		   "no key secret in the audit log");
		ok(!strstr(audit, PW_ALICE) && !strstr(audit, PW_ALICE2) && !strstr(audit, "mallory's"),
		   "no password in the audit log");
		free(audit);
	}
	ok(!tree_has(store, secret) && !tree_has(store, token2 + 21), "no key secret in STORE");
	ok(!tree_has(store, PW_ALICE) && !tree_has(store, PW_ALICE2), "no password in STORE");
	ok(!tree_has(store, "alice") && !tree_has(store, "$argon2id$"),
	   "not even a user name or a hash in STORE (meta.db is encrypted)");
	ok(!tree_has(state, secret) && !tree_has(state, PW_ALICE2), "nothing in the state dir");

	vv_admin_reply_release(&rep);
	vault_user_clock(NULL);
	if (getenv("VV_TEST_KEEP"))
		return tap_done();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (system(cmd) != 0)
		tap_diag("could not remove the temp dir");
	(void)gidtxt;
	return tap_done();
}
