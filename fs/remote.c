/*
 * remote.c - the vv:// client: a FUSE daemon that forwards every request
 * to a remote vault server (net.h, docs/remote.md).  It holds no vault
 * key; the server decides every access for the vault user the client
 * logged in as, and audits it.
 *
 * Inode numbers are the server's, except that the server's inode of the
 * mounted collection is the kernel's root (1) and back.  File and
 * directory handles are the server's ids.  Attributes and entries are
 * cached for --attr-timeout (o->attr_timeout_ms) when the server says the
 * node is cacheable, else not at all: a cached one only delays what stat
 * shows, since the server checks every open, read, write and xattr read
 * with the permissions of the moment, the search permission of the
 * directories above included (vv_vault_reach).  Within the same bound the
 * client answers the xattr probes of ls -l (security.*, trusted.*,
 * system.posix_acl_*) of a node the server said has no xattr at all with
 * ENODATA itself, as the server would.  A walk's next listings are
 * prefetched (remote_prefetch.c), and forgets sent in the background
 * (remote_forget.c).  A request the server does not answer within the
 * client's timeout fails with ENOTCONN.
 *
 * This file holds the FUSE handlers and the mount; what the client
 * remembers of each inode the kernel holds, reconnection and the sending
 * of a request (fs_remote_run) are remote_conn.c's; remote_int.h holds
 * what the four files share.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "remote_int.h"
#include "vecvault/error.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/log.h"
#include "vecvault/net.h"
#include "vecvault/remote_wire.h"

#define RH(fi) ((struct rhandle *)(uintptr_t)(fi)->fh)

#define RFS(req) ((struct rfs *)fuse_req_userdata(req))

static uint64_t to_srv(struct rfs *f, fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? f->root : ino;
}

static fuse_ino_t to_krn(struct rfs *f, uint64_t ino)
{
	return ino == f->root ? FUSE_ROOT_ID : ino;
}

static void to_stat(struct rfs *f, const struct vv_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = to_krn(f, a->ino);
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_blksize = 65536;
	st->st_rdev = a->rdev;
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
}

static void to_entry(struct rfs *f, const struct vv_attr *a, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = to_krn(f, a->ino);
	e->generation = a->gen;
	to_stat(f, a, &e->attr);
	e->attr_timeout = e->entry_timeout = a->cacheable ? f->ttl : 0.0;
}

static int run(fuse_req_t req, struct call *k)
{
	return fs_remote_run(RFS(req), k);
}

static void reply_err(fuse_req_t req, int r)
{
	int e = r < 0 ? vv_errno(r) : 0;

	if (r < 0 && e <= 0)
		e = EIO;
	fuse_reply_err(req, e);
}

/* Reply an entry (or the error) and free k. */
static void reply_entry(fuse_req_t req, struct call *k, int r, uint64_t parent, const char *name)
{
	struct fuse_entry_param e;

	if (r == 0 && k->rep.has_attr) {
		fs_remote_irec_add(RFS(req), parent, name, &k->rep.attr, k->epoch, k->mut, k->born);
		to_entry(RFS(req), &k->rep.attr, &e);
		fuse_reply_entry(req, &e);
	} else {
		reply_err(req, r ? r : VV_EIO);
	}
	call_free(k);
}

static void r_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct call *k = call_new(VV_RW_LOOKUP);

	if (k) {
		U(k, to_srv(RFS(req), parent));
		S(k, name);
	}
	reply_entry(req, k, run(req, k), to_srv(RFS(req), parent), name);
}


/* The kernel forgot nlookup references on ino. */
static void forget_one(struct rfs *f, fuse_ino_t ino, uint64_t nlookup)
{
	unsigned ep = 0;
	uint64_t give = fs_remote_irec_forget(f, to_srv(f, ino), nlookup, &ep);

	/* references of an older connection went with its session */
	if (ino != FUSE_ROOT_ID && give && ep == vv_net_client_epoch(f->c))
		fs_remote_forget_later(f, to_srv(f, ino), give, ep);
}

static void r_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(RFS(req), ino, nlookup);
	fuse_reply_none(req);
}

static void r_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		forget_one(RFS(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void reply_attr(fuse_req_t req, struct call *k, int r)
{
	struct stat st;

	if (r == 0 && k->rep.has_attr) {
		fs_remote_irec_seen(RFS(req), &k->rep.attr, k->mut, k->born);
		to_stat(RFS(req), &k->rep.attr, &st);
		fuse_reply_attr(req, &st, k->rep.attr.cacheable ? RFS(req)->ttl : 0.0);
	} else {
		reply_err(req, r ? r : VV_EIO);
	}
	call_free(k);
}

static void r_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct call *k;
	struct vv_attr a;
	struct stat st;
	double left;

	/* The kernel drops its attributes after every read (atime) and asks
	 * again: within the bound they are what it had (sshfs does the same). */
	if (fs_remote_irec_cached_attr(RFS(req), to_srv(RFS(req), ino), &a, &left)) {
		to_stat(RFS(req), &a, &st);
		fuse_reply_attr(req, &st, left);
		return;
	}
	k = call_new(VV_RW_GETATTR);

	if (k)
		U(k, to_srv(RFS(req), ino));
	reply_attr(req, k, run(req, k));
}

static void r_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *st, int to_set,
		      struct fuse_file_info *fi)
{
	struct call *k = call_new(VV_RW_SETATTR);
	unsigned v = 0;

	if (to_set & FUSE_SET_ATTR_MODE) v |= VV_SET_MODE;
	if (to_set & FUSE_SET_ATTR_UID) v |= VV_SET_UID;
	if (to_set & FUSE_SET_ATTR_GID) v |= VV_SET_GID;
	if (to_set & FUSE_SET_ATTR_SIZE) v |= VV_SET_SIZE;
	if (to_set & FUSE_SET_ATTR_ATIME) v |= VV_SET_ATIME;
	if (to_set & FUSE_SET_ATTR_MTIME) v |= VV_SET_MTIME;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) v |= VV_SET_ATIME_NOW;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) v |= VV_SET_MTIME_NOW;
#ifdef FUSE_SET_ATTR_KILL_SUIDGID
	if (to_set & FUSE_SET_ATTR_KILL_SUIDGID) v |= VV_SET_KILL_SUIDGID;
#endif
	if (k) {
		U(k, to_srv(RFS(req), ino));
		U(k, v);
		U(k, st->st_mode & 07777);
		U(k, st->st_uid);
		U(k, st->st_gid);
		U(k, (uint64_t)st->st_size);
		U(k, (uint64_t)(int64_t)st->st_atim.tv_sec);
		U(k, (uint64_t)st->st_atim.tv_nsec);
		U(k, (uint64_t)(int64_t)st->st_mtim.tv_sec);
		U(k, (uint64_t)st->st_mtim.tv_nsec);
		U(k, fi ? fi->fh : 0);
	}
	reply_attr(req, k, run(req, k));
}

static void r_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct call *k = call_new(VV_RW_READLINK);
	int r;

	if (k)
		U(k, to_srv(RFS(req), ino));
	if ((r = run(req, k)) == 0 && k->rep.ns == 1)
		fuse_reply_readlink(req, k->rep.s[0]);
	else
		reply_err(req, r ? r : VV_EIO);
	call_free(k);
}

static void r_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct call *k = call_new(VV_RW_MKNOD);
	const struct fuse_ctx *cx = fuse_req_ctx(req);

	if (k) {
		U(k, to_srv(RFS(req), parent));
		S(k, name);
		U(k, mode);
		U(k, rdev);
		U(k, cx->umask);
	}
	reply_entry(req, k, run(req, k), to_srv(RFS(req), parent), name);
}

static void r_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct call *k = call_new(VV_RW_MKDIR);
	const struct fuse_ctx *cx = fuse_req_ctx(req);

	if (k) {
		U(k, to_srv(RFS(req), parent));
		S(k, name);
		U(k, mode);
		U(k, cx->umask);
	}
	reply_entry(req, k, run(req, k), to_srv(RFS(req), parent), name);
}

static void r_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name)
{
	struct call *k = call_new(VV_RW_SYMLINK);

	if (k) {
		U(k, to_srv(RFS(req), parent));
		S(k, name);
		S(k, target);
	}
	reply_entry(req, k, run(req, k), to_srv(RFS(req), parent), name);
}

static void r_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct call *k = call_new(VV_RW_LINK);

	if (k) {
		U(k, to_srv(RFS(req), ino));
		U(k, to_srv(RFS(req), newparent));
		S(k, newname);
	}
	reply_entry(req, k, run(req, k), to_srv(RFS(req), newparent), newname);
}

static void name_op(fuse_req_t req, unsigned op, fuse_ino_t parent, const char *name)
{
	struct call *k = call_new(op);

	if (k) {
		U(k, to_srv(RFS(req), parent));
		S(k, name);
	}
	reply_err(req, run(req, k));
	call_free(k);
}

static void r_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	name_op(req, VV_RW_UNLINK, parent, name);
}

static void r_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	name_op(req, VV_RW_RMDIR, parent, name);
}

static void r_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		     const char *newname, unsigned int flags)
{
	struct call *k = call_new(VV_RW_RENAME);
	int r;

	if (k) {
		U(k, to_srv(RFS(req), parent));
		S(k, name);
		U(k, to_srv(RFS(req), newparent));
		S(k, newname);
		U(k, flags);
	}
	if ((r = run(req, k)) == 0) {
		struct rfs *f = RFS(req);
		uint64_t p = to_srv(f, parent), np = to_srv(f, newparent);
		if (flags & VV_RENAME_EXCHANGE) {
			fs_remote_irec_moved(f, p, name, 0, "\x01");
			fs_remote_irec_moved(f, np, newname, p, name);
			fs_remote_irec_moved(f, 0, "\x01", np, newname);
		} else {
			fs_remote_irec_moved(f, p, name, np, newname);
		}
	}
	reply_err(req, r);
	call_free(k);
}

static void r_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct call *k = call_new(VV_RW_OPEN);
	int r;

	if (k) {
		U(k, to_srv(RFS(req), ino));
		U(k, (uint32_t)fi->flags);
	}
	/* 1 MiB reads, several in flight, for a sequential reader: a round
	 * trip to the server per 128 KiB was a third of a cold read's time. */
	fs_ra_apply(&RFS(req)->ra);
	if ((r = run(req, k)) == 0 && k->rep.nu == 3 && k->rep.has_attr &&
	    k->rep.attr.ino == to_srv(RFS(req), ino)) {
		struct rhandle *h = rh_new(k->rep.u[0], to_srv(RFS(req), ino), fi->flags, k->epoch,
					   false);
		if (!h) {
			fs_remote_release_raw(RFS(req), VV_RW_RELEASE, k->rep.u[0], k->epoch);
			reply_err(req, VV_ENOMEM);
			call_free(k);
			return;
		}
		fi->fh = (uintptr_t)h;
		/* the server's own keep_cache (u[1]) is about any open of
		 * the file; only our last one counts here */
		fi->keep_cache = fs_remote_gen_same(RFS(req), to_srv(RFS(req), ino), k->rep.u[2]) ==
				 DGEN_SAME;
		/* changed elsewhere: the cached size and times are stale too.
		 * Attributes only (offset -1) take no inode lock in the kernel,
		 * so this is safe from inside the handler. */
		if (!fi->keep_cache) {
			fs_remote_irec_seen(RFS(req), &k->rep.attr, k->mut, k->born);
			fuse_lowlevel_notify_inval_inode(RFS(req)->se, ino, -1, 0);
		}
		if (fuse_reply_open(req, fi) == -ENOENT) {
			/* interrupted: the kernel will not release it */
			fs_remote_release_raw(RFS(req), VV_RW_RELEASE, h->srv, h->epoch);
			free(h);
		}
	} else {
		reply_err(req, r ? r : VV_EIO);
	}
	call_free(k);
}

static void r_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     struct fuse_file_info *fi)
{
	struct call *k = call_new(VV_RW_CREATE);
	const struct fuse_ctx *cx = fuse_req_ctx(req);
	struct fuse_entry_param e;
	int r;

	if (k) {
		U(k, to_srv(RFS(req), parent));
		S(k, name);
		U(k, mode);
		U(k, (uint32_t)fi->flags);
		U(k, cx->umask);
	}
	if ((r = run(req, k)) == 0 && k->rep.has_attr && k->rep.nu == 1) {
		struct rhandle *h = rh_new(k->rep.u[0], k->rep.attr.ino, fi->flags, k->epoch, false);
		fs_remote_irec_add(RFS(req), to_srv(RFS(req), parent), name, &k->rep.attr, k->epoch,
				   k->mut, k->born);
		to_entry(RFS(req), &k->rep.attr, &e);
		if (!h) {
			/* the entry exists now; only the handle is missing */
			fs_remote_release_raw(RFS(req), VV_RW_RELEASE, k->rep.u[0], k->epoch);
			fuse_reply_entry(req, &e);
			call_free(k);
			return;
		}
		fi->fh = (uintptr_t)h;
		if (fuse_reply_create(req, &e, fi) == -ENOENT) {
			fs_remote_release_raw(RFS(req), VV_RW_RELEASE, h->srv, h->epoch);
			free(h);
		}
	} else {
		reply_err(req, r ? r : VV_EIO);
	}
	call_free(k);
}

static void r_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct call *k = call_new(VV_RW_READ);
	int r;

	if (size > VV_RW_DATA_MAX)
		size = VV_RW_DATA_MAX;
	if (k) {
		U(k, fi->fh);
		U(k, (uint64_t)off);
		U(k, size);
	}
	if ((r = run(req, k)) == 0 && k->rep.has_blob && k->rep.bloblen <= size)
		fuse_reply_buf(req, (const char *)k->rep.blob, k->rep.bloblen);
	else
		reply_err(req, r ? r : VV_EIO);
	call_free(k);
}

static void r_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct call *k = call_new(VV_RW_WRITE);
	int r;

	if (size > VV_RW_DATA_MAX)
		size = VV_RW_DATA_MAX;       /* a short write; the kernel sends the rest */
	if (k) {
		U(k, fi->fh);
		U(k, (uint64_t)off);
		Bl(k, buf, size);
	}
	if ((r = run(req, k)) == 0 && k->rep.nu == 1 && k->rep.u[0] <= size)
		fuse_reply_write(req, (size_t)k->rep.u[0]);
	else
		reply_err(req, r ? r : VV_EIO);
	call_free(k);
}

static void fh_op(fuse_req_t req, unsigned op, uint64_t fh, int extra, bool with_extra)
{
	struct call *k = call_new(op);

	if (k) {
		U(k, fh);
		if (with_extra)
			U(k, (uint32_t)extra);
	}
	reply_err(req, run(req, k));
	call_free(k);
}

static void r_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* A read-only handle has no write of its own to settle or report
	 * (vv_vault_flush): every close of one was a round trip for nothing. */
	if ((RH(fi)->flags & O_ACCMODE) == O_RDONLY) {
		fuse_reply_err(req, 0);
		return;
	}
	fh_op(req, VV_RW_FLUSH, fi->fh, 0, false);
}

static void r_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	fh_op(req, VV_RW_FSYNC, fi->fh, datasync, true);
}

static void r_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rhandle *h = RH(fi);
	struct rfs *f = RFS(req);

	/* A directory's or a read-only file's release cannot fail and nothing
	 * waits on it: close returns before the round trip.  A writer's stays
	 * in order (its last writes and the audit's byte count are settled
	 * there). */
	bool early = h->dir || (h->flags & O_ACCMODE) == O_RDONLY;

	if (early) {
		fuse_reply_err(req, 0);
		/* tests (t7031): held back, as a slow network or a busy
		 * server would */
		fs_remote_gate(f->release_gate);
	}
	if (h->pre) {
		fs_remote_pf_drop_refs(f, h->pre);     /* a listing never asked for */
		h->pre = NULL;
	}
	fs_remote_release_raw(f, h->dir ? VV_RW_RELEASEDIR : VV_RW_RELEASE, h->srv, h->epoch);
	if (!early)
		fuse_reply_err(req, 0);
	free(h);
}

static void r_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rfs *f = RFS(req);
	struct rhandle *ph = fs_remote_pf_take(f, to_srv(f, ino));
	struct call *k;
	int r;

	if (ph) {
		fi->fh = (uintptr_t)ph;
		if (fuse_reply_open(req, fi) == -ENOENT) {
			fs_remote_pf_discard(f, ph, ph->pre);
		}
		return;
	}
	fs_remote_pf_descend(f, to_srv(f, ino));
	if ((k = call_new(VV_RW_OPENDIR)))
		U(k, to_srv(RFS(req), ino));
	if ((r = run(req, k)) == 0 && k->rep.nu == 1) {
		struct rhandle *h = rh_new(k->rep.u[0], to_srv(RFS(req), ino), 0, k->epoch, true);
		if (!h) {
			fs_remote_release_raw(RFS(req), VV_RW_RELEASEDIR, k->rep.u[0], k->epoch);
			reply_err(req, VV_ENOMEM);
			call_free(k);
			return;
		}
		fi->fh = (uintptr_t)h;
		if (fuse_reply_open(req, fi) == -ENOENT) {
			fs_remote_release_raw(RFS(req), VV_RW_RELEASEDIR, h->srv, h->epoch);
			free(h);
		}
	} else {
		reply_err(req, r ? r : VV_EIO);
	}
	call_free(k);
}

static void readdir_common(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi,
			   bool plus)
{
	struct call *k = NULL;
	struct rfs *f = RFS(req);
	char *buf = NULL, nb[VV_NAME_MAX + 1];
	size_t len = 0, boff = 0, nsub = 0;
	struct vv_dirent e;
	struct vv_attr a;
	struct rhandle *h = RH(fi);
	uint64_t last = (uint64_t)off, *sub = NULL;
	double ttl = f->ttl;
	bool full = false;
	int r;

	if (h->eof && h->eof_off == (uint64_t)off) {
		/* the last reply said the directory ends here */
		fuse_reply_buf(req, NULL, 0);
		call_free(k);
		return;
	}
	h->eof = false;
	if (size > VV_RW_DATA_MAX)
		size = VV_RW_DATA_MAX;
	if (plus)
		atomic_store(&f->rd_size, (uint32_t)(size < 4096 ? 4096 : size));
	if (h->pre && off == 0 && plus && h->pre->epoch == vv_net_client_epoch(f->c)) {
		/* the prefetch's listing: its entries' bounds run from then */
		k = h->pre;
		h->pre = NULL;
		ttl -= (double)(mono_ns() - k->born) / 1e9;
		r = 0;
	} else {
		if (h->pre) {
			fs_remote_pf_drop_refs(f, h->pre);
			h->pre = NULL;
		}
		if ((k = call_new(VV_RW_READDIR))) {
			U(k, fi->fh);
			U(k, (uint64_t)off);
			U(k, plus);
			U(k, size);
		}
		r = run(req, k);
	}
	if (r < 0 || !(buf = malloc(size ? size : 1))) {
		reply_err(req, r < 0 ? r : VV_ENOMEM);
		call_free(k);
		return;
	}
	if (k->rep.nu != 1 || k->rep.u[0] > 1) {
		vv_log(VV_LOG_WARN, "remote: the server's readdir reply has a bad end flag "
		       "(%u fields, value %llu): refused", k->rep.nu,
		       (unsigned long long)(k->rep.nu ? k->rep.u[0] : 0));
		reply_err(req, VV_EIO);
		free(buf);
		call_free(k);
		return;
	}
	while ((r = vv_rw_dirent_next(k->rep.blob, k->rep.bloblen, &boff, plus, &e, nb, &a)) == 0) {
		size_t n;
		if (plus) {
			struct fuse_entry_param ep;
			bool dot = !strcmp(nb, ".") || !strcmp(nb, "..");
			/* An entry without attributes (a.ino 0: a FIFO, a
			 * directory the user may not search, the server's node
			 * budget) still needs its inode number in the dirent:
			 * readdir(3) skips d_ino 0, and `ls` did not show them. */
			if (dot || !a.ino) {
				memset(&ep, 0, sizeof(ep));
				ep.attr.st_ino = to_krn(f, e.ino);
				ep.attr.st_mode = e.mode;
			} else {
				to_entry(f, &a, &ep);
				if (ep.entry_timeout > 0)
					ep.entry_timeout = ep.attr_timeout = ttl > 0 ? ttl : 0;
			}
			n = fuse_add_direntry_plus(req, buf + len, size - len, nb, &ep, (off_t)e.next);
			/* a.ino 0: the kernel holds nothing of it (above) */
			if (!dot && !full && n <= size - len && a.ino) {
				uint64_t *ns;
				fs_remote_irec_add(f, RH(fi)->ino, nb, &a, k->epoch, k->mut, k->born);
				if (f->pf_on && fs_remote_pf_dir(&a) &&
				    (ns = realloc(sub, (nsub + 1) * sizeof(*sub)))) {
					sub = ns;
					sub[nsub++] = a.ino;
				}
			}
		} else {
			struct stat st = { .st_ino = to_krn(f, e.ino), .st_mode = e.mode };
			n = fuse_add_direntry(req, buf + len, size - len, nb, &st, (off_t)e.next);
		}
		if (!full && n <= size - len)
			last = e.next;
		if (full || n > size - len) {
			/* the server sent more than fits: this entry and every
			 * later one are left for the next call (from the offset
			 * of the last one added); with plus the server's
			 * reference on each is given back */
			full = true;
			if (plus && strcmp(nb, ".") && strcmp(nb, "..") && a.ino &&
			    k->epoch == vv_net_client_epoch(f->c))
				fs_remote_forget_later(f, e.ino, 1, k->epoch);
			continue;
		}
		len += n;
	}
	if (r < 0) {
		vv_log(VV_LOG_WARN, "remote: the server's readdir reply does not parse "
			       "(an entry past the end, a bad name or attribute record): refused");
		reply_err(req, VV_EIO);
	} else {
		uint64_t dir = h->ino;
		bool walk = h->walk;
		if (!full && k->rep.u[0] == 1) {
			h->eof = true;
			h->eof_off = last;
		}
		/* h is the kernel's from the reply on: its RELEASEDIR may
		 * free it on another thread before the prefetch is told */
		fuse_reply_buf(req, buf, len);
		fs_remote_pf_listed(f, dir, sub, nsub, walk);
		sub = NULL;
	}
	free(sub);
	free(buf);
	call_free(k);
}

static void r_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	readdir_common(req, size, off, fi, false);
}

static void r_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	readdir_common(req, size, off, fi, true);
}

static void r_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	r_release(req, ino, fi);
}

static void r_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		       size_t size, int flags)
{
	struct call *k = call_new(VV_RW_SETXATTR);

	if (k) {
		U(k, to_srv(RFS(req), ino));
		S(k, name);
		Bl(k, value, size);
		U(k, (uint32_t)flags);
	}
	fs_remote_irec_xattr_changed(RFS(req), to_srv(RFS(req), ino));
	reply_err(req, run(req, k));
	call_free(k);
}

static void xattr_reply(fuse_req_t req, struct call *k, int r, size_t size)
{
	if (r < 0 || k->rep.nu != 1)
		reply_err(req, r < 0 ? r : VV_EIO);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)k->rep.u[0]);
	else if (k->rep.bloblen <= size)
		fuse_reply_buf(req, (const char *)k->rep.blob, k->rep.bloblen);
	else
		reply_err(req, VV_EIO);
	call_free(k);
}

static void r_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct call *k;

	if (fs_remote_irec_noxattr(RFS(req), to_srv(RFS(req), ino), name)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	k = call_new(VV_RW_GETXATTR);

	if (k) {
		U(k, to_srv(RFS(req), ino));
		S(k, name);
		U(k, size);
	}
	xattr_reply(req, k, run(req, k), size);
}

static void r_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct call *k = call_new(VV_RW_LISTXATTR);

	if (k) {
		U(k, to_srv(RFS(req), ino));
		U(k, size);
	}
	xattr_reply(req, k, run(req, k), size);
}

static void r_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	fs_remote_irec_xattr_changed(RFS(req), to_srv(RFS(req), ino));
	name_op(req, VV_RW_REMOVEXATTR, ino, name);
}

static void r_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct call *k = call_new(VV_RW_ACCESS);

	if (k) {
		U(k, to_srv(RFS(req), ino));
		U(k, (uint32_t)mask);
	}
	reply_err(req, run(req, k));
	call_free(k);
}

static void r_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct call *k = call_new(VV_RW_STATFS);
	struct statvfs sv;
	int r;

	if (k)
		U(k, to_srv(RFS(req), ino));
	if ((r = run(req, k)) == 0 && k->rep.nu == 7) {
		memset(&sv, 0, sizeof(sv));
		sv.f_bsize = sv.f_frsize = k->rep.u[0];
		sv.f_blocks = k->rep.u[1];
		sv.f_bfree = k->rep.u[2];
		sv.f_bavail = k->rep.u[3];
		sv.f_files = k->rep.u[4];
		sv.f_ffree = sv.f_favail = k->rep.u[5];
		sv.f_namemax = k->rep.u[6];
		fuse_reply_statfs(req, &sv);
	} else {
		reply_err(req, r ? r : VV_EIO);
	}
	call_free(k);
}

static void r_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			struct fuse_file_info *fi)
{
	struct call *k = call_new(VV_RW_FALLOCATE);

	if (k) {
		U(k, fi->fh);
		U(k, (uint32_t)mode);
		U(k, (uint64_t)off);
		U(k, (uint64_t)len);
	}
	reply_err(req, run(req, k));
	call_free(k);
}

static void r_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	struct call *k = call_new(VV_RW_LSEEK);
	int r;

	if (k) {
		U(k, fi->fh);
		U(k, (uint64_t)off);
		U(k, (uint32_t)whence);
	}
	if ((r = run(req, k)) == 0 && k->rep.nu == 1)
		fuse_reply_lseek(req, (off_t)k->rep.u[0]);
	else
		reply_err(req, r ? r : VV_EIO);
	call_free(k);
}

/* The server's k-NN reply must answer the request it was sent for: the
 * reply magic, version 1, or version 2 (exact distances) only when asked,
 * and the request's metric, format, dim, nq and kk.  The tool checks the
 * candidates themselves (vector_search.c); a reply that fails here is EIO
 * (the tool then scans the segment itself), logged. */
static int knn_reply_check(const void *in, const void *out)
{
	struct vv_knn_ioc_hdr q, a;
	const char *why = NULL;

	memcpy(&q, in, sizeof(q));
	memcpy(&a, out, sizeof(a));
	if (a.magic != VV_KNN_MAGIC_REPLY)
		why = "no reply magic";
	else if (a.version == VV_KNN_VERSION_EXACT ? !(q.flags & VV_KNN_F_EXACT) ||
		 a.flags != VV_KNN_F_EXACT : a.version != VV_KNN_VERSION || a.flags)
		why = "a version or flags the request did not ask for";
	else if (a.metric != q.metric || a.format != q.format || a.dim != q.dim || a.nq != q.nq ||
		 a.kk != q.kk)
		why = "a header that does not echo the request";
	if (!why)
		return 0;
	vv_log(VV_LOG_WARN, "remote: the server's knn reply has %s (version %u, flags %#x); "
	       "the query scans the segment itself", why, a.version, a.flags);
	return VV_EIO;
}

/* The server's reply to a directory request must answer it: the reply
 * magic and version, flags 0, and the request's metric, dim, dtype, format,
 * nq, kk, nnames and names_len.  The tool checks the rest (per-name
 * statuses, candidates: vv_knn_dir_reply_bad) and scans the files itself
 * when it fails; one that fails here is EIO, logged. */
static int knn_dir_reply_check(const void *in, const void *out)
{
	struct vv_knn_dir_hdr q, a;

	memcpy(&q, in, sizeof(q));
	memcpy(&a, out, sizeof(a));
	if (a.magic == VV_KNN_DIR_MAGIC_REPLY && a.version == VV_KNN_DIR_VERSION && !a.flags &&
	    a.metric == q.metric && a.dim == q.dim && a.dtype == q.dtype && a.format == q.format &&
	    a.nq == q.nq && a.kk == q.kk && a.nnames == q.nnames && a.names_len == q.names_len)
		return 0;
	vv_log(VV_LOG_WARN, "remote: the server's directory knn reply does not answer the "
	       "request (magic %#x, version %u, flags %#x); the query reads the files itself",
	       a.magic, a.version, a.flags);
	return VV_EIO;
}

/* VV_IOC_KNN_DIR on a directory opened through the server: a KNN frame on
 * the server's directory handle (docs/remote.md "Queries").  A server
 * without the directory request answers EBADF (no such file handle):
 * ENOTTY, and so for the rest of that connection, so the tool opens each
 * file as before. */
static void ioctl_dir(fuse_req_t req, struct fuse_file_info *fi, const void *in_buf)
{
	struct rfs *f = RFS(req);
	struct call *k;
	unsigned ep = vv_net_client_epoch(f->c);
	int r;

	if (atomic_load(&f->kd_old) == ep + 1) {
		fuse_reply_err(req, ENOTTY);
		return;
	}
	k = call_new(VV_RW_KNN);
	if (k) {
		U(k, fi->fh);
		Bl(k, in_buf, VV_KNN_IOC_BYTES);
	}
	if ((r = run(req, k)) == VV_EBADF && k) {
		atomic_store(&f->kd_old, k->epoch + 1);
		vv_log(VV_LOG_INFO, "remote: the server has no directory knn request; "
		       "queries open each file");
		r = VV_ENOTTY;
	}
	if (r == 0 && k->rep.bloblen == VV_KNN_IOC_BYTES &&
	    (r = knn_dir_reply_check(in_buf, k->rep.blob)) == 0)
		fuse_reply_ioctl(req, 0, k->rep.blob, k->rep.bloblen);
	else
		reply_err(req, r ? r : VV_EIO);
	call_free(k);
}

static void r_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
		    struct fuse_file_info *fi, unsigned flags, const void *in_buf,
		    size_t in_bufsz, size_t out_bufsz)
{
	struct call *k;
	bool dir = (flags & FUSE_IOCTL_DIR) != 0;
	int r;

	/* VV_IOC_KNN on files, VV_IOC_KNN_DIR on directories, each only on a
	 * handle of its kind opened through the server; anything else is
	 * ENOTTY (docs/design.md "Query offload") */
	if ((flags & FUSE_IOCTL_COMPAT) || !fi || dir != RH(fi)->dir ||
	    cmd != (unsigned)(dir ? VV_IOC_KNN_DIR : VV_IOC_KNN)) {
		fuse_reply_err(req, ENOTTY);
		return;
	}
	if (in_bufsz != VV_KNN_IOC_BYTES || out_bufsz != VV_KNN_IOC_BYTES) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (dir) {
		ioctl_dir(req, fi, in_buf);
		return;
	}
	k = call_new(VV_RW_KNN);
	if (k) {
		U(k, fi->fh);
		Bl(k, in_buf, in_bufsz);
	}
	if ((r = run(req, k)) == 0 && k->rep.bloblen == VV_KNN_IOC_BYTES &&
	    (r = knn_reply_check(in_buf, k->rep.blob)) == 0)
		fuse_reply_ioctl(req, 0, k->rep.blob, k->rep.bloblen);
	else
		reply_err(req, r ? r : VV_EIO);
	call_free(k);
}

/* The mount command waits for the ready byte; it is sent here, once INIT
 * is known to pass, so a daemon that fails INIT fails the mount command
 * with its reason instead of leaving a dead mount behind a success. */
static void send_ready(struct rfs *fp)
{
	ssize_t n;

	if (fp->ready_fd < 0)
		return;
	do
		n = write(fp->ready_fd, "R", 1);
	while (n < 0 && errno == EINTR);
	fp->ready_fd = -1;
}

static void r_init(void *userdata, struct fuse_conn_info *conn)
{
	struct rfs *fp = userdata;

	/* The server keeps the page cache valid per open (keep_cache). */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* listings are prefetched in READDIRPLUS form, with their attributes */
	fp->pf_on = (conn->want & FUSE_CAP_READDIRPLUS) && fp->ttl > 0;
	conn->max_write = VV_RW_DATA_MAX;
	conn->max_read = VV_RW_DATA_MAX;     /* as the max_read mount option says */
	/* tests: ask for a capability the kernel lacks, as a daemon built
	 * for a newer kernel would: libfuse then fails INIT (EPROTO) */
	if (fp->test_init_fail && ~conn->capable)
		conn->want |= ~conn->capable & (0u - ~conn->capable);
	/* libfuse refuses INIT after this callback when want asks for more
	 * than the kernel offers; anything else and INIT passes */
	fp->init_missing = conn->want & ~conn->capable;
	if (!fp->init_missing)
		send_ready(fp);
}

static const struct fuse_lowlevel_ops rops = {
	.init = r_init,
	.lookup = r_lookup,
	.forget = r_forget,
	.forget_multi = r_forget_multi,
	.getattr = r_getattr,
	.setattr = r_setattr,
	.readlink = r_readlink,
	.mknod = r_mknod,
	.mkdir = r_mkdir,
	.symlink = r_symlink,
	.link = r_link,
	.unlink = r_unlink,
	.rmdir = r_rmdir,
	.rename = r_rename,
	.open = r_open,
	.create = r_create,
	.read = r_read,
	.write = r_write,
	.flush = r_flush,
	.fsync = r_fsync,
	.release = r_release,
	.opendir = r_opendir,
	.readdir = r_readdir,
	.readdirplus = r_readdirplus,
	.releasedir = r_releasedir,
	.setxattr = r_setxattr,
	.getxattr = r_getxattr,
	.listxattr = r_listxattr,
	.removexattr = r_removexattr,
	.access = r_access,
	.statfs = r_statfs,
	.fallocate = r_fallocate,
	.lseek = r_lseek,
	.ioctl = r_ioctl,
};

int vv_fs_run_remote(struct vv_net_client *c, uint64_t root, uint64_t root_gen,
		     const char *root_name, const char *mnt, const struct vv_fs_opts *o, int ready_fd)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config cfg;
	struct fuse_session *se = NULL;
	struct rfs *fp = calloc(1, sizeof(*fp));
	char opts[1024], real_mnt[PATH_MAX];
	bool mounted = false, handlers = false;
	int r = VV_ENOMEM;

	if (!fp)
		return VV_ENOMEM;
	fp->c = c;
	fp->ready_fd = -1;
	fp->test_init_fail = o->test_init_fail;
	if ((o->test_release_gate && !(fp->release_gate = strdup(o->test_release_gate))) ||
	    (o->test_send_gate && !(fp->send_gate = strdup(o->test_send_gate)))) {
		free(fp->release_gate);
		free(fp);
		return VV_ENOMEM;
	}
	fp->root = root;
	fp->ttl = o->attr_timeout_ms / 1000.0;
	pthread_mutex_init(&fp->imu, NULL);
	pthread_cond_init(&fp->rcond, NULL);
	pthread_mutex_init(&fp->fmu, NULL);
	pthread_cond_init(&fp->fcond, NULL);
	pthread_mutex_init(&fp->pmu, NULL);
	pthread_cond_init(&fp->pcond, NULL);
	atomic_store(&fp->rd_size, 4096);
	if (!(fp->irecs = calloc(IREC_BUCKETS, sizeof(*fp->irecs)))) {
		free(fp);
		return VV_ENOMEM;
	}
	if (root != VV_ROOT_INO && root_name) {
		struct vv_attr ra = { .ino = root, .gen = root_gen };
		fs_remote_irec_add(fp, VV_ROOT_INO, root_name, &ra, vv_net_client_epoch(c), 0, mono_ns());
	}

	snprintf(opts, sizeof(opts), "fsname=%s,subtype=vecvault,nosuid,nodev,max_read=%u%s%s%s%s",
		 o->fsname ? o->fsname : "vv", VV_RW_DATA_MAX, o->allow_other ? ",allow_other" : "",
		 o->ro ? ",ro" : "", o->noexec ? ",noexec" : "", o->debug ? ",debug" : "");
	if (strchr(o->fsname ? o->fsname : "", ',')) {
		r = VV_EINVAL;
		goto out;
	}
	if (fuse_opt_add_arg(&args, "vecvault") || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, opts))
		goto out;
	r = VV_ESYS;
	if (!(se = fuse_session_new(&args, &rops, sizeof(rops), fp)))
		goto out;
	fp->se = se;
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	handlers = true;
	if (!realpath(mnt, real_mnt))
		real_mnt[0] = '\0';
	if (fuse_session_mount(se, mnt) != 0)
		goto out;
	mounted = true;
	fs_ra_find(&fp->ra, real_mnt[0] ? real_mnt : NULL);
	fp->ready_fd = ready_fd;          /* the ready byte follows INIT (r_init) */
	if (o->detach_stdio) {
		int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
			if (fd > 2)
				close(fd);
		}
	}
	fs_remote_forget_start(fp);
	fs_remote_pf_start(fp);
	memset(&cfg, 0, sizeof(cfg));
	cfg.clone_fd = 1;
	cfg.max_idle_threads = 16;
	r = fuse_session_loop_mt(se, &cfg) < 0 ? 1 : 0;
	if (fp->ready_fd >= 0) {
		/* the session ended before INIT passed: the mount command
		 * reports this and exits 1 (the mount is undone below) */
		char msg[256];
		if (fp->init_missing)
			snprintf(msg, sizeof(msg), "Ethe kernel refused the FUSE INIT: the client asked "
				 "for capabilities %#x that this kernel does not offer", fp->init_missing);
		else
			snprintf(msg, sizeof(msg), "Ethe FUSE session ended before INIT completed "
				 "(the mount was undone; the client log may say more)");
		vv_log(VV_LOG_ERR, "remote: %s", msg + 1);
		if (write(fp->ready_fd, msg, strlen(msg)) < 0) {
			/* the mount command is gone */
		}
		fp->ready_fd = -1;
		r = 1;                       /* reported: the caller adds nothing */
	}
out:
	fs_remote_pf_stop(fp);
	if (atomic_load(&fp->n_opens))
		vv_log(VV_LOG_INFO, "remote: files opened: %llu, page cache kept at %llu, dropped at "
		       "%llu for data changed since the open before here",
		       (unsigned long long)atomic_load(&fp->n_opens),
		       (unsigned long long)atomic_load(&fp->n_kept),
		       (unsigned long long)atomic_load(&fp->n_changed));
	fs_remote_forget_stop(fp);
	pthread_mutex_destroy(&fp->fmu);
	pthread_cond_destroy(&fp->fcond);
	pthread_mutex_destroy(&fp->pmu);
	pthread_cond_destroy(&fp->pcond);
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	pthread_mutex_destroy(&fp->imu);
	pthread_cond_destroy(&fp->rcond);
	for (size_t i = 0; i < IREC_BUCKETS; i++)
		while (fp->irecs[i]) {
			struct irec *r = fp->irecs[i];
			fp->irecs[i] = r->next;
			free(r);
		}
	free(fp->irecs);
	free(fp->release_gate);
	free(fp->send_gate);
	free(fp);
	return r;
}
