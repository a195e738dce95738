/*
 * vault_remote.c - the remote listener's side of the vault: its whitelist
 * as control verbs, and its audit records (remote.h, docs/remote.md).
 *
 * Verbs (ADMIN_OWNER: the whitelist decides who may even try to log in):
 *   allow.add {cidr}     admit a CIDR from now on
 *   allow.remove {cidr}  stop admitting it; connections already open stay
 *                        (they were admitted and authenticated)
 *   allow.list {json?}   the CIDRs and the listener's counters
 * Each answers VV_ENOTSUP when this daemon has no listener (no --listen).
 */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "admin_int.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/remote.h"

void vv_vault_set_allow(struct vv_vault *v, struct vv_allow *a)
{
	pthread_mutex_lock(&v->mu);
	v->allow = a;
	pthread_mutex_unlock(&v->mu);
}

void vv_vault_audit_remote(struct vv_vault *v, const char *client, const char *user,
			   const char *op, int result, const char *detail)
{
	struct vv_ctx c;

	memset(&c, 0, sizeof(c));
	/* No vault identity yet (or a failed one): the record names the
	 * daemon's own uid, the peer's address and the user name tried. */
	c.id.uid = (uint32_t)getuid();
	c.id.gid = (uint32_t)getgid();
	c.id.pid = (uint32_t)getpid();
	c.comm = "remote";
	c.client = client;
	c.user = user;
	pthread_mutex_lock(&v->mu);
	vault_audit(v, &c, op, VV_ROOT_INO, 0, NULL, result, detail);
	pthread_mutex_unlock(&v->mu);
}

void vv_vault_audit_refused(struct vv_vault *v, const struct vv_ctx *c, const char *op,
			    uint64_t ino, int result, const char *detail)
{
	pthread_mutex_lock(&v->mu);
	vault_audit(v, c, op, ino, 0, NULL, result, detail);
	pthread_mutex_unlock(&v->mu);
}

/* The listener's list, or a failure naming why there is none. */
static struct vv_allow *listener(struct vv_vault *v, struct vv_admin_reply *rep)
{
	struct vv_allow *a;

	pthread_mutex_lock(&v->mu);
	a = v->allow;
	pthread_mutex_unlock(&v->mu);
	if (!a)
		vault_admin_fail(rep, VV_ENOTSUP, "this daemon does not listen for remote clients "
				 "(mounted without --listen)");
	return a;
}

static int cidr_arg(const struct vv_admin_req *rq, struct vv_admin_reply *rep, struct vv_cidr *c)
{
	const char *s = vault_admin_arg(rq, "cidr");

	if (!s || !s[0])
		return vault_admin_fail(rep, VV_EINVAL, "missing argument: cidr (e.g. 10.0.0.0/8)");
	if (vv_cidr_parse(s, c) < 0)
		return vault_admin_fail(rep, VV_EINVAL, "'%.64s' is not a CIDR (ADDRESS or "
					"ADDRESS/BITS, host bits zero, e.g. 10.0.0.0/8 or fd00::/8)", s);
	return 0;
}

/* allow.add (add) or allow.remove. */
static int change(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep,
		  bool add)
{
	struct vv_allow *a = listener(v, rep);
	struct vv_cidr c;
	char t[VV_CIDR_TEXT];
	int r;

	if (!a)
		return rep->status;
	if ((r = cidr_arg(rq, rep, &c)) < 0)
		return r;
	vv_cidr_format(&c, t);
	r = add ? vv_allow_add(a, &c) : vv_allow_remove(a, &c);
	if (r == VV_EEXIST)
		return vault_admin_fail(rep, r, "%s is already allowed", t);
	if (r == VV_ENOSPC)
		return vault_admin_fail(rep, r, "the whitelist is full (%d CIDRs)", VV_ALLOW_MAX);
	if (r == VV_ENOENT)
		return vault_admin_fail(rep, r, "%s is not in the whitelist (see 'vecvault allow list')", t);
	if (r < 0)
		return vault_admin_fail(rep, r, "%s", vv_strerror(r));
	return vault_admin_printf(rep, "%s %s\n", add ? "allowed" : "removed", t);
}

static int run_add(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	return change(v, rq, rep, true);
}

static int run_remove(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	return change(v, rq, rep, false);
}

static int run_list(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	static const char *const names[] = { "accepted", "refused", "handshakes", "authenticated",
					     "auth_failed" };
	struct vv_allow *a = listener(v, rep);
	struct vv_cidr c[VV_ALLOW_MAX];
	struct vv_allow_stats st;
	char t[VV_CIDR_TEXT];
	uint64_t val[5];
	bool json = vault_admin_json(rq);
	size_t n;
	int r = 0;

	if (!a)
		return rep->status;
	n = vv_allow_list(a, c, VV_ALLOW_MAX);
	vv_allow_stats(a, &st);
	val[0] = st.accepted;
	val[1] = st.refused;
	val[2] = st.handshakes;
	val[3] = st.authenticated;
	val[4] = st.auth_failed;
	if (json)
		r = vault_admin_printf(rep, "{\"allow\":[");
	for (size_t i = 0; i < n && r == 0; i++) {
		vv_cidr_format(&c[i], t);
		r = json ? vault_admin_printf(rep, "%s\"%s\"", i ? "," : "", t)
			 : vault_admin_printf(rep, "%s\n", t);
	}
	if (json && r == 0)
		r = vault_admin_printf(rep, "]");
	for (int i = 0; i < 5 && r == 0; i++)
		r = json ? vault_admin_printf(rep, ",\"%s\":%llu", names[i], (unsigned long long)val[i])
			 : vault_admin_printf(rep, "# %s %llu\n", names[i], (unsigned long long)val[i]);
	if (json && r == 0)
		r = vault_admin_printf(rep, "}\n");
	return r < 0 ? vault_admin_fail(rep, r, "%s", vv_strerror(r)) : 0;
}

const struct vault_admin_verb vault_remote_verbs[] = {
	{ "allow.add", ADMIN_OWNER, "cidr", run_add },
	{ "allow.remove", ADMIN_OWNER, "cidr", run_remove },
	{ "allow.list", ADMIN_OWNER, NULL, run_list },
	{ NULL, 0, NULL, NULL },
};
