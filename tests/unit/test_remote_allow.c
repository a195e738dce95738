/*
 * test_remote_allow.c - the remote listener's whitelist (remote_allow.c)
 * and its control verbs (vault_remote.c): CIDR parsing refuses what an
 * admin did not mean (host bits, bad prefixes), IPv4 rules judge
 * IPv4-mapped IPv6 peers, an empty list admits nobody, and allow.* are
 * the owner's only and say clearly when the daemon does not listen.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "vecvault/admin.h"
#include "vecvault/error.h"
#include "vecvault/remote.h"
#include "vecvault/vault.h"

#define PASS "remote allow unit test"

static struct sockaddr_storage ss;

static const struct sockaddr *v4(const char *a)
{
	struct sockaddr_in *s = (struct sockaddr_in *)&ss;
	memset(&ss, 0, sizeof(ss));
	s->sin_family = AF_INET;
	s->sin_port = htons(4242);
	inet_pton(AF_INET, a, &s->sin_addr);
	return (const struct sockaddr *)&ss;
}

static const struct sockaddr *v6(const char *a)
{
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
	memset(&ss, 0, sizeof(ss));
	s->sin6_family = AF_INET6;
	s->sin6_port = htons(4242);
	inet_pton(AF_INET6, a, &s->sin6_addr);
	return (const struct sockaddr *)&ss;
}

static bool in(const char *cidr, const struct sockaddr *sa)
{
	struct vv_cidr c;
	return vv_cidr_parse(cidr, &c) == 0 && vv_cidr_match(&c, sa);
}

static int call(struct vv_vault *v, uint32_t uid, const char *verb, const char *cidr,
		struct vv_admin_reply *rep)
{
	struct vv_admin_arg arg = { "cidr", cidr };
	struct vv_admin_req rq = { .peer = { .uid = uid, .gid = uid, .pid = 1 }, .client = "local",
				   .verb = verb, .nargs = cidr ? 1 : 0, .args = &arg };
	return vv_admin_call(v, &rq, rep);
}

int main(void)
{
	static const char *const bad[] = { "", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.1/8",
		"10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/8x", "10.0.0", "::1/129", "::1/64",
		"fe80::1%lo", "10.0.0.0/0008", "localhost", "1.2.3.4 " };
	struct vv_cidr c;
	char t[VV_CIDR_TEXT], top[256], store[300], state[300];
	int nbad = 0;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (vv_cidr_parse(bad[i], &c) == 0) {
			tap_diag(bad[i]);
			nbad++;
		}
	is_int(nbad, 0, "malformed CIDRs and host bits past the prefix are refused");
	ok(vv_cidr_parse("10.0.0.0/8", &c) == 0 && (vv_cidr_format(&c, t), !strcmp(t, "10.0.0.0/8")),
	   "10.0.0.0/8 formats back");
	ok(vv_cidr_parse("127.0.0.2", &c) == 0 && (vv_cidr_format(&c, t), !strcmp(t, "127.0.0.2/32")),
	   "a bare address is /32");
	ok(vv_cidr_parse("::1", &c) == 0 && (vv_cidr_format(&c, t), !strcmp(t, "::1/128")),
	   "::1 is /128");
	ok(vv_cidr_parse("0.0.0.0/0", &c) == 0 && c.bits == 96, "0.0.0.0/0 is the IPv4 space only");

	ok(in("127.0.0.0/8", v4("127.0.0.3")), "127.0.0.3 in 127.0.0.0/8");
	ok(!in("127.0.0.2/32", v4("127.0.0.3")), "127.0.0.3 not in 127.0.0.2/32");
	ok(in("127.0.0.2/32", v6("::ffff:127.0.0.2")), "mapped ::ffff:127.0.0.2 judged as IPv4: in");
	ok(!in("127.0.0.2/32", v6("::ffff:127.0.0.3")), "mapped ::ffff:127.0.0.3: not in");
	ok(!in("0.0.0.0/0", v6("::1")), "0.0.0.0/0 does not admit IPv6");
	ok(in("::/0", v4("8.8.8.8")) && in("::/0", v6("2001:db8::1")), "::/0 admits everyone");
	ok(in("::1", v6("::1")) && !in("::1", v4("127.0.0.1")), "::1 is not 127.0.0.1");
	ok(in("fd00::/8", v6("fd12::5")) && !in("fd00::/8", v6("fe80::1")), "IPv6 prefixes");
	ok(in("10.1.0.0/17", v4("10.1.127.255")) && !in("10.1.0.0/17", v4("10.1.128.0")),
	   "an odd prefix length cuts inside a byte");
	{
		struct sockaddr_un_like { sa_family_t f; char p[20]; } u = { AF_UNIX, "x" };
		ok(!in("::/0", (const struct sockaddr *)&u) && !in("::/0", NULL), "other families never match");
	}
	vv_sockaddr_format(v6("::ffff:127.0.0.2"), t);
	is_str(t, "127.0.0.2:4242", "a mapped peer is named as IPv4");
	vv_sockaddr_format(v6("::1"), t);
	is_str(t, "[::1]:4242", "an IPv6 peer in brackets");

	{
		struct vv_allow *a = NULL;
		struct vv_cidr l[4];
		is_int(vv_allow_new(&a), 0, "a new list");
		ok(!vv_allow_match(a, v4("127.0.0.1")), "an empty list admits nobody");
		vv_cidr_parse("127.0.0.2", &c);
		is_int(vv_allow_add(a, &c), 0, "add 127.0.0.2");
		is_int(vv_allow_add(a, &c), VV_EEXIST, "twice: EEXIST");
		ok(vv_allow_match(a, v4("127.0.0.2")) && !vv_allow_match(a, v4("127.0.0.3")), "matches");
		is_int((int)vv_allow_list(a, l, 4), 1, "one entry");
		is_int(vv_allow_remove(a, &c), 0, "remove it");
		is_int(vv_allow_remove(a, &c), VV_ENOENT, "again: ENOENT");
		ok(!vv_allow_match(a, v4("127.0.0.2")), "gone");
		vv_allow_free(a);
	}

	/* the verbs */
	{
		struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT,
					   .state_dir = state };
		const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
		struct vv_admin_reply rep;
		struct vv_vault *v = NULL;
		struct vv_allow *a = NULL;
		char cmd[400];

		snprintf(top, sizeof(top), "%s/vv-rallow-XXXXXX", tmp);
		if (!mkdtemp(top))
			tap_skip_all("cannot make a temp dir");
		snprintf(store, sizeof(store), "%s/store", top);
		snprintf(state, sizeof(state), "%s/state", top);
		is_int(vv_vault_create_store(store, PASS, strlen(PASS), VV_KDF_PROFILE_TEST,
					     VV_VAULT_ALLOW_TEST_KDF, 1000, 1000, state), 0, "a store owned by 1000");
		is_int(vv_vault_open(store, PASS, strlen(PASS), &o, &v), 0, "open it");
		vv_admin_reply_init(&rep);
		is_int(call(v, 0, "allow.list", NULL, &rep), VV_ENOTSUP, "no listener: ENOTSUP");
		ok(strstr(rep.msg, "--listen") != NULL, "the message says why");
		vv_allow_new(&a);
		vv_vault_set_allow(v, a);
		is_int(call(v, 1001, "allow.add", "0.0.0.0/0", &rep), VV_EACCES,
		       "allow.add by someone else: EACCES");
		is_int(call(v, 65534, "allow.list", NULL, &rep), VV_EACCES, "allow.list by nobody: EACCES");
		ok(!vv_allow_match(a, v4("1.2.3.4")), "and nothing was added");
		is_int(call(v, 1000, "allow.add", "10.0.0.1/8", &rep), VV_EINVAL, "host bits: EINVAL");
		ok(strstr(rep.msg, "10.0.0.1/8") != NULL, "the message names the argument");
		is_int(call(v, 1000, "allow.add", NULL, &rep), VV_EINVAL, "no cidr: EINVAL");
		is_int(call(v, 1000, "allow.add", "127.0.0.2", &rep), 0, "the owner adds 127.0.0.2");
		ok(vv_allow_match(a, v4("127.0.0.2")), "in force at once");
		is_int(call(v, 0, "allow.add", "::1", &rep), 0, "root adds ::1");
		is_int(call(v, 0, "allow.list", NULL, &rep), 0, "list");
		ok(rep.body && strstr(rep.body, "127.0.0.2/32\n") && strstr(rep.body, "::1/128\n") &&
		   strstr(rep.body, "# refused 0"), "lists both and the counters");
		is_int(call(v, 0, "allow.remove", "127.0.0.2/32", &rep), 0, "remove 127.0.0.2/32");
		is_int(call(v, 0, "allow.remove", "127.0.0.2/32", &rep), VV_ENOENT, "again: ENOENT");
		ok(!vv_allow_match(a, v4("127.0.0.2")), "removed at once");
		vv_vault_set_allow(v, NULL);
		vv_allow_free(a);
		vv_admin_reply_release(&rep);
		vv_vault_close(v);
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
		if (system(cmd) != 0)
			tap_diag("could not remove the temp dir");
	}
	return tap_done();
}
