/*
 * ops.c - the FUSE low-level handlers: each request becomes one vv_vault_*()
 * call and exactly one reply.
 *
 * Shape of every handler (libfuse example/passthrough_ll.c):
 *   BEGIN(req) -> identity of the caller -> engine call -> reply -> END.
 * fs/ decides nothing: access checks, audit and POSIX semantics live in the
 * engine.  Error codes are mapped to errno here and only here (vv_errno()).
 *
 * Kernel caching: an entry or attribute may be cached only when the engine
 * says attr.cacheable (every user may search its whole ancestry); otherwise
 * the timeout is 0 and every path walk asks the daemon, so a denial is both
 * enforced and audited.  Handlers that change something call
 * fs_notifier_mark()/fs_notifier_sync() around the engine call, so invalidations
 * the change caused are in force before the reply (notify.c).  A negative
 * lookup is cached under the same rule: the engine says whether every user
 * may search the parent and its ancestry.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "vecvault/error.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/log.h"
#include "fs_int.h"

#define CACHE_TIMEOUT 3600.0
#define FMODE_EXEC_FLAG 0x20         /* the kernel's FMODE_EXEC in open flags */

#define FS(req) ((struct vv_fs *)fuse_req_userdata(req))
#define FH(fi) ((struct vv_file *)(uintptr_t)(fi)->fh)
#define DH(fi) ((struct vv_dir *)(uintptr_t)(fi)->fh)

static void attr_to_stat(const struct vv_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_blksize = 65536;      /* the AEAD block: whole-block writes */
	st->st_rdev = a->rdev;
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
}

static double timeout_of(const struct vv_attr *a)
{
	return a->cacheable ? CACHE_TIMEOUT : 0.0;
}

static void attr_to_entry(const struct vv_attr *a, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = a->ino;
	e->generation = a->gen;
	attr_to_stat(a, &e->attr);
	e->attr_timeout = timeout_of(a);
	e->entry_timeout = timeout_of(a);
}

/* Reply the result of an engine call without data: 0 or a VV_E* code. */
static void reply_err(fuse_req_t req, int r)
{
	int e = r < 0 ? vv_errno(r) : 0;

	/* An unmapped code must still be an error, never success. */
	if (r < 0 && e <= 0)
		e = EIO;
	fuse_reply_err(req, e);
}

/* Reply a new entry that took a lookup reference; if the kernel is gone
 * (interrupted), give the reference back so the node is not pinned. */
static void reply_entry_ref(fuse_req_t req, struct vv_vault *v, const struct vv_attr *a)
{
	struct fuse_entry_param e;

	attr_to_entry(a, &e);
	if (fuse_reply_entry(req, &e) == -ENOENT)
		vv_vault_forget(v, a->ino, 1);
}

/* ---- lifecycle ------------------------------------------------------------ */

static void want(struct fuse_conn_info *conn, unsigned cap)
{
	if (conn->capable & cap)
		conn->want |= cap;
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct vv_fs *fs = userdata;

	/* The engine applies the umask itself (default ACLs override it). */
	want(conn, FUSE_CAP_DONT_MASK);
	/* Setuid/setgid clearing on write/truncate/chown is the engine's job. */
	want(conn, FUSE_CAP_HANDLE_KILLPRIV);
	want(conn, FUSE_CAP_ATOMIC_O_TRUNC);
	want(conn, FUSE_CAP_ASYNC_READ);
	want(conn, FUSE_CAP_PARALLEL_DIROPS);
	want(conn, FUSE_CAP_READDIRPLUS);
	want(conn, FUSE_CAP_READDIRPLUS_AUTO);
	/* A cached listing is checked against the directory's mtime at
	 * offset 0 only with this (fs_opendir). */
	want(conn, FUSE_CAP_AUTO_INVAL_DATA);
	/* Never: writeback cache (the engine must see every write to audit and
	 * order it), POSIX_ACL (the kernel would check ACLs itself). */
	conn->want &= ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_POSIX_ACL);
	/* No export support: lookups of "." and ".." by NFS handles would need
	 * engine support for parent lookups. */
	conn->want &= ~(unsigned)FUSE_CAP_EXPORT_SUPPORT;
	/* libfuse caps these to its buffer and the kernel's limits. */
	conn->max_write = 1u << 20;
	/* Must equal the max_read mount option (daemon.c), or libfuse fails
	 * the INIT. */
	conn->max_read = 1u << 20;
	if (conn->max_readahead > (1u << 20) || conn->max_readahead == 0)
		conn->max_readahead = 1u << 20;
	conn->time_gran = 1;
	/* Direct writes invalidate other handles' cached pages of the range
	 * since FUSE 7.39 (Linux 6.6); before, a reader would keep stale
	 * pages, so write-only handles stay in the page cache there. */
	fs->wo_direct = conn->proto_major > 7 || (conn->proto_major == 7 && conn->proto_minor >= 39);
	if (!fs->wo_direct)
		vv_log(VV_LOG_INFO, "fs: FUSE %u.%u: write-only handles use the page cache "
		       "(direct writes need 7.39 to keep readers' pages right)",
		       conn->proto_major, conn->proto_minor);
	vv_log(VV_LOG_INFO, "fs: FUSE %u.%u, capable 0x%x, want 0x%x, max_write %u, "
	       "max_readahead %u", conn->proto_major, conn->proto_minor, conn->capable,
	       conn->want, conn->max_write, conn->max_readahead);
}

static void fs_destroy(void *userdata)
{
	struct vv_fs *fs = userdata;
	int r = vv_vault_sync(fs->v);

	if (r < 0)
		vv_log(VV_LOG_ERR, "fs: sync at unmount: %s", vv_strerror(r));
}

/* ---- namespace ------------------------------------------------------------ */

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vv_fs *fs = FS(req);
	struct req_ctx rc;
	struct vv_attr a;
	int r;

	fs_ident_get(&fs->ident, req, &rc);
	memset(&a, 0, sizeof(a));
	r = vv_vault_lookup(fs->v, &rc.c, parent, name, &a);
	if (r == VV_ENOENT && a.cacheable) {
		/* Negative entry the kernel may cache: every user could search
		 * the parent and its ancestry (see vault.h). */
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		e.ino = 0;
		e.entry_timeout = CACHE_TIMEOUT;
		fuse_reply_entry(req, &e);
	} else if (r < 0) {
		reply_err(req, r);
	} else {
		reply_entry_ref(req, fs->v, &a);
	}
	fs_ident_put(&rc);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	vv_vault_forget(FS(req)->v, ino, nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	struct vv_fs *fs = FS(req);

	for (size_t i = 0; i < count; i++)
		vv_vault_forget(fs->v, f[i].ino, f[i].nlookup);
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vv_fs *fs = FS(req);
	struct req_ctx rc;
	struct vv_attr a;
	struct stat st;
	int r;

	fs_ident_get(&fs->ident, req, &rc);
	r = vv_vault_getattr(fs->v, &rc.c, ino, &a);
	if (r < 0) {
		reply_err(req, r);
	} else {
		attr_to_stat(&a, &st);
		fuse_reply_attr(req, &st, timeout_of(&a));
	}
	fs_ident_put(&rc);
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *in, int to_set,
		       struct fuse_file_info *fi)
{
	struct vv_fs *fs = FS(req);
	struct vv_setattr sa;
	struct req_ctx rc;
	uint64_t mark;
	struct vv_attr a;
	struct stat st;
	int r;

	memset(&sa, 0, sizeof(sa));
	if (to_set & FUSE_SET_ATTR_MODE) {
		sa.valid |= VV_SET_MODE;
		sa.mode = in->st_mode;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		sa.valid |= VV_SET_UID;
		sa.uid = in->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		sa.valid |= VV_SET_GID;
		sa.gid = in->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		sa.valid |= VV_SET_SIZE;
		sa.size = (uint64_t)in->st_size;
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		sa.valid |= VV_SET_ATIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		sa.valid |= VV_SET_ATIME;
		sa.atime = in->st_atim;
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		sa.valid |= VV_SET_MTIME_NOW;
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		sa.valid |= VV_SET_MTIME;
		sa.mtime = in->st_mtim;
	}
	if (to_set & FUSE_SET_ATTR_CTIME) {
		sa.valid |= VV_SET_CTIME;
		sa.ctime = in->st_ctim;
	}
	if (to_set & (FUSE_SET_ATTR_KILL_SUID | FUSE_SET_ATTR_KILL_SGID |
		      FUSE_SET_ATTR_KILL_PRIV))
		sa.valid |= VV_SET_KILL_SUIDGID;
	sa.fh = fi ? FH(fi) : NULL;
	vv_log(VV_LOG_DEBUG, "fs: setattr ino %llu to_set 0x%x mode 0%o",
	       (unsigned long long)ino, (unsigned)to_set, (unsigned)in->st_mode);

	fs_ident_get(&fs->ident, req, &rc);
	mark = fs_notifier_mark(&fs->notify);
	r = vv_vault_setattr(fs->v, &rc.c, ino, &sa, &a);
	fs_notifier_sync(&fs->notify, mark);
	if (r < 0) {
		reply_err(req, r);
	} else {
		attr_to_stat(&a, &st);
		fuse_reply_attr(req, &st, timeout_of(&a));
	}
	fs_ident_put(&rc);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct vv_fs *fs = FS(req);
	char buf[VV_SYMLINK_MAX + 1];
	struct req_ctx rc;
	int r;

	fs_ident_get(&fs->ident, req, &rc);
	r = vv_vault_readlink(fs->v, &rc.c, ino, buf, sizeof(buf) - 1);
	if (r < 0) {
		reply_err(req, r);
	} else {
		buf[r] = '\0';
		fuse_reply_readlink(req, buf);
	}
	fs_ident_put(&rc);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	struct vv_fs *fs = FS(req);
	struct req_ctx rc;
	uint64_t mark;
	struct vv_attr a;
	int r;

	fs_ident_get(&fs->ident, req, &rc);
	mark = fs_notifier_mark(&fs->notify);
	r = vv_vault_mknod(fs->v, &rc.c, parent, name, mode, rdev, &a);
	fs_notifier_sync(&fs->notify, mark);
	if (r < 0)
		reply_err(req, r);
	else
		reply_entry_ref(req, fs->v, &a);
	fs_ident_put(&rc);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct vv_fs *fs = FS(req);
	struct req_ctx rc;
	uint64_t mark;
	struct vv_attr a;
	int r;

	fs_ident_get(&fs->ident, req, &rc);
	mark = fs_notifier_mark(&fs->notify);
	r = vv_vault_mkdir(fs->v, &rc.c, parent, name, mode, &a);
	fs_notifier_sync(&fs->notify, mark);
	if (r < 0)
		reply_err(req, r);
	else
		reply_entry_ref(req, fs->v, &a);
	fs_ident_put(&rc);
}

static void fs_symlink(fuse_req_t req, const char *target, fuse_ino_t parent,
		       const char *name)
{
	struct vv_fs *fs = FS(req);
	struct req_ctx rc;
	uint64_t mark;
	struct vv_attr a;
	int r;

	fs_ident_get(&fs->ident, req, &rc);
	mark = fs_notifier_mark(&fs->notify);
	r = vv_vault_symlink(fs->v, &rc.c, parent, name, target, &a);
	fs_notifier_sync(&fs->notify, mark);
	if (r < 0)
		reply_err(req, r);
	else
		reply_entry_ref(req, fs->v, &a);
	fs_ident_put(&rc);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	struct vv_fs *fs = FS(req);
	struct req_ctx rc;
	uint64_t mark;
	struct vv_attr a;
	int r;

	fs_ident_get(&fs->ident, req, &rc);
	mark = fs_notifier_mark(&fs->notify);
	r = vv_vault_link(fs->v, &rc.c, ino, newparent, newname, &a);
	fs_notifier_sync(&fs->notify, mark);
	if (r < 0)
		reply_err(req, r);
	else
		reply_entry_ref(req, fs->v, &a);
	fs_ident_put(&rc);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vv_fs *fs = FS(req);
	struct req_ctx rc;
	uint64_t mark;
	int r;

	fs_ident_get(&fs->ident, req, &rc);
	mark = fs_notifier_mark(&fs->notify);
	r = vv_vault_unlink(fs->v, &rc.c, parent, name);
	fs_notifier_sync(&fs->notify, mark);
	reply_err(req, r);
	fs_ident_put(&rc);
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vv_fs *fs = FS(req);
	struct req_ctx rc;
	uint64_t mark;
	int r;

	fs_ident_get(&fs->ident, req, &rc);
	mark = fs_notifier_mark(&fs->notify);
	r = vv_vault_rmdir(fs->v, &rc.c, parent, name);
	fs_notifier_sync(&fs->notify, mark);
	reply_err(req, r);
	fs_ident_put(&rc);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct vv_fs *fs = FS(req);
	struct req_ctx rc;
	uint64_t mark;
	int r;
	unsigned vf = 0;

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		/* RENAME_WHITEOUT: overlayfs only. */
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (flags & RENAME_NOREPLACE)
		vf |= VV_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE)
		vf |= VV_RENAME_EXCHANGE;
	fs_ident_get(&fs->ident, req, &rc);
	mark = fs_notifier_mark(&fs->notify);
	r = vv_vault_rename(fs->v, &rc.c, parent, name, newparent, newname, vf);
	fs_notifier_sync(&fs->notify, mark);
	reply_err(req, r);
	fs_ident_put(&rc);
}

/* ---- files ------------------------------------------------------------------ */

/* A write-only handle bypasses the page cache (FOPEN_DIRECT_IO): the
 * kernel's cached write path asks the daemon for security.capability
 * before every write(2) (file_remove_privs), the direct path does not, and
 * the engine drops setuid/setgid and capabilities at each write itself.
 * Such a handle can neither read nor be mapped; the kernel invalidates
 * the written range of other handles' cached pages (FUSE 7.39 and later:
 * fs_init sets wo_direct).  Not O_RDWR: direct I/O would refuse its
 * shared mappings (docs/design.md "Small files: requests per file"). */
static int write_only(const struct vv_fs *fs, int flags)
{
	return fs->wo_direct && (flags & O_ACCMODE) == O_WRONLY;
}

static char *rbuf_get(size_t size);

/* A small file's first open hands its bytes to the page cache before the
 * reply (vv_vault_open_push), so its first read is no READ round trip
 * (docs/design.md "Small files: per-file daemon cost").  Only with
 * keep_cache (else the kernel drops the pages at the reply).  If the file
 * changed, was opened for writing or purged meanwhile, or the store
 * failed, the pages go again, from the notifier thread.  The store is
 * sent before the reply: the opener cannot read yet, and the engine holds
 * other opens of the file back until push_end, so no page of it is locked
 * for a request that would need a worker. */
#define OPEN_PUSH_MAX 65536

static void open_push(struct vv_fs *fs, fuse_ino_t ino, struct vv_file *fh)
{
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(0);
	struct vv_push p;
	char *b = rbuf_get(OPEN_PUSH_MAX);
	bool failed;
	ssize_t len;

	if (!b || (len = vv_vault_open_push(fs->v, fh, b, OPEN_PUSH_MAX, &p)) <= 0)
		return;
	bv.buf[0].mem = b;
	bv.buf[0].size = (size_t)len;
	failed = fuse_lowlevel_notify_store(fs->notify.se, ino, 0, &bv, 0) < 0;
	if (vv_vault_open_push_end(fs->v, fh, &p) || failed)
		fs_notifier_queue(&fs->notify, ino, NULL);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vv_fs *fs = FS(req);
	struct vv_file *fh = NULL;
	bool keep = false;
	struct req_ctx rc;
	int flags = fi->flags;
	int r;

	if (flags & FMODE_EXEC_FLAG)
		flags = (flags & ~FMODE_EXEC_FLAG) | VV_OPEN_EXEC;
	fs_ra_apply(&fs->ra);
	fs_ident_get(&fs->ident, req, &rc);
	r = vv_vault_open_file(fs->v, &rc.c, ino, flags, &fh, &keep);
	if (r < 0) {
		reply_err(req, r);
		goto out;
	}
	fi->fh = (uint64_t)(uintptr_t)fh;
	fi->keep_cache = keep;
	fi->direct_io = write_only(fs, flags);
	/* No FLUSH at close of a read-only handle: it has no data or write
	 * error of its own to hand over, and a round trip per close was a
	 * third of the cost of a query over many small segments (docs/query.md
	 * "Many segments"). */
	fi->noflush = (flags & O_ACCMODE) == O_RDONLY;
	if (keep && !fi->direct_io)
		open_push(fs, ino, fh);
	/* Interrupted open: the kernel will never release this handle. */
	if (fuse_reply_open(req, fi) == -ENOENT)
		vv_vault_release(fs->v, fh);
out:
	fs_ident_put(&rc);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct vv_fs *fs = FS(req);
	struct fuse_entry_param e;
	struct vv_file *fh = NULL;
	struct req_ctx rc;
	uint64_t mark;
	struct vv_attr a;
	int r;

	fs_ident_get(&fs->ident, req, &rc);
	mark = fs_notifier_mark(&fs->notify);
	r = vv_vault_create(fs->v, &rc.c, parent, name, mode, fi->flags, &a, &fh);
	fs_notifier_sync(&fs->notify, mark);
	if (r < 0) {
		reply_err(req, r);
		goto out;
	}
	attr_to_entry(&a, &e);
	fi->fh = (uint64_t)(uintptr_t)fh;
	fi->keep_cache = 0;
	fi->direct_io = write_only(fs, fi->flags);
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		vv_vault_release(fs->v, fh);
		vv_vault_forget(fs->v, a.ino, 1);
	}
out:
	fs_ident_put(&rc);
}

/* Read buffers are per worker thread and kept: a read of 128 KiB or more
 * is past malloc's mmap threshold, so a fresh buffer per request cost an
 * mmap, a page fault and a zeroed page per 4 KiB, and a munmap - more than
 * the copy of the data itself.  Freed when the worker thread exits. */
static pthread_key_t rbuf_key;
static pthread_once_t rbuf_once = PTHREAD_ONCE_INIT;

struct rbuf {
	size_t cap;
	char data[];
};

static void rbuf_key_make(void)
{
	if (pthread_key_create(&rbuf_key, free) != 0)
		abort();             /* only when the process is out of keys */
}

static char *rbuf_get(size_t size)
{
	struct rbuf *b;

	pthread_once(&rbuf_once, rbuf_key_make);
	b = pthread_getspecific(rbuf_key);
	if (b && b->cap >= size)
		return b->data;
	free(b);
	pthread_setspecific(rbuf_key, NULL);
	/* At least max_read, so a thread allocates once. */
	if (size < (1u << 20))
		size = 1u << 20;
	if (!(b = malloc(sizeof(*b) + size)))
		return NULL;
	b->cap = size;
	pthread_setspecific(rbuf_key, b);
	return b->data;
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct vv_fs *fs = FS(req);
	struct vv_read_vec rv;
	char *buf;
	ssize_t n;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (!(buf = rbuf_get(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* A gather reply: blocks decrypted ahead of a sequential reader go
	 * to the kernel from the block cache's buffers, without a copy into
	 * buf (vv_vault_read_vec). */
	n = vv_vault_read_vec(fs->v, FH(fi), buf, size, (uint64_t)off, &rv);
	if (n < 0)
		reply_err(req, (int)n);
	else
		fuse_reply_iov(req, rv.iov, rv.n);
	vv_vault_read_vec_done(fs->v, &rv);
}

/* The query offload (knn_ioctl.h): the only ioctls vecvault answers,
 * VV_IOC_KNN on a file handle and VV_IOC_KNN_DIR on a directory handle
 * (FUSE_IOCTL_DIR: fi->fh is then the opendir handle); either on the
 * other kind of handle is ENOTTY.  The kernel copies exactly
 * VV_KNN_IOC_BYTES each way (restricted ioctls: the size is in the
 * command number).
 *
 * The scan never runs here: a FUSE worker that scanned would be one fewer
 * for everyone's reads and lookups, and one user could occupy them all.
 * (A directory request's per-name work does, inside
 * vv_vault_knn_dir_submit, once the uid's slot is granted: the lookups,
 * checks and small decryptions its OPENs and READs would cost here too.)
 * fs_ioctl hands the request to the engine's scan pool and returns; the
 * pool's thread replies (knn_done).  If the caller is interrupted while its
 * request still waits in the queue, knn_interrupt takes it back and replies
 * EINTR; a running scan is bounded and answers normally.  Exactly one of
 * the two replies: the engine hands a request either to its pool or back to
 * vv_vault_knn_cancel, never both.  At unmount daemon.c drains the pool
 * before the session goes. */
struct fs_knn {
	fuse_req_t req;
	struct req_ctx rc;
	union {
		struct vv_knn_ioc f;         /* VV_IOC_KNN */
		struct vv_knn_dir_ioc d;     /* VV_IOC_KNN_DIR */
	} io;
};

_Static_assert(sizeof(struct vv_knn_ioc) == sizeof(struct vv_knn_dir_ioc),
	       "both offload requests copy VV_KNN_IOC_BYTES");

static void knn_free(struct fs_knn *k)
{
	fs_ident_put(&k->rc);
	free(k);
}

/* vv_knn_done_fn, on a pool thread (or the draining one). */
static void knn_done(void *arg, int r)
{
	struct fs_knn *k = arg;

	/* waits out a knn_interrupt running on this request; none runs after */
	fuse_req_interrupt_func(k->req, NULL, NULL);
	if (r < 0)
		reply_err(k->req, r);
	else
		fuse_reply_ioctl(k->req, 0, &k->io, sizeof(k->io));
	knn_free(k);
}

/* libfuse calls this, holding the request, when the kernel interrupts it.
 * k is only compared, never read, unless the engine gave the request back. */
static void knn_interrupt(fuse_req_t req, void *data)
{
	struct fs_knn *k = data;

	if (vv_vault_knn_cancel(FS(req)->v, k) == 0) {
		fuse_reply_err(req, EINTR);
		knn_free(k);
	}
}

/* The bulk read (knn_ioctl.h, bulk.c) answers on this worker: its work is
 * the lookups, checks, records and copies that the OPENs and READs of
 * those files would cost on the workers anyway, bounded per uid by the
 * offload's slots (one per request in flight: EBUSY beyond), and nothing
 * is left held when it replies. */
static void fs_ioctl_bulk(fuse_req_t req, struct fuse_file_info *fi, const void *in_buf)
{
	struct vv_fs *fs = FS(req);
	struct vv_bulk_ioc *io;
	struct req_ctx rc;
	int r;

	if (!(io = malloc(sizeof(*io)))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(io, in_buf, sizeof(*io));
	fs_ident_get(&fs->ident, req, &rc);
	r = fs_bulk_read(fs, req, &rc.c, DH(fi), io);
	fs_ident_put(&rc);
	if (r < 0)
		reply_err(req, r);
	else
		fuse_reply_ioctl(req, 0, io, sizeof(*io));
	free(io);
}

static void fs_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
		     struct fuse_file_info *fi, unsigned flags, const void *in_buf,
		     size_t in_bufsz, size_t out_bufsz)
{
	struct vv_fs *fs = FS(req);
	bool dir = (flags & FUSE_IOCTL_DIR) != 0;
	struct fs_knn *k;
	int r;

	(void)ino;
	(void)arg;
	if (dir && cmd == (unsigned int)VV_IOC_BULK_READ && !fs->o->no_bulk &&
	    !(flags & FUSE_IOCTL_COMPAT) &&
	    in_bufsz == sizeof(struct vv_bulk_ioc) && out_bufsz == sizeof(struct vv_bulk_ioc)) {
		fs_ioctl_bulk(req, fi, in_buf);
		return;
	}
	if (cmd != (unsigned int)(dir ? VV_IOC_KNN_DIR : VV_IOC_KNN) || (flags & FUSE_IOCTL_COMPAT) ||
	    in_bufsz != sizeof(k->io) || out_bufsz != sizeof(k->io)) {
		fuse_reply_err(req, ENOTTY);
		return;
	}
	if (!(k = malloc(sizeof(*k)))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	k->req = req;
	memcpy(&k->io, in_buf, sizeof(k->io));
	fs_ident_get(&fs->ident, req, &k->rc);
	/* before submitting: once queued, the reply may come at any moment */
	fuse_req_interrupt_func(req, knn_interrupt, k);
	if (dir)
		r = vv_vault_knn_dir_submit(fs->v, &k->rc.c, DH(fi), &k->io.d, knn_done, k);
	else
		r = vv_vault_knn_submit(fs->v, &k->rc.c, FH(fi), &k->io.f, knn_done, k);
	if (r < 0) {
		fuse_req_interrupt_func(req, NULL, NULL);
		reply_err(req, r);
		knn_free(k);
	}
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		     off_t off, struct fuse_file_info *fi)
{
	struct vv_fs *fs = FS(req);
	struct req_ctx rc;
	ssize_t n;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	fs_ident_get(&fs->ident, req, &rc);
	n = vv_vault_write(fs->v, &rc.c, FH(fi), buf, size, (uint64_t)off);
	if (n > 0 && fi->direct_io && vv_vault_file_shared(fs->v, FH(fi))) {
		/* The kernel dropped other handles' cached pages of the range
		 * before sending this write, but a read racing it may have
		 * cached the old bytes again meanwhile: drop them once more
		 * (the notifier thread sends it, never a handler). */
		fs_notifier_queue(&fs->notify, ino, NULL);
	}
	if (n < 0)
		reply_err(req, (int)n);
	else
		fuse_reply_write(req, (size_t)n);
	fs_ident_put(&rc);
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	reply_err(req, vv_vault_flush(FS(req)->v, FH(fi)));
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* release's result never reaches close(2); flush carried the error. */
	int r = vv_vault_release(FS(req)->v, FH(fi));

	if (r < 0)
		vv_log(VV_LOG_WARN, "fs: release of inode %llu: %s",
		       (unsigned long long)ino, vv_strerror(r));
	fuse_reply_err(req, 0);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	reply_err(req, vv_vault_fsync(FS(req)->v, FH(fi), datasync != 0));
}

static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			 off_t len, struct fuse_file_info *fi)
{
	struct vv_fs *fs = FS(req);
	struct req_ctx rc;

	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	fs_ident_get(&fs->ident, req, &rc);
	reply_err(req, vv_vault_fallocate(fs->v, &rc.c, FH(fi), mode,
					  (uint64_t)off, (uint64_t)len));
	fs_ident_put(&rc);
}

static void fs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	int64_t pos = 0;
	int r = vv_vault_lseek(FS(req)->v, FH(fi), off, whence, &pos);

	if (r < 0)
		reply_err(req, r);
	else
		fuse_reply_lseek(req, (off_t)pos);
}

/* ---- directories -------------------------------------------------------------- */

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vv_fs *fs = FS(req);
	struct vv_dir *dh = NULL;
	struct req_ctx rc;
	int r;

	fs_ident_get(&fs->ident, req, &rc);
	r = vv_vault_opendir(fs->v, &rc.c, ino, &dh);
	if (r < 0) {
		reply_err(req, r);
	} else {
		fi->fh = (uint64_t)(uintptr_t)dh;
		/* The kernel keeps the listing in the directory's page cache
		 * across opens; OPENDIR (the check and its audit record) still
		 * comes here every time.  It resets the listing on a change
		 * made through it, on an mtime it sees change at offset 0, and
		 * on an inval_inode of the directory, which the vault queues
		 * for every change of entries it makes by itself (see
		 * docs/design.md "Directory listings"). */
		fi->cache_readdir = fi->keep_cache = vv_vault_dir_cacheable(dh);
		if (fuse_reply_open(req, fi) == -ENOENT)
			vv_vault_releasedir(fs->v, dh);
	}
	fs_ident_put(&rc);
}

/* One readdir reply being assembled. */
struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, used;
	bool plus;
};

static bool is_dot(const char *n)
{
	return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'));
}

static int dir_fill(void *ctx, const struct vv_dirent *d, const struct vv_attr *a)
{
	struct dirbuf *db = ctx;
	size_t rem = db->size - db->used;
	size_t need;

	if (db->plus) {
		struct fuse_entry_param e;

		if (a && !is_dot(d->name)) {
			attr_to_entry(a, &e);
		} else {
			/* ino 0: no lookup reference for "." and "..". */
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = d->ino;
			e.attr.st_mode = d->mode;
		}
		need = fuse_add_direntry_plus(db->req, NULL, 0, d->name, NULL, 0);
		if (need > rem)
			return 1;
		fuse_add_direntry_plus(db->req, db->buf + db->used, rem, d->name,
				       &e, (off_t)d->next);
	} else {
		struct stat st;

		memset(&st, 0, sizeof(st));
		st.st_ino = d->ino;
		st.st_mode = d->mode;
		need = fuse_add_direntry(db->req, NULL, 0, d->name, NULL, 0);
		if (need > rem)
			return 1;
		fuse_add_direntry(db->req, db->buf + db->used, rem, d->name, &st,
				  (off_t)d->next);
	}
	db->used += need;
	return 0;
}

static void do_readdir(fuse_req_t req, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct vv_fs *fs = FS(req);
	struct dirbuf db = { .req = req, .size = size, .plus = plus };
	int r;

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	db.buf = malloc(size ? size : 1);
	if (!db.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	r = vv_vault_readdir(fs->v, DH(fi), (uint64_t)off, plus, dir_fill, &db);
	/* Entries already in the buffer carry lookup references (plus): send
	 * them even if a later entry failed; the error comes next call. */
	if (r < 0 && db.used == 0)
		reply_err(req, r);
	else
		fuse_reply_buf(req, db.buf, db.used);
	free(db.buf);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, size, off, fi, false);
}

static void fs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, size, off, fi, true);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	vv_vault_releasedir(FS(req)->v, DH(fi));
	fuse_reply_err(req, 0);
}

static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	/* Directory changes are metadata commits: making all of them durable
	 * is the only (and a sufficient) way to make this one durable. */
	reply_err(req, vv_vault_sync(FS(req)->v));
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct vv_fs *fs = FS(req);
	struct vv_statfs s;
	struct statvfs sv;
	struct req_ctx rc;
	int r;

	fs_ident_get(&fs->ident, req, &rc);
	r = vv_vault_statfs(fs->v, &rc.c, ino, &s);
	fs_ident_put(&rc);
	if (r < 0) {
		reply_err(req, r);
		return;
	}
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = s.bsize;
	sv.f_frsize = s.bsize;
	sv.f_blocks = s.blocks;
	sv.f_bfree = s.bfree;
	sv.f_bavail = s.bavail;
	sv.f_files = s.files;
	sv.f_ffree = s.ffree;
	sv.f_favail = s.ffree;
	sv.f_namemax = s.namemax;
	fuse_reply_statfs(req, &sv);
}

/* ---- xattrs and access -------------------------------------------------------- */

static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct vv_fs *fs = FS(req);
	struct req_ctx rc;
	uint64_t mark;
	int r;
	int vf = 0;

	if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (flags & XATTR_CREATE)
		vf |= VV_XATTR_CREATE;
	if (flags & XATTR_REPLACE)
		vf |= VV_XATTR_REPLACE;
	fs_ident_get(&fs->ident, req, &rc);
	mark = fs_notifier_mark(&fs->notify);
	r = vv_vault_setxattr(fs->v, &rc.c, ino, name, value, size, vf);
	fs_notifier_sync(&fs->notify, mark);
	reply_err(req, r);
	fs_ident_put(&rc);
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct vv_fs *fs = FS(req);
	struct req_ctx rc;
	char *buf = NULL;
	ssize_t n;

	if (size > VV_XATTR_SIZE_MAX)
		size = VV_XATTR_SIZE_MAX;
	if (size && !(buf = malloc(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fs_ident_get(&fs->ident, req, &rc);
	n = vv_vault_getxattr(fs->v, &rc.c, ino, name, buf, size);
	if (n < 0)
		reply_err(req, (int)n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	fs_ident_put(&rc);
	free(buf);
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct vv_fs *fs = FS(req);
	struct req_ctx rc;
	char *buf = NULL;
	ssize_t n;

	if (size > VV_XATTR_SIZE_MAX)
		size = VV_XATTR_SIZE_MAX;
	if (size && !(buf = malloc(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fs_ident_get(&fs->ident, req, &rc);
	n = vv_vault_listxattr(fs->v, &rc.c, ino, buf, size);
	if (n < 0)
		reply_err(req, (int)n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	fs_ident_put(&rc);
	free(buf);
}

static void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct vv_fs *fs = FS(req);
	struct req_ctx rc;
	uint64_t mark;
	int r;

	fs_ident_get(&fs->ident, req, &rc);
	mark = fs_notifier_mark(&fs->notify);
	r = vv_vault_removexattr(fs->v, &rc.c, ino, name);
	fs_notifier_sync(&fs->notify, mark);
	reply_err(req, r);
	fs_ident_put(&rc);
}

static void fs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct vv_fs *fs = FS(req);
	struct req_ctx rc;

	fs_ident_get(&fs->ident, req, &rc);
	reply_err(req, vv_vault_access(fs->v, &rc.c, ino, mask));
	fs_ident_put(&rc);
}

const struct fuse_lowlevel_ops vv_fs_ops = {
	.init = fs_init,
	.destroy = fs_destroy,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.readlink = fs_readlink,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.release = fs_release,
	.fsync = fs_fsync,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.readdirplus = fs_readdirplus,
	.releasedir = fs_releasedir,
	.fsyncdir = fs_fsyncdir,
	.statfs = fs_statfs,
	.setxattr = fs_setxattr,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
	.access = fs_access,
	.create = fs_create,
	.fallocate = fs_fallocate,
	.lseek = fs_lseek,
	.ioctl = fs_ioctl,
};
