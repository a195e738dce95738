/*
 * remote_conn.c - the vv:// client's side of a connection that may die:
 * what it remembers of every inode the kernel holds (struct irec: where it
 * was found, its attributes for the cache bound, its data generation),
 * reviving those inodes and re-opening handles on a new connection, and
 * sending a request (fs_remote_run), which reconnects.  A file of its own:
 * it is the client's memory and its way to the server, which the FUSE
 * handlers (remote.c) call; nothing here calls FUSE.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "remote_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"
#include "vecvault/net.h"
#include "vecvault/remote_wire.h"

/*
 * Reconnecting.  A new connection is a new server session: it holds no
 * lookup reference and no handle of the old one.  So the client remembers
 * for every inode the kernel holds where it was found (parent, name,
 * generation) and on which connection (epoch); a request naming an inode
 * of an older connection first looks it up again from its parent
 * (recursively up to the root), and it must come back as the same inode
 * and generation, else ESTALE.  Open files and directories are opened
 * again by inode with their original flags (minus O_CREAT, O_EXCL,
 * O_TRUNC).  A request that failed because the connection died is sent
 * once more on the new connection.  The records (struct irec, in
 * remote_int.h) are kept in f->irecs, IREC_BUCKETS chains, under f->imu.
 */

/* Until when a node of these attributes may be said to have no xattr. */
static int64_t noxattr_until(const struct rfs *f, const struct vv_attr *a, int64_t born)
{
	return a->noxattr && a->cacheable && f->ttl > 0 ? born + (int64_t)(f->ttl * 1e9) : 0;
}

/* Attributes a of r's node, just received (before the reply was sent on). */
static void irec_attr(struct rfs *f, struct irec *r, const struct vv_attr *a, uint64_t mut,
		      int64_t born)
{
	r->noxattr_until = noxattr_until(f, a, born);
	r->attr = *a;
	r->attr_mut = mut;
	r->attr_until = a->cacheable && f->ttl > 0 ? born + (int64_t)(f->ttl * 1e9) : 0;
}

static struct irec **irec_at(struct rfs *f, uint64_t ino)
{
	struct irec **p = &f->irecs[(ino * 0x9E3779B97F4A7C15ull) >> 48];

	while (*p && (*p)->ino != ino)
		p = &(*p)->next;
	return p;
}

/* One more kernel reference on ino, found as parent/name on epoch, with
 * attributes a asked for at born when f->mut was mut. */
void fs_remote_irec_add(struct rfs *f, uint64_t parent, const char *name, const struct vv_attr *a,
		     unsigned epoch, uint64_t mut, int64_t born)
{
	struct irec **p, *r;

	if (a->ino == VV_ROOT_INO || !name || strlen(name) > VV_NAME_MAX)
		return;
	pthread_mutex_lock(&f->imu);
	p = irec_at(f, a->ino);
	if (!(r = *p) && (r = calloc(1, sizeof(*r)))) {
		r->ino = a->ino;
		*p = r;
	}
	if (r) {
		r->srefs = r->epoch == epoch ? r->srefs + 1 : 1;
		r->parent = parent;
		r->gen = a->gen;
		r->epoch = epoch;
		r->nlookup++;
		irec_attr(f, r, a, mut, born);
		snprintf(r->name, sizeof(r->name), "%s", name);
	}
	pthread_mutex_unlock(&f->imu);
}

/* The kernel forgot n references: how many the current session's
 * references (on epoch *ep) to give back; all once the kernel holds none. */
uint64_t fs_remote_irec_forget(struct rfs *f, uint64_t ino, uint64_t n, unsigned *ep)
{
	struct irec **p, *r;
	uint64_t give = n;

	pthread_mutex_lock(&f->imu);
	p = irec_at(f, ino);
	if ((r = *p) && ino != f->root) {
		*ep = r->epoch;
		r->nlookup = n < r->nlookup ? r->nlookup - n : 0;
		if (!r->nlookup) {
			give = r->srefs;
			*p = r->next;
			free(r);
		} else {
			give = n < r->srefs ? n : r->srefs - 1;
			r->srefs -= give;
		}
	} else if (r) {
		give = 0;
	} else {
		*ep = vv_net_client_epoch(f->c);
	}
	pthread_mutex_unlock(&f->imu);
	return give;
}

/* After a rename the moved inode is found under its new name. */
void fs_remote_irec_moved(struct rfs *f, uint64_t parent, const char *name, uint64_t newparent,
		       const char *newname)
{
	pthread_mutex_lock(&f->imu);
	for (size_t i = 0; i < IREC_BUCKETS; i++)
		for (struct irec *r = f->irecs[i]; r; r = r->next)
			if (r->parent == parent && !strcmp(r->name, name)) {
				r->parent = newparent;
				snprintf(r->name, sizeof(r->name), "%s", newname);
			}
	pthread_mutex_unlock(&f->imu);
}

/* Fresh attributes of a node the kernel holds (getattr, setattr, open),
 * asked for at born when f->mut was mut. */
void fs_remote_irec_seen(struct rfs *f, const struct vv_attr *a, uint64_t mut, int64_t born)
{
	struct irec *r;

	pthread_mutex_lock(&f->imu);
	if ((r = *irec_at(f, a->ino)))
		irec_attr(f, r, a, mut, born);
	pthread_mutex_unlock(&f->imu);
}

/* ino's attributes as received within the bound, with no change through
 * this client since: true and *a, *left (seconds of the bound left). */
bool fs_remote_irec_cached_attr(struct rfs *f, uint64_t ino, struct vv_attr *a, double *left)
{
	struct irec *r;
	int64_t now = mono_ns();
	bool ok = false;

	pthread_mutex_lock(&f->imu);
	if ((r = *irec_at(f, ino)) && r->attr_until > now && r->attr_mut == atomic_load(&f->mut)) {
		*a = r->attr;
		*left = (double)(r->attr_until - now) / 1e9;
		ok = true;
	}
	pthread_mutex_unlock(&f->imu);
	return ok;
}

/* The xattr probe name of ino may be answered ENODATA here: a name only
 * stored xattrs have (never user.*, which has computed ones) and a node the
 * server said, within the attribute bound, has none. */
bool fs_remote_irec_noxattr(struct rfs *f, uint64_t ino, const char *name)
{
	struct irec *r;
	bool none = false;

	if (strncmp(name, "security.", 9) && strncmp(name, "trusted.", 8) &&
	    strcmp(name, "system.posix_acl_access") && strcmp(name, "system.posix_acl_default"))
		return false;
	pthread_mutex_lock(&f->imu);
	if ((r = *irec_at(f, ino)))
		none = r->noxattr_until > mono_ns();
	pthread_mutex_unlock(&f->imu);
	return none;
}

/* This client changed ino's xattrs: ask the server again. */
void fs_remote_irec_xattr_changed(struct rfs *f, uint64_t ino)
{
	struct irec *r;

	pthread_mutex_lock(&f->imu);
	if ((r = *irec_at(f, ino)))
		r->noxattr_until = 0;
	pthread_mutex_unlock(&f->imu);
}

uint64_t fs_remote_irec_parent(struct rfs *f, uint64_t ino)
{
	struct irec *r;
	uint64_t parent = 0;

	pthread_mutex_lock(&f->imu);
	if ((r = *irec_at(f, ino)))
		parent = r->parent;
	pthread_mutex_unlock(&f->imu);
	return parent;
}

static int lookup_raw(struct rfs *f, unsigned epoch, uint64_t parent, const char *name,
		      struct vv_attr *a)
{
	struct vv_rw_msg *rq = calloc(1, sizeof(*rq)), *rep = calloc(1, sizeof(*rep));
	uint8_t *hold = NULL;
	int r = VV_ENOMEM;

	if (rq && rep) {
		rq->h.op = VV_RW_LOOKUP;
		rq->u[0] = parent;
		rq->nu = 1;
		rq->s[0] = name;
		rq->ns = 1;
		r = vv_net_client_call_on(f->c, epoch, rq, rep, &hold, NULL);
		if (r == 0 && rep->has_attr)
			*a = rep->attr;
		else if (r == 0)
			r = VV_EIO;
	}
	free(hold);
	free(rq);
	free(rep);
	return r;
}

static void forget_raw(struct rfs *f, unsigned epoch, uint64_t ino)
{
	struct vv_rw_msg *rq = calloc(1, sizeof(*rq)), *rep = calloc(1, sizeof(*rep));
	uint8_t *hold = NULL;

	if (rq && rep) {
		rq->h.op = VV_RW_FORGET;
		rq->u[0] = ino;
		rq->u[1] = 1;
		rq->nu = 2;
		(void)vv_net_client_call_on(f->c, epoch, rq, rep, &hold, NULL);
	}
	free(hold);
	free(rq);
	free(rep);
}

/* Make ino known to the session of epoch (see above): 0, VV_ESTALE, or
 * the failure of a lookup. */
static int revive(struct rfs *f, uint64_t ino, unsigned epoch, int depth)
{
	struct irec *r;
	struct vv_attr a = { 0 };
	uint64_t parent, gen;
	char name[VV_NAME_MAX + 1];
	int e;

	if (ino == VV_ROOT_INO)
		return 0;
	pthread_mutex_lock(&f->imu);
	r = *irec_at(f, ino);
	if (!r || depth > 4096) {
		pthread_mutex_unlock(&f->imu);
		return r ? VV_ESTALE : (epoch == 0 ? 0 : VV_ESTALE);
	}
	if (r->epoch == epoch) {
		pthread_mutex_unlock(&f->imu);
		return 0;
	}
	parent = r->parent;
	gen = r->gen;
	memcpy(name, r->name, sizeof(name));
	pthread_mutex_unlock(&f->imu);
	if ((e = revive(f, parent, epoch, depth + 1)) < 0)
		return e;
	if ((e = lookup_raw(f, epoch, parent, name, &a)) < 0)
		return e == VV_ENOENT ? VV_ESTALE : e;
	if (a.ino != ino || a.gen != gen) {
		forget_raw(f, epoch, a.ino);
		return VV_ESTALE;
	}
	pthread_mutex_lock(&f->imu);
	if ((r = *irec_at(f, ino)) && r->epoch != epoch) {
		r->epoch = epoch;
		r->srefs = 1;
	} else
		forget_raw(f, epoch, ino);   /* revived twice at once: one ref is enough */
	pthread_mutex_unlock(&f->imu);
	return 0;
}

/*
 * A handle of an older connection is opened again on this one; *srv gets
 * the server's handle to send.  The OPEN is a round trip (up to the
 * request timeout when the server stalls), so it runs without f->imu, or
 * every other thread's lookup, getattr and forget would wait for it: the
 * handle is marked as being re-opened, and another request on it waits
 * for that one's outcome (f->rcond) instead of opening a second server
 * handle.  After a failure the next request tries again.
 */
static int reopen(struct rfs *f, struct rhandle *h, unsigned epoch, uint64_t *srv)
{
	struct vv_rw_msg *rq = NULL, *rep = NULL;
	uint8_t *hold = NULL;
	int r;

	pthread_mutex_lock(&f->imu);
	while (h->reopening)
		pthread_cond_wait(&f->rcond, &f->imu);
	*srv = h->srv;
	if (h->epoch == epoch) {
		pthread_mutex_unlock(&f->imu);
		return 0;
	}
	h->reopening = true;
	pthread_mutex_unlock(&f->imu);
	if ((r = revive(f, h->ino, epoch, 0)) < 0)
		goto out;
	rq = calloc(1, sizeof(*rq));
	rep = calloc(1, sizeof(*rep));
	r = VV_ENOMEM;
	if (!rq || !rep)
		goto out;
	rq->h.op = h->dir ? VV_RW_OPENDIR : VV_RW_OPEN;
	rq->u[0] = h->ino;
	rq->u[1] = (uint32_t)(h->flags & ~(O_CREAT | O_EXCL | O_TRUNC));
	rq->nu = h->dir ? 1 : 2;
	/* on epoch only: a handle of another connection recorded as epoch's
	 * would be sent to epoch's session, where its id names another file */
	r = vv_net_client_call_on(f->c, epoch, rq, rep, &hold, NULL);
out:
	pthread_mutex_lock(&f->imu);
	if (r == 0) {
		h->srv = *srv = rep->u[0];
		h->epoch = epoch;
	}
	h->reopening = false;
	pthread_cond_broadcast(&f->rcond);
	pthread_mutex_unlock(&f->imu);
	free(hold);
	free(rq);
	free(rep);
	return r;
}

/* Give back a server handle of connection epoch (gone with an older one). */
void fs_remote_release_raw(struct rfs *f, unsigned op, uint64_t srv, unsigned epoch)
{
	struct vv_rw_msg *rq, *rep;
	uint8_t *hold = NULL;

	if (epoch != vv_net_client_epoch(f->c))
		return;
	rq = calloc(1, sizeof(*rq));
	rep = calloc(1, sizeof(*rep));
	if (rq && rep) {
		rq->h.op = (uint16_t)op;
		rq->u[0] = srv;
		rq->nu = 1;
		(void)vv_net_client_call_on(f->c, epoch, rq, rep, &hold, NULL);
	}
	free(hold);
	free(rq);
	free(rep);
}

/*
 * The page cache is kept at an open only when the server reports the data
 * generation of this inode's last open here, so a change by another client
 * or on the server's own mount is seen on the next open.  It lives in the
 * inode's irec, as long as the kernel holds the inode and with it its
 * pages (a table of 4096 slots it had before lost a third of a 2,000-file
 * collection's caches to collisions, re-read at every query).  The kernel
 * may still drop the pages of a file it keeps (memory pressure, anyone's
 * drop_caches): then the next read goes to the server whatever was
 * decided here (t7035).  Record gen as ino's and say what it was.
 */

enum dgen_was fs_remote_gen_same(struct rfs *f, uint64_t ino, uint64_t gen)
{
	struct irec *r;
	enum dgen_was was = DGEN_UNKNOWN;

	pthread_mutex_lock(&f->imu);
	if ((r = *irec_at(f, ino))) {
		if (r->dgen_set)
			was = r->dgen == gen ? DGEN_SAME : DGEN_CHANGED;
		r->dgen = gen;
		r->dgen_set = true;
	}
	pthread_mutex_unlock(&f->imu);
	if (was == DGEN_SAME)
		atomic_fetch_add(&f->n_kept, 1);
	else if (was == DGEN_CHANGED)
		atomic_fetch_add(&f->n_changed, 1);
	atomic_fetch_add(&f->n_opens, 1);
	return was;
}

/* The request as sent on connection epoch: inodes revived, handles
 * re-opened and replaced by the server's. */
static int prepare(struct rfs *f, const struct vv_rw_msg *rq, struct vv_rw_msg *out, unsigned epoch)
{
	int r = 0;

	*out = *rq;
	switch (rq->h.op) {
	case VV_RW_READ: case VV_RW_WRITE: case VV_RW_FLUSH: case VV_RW_FSYNC:
	case VV_RW_RELEASE: case VV_RW_FALLOCATE: case VV_RW_LSEEK: case VV_RW_KNN:
	case VV_RW_READDIR: case VV_RW_RELEASEDIR: {
		return reopen(f, (struct rhandle *)(uintptr_t)rq->u[0], epoch, &out->u[0]);
	}
	case VV_RW_SETATTR:
		if (rq->u[10] &&
		    (r = reopen(f, (struct rhandle *)(uintptr_t)rq->u[10], epoch, &out->u[10])) < 0)
			return r;
		return revive(f, rq->u[0], epoch, 0);
	case VV_RW_FORGET:
		return 0;
	case VV_RW_LINK:
		if ((r = revive(f, rq->u[1], epoch, 0)) < 0)
			return r;
		return revive(f, rq->u[0], epoch, 0);
	case VV_RW_RENAME:           /* u[2] is its flags */
		if ((r = revive(f, rq->u[1], epoch, 0)) < 0)
			return r;
		return revive(f, rq->u[0], epoch, 0);
	default:
		return revive(f, rq->u[0], epoch, 0);
	}
}

/* May rq change what a GETATTR answers (of any node)? */
static bool mutates(const struct vv_rw_msg *rq)
{
	const struct rhandle *h;

	switch (rq->h.op) {
	case VV_RW_SETATTR: case VV_RW_MKNOD: case VV_RW_MKDIR: case VV_RW_SYMLINK:
	case VV_RW_LINK: case VV_RW_UNLINK: case VV_RW_RMDIR: case VV_RW_RENAME:
	case VV_RW_CREATE: case VV_RW_WRITE: case VV_RW_SETXATTR: case VV_RW_REMOVEXATTR:
	case VV_RW_FALLOCATE:
		return true;
	case VV_RW_OPEN:
		return (rq->u[1] & O_ACCMODE) != O_RDONLY || (rq->u[1] & O_TRUNC);
	case VV_RW_FLUSH: case VV_RW_FSYNC: case VV_RW_RELEASE:
		h = (const struct rhandle *)(uintptr_t)rq->u[0];
		return h && (h->flags & O_ACCMODE) != O_RDONLY;
	default:
		return false;
	}
}

void fs_remote_gate(const char *path)
{
	for (int i = 0; path && i < 6000 && access(path, F_OK) == 0; i++)
		usleep(10000);
}

/*
 * May rq be sent again after the connection died with it sent and
 * unanswered?  The server may have done it.  Reads, lookups, writes at an
 * offset and the like give the same outcome twice.  A change of the
 * namespace or of xattrs does not: a MKDIR done and sent again fails
 * EEXIST, an UNLINK ENOENT, a RENAME_EXCHANGE swaps back and says it
 * swapped, an OPEN with O_TRUNC truncates again what another client wrote
 * meanwhile, a WRITE to an O_APPEND file appends twice.  Those fail
 * ENOTCONN instead, and the caller looks.
 */
static bool resendable(const struct vv_rw_msg *rq)
{
	const struct rhandle *h;

	switch (rq->h.op) {
	case VV_RW_MKNOD: case VV_RW_MKDIR: case VV_RW_SYMLINK: case VV_RW_LINK:
	case VV_RW_UNLINK: case VV_RW_RMDIR: case VV_RW_RENAME: case VV_RW_CREATE:
	case VV_RW_SETXATTR: case VV_RW_REMOVEXATTR:
		return false;
	case VV_RW_OPEN:
		return !(rq->u[1] & O_TRUNC);
	case VV_RW_WRITE:            /* the server appends at its end of the file */
		h = (const struct rhandle *)(uintptr_t)rq->u[0];
		return !h || !(h->flags & O_APPEND);
	default:
		return true;
	}
}

/* Send and wait: 0 or a VV_E* code.  A connection found dead is connected
 * again (with backoff) and the request sent once more, if it never left
 * or may be done twice (resendable); one sent on a connection that another
 * thread replaced meanwhile is sent on the new one.  A change retires
 * the attributes cached before it and those that crossed it in flight
 * (f->mut moves before and after). */
int fs_remote_run(struct rfs *f, struct call *k)
{
	struct vv_rw_msg *sent;
	char why[512];
	bool mut;
	int r = VV_ENOMEM, e;

	if (!k || !(sent = malloc(sizeof(*sent))))
		return VV_ENOMEM;
	if ((mut = mutates(&k->rq)))
		atomic_fetch_add(&f->mut, 1);
	k->mut = atomic_load(&f->mut);
	k->born = mono_ns();
	atomic_store(&f->fg_ns, k->born);
	for (int attempt = 0;; attempt++) {
		unsigned ep = vv_net_client_epoch(f->c), nep;
		bool left = false, alive;

		free(k->hold);
		k->hold = NULL;
		if ((r = prepare(f, &k->rq, sent, ep)) == 0 && k->rq.h.op == VV_RW_READ)
			fs_remote_gate(f->send_gate);      /* tests (t7058) */
		if (r == 0)
			r = vv_net_client_call_on(f->c, ep, sent, &k->rep, &k->hold, &left);
		k->epoch = ep;
		if (r != VV_ENOTCONN || attempt == 1)
			break;
		alive = vv_net_client_alive(f->c);
		if (alive && vv_net_client_epoch(f->c) == ep)
			break;               /* a timeout on a live connection fails alone */
		if (left && !resendable(&k->rq)) {
			const char *op = vv_rw_op_name(k->rq.h.op);
			vv_log(VV_LOG_WARN, "remote: the connection ended with a %s sent and unanswered: "
			       "not sent again (it may have been done), failed ENOTCONN", op ? op : "?");
			break;
		}
		if (alive)
			continue;            /* another thread connected again meanwhile */
		if ((e = vv_net_client_reconnect(f->c, &nep, why, sizeof(why))) < 0) {
			vv_log(VV_LOG_WARN, "remote: reconnecting: %s", why);
			if (e == VV_EACCES)
				r = e;       /* the login is refused now (a revoked key) */
			break;
		}
		if (nep != ep)
			vv_log(VV_LOG_INFO, "remote: reconnected (connection %u)", nep);
	}
	if (mut)
		atomic_fetch_add(&f->mut, 1);
	free(sent);
	return r;
}
