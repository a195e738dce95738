/*
 * serve_ops.c - one remote request, run as the vault call it mirrors.
 *
 * The vault decides and audits; this file only makes sure a remote peer
 * can name nothing the kernel would not let a local process name:
 *   - inodes: only the root and inodes this session was handed by a
 *     lookup-like reply (lookup, mknod, mkdir, symlink, link, create,
 *     readdirplus) and has not forgotten, so a client cannot skip the
 *     directory search permission by guessing inode numbers; FORGET never
 *     drops more references than the session holds;
 *   - handles: ids into the session's own table (index + generation),
 *     never pointers, and of the right kind;
 *   - names: "." and ".." are refused (the kernel never sends them).
 * Everything a session holds is released when it ends.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "net_int.h"
#include "vecvault/error.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/remote.h"

#define READDIR_PIECE (32u << 10)    /* bytes of a listing per vault call */

/* --- inodes ------------------------------------------------------------- */

static size_t ino_slot(const struct sess *s, uint64_t ino)
{
	uint64_t h = ino * 0x9E3779B97F4A7C15ull;
	size_t i = (size_t)(h >> 20) & (s->ino_cap - 1);

	while (s->ino[i].count && s->ino[i].ino != ino)
		i = (i + 1) & (s->ino_cap - 1);
	return i;
}

static int ino_grow(struct sess *s)
{
	size_t cap = s->ino_cap ? s->ino_cap * 2 : 1024;
	struct sess_ino *old = s->ino, *n = calloc(cap, sizeof(*n));
	size_t ocap = s->ino_cap;

	if (!n)
		return VV_ENOMEM;
	s->ino = n;
	s->ino_cap = cap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].count)
			s->ino[ino_slot(s, old[i].ino)] = old[i];
	free(old);
	return 0;
}

/*
 * Record one more reference on ino, which the vault took already.  A node
 * new to the session is one entry more of its table, charged to the node
 * budget (nodes.c) unless reserved (ino_reserve, before a create) holds
 * one for it; a reserved entry not needed is given back.  0, or VV_ENOMEM
 * (past the budget, or no memory for the table): the caller gives the
 * vault's reference back (never here: a READDIRPLUS calls this under the
 * vault's lock).  why: as net_nodes_take's.
 */
static int ino_ref(struct sess *s, uint64_t ino, bool reserved, char *why, size_t whylen)
{
	size_t i;
	int r = 0;

	why[0] = 0;
	pthread_mutex_lock(&s->mu);
	if (s->ino_cap && s->ino[i = ino_slot(s, ino)].count) {
		s->ino[i].count++;
		if (reserved)
			net_nodes_give(s->nodes, s->nu, 1);
		goto out;
	}
	if (!reserved && (r = net_nodes_take(s->nodes, s->nu, why, whylen)) < 0)
		goto out;
	if ((s->ino_used + 1) * 2 > s->ino_cap && (r = ino_grow(s)) < 0) {
		net_nodes_give(s->nodes, s->nu, 1);
		goto out;
	}
	i = ino_slot(s, ino);
	s->ino[i].ino = ino;
	s->ino[i].count = 1;
	s->ino_used++;
out:
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* One entry of the node budget held for the node a create-like request
 * may hand out (ino_ref then uses it or gives it back), so that a file
 * is not made only to be refused: 0 or VV_ENOMEM (why as ino_ref's). */
static int ino_reserve(struct sess *s, char *why, size_t whylen)
{
	return net_nodes_take(s->nodes, s->nu, why, whylen);
}

static bool ino_known(struct sess *s, uint64_t ino)
{
	bool k;

	if (ino == VV_ROOT_INO)
		return true;
	pthread_mutex_lock(&s->mu);
	k = s->ino_cap && s->ino[ino_slot(s, ino)].count > 0;
	pthread_mutex_unlock(&s->mu);
	return k;
}

/* Drop up to n references; returns how many were held (and dropped). */
static uint64_t ino_unref(struct sess *s, uint64_t ino, uint64_t n)
{
	uint64_t took = 0;
	size_t i, j;

	pthread_mutex_lock(&s->mu);
	if (s->ino_cap) {
		i = ino_slot(s, ino);
		if (s->ino[i].count) {
			took = n < s->ino[i].count ? n : s->ino[i].count;
			s->ino[i].count -= took;
			if (s->ino[i].count == 0) {
				/* backward-shift deletion keeps probe chains whole */
				s->ino_used--;
				net_nodes_give(s->nodes, s->nu, 1);
				j = i;
				for (;;) {
					size_t k, home;
					j = (j + 1) & (s->ino_cap - 1);
					if (!s->ino[j].count)
						break;
					k = j;
					home = (size_t)((s->ino[k].ino * 0x9E3779B97F4A7C15ull) >> 20) &
					       (s->ino_cap - 1);
					if ((j > i && (home <= i || home > j)) ||
					    (j < i && (home <= i && home > j))) {
						s->ino[i] = s->ino[k];
						s->ino[k].count = 0;
						i = k;
					}
				}
			}
		}
	}
	pthread_mutex_unlock(&s->mu);
	return took;
}

/* --- handles -------------------------------------------------------------- */

static int h_new(struct sess *s, int kind, void *p, uint64_t *id)
{
	int r = VV_ENOMEM;

	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < SESS_MAX_HANDLES; i++) {
		if (i == s->nh) {
			struct sess_handle *n = realloc(s->h, (s->nh + 16) * sizeof(*n));
			if (!n)
				break;
			memset(n + s->nh, 0, 16 * sizeof(*n));
			s->h = n;
			s->nh += 16;
		}
		if (s->h[i].kind == H_FREE) {
			s->h[i].kind = kind;
			s->h[i].p = p;
			s->h[i].gen++;
			*id = ((uint64_t)s->h[i].gen << 32) | (uint64_t)(i + 1);
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return r;
}

/*
 * The object of handle id if it is of kind.  Without take it is held
 * busy until h_put (the session's workers run its requests at once, and a
 * peer may send a RELEASE while a READ or a long KNN on the handle still
 * runs); with take, the slot is freed once no request holds it (waiting
 * for them; no new one gets it meanwhile), and the caller releases the
 * object.  An honest client never waits: the kernel sends RELEASE after
 * every request on the handle was answered.
 */
static void *h_get(struct sess *s, uint64_t id, int kind, bool take)
{
	size_t i = (size_t)(id & 0xffffffffu);
	uint32_t gen = (uint32_t)(id >> 32);
	void *p = NULL;

	pthread_mutex_lock(&s->mu);
	if (i >= 1 && i <= s->nh && s->h[i - 1].kind == kind && s->h[i - 1].gen == gen &&
	    !s->h[i - 1].closing) {
		p = s->h[i - 1].p;
		if (!take) {
			s->h[i - 1].busy++;
		} else {
			s->h[i - 1].closing = true;
			while (s->h[i - 1].busy)      /* s->h may move meanwhile (h_new) */
				pthread_cond_wait(&s->hcond, &s->mu);
			s->h[i - 1].closing = false;
			s->h[i - 1].kind = H_FREE;
			s->h[i - 1].p = NULL;
		}
	}
	pthread_mutex_unlock(&s->mu);
	return p;
}

/* The end of a request on handle id, which h_get gave it without take. */
static void h_put(struct sess *s, uint64_t id)
{
	size_t i = (size_t)(id & 0xffffffffu);

	pthread_mutex_lock(&s->mu);
	if (i >= 1 && i <= s->nh && s->h[i - 1].busy && --s->h[i - 1].busy == 0 &&
	    s->h[i - 1].closing)
		pthread_cond_broadcast(&s->hcond);
	pthread_mutex_unlock(&s->mu);
}

void net_sess_release(struct sess *s)
{
	for (size_t i = 0; i < s->nh; i++) {
		if (s->h[i].kind == H_FILE)
			vv_vault_release(s->v, s->h[i].p);
		else if (s->h[i].kind == H_DIR)
			vv_vault_releasedir(s->v, s->h[i].p);
		s->h[i].kind = H_FREE;
	}
	free(s->h);
	s->h = NULL;
	s->nh = 0;
	for (size_t i = 0; i < s->ino_cap; i++)
		if (s->ino[i].count)
			vv_vault_forget(s->v, s->ino[i].ino, s->ino[i].count);
	net_nodes_give(s->nodes, s->nu, s->ino_used);
	free(s->ino);
	s->ino = NULL;
	s->ino_cap = s->ino_used = 0;
}

/* --- requests ------------------------------------------------------------- */

static bool dotname(const char *n)
{
	return !strcmp(n, ".") || !strcmp(n, "..");
}

struct fill_ctx {
	struct sess *s;
	uint8_t *buf;
	size_t cap, len;
	bool plus;
	bool full;                       /* an entry did not fit: no eof */
	uint64_t next;                   /* the offset after the last entry taken */
	uint64_t *back;                  /* references to give back after the listing */
	size_t nback, backcap;
	char why[320];                   /* the budget's refusal, once per episode */
};

/*
 * One entry into the reply.  With plus, the vault takes a lookup
 * reference on each entry with attributes fill takes (not "." and ".."):
 * the session records it here, under the vault's lock, or, past the node
 * budget, sends the entry without attributes (as a FIFO's: the client
 * looks it up when it needs it) and gives the vault's reference back
 * after the listing.
 */
static int fill(void *ctx, const struct vv_dirent *e, const struct vv_attr *attr)
{
	struct fill_ctx *f = ctx;
	struct vv_attr none;
	size_t at = f->len;
	char why[sizeof(f->why)];
	int r;

	/* An entry the vault gives no attributes (a FIFO or socket, or any
	 * entry of a directory the caller may not search) still carries an
	 * attribute record in a plus reply: ino 0, no reference taken. */
	memset(&none, 0, sizeof(none));
	if ((r = vv_rw_dirent_put(f->buf, f->cap, &f->len, e, f->plus ? (attr ? attr : &none)
							   : NULL)) != 0) {
		f->full = true;
		return r;
	}
	if (f->plus && attr && !dotname(e->name) &&
	    ino_ref(f->s, attr->ino, false, why, sizeof(why)) < 0) {
		if (f->nback == f->backcap) {
			size_t cap = f->backcap ? f->backcap * 2 : 256;
			uint64_t *n = realloc(f->back, cap * sizeof(*n));
			if (!n) {
				f->len = at;
				return VV_ENOMEM;     /* the vault takes no reference then */
			}
			f->back = n;
			f->backcap = cap;
		}
		f->back[f->nback++] = attr->ino;
		f->len = at;                  /* the same entry, without attributes */
		(void)vv_rw_dirent_put(f->buf, f->cap, &f->len, e, &none);
		if (why[0])
			memcpy(f->why, why, sizeof(why));
	}
	f->next = e->next;
	return 0;
}

/* A k-NN request (a file's, or a directory request on dh) through the
 * offload's scan pool, as the same ioctl on the local mount: fair between
 * uids, a few requests per uid (more: VV_EBUSY, the client then scans
 * itself), never a scan on this thread (docs/query.md "Limits").  It used
 * to run vv_vault_knn right here, at any rate: each session's 4 workers
 * scanned at once, 64 sessions of one key 256 scans, outside every
 * per-uid bound and the pool's CPU bound (t7051).
 * This worker waits for the answer; c, fh or dh and io stay valid. */
struct knn_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int r;
};

static void knn_done(void *arg, int r)
{
	struct knn_wait *w = arg;

	pthread_mutex_lock(&w->mu);
	w->r = r;
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static int knn_pooled(struct sess *s, const struct vv_ctx *c, struct vv_file *fh,
		      struct vv_dir *dh, void *io)
{
	struct knn_wait w = { .done = false };
	int r;

	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	r = dh ? vv_vault_knn_dir_submit(s->v, c, dh, io, knn_done, &w)
	       : vv_vault_knn_submit(s->v, c, fh, io, knn_done, &w);
	if (r == 0) {
		pthread_mutex_lock(&w.mu);
		while (!w.done)
			pthread_cond_wait(&w.cv, &w.mu);
		r = w.r;
		pthread_mutex_unlock(&w.mu);
	}
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	return r;
}

/* A reply carrying an attribute record of a node the vault took a
 * reference on (when r is 0): recorded (ino_ref; reserved: ino_reserve
 * holds an entry for it), else given back and the request fails.  An
 * entry reserved for a request that failed is given back. */
static int attr_ref(struct sess *s, struct vv_rw_msg *rep, int r, bool reserved, char *why,
		    size_t whylen)
{
	if (r < 0) {
		if (reserved)
			net_nodes_give(s->nodes, s->nu, 1);
		return r;
	}
	if ((r = ino_ref(s, rep->attr.ino, reserved, why, whylen)) < 0) {
		vv_vault_forget(s->v, rep->attr.ino, 1);
		return r;
	}
	rep->has_attr = true;
	return 0;
}

/* The server's own FUSE mount, if any, caches attributes and entries for
 * long (fs/ops.c) and keeps page caches and directory listings across
 * opens that see no change of its own: a change made by a remote session
 * must drop them there, as a local change would.  A change of a
 * directory's entries waits until the kernel has it, so a local `ls` run
 * after the remote call returned lists the change. */
static void inval_local(struct sess *s, const struct vv_rw_msg *rq, struct vv_file *fh)
{
	const uint64_t *u = rq->u;
	bool entries = true;         /* a directory's entries changed */

	switch (rq->h.op) {
	case VV_RW_SETATTR: case VV_RW_SETXATTR: case VV_RW_REMOVEXATTR:
		vv_vault_inval(s->v, u[0], NULL);
		entries = false;
		break;
	case VV_RW_WRITE: case VV_RW_FALLOCATE:
		vv_vault_inval(s->v, vv_vault_file_ino(fh), NULL);
		entries = false;
		break;
	case VV_RW_MKNOD: case VV_RW_MKDIR: case VV_RW_SYMLINK: case VV_RW_CREATE:
	case VV_RW_UNLINK: case VV_RW_RMDIR:
		vv_vault_inval(s->v, u[0], rq->s[0]);
		vv_vault_inval(s->v, u[0], NULL);
		break;
	case VV_RW_LINK:
		vv_vault_inval(s->v, u[1], rq->s[0]);
		vv_vault_inval(s->v, u[1], NULL);
		vv_vault_inval(s->v, u[0], NULL);
		break;
	case VV_RW_RENAME:
		vv_vault_inval(s->v, u[0], rq->s[0]);
		vv_vault_inval(s->v, u[1], rq->s[1]);
		vv_vault_inval(s->v, u[0], NULL);
		vv_vault_inval(s->v, u[1], NULL);
		break;
	default:
		return;
	}
	if (entries)
		vv_vault_inval_flush(s->v);
}

void net_sess_run(struct sess *s, const struct vv_rw_msg *rq, struct vv_rw_msg *rep, uint8_t *data)
{
	struct vv_ctx c = s->ctx;
	const uint64_t *u = rq->u;
	struct vv_file *fh = NULL;
	struct vv_dir *dh = NULL;
	const char *why = NULL;          /* a refusal of this file's own */
	char bwhy[320] = "";             /* the node budget's, once per episode */
	uint64_t held = 0;               /* the handle h_get holds busy, or 0 */
	int r = 0;

	memset(&rep->h, 0, sizeof(rep->h));
	rep->h.op = rq->h.op;
	rep->h.id = rq->h.id;
	rep->h.flags = VV_RW_F_REPLY;
	rep->nu = rep->ns = 0;
	rep->has_blob = rep->has_attr = false;
	rep->blob = NULL;
	rep->bloblen = 0;
	if (atomic_load(&s->revoked)) {
		rep->h.status = VV_EACCES;
		return;
	}
	/* Which ops name an inode first (u[0]) and which a handle. */
	switch (rq->h.op) {
	case VV_RW_LOOKUP: case VV_RW_GETATTR: case VV_RW_SETATTR: case VV_RW_READLINK:
	case VV_RW_MKNOD: case VV_RW_MKDIR: case VV_RW_SYMLINK: case VV_RW_LINK:
	case VV_RW_UNLINK: case VV_RW_RMDIR: case VV_RW_RENAME: case VV_RW_OPEN:
	case VV_RW_CREATE: case VV_RW_OPENDIR: case VV_RW_SETXATTR: case VV_RW_GETXATTR:
	case VV_RW_LISTXATTR: case VV_RW_REMOVEXATTR: case VV_RW_ACCESS: case VV_RW_STATFS:
		if (!ino_known(s, u[0])) {
			r = VV_ENOENT;
			why = "inode not handed to this session";
			goto out;
		}
		/* The client's kernel caches entries for a while (docs/remote.md,
		 * --attr-timeout) and then skips the walk: the search permission
		 * of every directory above is checked here as the walk would,
		 * with the permissions as they are now.  GETATTR is left to the
		 * attribute cache's bound (fstat of an open file must work);
		 * STATFS names no file. */
		if (rq->h.op != VV_RW_GETATTR && rq->h.op != VV_RW_STATFS &&
		    (r = vv_vault_reach(s->v, &c, u[0])) < 0) {
			why = "a directory above it may not be searched";
			goto out;
		}
		break;
	case VV_RW_KNN:
		/* on a directory handle: the directory request (docs/remote.md
		 * "Queries"); the blob's own magic says which, and each request
		 * is checked as its ioctl's would be */
		if ((dh = h_get(s, u[0], H_DIR, false))) {
			held = u[0];
			break;
		}
		/* fall through */
	case VV_RW_READ: case VV_RW_WRITE: case VV_RW_FLUSH: case VV_RW_FSYNC:
	case VV_RW_FALLOCATE: case VV_RW_LSEEK:
		if (!(fh = h_get(s, u[0], H_FILE, false))) {
			r = VV_EBADF;
			why = "no such file handle in this session";
			goto out;
		}
		held = u[0];
		break;
	case VV_RW_READDIR:
		if (!(dh = h_get(s, u[0], H_DIR, false))) {
			r = VV_EBADF;
			why = "no such directory handle in this session";
			goto out;
		}
		held = u[0];
		break;
	default:
		break;
	}
	for (unsigned i = 0; i < rq->ns; i++)
		if ((rq->h.op != VV_RW_SYMLINK || i == 0) && rq->h.op != VV_RW_SETXATTR &&
		    rq->h.op != VV_RW_GETXATTR && rq->h.op != VV_RW_REMOVEXATTR && dotname(rq->s[i])) {
			r = VV_EINVAL;
			why = "name \".\" or \"..\"";
			goto out;
		}
	/* A request that makes a node holds its entry of the node budget
	 * first: refused there, nothing is made.  (LINK hands out the node it
	 * names, which the session holds already.) */
	switch (rq->h.op) {
	case VV_RW_MKNOD: case VV_RW_MKDIR: case VV_RW_SYMLINK: case VV_RW_CREATE:
		if ((r = ino_reserve(s, bwhy, sizeof(bwhy))) < 0)
			goto out;        /* attr_ref below uses it or gives it back */
		break;
	default:
		break;
	}

	switch (rq->h.op) {
	case VV_RW_LOOKUP:
		r = attr_ref(s, rep, vv_vault_lookup(s->v, &c, u[0], rq->s[0], &rep->attr), false,
			     bwhy, sizeof(bwhy));
		break;
	case VV_RW_FORGET: {
		uint64_t n = ino_unref(s, u[0], u[1]);
		if (n)
			vv_vault_forget(s->v, u[0], n);
		break;
	}
	case VV_RW_GETATTR:
		r = vv_vault_getattr(s->v, &c, u[0], &rep->attr);
		rep->has_attr = r == 0;
		break;
	case VV_RW_SETATTR: {
		struct vv_setattr sa = { .valid = (unsigned)u[1], .mode = (uint32_t)u[2],
					 .uid = (uint32_t)u[3], .gid = (uint32_t)u[4], .size = u[5] };
		sa.atime.tv_sec = (time_t)(int64_t)u[6];
		sa.atime.tv_nsec = (long)(u[7] % 1000000000u);
		sa.mtime.tv_sec = (time_t)(int64_t)u[8];
		sa.mtime.tv_nsec = (long)(u[9] % 1000000000u);
		sa.valid &= VV_SET_MODE | VV_SET_UID | VV_SET_GID | VV_SET_SIZE | VV_SET_ATIME |
			    VV_SET_MTIME | VV_SET_ATIME_NOW | VV_SET_MTIME_NOW | VV_SET_KILL_SUIDGID;
		if (u[10] && !(sa.fh = h_get(s, u[10], H_FILE, false))) {
			r = VV_EBADF;
			why = "no such file handle in this session";
			break;
		}
		if (sa.fh)
			held = u[10];
		r = vv_vault_setattr(s->v, &c, u[0], &sa, &rep->attr);
		rep->has_attr = r == 0;
		break;
	}
	case VV_RW_READLINK: {
		int n = vv_vault_readlink(s->v, &c, u[0], (char *)data, VV_SYMLINK_MAX + 1);
		if (n < 0) {
			r = n;
		} else if (n > VV_RW_TEXT_MAX) {
			r = VV_ENAMETOOLONG;
		} else {
			data[n] = 0;
			rep->s[0] = (const char *)data;
			rep->ns = 1;
		}
		break;
	}
	case VV_RW_MKNOD:
		c.umask = (uint32_t)u[3] & 0777;
		r = attr_ref(s, rep, vv_vault_mknod(s->v, &c, u[0], rq->s[0], (uint32_t)u[1], u[2],
						    &rep->attr), true, bwhy, sizeof(bwhy));
		break;
	case VV_RW_MKDIR:
		c.umask = (uint32_t)u[2] & 0777;
		r = attr_ref(s, rep, vv_vault_mkdir(s->v, &c, u[0], rq->s[0], (uint32_t)u[1], &rep->attr),
			     true, bwhy, sizeof(bwhy));
		break;
	case VV_RW_SYMLINK:
		r = attr_ref(s, rep, vv_vault_symlink(s->v, &c, u[0], rq->s[0], rq->s[1], &rep->attr),
			     true, bwhy, sizeof(bwhy));
		break;
	case VV_RW_LINK:
		if (!ino_known(s, u[1])) {
			r = VV_ENOENT;
			why = "new parent inode not handed to this session";
			break;
		}
		if ((r = vv_vault_reach(s->v, &c, u[1])) < 0) {
			why = "a directory above the new parent may not be searched";
			break;
		}
		r = attr_ref(s, rep, vv_vault_link(s->v, &c, u[0], u[1], rq->s[0], &rep->attr), false,
			     bwhy, sizeof(bwhy));
		break;
	case VV_RW_UNLINK:
		r = vv_vault_unlink(s->v, &c, u[0], rq->s[0]);
		break;
	case VV_RW_RMDIR:
		r = vv_vault_rmdir(s->v, &c, u[0], rq->s[0]);
		break;
	case VV_RW_RENAME:
		if (!ino_known(s, u[1])) {
			r = VV_ENOENT;
			why = "new parent inode not handed to this session";
			break;
		}
		if ((r = vv_vault_reach(s->v, &c, u[1])) < 0) {
			why = "a directory above the new parent may not be searched";
			break;
		}
		if (u[2] & ~(uint64_t)(VV_RENAME_NOREPLACE | VV_RENAME_EXCHANGE)) {
			r = VV_EINVAL;
			break;
		}
		r = vv_vault_rename(s->v, &c, u[0], rq->s[0], u[1], rq->s[1], (unsigned)u[2]);
		break;
	case VV_RW_OPEN: {
		bool keep = false;
		int fl = (int)(u[1] & ~(uint64_t)VV_OPEN_EXEC);
		if ((r = vv_vault_open_file(s->v, &c, u[0], fl, &fh, &keep)) < 0)
			break;
		/* Everything the reply takes from fh comes before h_new: once
		 * the handle is in the table the peer may RELEASE it (handle ids
		 * are predictable), so fh may be gone by the next line, and a
		 * failure after h_new would release it a second time. */
		rep->u[1] = keep;
		rep->u[2] = vv_vault_file_gen(s->v, fh);
		/* the attributes as of the open: the client's cache of them
		 * starts again from here (a file changed elsewhere) */
		if ((r = vv_vault_getattr(s->v, &c, u[0], &rep->attr)) < 0) {
			vv_vault_release(s->v, fh);
			break;
		}
		if ((r = h_new(s, H_FILE, fh, &rep->u[0])) < 0) {
			vv_vault_release(s->v, fh);
			break;
		}
		rep->nu = 3;
		rep->has_attr = true;
		break;
	}
	case VV_RW_CREATE:
		c.umask = (uint32_t)u[3] & 0777;
		r = vv_vault_create(s->v, &c, u[0], rq->s[0], (uint32_t)u[1],
				    (int)(u[2] & ~(uint64_t)VV_OPEN_EXEC), &rep->attr, &fh);
		if ((r = attr_ref(s, rep, r, true, bwhy, sizeof(bwhy))) < 0) {
			if (fh)          /* made, but no memory for its entry */
				vv_vault_release(s->v, fh);
			break;
		}
		if ((r = h_new(s, H_FILE, fh, &rep->u[0])) < 0) {
			vv_vault_release(s->v, fh);
			break;
		}
		rep->nu = 1;
		break;
	case VV_RW_READ: {
		ssize_t n;
		if (u[2] > VV_RW_DATA_MAX) {
			r = VV_EINVAL;
			break;
		}
		n = vv_vault_read(s->v, fh, data, (size_t)u[2], u[1]);
		if (n < 0) {
			r = (int)n;
			break;
		}
		rep->blob = data;
		rep->bloblen = (size_t)n;
		break;
	}
	case VV_RW_WRITE: {
		ssize_t n = vv_vault_write(s->v, &c, fh, rq->blob, rq->bloblen, u[1]);
		if (n < 0) {
			r = (int)n;
			break;
		}
		rep->u[0] = (uint64_t)n;
		rep->nu = 1;
		break;
	}
	case VV_RW_FLUSH:
		r = vv_vault_flush(s->v, fh);
		break;
	case VV_RW_FSYNC:
		r = vv_vault_fsync(s->v, fh, u[1] != 0);
		break;
	case VV_RW_RELEASE:
		if (!(fh = h_get(s, u[0], H_FILE, true))) {
			r = VV_EBADF;
			why = "no such file handle in this session";
			break;
		}
		r = vv_vault_release(s->v, fh);
		break;
	case VV_RW_OPENDIR:
		if ((r = vv_vault_opendir(s->v, &c, u[0], &dh)) < 0)
			break;
		if ((r = h_new(s, H_DIR, dh, &rep->u[0])) < 0) {
			vv_vault_releasedir(s->v, dh);
			break;
		}
		rep->nu = 1;
		break;
	case VV_RW_READDIR: {
		/* In pieces of READDIR_PIECE bytes, each one vault call: the
		 * vault holds its lock while it lists, and one 1 MiB listing
		 * with attributes held it 10 ms warm, 150-400 ms when meta.db
		 * was read from disk, every local request waiting meanwhile
		 * (docs/remote.md "The session").  Between pieces the
		 * directory may change, as between two requests of a listing. */
		size_t want = u[3] < VV_RW_DATA_MAX ? (size_t)u[3] : VV_RW_DATA_MAX;
		struct fill_ctx f = { .s = s, .buf = data, .plus = u[2] != 0, .next = u[1] };
		do {
			f.cap = want - f.len > READDIR_PIECE ? f.len + READDIR_PIECE : want;
			f.full = false;
			r = vv_vault_readdir(s->v, dh, f.next, f.plus, fill, &f);
		} while (r == 0 && f.full && f.cap < want);
		if (f.why[0])            /* naming the first entry sent bare */
			vv_vault_audit_refused(s->v, &c, "readdir", f.back[0], VV_ENOMEM, f.why);
		for (size_t i = 0; i < f.nback; i++)
			vv_vault_forget(s->v, f.back[i], 1);
		free(f.back);
		if (r < 0)
			break;
		rep->blob = data;
		rep->bloblen = f.len;
		/* the vault listed to the end and every entry fitted: the
		 * client need not ask once more to learn that */
		rep->u[0] = !f.full;
		rep->nu = 1;
		break;
	}
	case VV_RW_RELEASEDIR:
		if (!(dh = h_get(s, u[0], H_DIR, true))) {
			r = VV_EBADF;
			why = "no such directory handle in this session";
			break;
		}
		r = vv_vault_releasedir(s->v, dh);
		break;
	case VV_RW_SETXATTR:
		r = vv_vault_setxattr(s->v, &c, u[0], rq->s[0], rq->blob, rq->bloblen, (int)u[1]);
		break;
	case VV_RW_GETXATTR:
	case VV_RW_LISTXATTR: {
		size_t want = (size_t)u[1];
		ssize_t n;
		if (want > VV_XATTR_SIZE_MAX)
			want = VV_XATTR_SIZE_MAX;
		n = rq->h.op == VV_RW_GETXATTR
			    ? vv_vault_getxattr(s->v, &c, u[0], rq->s[0], data, want)
			    : vv_vault_listxattr(s->v, &c, u[0], (char *)data, want);
		if (n < 0) {
			r = (int)n;
			break;
		}
		rep->u[0] = (uint64_t)n;
		rep->nu = 1;
		rep->blob = data;
		rep->bloblen = want ? (size_t)n : 0;
		break;
	}
	case VV_RW_REMOVEXATTR:
		r = vv_vault_removexattr(s->v, &c, u[0], rq->s[0]);
		break;
	case VV_RW_ACCESS:
		r = vv_vault_access(s->v, &c, u[0], (int)(u[1] & 7));
		break;
	case VV_RW_STATFS: {
		struct vv_statfs st;
		if ((r = vv_vault_statfs(s->v, &c, u[0], &st)) < 0)
			break;
		rep->u[0] = st.bsize;
		rep->u[1] = st.blocks;
		rep->u[2] = st.bfree;
		rep->u[3] = st.bavail;
		rep->u[4] = st.files;
		rep->u[5] = st.ffree;
		rep->u[6] = st.namemax;
		rep->nu = 7;
		break;
	}
	case VV_RW_FALLOCATE:
		r = vv_vault_fallocate(s->v, &c, fh, (int)u[1], u[2], u[3]);
		break;
	case VV_RW_LSEEK: {
		int64_t out = 0;
		if ((r = vv_vault_lseek(s->v, fh, (int64_t)u[1], (int)u[2], &out)) < 0)
			break;
		rep->u[0] = (uint64_t)out;
		rep->nu = 1;
		break;
	}
	case VV_RW_KNN: {
		void *io;        /* a struct vv_knn_ioc, or on dh a struct vv_knn_dir_ioc */
		if (rq->bloblen != VV_KNN_IOC_BYTES) {
			r = VV_EINVAL;
			break;
		}
		if (!(io = malloc(VV_KNN_IOC_BYTES))) {
			r = VV_ENOMEM;
			break;
		}
		memcpy(io, rq->blob, VV_KNN_IOC_BYTES);
		r = knn_pooled(s, &c, fh, dh, io);
		if (r == 0) {
			memcpy(data, io, VV_KNN_IOC_BYTES);
			rep->blob = data;
			rep->bloblen = VV_KNN_IOC_BYTES;
		}
		free(io);
		break;
	}
	default:
		r = VV_EINVAL;
		break;
	}
	if (r == 0)
		inval_local(s, rq, fh);
out:
	if (held)
		h_put(s, held);
	if (!why && bwhy[0])
		why = bwhy;
	if (why) {
		/* refused here, before the vault saw it: audit it as the vault
		 * audits its own refusals */
		const char *op = vv_rw_op_name(rq->h.op);
		vv_vault_audit_refused(s->v, &c, op ? op : "?", u[0], r, why);
	}
	if (r < 0) {
		rep->h.status = r;
		rep->nu = rep->ns = 0;
		rep->has_attr = false;
		rep->bloblen = 0;
	}
}
