/*
 * test_admin.c - the control plane's dispatcher (vault_admin.c): verbs are
 * found, scopes decide who may run them, paths resolve without walking
 * outside the vault, replies carry a status and a message, and the reply
 * body grows and escapes JSON.  Transports and feature verbs have their
 * own tests.
 */
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

	is_int(vv_vault_close(v), 0, "close");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (system(cmd) != 0)
		tap_diag("could not remove the temp dir");
	return tap_done();
}
