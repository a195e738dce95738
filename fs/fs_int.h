/*
 * fs_int.h - internals shared by the files of fs/: the per-mount state, the
 * per-request identity (ident.c) and the kernel-cache invalidation queue
 * (notify.c).  Only fs/ includes FUSE headers.
 */
#ifndef VV_FS_INT_H
#define VV_FS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

#include "vecvault/vault.h"
#include "vecvault/fs.h"

/* --- ident.c: who sends a request --------------------------------------- */

/* Supplementary groups and process name of one process, read from /proc.
 * Immutable once published; shared by reference count. */
struct ident_entry {
	atomic_int refs;
	uint32_t pid, uid, gid;      /* key: a pid reused by other creds misses */
	struct timespec born;        /* CLOCK_MONOTONIC */
	char comm[32];
	uint32_t ngroups;
	uint32_t groups[];
};

#define IDENT_BUCKETS 256

/* Cache per pid with a short lifetime: fuse_req_getgroups() reads
 * /proc/PID/task/PID/status on every call, too slow per request. */
struct ident_cache {
	pthread_mutex_t lock;
	struct ident_entry *slot[IDENT_BUCKETS];
};

/* A request's identity as the engine wants it.  Holds a reference on the
 * cache entry that backs id.groups and comm. */
struct req_ctx {
	struct vv_ctx c;
	struct ident_entry *ent;     /* NULL when nothing could be cached */
};

void fs_ident_cache_init(struct ident_cache *ic);
void fs_ident_cache_release(struct ident_cache *ic);
/* Fill rc for req; never fails (without /proc data: no groups, no name). */
void fs_ident_get(struct ident_cache *ic, fuse_req_t req, struct req_ctx *rc);
void fs_ident_put(struct req_ctx *rc);

/* --- notify.c: kernel-cache invalidation ---------------------------------- */

struct inval_item {
	struct inval_item *next;
	uint64_t ino;                /* parent when name != NULL */
	char *name;                  /* owned; NULL = inode only */
};

/* The engine's callback only queues; this thread talks to the kernel, so a
 * notification is never sent from inside a handler (the kernel may hold the
 * very inode lock the notification needs). */
struct notifier {
	pthread_mutex_t lock;
	pthread_cond_t cond, done;       /* queued; one more sent */
	struct inval_item *head, *tail;
	bool stop, started;
	struct fuse_session *se;
	atomic_uint_fast64_t queued;     /* requests ever queued */
	uint64_t sent;                   /* of them, sent (or dropped); under lock */
	atomic_bool no_epoch;            /* kernel lacks FUSE_NOTIFY_INC_EPOCH */
	pthread_t thread;
};

void fs_notifier_init(struct notifier *n);
/* Wait (at most 5 s) until every request queued before the call was sent;
 * ctx is the notifier (vv_vault_set_inval_wait).  Never from a FUSE
 * handler: a notification may wait for the inode lock a handler holds. */
void fs_notifier_wait(void *ctx);
/* Start the thread for session se (after mount).  0 or VV_ESYS. */
int fs_notifier_start(struct notifier *n, struct fuse_session *se);
/* Stop the thread (drops what is still queued) and free everything.
 * Safe if never started. */
void fs_notifier_release(struct notifier *n);
/* vv_inval_fn: queue one request (ctx = struct notifier *). */
void fs_notifier_queue(void *ctx, uint64_t ino, const char *name);
/* Count of requests queued so far (read before an engine call). */
uint64_t fs_notifier_mark(struct notifier *n);
/* Call after an engine call, BEFORE replying: if anything was queued since
 * mark, make every cached dentry of the mount stale at once, so the change
 * is in force when the caller's syscall returns (see notify.c). */
void fs_notifier_sync(struct notifier *n, uint64_t mark);

/* --- sdnotify.c: systemd readiness ------------------------------------------ */

/* Send state ("READY=1", "STOPPING=1", with "STATUS=..." lines) to the
 * socket address name (systemd's $NOTIFY_SOCKET, which the CLI reads: fs/
 * reads no environment).  0 also when name is NULL or "" (not under systemd);
 * VV_EINVAL (an address that is not a unix socket) or VV_ESYS, logged as a
 * warning: a lost notification never stops the daemon. */
int fs_sdnotify(const char *name, const char *state);

/* --- ctl.c: the control socket ---------------------------------------------- */

#define CTL_MAX_CONN 32

/* The daemon's control socket (ctl.c says how it is bounded).  Started
 * once the mount is live, stopped before the vault closes. */
struct ctl {
	struct vv_vault *v;
	char path[108];              /* sizeof(sun_path) */
	int lfd, stop_pipe[2];
	uint32_t euid;               /* the daemon's uid: not subject to per-uid caps */
	dev_t dev;                   /* the socket we bound: removed only if */
	ino_t ino;                   /* it is still that one */
	pthread_t acceptor;
	bool started;
	atomic_bool stopping;
	pthread_mutex_t mu;
	pthread_cond_t cond;         /* nconn dropped */
	unsigned nconn;
	unsigned refused;            /* acceptor thread only: refusals not yet */
	int64_t refused_logged;      /* logged, and when the last one was */
	struct {
		bool used;
		uint32_t uid;
	} slots[CTL_MAX_CONN];
};

void fs_ctl_init(struct ctl *c);
/* Bind path (mode 0666, in a directory of ours made 0755 if missing; a
 * stale socket of ours is replaced; a link, a live socket or anything not
 * ours is refused) and serve admin requests on v.  0, or a VV_E* code with
 * the reason in why. */
int fs_ctl_start(struct ctl *c, struct vv_vault *v, const char *path, char *why, size_t whylen);
/* Stop accepting, end every connection (waiting for requests in flight),
 * remove the socket if it is still ours, free.  Safe if never started. */
void fs_ctl_stop(struct ctl *c);

/* --- daemon.c / ops.c --------------------------------------------------- */

struct fs_ra {
	char bdi[32];                    /* "major:minor" of the mount, or "" */
	bool done;                       /* read-ahead set (or given up) */
};

/* --- bulk_map.c: callers' bulk-read buffers kept mapped ------------------ */

/* The mappings of one mount (bulk_map.c says what may be mapped, for how
 * long, and the bounds).  Thread-safe. */
struct bulk_map;
struct stat;
struct bulk_maps {
	pthread_mutex_t mu;
	struct bulk_map *head;
	unsigned n;
	int wake;                        /* eventfd: the reaper's stop */
	int uffd;                        /* userfaultfd: a hole faults SIGBUS */
	pthread_t thr;                   /* the reaper, once running */
	bool running, stop, failed;
};
void fs_bulk_maps_init(struct bulk_maps *m);
/* After the session loop (no request runs): stops the reaper, unmaps all. */
void fs_bulk_maps_release(struct bulk_maps *m);
/* A mapping of the buffer fd (st: its fstat) that bulk.c took for uid and
 * checked for this request (pidfd: the sending thread's), covering at
 * least [0, end): kept from an earlier request of the same uid and file,
 * or made now, registered with the mount's userfaultfd (a hole faults,
 * never filled).  NULL when the buffer is not sealed against shrinking, is
 * larger than VV_BULK_SPAN_MAX, a bound is reached, or there is no
 * userfaultfd (bulk.c answers EBUSY).  Held until fs_bulk_map_release. */
struct bulk_map *fs_bulk_map_get(struct bulk_maps *m, uint32_t uid, int fd, const struct stat *st,
				 int pidfd, uint64_t end);
/* Is descriptor fd of task tid the very file (open file description) a
 * mapping of uid's buffer (dev, ino) was made from?  kcmp(2): nothing is
 * taken, no file system asked.  bulk.c's cheap look before a take. */
bool fs_bulk_map_same(struct bulk_maps *m, uint32_t uid, uint64_t dev, uint64_t ino, pid_t tid,
		      int fd);
/* len bytes from p into the buffer at off, through the mapping: 0,
 * VV_ENOSPC past its end, VV_EINVAL when the copy found a page gone (a
 * hole the caller punched: never filled here), VV_EIO for a memory error
 * (fs_bulk_copy). */
int fs_bulk_map_put(struct bulk_map *e, uint64_t off, const void *p, size_t len)
	__attribute__((warn_unused_result));
/* Lets e go (NULL: nothing); failed: its copy failed, never used again. */
void fs_bulk_map_release(struct bulk_maps *m, struct bulk_map *e, bool failed);
/* memcpy of len bytes from src to dst inside the mapping [lo, hi), with a
 * SIGBUS there caught: 0, VV_ENOSPC when [dst, dst + len) is not inside,
 * VV_EIO when it faulted on a memory error, VV_EINVAL on any other fault
 * (a page missing: past the end, or a hole under bulk_map.c's
 * userfaultfd), that thread's copy only (any other SIGBUS keeps its
 * handler or the default), VV_ENOTSUP when no handler could be set. */
int fs_bulk_copy(uint8_t *dst, const uint8_t *lo, const uint8_t *hi, const void *src, size_t len)
	__attribute__((warn_unused_result));

struct vv_fs {
	struct vv_vault *v;
	struct ident_cache ident;
	struct notifier notify;
	struct bulk_maps maps;
	const struct vv_fs_opts *o;
	struct fs_ra ra;                 /* the mount's read-ahead window */
	bool wo_direct;                  /* write-only handles bypass the page
					  * cache (ops.c write_only) */
};

/* readahead.c: the mount's kernel read-ahead window (a local mount's and
 * a vv:// client's).  fs_ra_find, after mount(2) and before the loop,
 * records the mount's device from /proc/self/mountinfo (real_mnt: the
 * mount point as realpath(3) gave it before mounting).  fs_ra_apply, from
 * a handler that follows INIT (open), raises the window once; failures are
 * logged only. */
void fs_ra_find(struct fs_ra *ra, const char *real_mnt);
void fs_ra_apply(struct fs_ra *ra);

/* bulk.c: VV_IOC_BULK_READ on directory handle dh for req (knn_ioctl.h
 * "the bulk read"): the caller's memfd taken from its process and checked,
 * then vv_vault_bulk_read writing into it.  0 with the reply in io, or a
 * negative VV_E*. */
int fs_bulk_read(struct vv_fs *fs, fuse_req_t req, const struct vv_ctx *c, struct vv_dir *dh,
		 struct vv_bulk_ioc *io);

extern const struct fuse_lowlevel_ops vv_fs_ops;

#endif
