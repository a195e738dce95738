/*
 * remote_int.h - internals shared by the files of the vv:// client: the
 * mount's state (struct rfs), open handles, requests being built and sent
 * (struct call, fs_remote_run), the inode records and reconnection
 * (remote_conn.c), the background FORGET queue (remote_forget.c) and the
 * listing prefetch (remote_prefetch.c).  remote.c holds the FUSE handlers
 * and the mount.
 *
 * Threads: FUSE's workers, one forget thread, PF_THREADS prefetch workers.
 * Locks: rfs.imu (inode records, a handle's server handle and re-open
 * state, with rfs.rcond), rfs.fmu (forget queue), rfs.pmu (prefetches);
 * none is held while waiting for the server (a thread that needs a handle
 * another thread is re-opening waits on rfs.rcond, which holds no lock),
 * and none is taken while another is held.
 */
#ifndef VV_FS_REMOTE_INT_H
#define VV_FS_REMOTE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "fs_int.h"
#include "vecvault/net.h"
#include "vecvault/remote_wire.h"

/* What the client remembers of an inode the kernel holds (remote_conn.c,
 * "Reconnecting"): in rfs.irecs, IREC_BUCKETS chains, under rfs.imu. */
#define IREC_BUCKETS 65536

struct irec {
	struct irec *next;
	uint64_t ino, parent, gen, nlookup;
	uint64_t srefs;              /* references the current session holds */
	unsigned epoch;
	int64_t noxattr_until;       /* CLOCK_MONOTONIC ns: until then the node
	                                has no xattr (vv_attr.noxattr) */
	int64_t attr_until;          /* CLOCK_MONOTONIC ns: until then attr may
	                                answer a GETATTR (a cacheable node) ... */
	uint64_t attr_mut;           /* ... if no change went through this client
	                                since (rfs.mut) */
	struct vv_attr attr;
	uint64_t dgen;               /* the data generation (remote_wire.c, OPEN) */
	bool dgen_set;               /* at the last open here (fs_remote_gen_same) */
	char name[VV_NAME_MAX + 1];
};

/* A FORGET waiting to be sent (remote_forget.c). */
struct fgq {
	uint64_t ino, n;
	unsigned epoch;
};

#define FQ_QUIET_NS 20000000LL       /* 20 ms */
#define FQ_PUSH 16384
#define FQ_WINDOW 16                 /* in flight at most, forgets included */

/* An open file or directory: fuse_file_info.fh. */
struct rhandle {
	uint64_t srv;                /* the server's handle on connection epoch ... */
	uint64_t ino;                /* server inode */
	int flags;
	unsigned epoch;              /* ... (both under rfs.imu once shared) */
	bool reopening;              /* a thread re-opens it on a new connection
	                                (rfs.imu; rfs.rcond when it is done) */
	bool dir;
	bool eof;                    /* dir: the server said it ends at eof_off */
	bool walk;                   /* dir: opened from a prefetch (a walk goes on) */
	uint64_t eof_off;
	struct call *pre;            /* dir: the prefetched first listing, unused yet */
};

/* Listing prefetch (remote_prefetch.c). */
#define PF_MAX 256                   /* prefetches held or in flight */
#define PF_THREADS 4
#define PF_NS 1000000000LL           /* 1 s */
#define LST_MAX 64                   /* listings remembered for a descent */

enum { PF_QUEUED, PF_RUNNING, PF_DONE };

struct pf {
	uint64_t ino;                /* server inode of the directory */
	unsigned epoch;
	int state;
	int64_t born;                /* mono_ns when it was asked */
	uint64_t mut;                /* rfs.mut then */
	struct rhandle *h;           /* PF_DONE: the open directory ... */
	struct call *k;              /* ... and its first READDIRPLUS reply */
};

/* The subdirectories (prefetchable) of a listing served to the kernel. */
struct lst {
	uint64_t ino;
	int64_t at;
	bool walked;                 /* a descent into one prefetched the rest */
	size_t n;
	uint64_t *sub;
};

/* The mount. */
struct rfs {
	struct vv_net_client *c;
	uint64_t root;               /* the server's inode shown as 1 */
	struct fuse_session *se;
	pthread_mutex_t imu;         /* irecs, and handle re-opens */
	pthread_cond_t rcond;        /* a handle's re-open ended (with imu) */
	struct irec **irecs;
	double ttl;                  /* seconds the kernel caches a cacheable node */
	_Atomic uint64_t mut;        /* changes sent through this client: each one
	                                retires every cached attribute (the kernel
	                                drops its own then, and asks again) */
	struct fs_ra ra;             /* the kernel's read-ahead window (readahead.c) */
	_Atomic int64_t fg_ns;       /* mono_ns of the last request sent for the kernel */
	pthread_mutex_t fmu;         /* the forget queue (forgets below) */
	pthread_cond_t fcond;
	struct fgq *fq;
	size_t fq_len, fq_cap;
	_Atomic bool fstop;          /* the forget thread ends (unsent forgets
	                                go with the session) */
	bool fthread;
	pthread_t fthr;
	bool pf_on;                  /* READDIRPLUS and a nonzero attribute bound */
	pthread_mutex_t pmu;         /* pfs, lsts */
	pthread_cond_t pcond;        /* work queued, or a prefetch finished */
	struct pf pfs[PF_MAX];
	size_t npf;
	struct lst lsts[LST_MAX];
	size_t lst_next;
	bool pstop;
	unsigned npthr;
	pthread_t pthr[PF_THREADS];
	_Atomic uint32_t rd_size;    /* the kernel's last READDIRPLUS size */
	_Atomic uint64_t pf_asked, pf_used;   /* for the log at unmount */
	int ready_fd;                /* the mount command's pipe until INIT passed, else -1 */
	uint32_t init_missing;       /* capabilities INIT asked for that the kernel lacks */
	bool test_init_fail;         /* vv_fs_opts.test_init_fail */
	char *release_gate;          /* vv_fs_opts.test_release_gate (owned) */
	char *send_gate;             /* vv_fs_opts.test_send_gate (owned) */
	_Atomic unsigned kd_old;     /* 1 + the connection epoch whose server has no
	                                directory request (answered EBADF): ENOTTY */
	_Atomic uint64_t n_opens, n_kept, n_changed;   /* files opened, page cache
	                                kept, dropped for a change (fs_remote_gen_same) */
};

static inline int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* A request being built: header op, fields in order.  Inodes are the
 * server's; a handle field holds the struct rhandle pointer until run()
 * puts the server's handle of the current connection in its place. */
struct call {
	struct vv_rw_msg rq, rep;
	uint8_t *hold;
	unsigned epoch;              /* the connection that answered */
	uint64_t mut;                /* rfs.mut when it was sent */
	int64_t born;                /* mono_ns when it was sent */
};

static inline struct call *call_new(unsigned op)
{
	struct call *k = calloc(1, sizeof(*k));

	if (k)
		k->rq.h.op = (uint16_t)op;
	return k;
}

static inline void call_free(struct call *k)
{
	if (!k)
		return;
	free(k->hold);
	free(k);
}

static inline void U(struct call *k, uint64_t v) { k->rq.u[k->rq.nu++] = v; }
static inline void S(struct call *k, const char *s) { k->rq.s[k->rq.ns++] = s; }

static inline void Bl(struct call *k, const void *p, size_t n)
{
	k->rq.blob = p;
	k->rq.bloblen = n;
}

static inline struct rhandle *rh_new(uint64_t srv, uint64_t ino, int flags, unsigned epoch,
				     bool dir)
{
	struct rhandle *h = calloc(1, sizeof(*h));

	if (h)
		*h = (struct rhandle){ .srv = srv, .ino = ino, .flags = flags, .epoch = epoch,
				       .dir = dir };
	return h;
}

/* --- remote_conn.c: inode records, reconnection, sending ------------------ */

/* Send k and wait: 0 or a VV_E* code (reconnects once when the connection
 * was found dead).  k keeps the reply; the caller frees k. */
int fs_remote_run(struct rfs *f, struct call *k);
/* Tests: while the file path names exists (at most a minute), wait; path
 * NULL: return at once. */
void fs_remote_gate(const char *path);
/* Give back a server handle srv of connection epoch with op (RELEASE or
 * RELEASEDIR); nothing when that connection is gone (its handles went
 * with it). */
void fs_remote_release_raw(struct rfs *f, unsigned op, uint64_t srv, unsigned epoch);

/* The inode records; each takes rfs.imu itself.  Attributes a arrived in a
 * reply to a request sent at born (mono_ns) when rfs.mut was mut. */
/* One more kernel reference on a->ino, found as parent/name on epoch. */
void fs_remote_irec_add(struct rfs *f, uint64_t parent, const char *name, const struct vv_attr *a,
			unsigned epoch, uint64_t mut, int64_t born);
/* The kernel forgot n references on ino: how many of the current
 * session's references (on epoch *ep) to give back; all once the kernel
 * holds none. */
uint64_t fs_remote_irec_forget(struct rfs *f, uint64_t ino, uint64_t n, unsigned *ep);
/* After a rename: what was found as parent/name is found as
 * newparent/newname. */
void fs_remote_irec_moved(struct rfs *f, uint64_t parent, const char *name, uint64_t newparent,
			  const char *newname);
/* Fresh attributes of a node the kernel holds (getattr, setattr, open). */
void fs_remote_irec_seen(struct rfs *f, const struct vv_attr *a, uint64_t mut, int64_t born);
/* ino's attributes as received within the bound, with no change through
 * this client since: true and *a, *left (seconds of the bound left). */
bool fs_remote_irec_cached_attr(struct rfs *f, uint64_t ino, struct vv_attr *a, double *left);
/* May the xattr probe name on ino be answered ENODATA here? */
bool fs_remote_irec_noxattr(struct rfs *f, uint64_t ino, const char *name);
/* This client changed ino's xattrs: ask the server again. */
void fs_remote_irec_xattr_changed(struct rfs *f, uint64_t ino);
/* The parent (server inode) where the kernel's inode ino was found; 0 when
 * the kernel does not hold ino. */
uint64_t fs_remote_irec_parent(struct rfs *f, uint64_t ino);
/* Record gen as ino's data generation (OPEN's reply) and say what it was
 * at the open before here: the page cache is kept only when DGEN_SAME. */
enum dgen_was { DGEN_UNKNOWN, DGEN_SAME, DGEN_CHANGED };
enum dgen_was fs_remote_gen_same(struct rfs *f, uint64_t ino, uint64_t gen);

/* --- remote_forget.c: FORGETs sent in the background ----------------------- */

/* Give n server references on ino (of connection epoch) back, later.
 * Never fails: without memory the server keeps the node until the session
 * ends. */
void fs_remote_forget_later(struct rfs *f, uint64_t ino, uint64_t n, unsigned epoch);
/* Start the forget thread (fmu and fcond initialised); without one, queued
 * forgets are never sent (logged). */
void fs_remote_forget_start(struct rfs *f);
/* Stop it; unsent forgets go with the session.  Safe when never started. */
void fs_remote_forget_stop(struct rfs *f);

/* --- remote_prefetch.c: listings of a walk's next directories ------------ */

/* May the directory of attributes a be prefetched? */
bool fs_remote_pf_dir(const struct vv_attr *a);
/* Give back the references a listing reply k holds on the server; frees k
 * (NULL is fine). */
void fs_remote_pf_drop_refs(struct rfs *f, struct call *k);
/* Close an unused prefetch: its handle h and listing k (both freed). */
void fs_remote_pf_discard(struct rfs *f, struct rhandle *h, struct call *k);
/* The prefetched open directory ino, its first listing in h->pre (the
 * caller owns h), or NULL: open it the usual way. */
struct rhandle *fs_remote_pf_take(struct rfs *f, uint64_t ino);
/* The kernel opens directory ino: in a walk, prefetch its siblings. */
void fs_remote_pf_descend(struct rfs *f, uint64_t ino);
/* A listing of dir was served with the prefetchable subdirectories
 * sub[0..n) (taken, freed here); in a walk they are prefetched now. */
void fs_remote_pf_listed(struct rfs *f, uint64_t dir, uint64_t *sub, size_t n, bool walk);
/* Start the workers (pmu and pcond initialised), stop them and free what
 * is held (the session ends next: nothing is given back). */
void fs_remote_pf_start(struct rfs *f);
void fs_remote_pf_stop(struct rfs *f);

#endif
