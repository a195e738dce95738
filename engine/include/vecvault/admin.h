/*
 * admin.h - the control plane, as the vault answers it.
 *
 * Every admin verb (roles, grants, users, API keys, trash, snapshots,
 * backups, remote listeners) is one request: a verb name such as
 * "role.create" and a list of (key, value) string arguments, in order,
 * keys repeated where a verb takes several values ("path" twice).  The
 * reply is a status (0 or a negative VV_E* code), a one-line message that
 * says what was wrong (or a short note on success), and a body: text for a
 * terminal, or JSON when the request carries ("json", "1").
 *
 * Transports decode the wire bytes, fill in who asks and call
 * vv_admin_call(), which authorizes, runs and audits the request: fs/ctl.c
 * (the UNIX control socket, peer from SO_PEERCRED) today, the TLS server
 * later.  The vault never trusts the transport for more than the peer's
 * identity: every verb decides itself who may run it.
 *
 * Paths in arguments are vault paths ("/products/part-1.npy"), never mount
 * paths: the CLI strips the mount point.
 */
#ifndef VECVAULT_ADMIN_H
#define VECVAULT_ADMIN_H

#include <stddef.h>

#include "vecvault/access.h"

struct vv_vault;

#define VV_ADMIN_VERB_MAX 64          /* bytes of a verb name */
#define VV_ADMIN_MAX_ARGS 1024        /* arguments of one request */
#define VV_ADMIN_MSG_MAX 256          /* bytes of the reply's message */

struct vv_admin_arg {
	const char *key;
	const char *val;
};

/* How far a long verb (backup.create) has come. */
struct vv_admin_progress {
	uint64_t objects_done, objects_total;
	uint64_t bytes_done, bytes_total;     /* bytes_total 0: nothing, or not known */
};

struct vv_admin_req {
	struct vv_ident peer;             /* who asks: uid, gid, pid, groups */
	const char *client;               /* "local" or "addr:port", for audit */
	const char *verb;
	size_t nargs;
	const struct vv_admin_arg *args;  /* all borrowed for the call */
	/* Where a long verb reports how far it has come, or NULL (no one
	 * listens).  Set by the transport only when the peer asked (fs/ctl.c:
	 * the argument progress=1, answered with progress frames); called
	 * from the verb's thread, as often as it likes: the transport
	 * throttles and drops what the peer does not read.  It tells the
	 * peer nothing the verb's reply would not. */
	void (*progress)(void *pctx, const struct vv_admin_progress *p);
	void *pctx;
};

struct vv_admin_reply {
	int status;                       /* 0 or a negative VV_E* code */
	char msg[VV_ADMIN_MSG_MAX];       /* why it failed, or a short note */
	char *body;                       /* owned, NUL-terminated, may be NULL */
	size_t len, cap;
};

void vv_admin_reply_init(struct vv_admin_reply *r);
void vv_admin_reply_release(struct vv_admin_reply *r);   /* NULL ok */

/*
 * Run one request against an open (mounted) vault.  Always fills rep
 * (status, msg, body) and returns rep->status.  Unknown verbs get
 * VV_EINVAL naming the verb; a peer who may not run the verb gets
 * VV_EACCES.  Every call, allowed or refused, is one audit record (op
 * "admin", detail: the verb and its target, with the peer's uid and pid).
 * Thread-safe: takes the vault's locks itself.
 */
int vv_admin_call(struct vv_vault *v, const struct vv_admin_req *rq,
		  struct vv_admin_reply *rep);

#endif
