/*
 * test_admin.c - the control plane's dispatcher (vault_admin.c): verbs are
 * found, scopes decide who may run them, paths resolve without walking
 * outside the vault, replies carry a status and a message, and the reply
 * body grows and escapes JSON.  Transports and feature verbs have their
 * own tests.
 */
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin_int.h"
#include "tap.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/vault.h"

#define PASS "admin unit test"

static char top[256], store[300], state[300];
static struct vv_ctx root_c = { .id = { .uid = 0, .gid = 0 }, .umask = 022, .comm = "test" };

static int call(struct vv_vault *v, uint32_t uid, const char *verb,
		const struct vv_admin_arg *args, size_t nargs, struct vv_admin_reply *rep)
{
	struct vv_admin_req rq = { .peer = { .uid = uid, .gid = uid, .pid = 1 },
				   .client = "local", .verb = verb, .nargs = nargs, .args = args };

	return vv_admin_call(v, &rq, rep);
}

/* An ACL blob: base entries plus group:gid:r-x. */
static size_t acl_with_group(uint8_t *b, uint32_t gid)
{
	static const uint16_t tags[] = { 1, 4, 8, 0x10, 0x20 };
	static const uint16_t perms[] = { 7, 5, 5, 5, 5 };
	size_t n = 4;

	b[0] = 2; b[1] = b[2] = b[3] = 0;
	for (int i = 0; i < 5; i++, n += 8) {
		uint32_t id = tags[i] == 8 ? gid : 0xFFFFFFFFu;

		b[n] = (uint8_t)tags[i]; b[n + 1] = 0;
		b[n + 2] = (uint8_t)perms[i]; b[n + 3] = 0;
		for (int k = 0; k < 4; k++)
			b[n + 4 + k] = (uint8_t)(id >> (8 * k));
	}
	return n;
}

/* role.create / list / delete against the system group "users". */
static void test_roles(struct vv_vault *v)
{
	struct group *gr = getgrnam("users");
	struct vv_admin_reply rep;
	uint32_t gid = 0;
	char gidtxt[16];
	uint8_t acl[64];
	size_t alen;

	if (!gr) {
		tap_diag("no group 'users': role tests skipped");
		return;
	}
	snprintf(gidtxt, sizeof(gidtxt), "%u", (unsigned)gr->gr_gid);
	vv_admin_reply_init(&rep);
	is_int(call(v, 1001, "role.create", (struct vv_admin_arg[]){ { "name", "users" } }, 1, &rep),
	       VV_EACCES, "role.create: not the owner: EACCES");
	is_int(call(v, 0, "role.create", (struct vv_admin_arg[]){ { "name", "users" } }, 1, &rep), 0,
	       "role.create users");
	is_int(call(v, 0, "role.create", (struct vv_admin_arg[]){ { "name", "users" } }, 1, &rep),
	       VV_EEXIST, "twice: EEXIST");
	is_int(call(v, 0, "role.create", (struct vv_admin_arg[]){ { "name", "no-such-group-xyz" } }, 1,
		    &rep), VV_ENOENT, "a group NSS does not know: ENOENT");
	ok(strstr(rep.msg, "groupadd") != NULL, "the message says how to create it");
	is_int(call(v, 0, "role.create", (struct vv_admin_arg[]){ { "name", "root" } }, 1, &rep),
	       VV_EINVAL, "the root group: EINVAL");
	is_int(call(v, 0, "role.create", (struct vv_admin_arg[]){ { "name", "a:b" } }, 1, &rep),
	       VV_EINVAL, "a name with ':': EINVAL");
	is_int(call(v, 0, "role.create", (struct vv_admin_arg[]){ { "name", "-x" } }, 1, &rep),
	       VV_EINVAL, "a name starting with '-': EINVAL");
	is_int(call(v, 0, "role.create", NULL, 0, &rep), VV_EINVAL, "no name: EINVAL");
	is_int(call(v, 0, "role.create", (struct vv_admin_arg[]){ { "name", "nogroup" },
							 { "gid", "12" } }, 2, &rep),
	       VV_EINVAL, "a gid that is not the group's: EINVAL");
	pthread_mutex_lock(&v->mu);
	is_int(vault_role_gid(v, "users", &gid), 0, "vault_role_gid");
	is_int((int)gid, (int)gr->gr_gid, "is the group's gid");
	is_int(vault_role_gid(v, "nogroup", &gid), VV_ENOENT, "not a role: ENOENT");
	pthread_mutex_unlock(&v->mu);
	is_int(call(v, 65534, "role.list", (struct vv_admin_arg[]){ { "json", "1" } }, 1, &rep), 0,
	       "role.list as anyone");
	ok(rep.body && strstr(rep.body, "\"role\":\"users\"") && strstr(rep.body, gidtxt),
	   "lists the role and its gid");

	alen = acl_with_group(acl, gr->gr_gid);
	is_int(vv_vault_setxattr(v, &root_c, VV_ROOT_INO + 0, "system.posix_acl_access", acl, alen, 0),
	       0, "an ACL on / names the role's group");
	is_int(call(v, 0, "role.list", NULL, 0, &rep), 0, "role.list");
	ok(rep.body && strstr(rep.body, "users") && strstr(rep.body, " /"), "shows where it is granted");
	is_int(call(v, 0, "role.delete", (struct vv_admin_arg[]){ { "name", "users" } }, 1, &rep),
	       VV_EBUSY, "delete while granted: EBUSY");
	ok(strstr(rep.msg, "revoke") != NULL, "the message says to revoke first");
	is_int(vv_vault_removexattr(v, &root_c, VV_ROOT_INO, "system.posix_acl_access"), 0,
	       "remove the ACL");
	is_int(call(v, 1001, "role.delete", (struct vv_admin_arg[]){ { "name", "users" } }, 1, &rep),
	       VV_EACCES, "delete by a non-owner: EACCES");
	is_int(call(v, 0, "role.delete", (struct vv_admin_arg[]){ { "name", "users" } }, 1, &rep), 0,
	       "delete");
	is_int(call(v, 0, "role.delete", (struct vv_admin_arg[]){ { "name", "users" } }, 1, &rep),
	       VV_ENOENT, "delete again: ENOENT");
	is_int(call(v, 0, "role.create", (struct vv_admin_arg[]){ { "name", "users" },
							 { "gid", gidtxt } }, 2, &rep),
	       0, "create again, with the matching gid");
	vv_admin_reply_release(&rep);
}

int main(void)
{
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT,
				   .state_dir = state };
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	struct vv_admin_reply rep;
	struct vv_vault *v = NULL;
	struct vv_attr a, c1;
	uint64_t ino = 0;
	char cmd[600];

	snprintf(top, sizeof(top), "%s/vv-admin-XXXXXX", tmp);
	if (!mkdtemp(top))
		tap_skip_all("cannot make a temp dir");
	snprintf(store, sizeof(store), "%s/store", top);
	snprintf(state, sizeof(state), "%s/state", top);
	is_int(vv_vault_create_store(store, PASS, strlen(PASS), VV_KDF_PROFILE_TEST,
				     VV_VAULT_ALLOW_TEST_KDF, 1000, 1000, state), 0, "create a store owned by 1000");
	is_int(vv_vault_open(store, PASS, strlen(PASS), &o, &v), 0, "open it");
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "c1", 0755, &c1), 0, "mkdir /c1");
	is_int(vv_vault_mkdir(v, &root_c, c1.ino, "d", 0755, &a), 0, "mkdir /c1/d");

	vv_admin_reply_init(&rep);
	is_int(call(v, 65534, "vault.ping", NULL, 0, &rep), 0, "ping: anyone may");
	ok(rep.body && strstr(rep.body, vv_store_id(v->store)), "ping: names the vault");
	ok(!strstr(rep.body, "owner"), "ping: nobody is not the owner");
	is_int(call(v, 1000, "vault.ping", (struct vv_admin_arg[]){ { "json", "1" } }, 1, &rep), 0,
	       "ping as the owner, json");
	ok(strstr(rep.body, "\"owner\":true") != NULL, "ping json: owner true");
	is_int(call(v, 0, "no.such", NULL, 0, &rep), VV_EINVAL, "unknown verb: EINVAL");
	ok(strstr(rep.msg, "no.such") != NULL, "unknown verb: the message names it");
	is_int(rep.status, VV_EINVAL, "status carries the code");

	ok(vault_admin_is_owner(v, &(struct vv_ident){ .uid = 0 }), "root is an owner");
	ok(vault_admin_is_owner(v, &(struct vv_ident){ .uid = 1000 }), "the root dir's uid is the owner");
	ok(!vault_admin_is_owner(v, &(struct vv_ident){ .uid = 1001 }), "1001 is not");

	pthread_mutex_lock(&v->mu);
	is_int(vault_admin_resolve(v, "/c1/d", &ino), 0, "resolve /c1/d");
	is_int((int)(ino == a.ino), 1, "to its inode");
	is_int(vault_admin_resolve(v, "//c1//d/", &ino), 0, "repeated slashes are fine");
	is_int(vault_admin_resolve(v, "/", &ino), 0, "resolve /");
	is_int((int)ino, VV_ROOT_INO, "to the root");
	is_int(vault_admin_resolve(v, "c1", &ino), VV_EINVAL, "relative: EINVAL");
	is_int(vault_admin_resolve(v, "/c1/../c1", &ino), VV_EINVAL, "..: EINVAL");
	is_int(vault_admin_resolve(v, "/c1/./d", &ino), VV_EINVAL, ".: EINVAL");
	is_int(vault_admin_resolve(v, "/c1/nope", &ino), VV_ENOENT, "missing: ENOENT");
	is_int(vault_admin_resolve(v, NULL, &ino), VV_EINVAL, "NULL: EINVAL");
	pthread_mutex_unlock(&v->mu);

	rep.len = 0;
	is_int(vault_admin_json_str(&rep, "a\"b\\c\n"), 0, "json string");
	is_str(rep.body, "\"a\\\"b\\\\c\\u000a\"", "json escapes quotes, backslashes, controls");
	rep.len = 0;
	for (int i = 0; i < 10000; i++)
		vault_admin_printf(&rep, "%d,", i);
	ok(rep.len > 40000 && rep.body[rep.len] == '\0', "body grows and stays terminated");
	is_int(vault_admin_fail(&rep, VV_EACCES, "x %d", 1), VV_EACCES, "fail returns its code");
	is_str(rep.msg, "x 1", "fail sets the message");
	vv_admin_reply_release(&rep);
	vv_admin_reply_release(NULL);

	test_roles(v);
	is_int(vv_vault_close(v), 0, "close");
	is_int(vv_vault_open(store, PASS, strlen(PASS), &o, &v), 0, "reopen");
	vv_admin_reply_init(&rep);
	is_int(call(v, 0, "role.list", NULL, 0, &rep), 0, "roles after reopen");
	ok(rep.body && strstr(rep.body, "users") != NULL, "the role survived the reopen");
	vv_admin_reply_release(&rep);
	is_int(vv_vault_close(v), 0, "close");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (system(cmd) != 0)
		tap_diag("could not remove the temp dir");
	return tap_done();
}
