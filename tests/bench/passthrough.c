/*
 * passthrough.c - a do-nothing FUSE file system for tests/bench/fs-bench.sh.
 *
 *   passthrough SRC MNT [-f]
 *
 * Mirrors the directory SRC at MNT through the libfuse3 low-level API and
 * does nothing else: no crypto, no metadata database, no audit.  It is the
 * reference for "what does FUSE itself cost" on this machine, so it is set
 * up like the vecvault daemon (fs/ops.c, fs/daemon.c): multi-threaded loop
 * with clone_fd, 1 MiB max_write/max_read/readahead, READDIRPLUS, no
 * writeback cache, long entry/attr timeouts, and keep_cache on open (the
 * backing files change only through this mount).  Reads are spliced from
 * the backing fd (zero copy); writes use write_buf.  Permission checks are
 * left to the kernel (default_permissions).  Not a general-purpose tool: no
 * xattrs, no locks, no export support.
 *
 * Each FUSE node is a heap record holding an O_PATH fd of the backing
 * object; the node id given to the kernel is the record's address, and the
 * record lives until the kernel's lookup count drops to zero.  Records are
 * found again by (st_dev, st_ino) so hard links and repeated lookups share
 * one node.
 *
 * Build: cc -O2 passthrough.c $(pkg-config --cflags --libs fuse3)
 */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 35

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#define TIMEOUT 3600.0
#define MAX_IO (1u << 20)
#define NBUCKETS 65536

struct node {
	struct node *next;      /* hash chain */
	int fd;                 /* O_PATH */
	dev_t dev;
	ino_t ino;
	uint64_t refs;          /* kernel lookup count (+1 for the root) */
};

struct dirh {
	DIR *dp;
	off_t pos;              /* telldir() cookie of the next entry */
	struct dirent *pending; /* read but not yet sent */
};

static struct node root;
static struct node *table[NBUCKETS];
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

static struct node *N(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &root : (struct node *)(uintptr_t)ino;
}

static fuse_ino_t ID(struct node *n)
{
	return n == &root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)n;
}

static unsigned bucket(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev;

	return (unsigned)(h >> 48) % NBUCKETS;
}

static void procpath(int fd, char *buf, size_t len)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
}

/* Find the node of the object opened as fd (stat st), taking one lookup
 * reference; the table keeps fd if the node is new, else fd is closed. */
static struct node *node_get(int fd, const struct stat *st)
{
	unsigned b = bucket(st->st_dev, st->st_ino);
	struct node *n;

	pthread_mutex_lock(&table_lock);
	for (n = table[b]; n; n = n->next)
		if (n->dev == st->st_dev && n->ino == st->st_ino)
			break;
	if (n) {
		n->refs++;
		pthread_mutex_unlock(&table_lock);
		close(fd);
		return n;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		pthread_mutex_unlock(&table_lock);
		close(fd);
		return NULL;
	}
	n->fd = fd;
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	n->refs = 1;
	n->next = table[b];
	table[b] = n;
	pthread_mutex_unlock(&table_lock);
	return n;
}

static void node_put(struct node *n, uint64_t count)
{
	struct node **pp;

	if (n == &root)
		return;
	pthread_mutex_lock(&table_lock);
	if (n->refs > count) {
		n->refs -= count;
		pthread_mutex_unlock(&table_lock);
		return;
	}
	for (pp = &table[bucket(n->dev, n->ino)]; *pp; pp = &(*pp)->next)
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	pthread_mutex_unlock(&table_lock);
	close(n->fd);
	free(n);
}

/* Look NAME up in PARENT; fill e and take a reference. 0 or an errno. */
static int do_lookup(struct node *parent, const char *name,
		     struct fuse_entry_param *e)
{
	struct node *n;
	int fd;

	memset(e, 0, sizeof(*e));
	fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno;
	if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		int err = errno;

		close(fd);
		return err;
	}
	n = node_get(fd, &e->attr);
	if (!n)
		return ENOMEM;
	e->ino = ID(n);
	e->attr_timeout = TIMEOUT;
	e->entry_timeout = TIMEOUT;
	return 0;
}

static void reply_entry_or_err(fuse_req_t req, struct node *parent,
			       const char *name, int ok)
{
	struct fuse_entry_param e;
	int err;

	if (ok < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	err = do_lookup(parent, name, &e);
	if (err)
		fuse_reply_err(req, err);
	else if (fuse_reply_entry(req, &e) == -ENOENT)
		node_put(N(e.ino), 1);
}

/* ---- operations ---------------------------------------------------------- */

static void pt_init(void *ud, struct fuse_conn_info *conn)
{
	unsigned caps[] = { FUSE_CAP_ASYNC_READ, FUSE_CAP_ATOMIC_O_TRUNC,
			    FUSE_CAP_PARALLEL_DIROPS, FUSE_CAP_READDIRPLUS,
			    FUSE_CAP_READDIRPLUS_AUTO, FUSE_CAP_SPLICE_READ,
			    FUSE_CAP_SPLICE_WRITE, FUSE_CAP_SPLICE_MOVE };

	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		if (conn->capable & caps[i])
			conn->want |= caps[i];
	conn->want &= ~(unsigned)(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_POSIX_ACL |
				  FUSE_CAP_EXPORT_SUPPORT);
	conn->max_write = MAX_IO;
	conn->max_read = MAX_IO;
	if (conn->max_readahead == 0 || conn->max_readahead > MAX_IO)
		conn->max_readahead = MAX_IO;
	(void)ud;
}

static void pt_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int err = do_lookup(N(parent), name, &e);

	if (err)
		fuse_reply_err(req, err);
	else if (fuse_reply_entry(req, &e) == -ENOENT)
		node_put(N(e.ino), 1);
}

static void pt_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_put(N(ino), nlookup);
	fuse_reply_none(req);
}

static void pt_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *f)
{
	for (size_t i = 0; i < count; i++)
		node_put(N(f[i].ino), f[i].nlookup);
	fuse_reply_none(req);
}

static void pt_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	if (fstatat(N(ino)->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_attr(req, &st, TIMEOUT);
	(void)fi;
}

static void pt_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	struct node *n = N(ino);
	char p[64];
	int r = 0;

	procpath(n->fd, p, sizeof(p));
	if (to_set & FUSE_SET_ATTR_MODE)
		r = fi ? fchmod((int)fi->fh, attr->st_mode) : chmod(p, attr->st_mode);
	if (r == 0 && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		uid_t u = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t g = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		r = fchownat(n->fd, "", u, g, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
	}
	if (r == 0 && (to_set & FUSE_SET_ATTR_SIZE))
		r = fi ? ftruncate((int)fi->fh, attr->st_size)
		       : truncate(p, attr->st_size);
	if (r == 0 && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
		struct timespec t[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };

		if (to_set & FUSE_SET_ATTR_ATIME_NOW)
			t[0].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_ATIME)
			t[0] = attr->st_atim;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			t[1].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_MTIME)
			t[1] = attr->st_mtim;
		r = fi ? futimens((int)fi->fh, t) : utimensat(AT_FDCWD, p, t, 0);
	}
	if (r < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	pt_getattr(req, ino, NULL);
}

static void pt_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	ssize_t len = readlinkat(N(ino)->fd, "", buf, sizeof(buf));

	if (len < 0)
		fuse_reply_err(req, errno);
	else if (len >= (ssize_t)sizeof(buf))
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		buf[len] = '\0';
		fuse_reply_readlink(req, buf);
	}
}

static void pt_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	reply_entry_or_err(req, N(parent), name,
			   mknodat(N(parent)->fd, name, mode, rdev));
}

static void pt_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	reply_entry_or_err(req, N(parent), name, mkdirat(N(parent)->fd, name, mode));
}

static void pt_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	reply_entry_or_err(req, N(parent), name, symlinkat(link, N(parent)->fd, name));
}

static void pt_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent,
		    const char *name)
{
	char p[64];

	procpath(N(ino)->fd, p, sizeof(p));
	reply_entry_or_err(req, N(parent), name,
			   linkat(AT_FDCWD, p, N(parent)->fd, name, AT_SYMLINK_FOLLOW));
}

static void pt_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, unlinkat(N(parent)->fd, name, 0) < 0 ? errno : 0);
}

static void pt_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_reply_err(req, unlinkat(N(parent)->fd, name, AT_REMOVEDIR) < 0 ? errno : 0);
}

static void pt_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned flags)
{
	int r = renameat2(N(parent)->fd, name, N(newparent)->fd, newname, flags);

	fuse_reply_err(req, r < 0 ? errno : 0);
}

static void pt_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	char p[64];
	int fd;

	procpath(N(ino)->fd, p, sizeof(p));
	fd = open(p, (fi->flags & ~O_NOFOLLOW) | O_CLOEXEC);
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	fi->fh = (uint64_t)fd;
	fi->keep_cache = 1;
	if (fuse_reply_open(req, fi) == -ENOENT)
		close(fd);
}

static void pt_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	int fd, err;

	fd = openat(N(parent)->fd, name,
		    (fi->flags | O_CREAT | O_CLOEXEC) & ~O_NOFOLLOW, mode);
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	err = do_lookup(N(parent), name, &e);
	if (err) {
		close(fd);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uint64_t)fd;
	fi->keep_cache = 1;
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		close(fd);
		node_put(N(e.ino), 1);
	}
}

static void pt_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);

	bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv.buf[0].fd = (int)fi->fh;
	bv.buf[0].pos = off;
	fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
	(void)ino;
}

static void pt_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in,
			 off_t off, struct fuse_file_info *fi)
{
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	ssize_t n;

	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = (int)fi->fh;
	out.buf[0].pos = off;
	n = fuse_buf_copy(&out, in, 0);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
	(void)ino;
}

static void pt_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* close() of a duplicate reports deferred write errors (e.g. NFS). */
	int fd = dup((int)fi->fh);

	fuse_reply_err(req, fd < 0 || close(fd) < 0 ? errno : 0);
	(void)ino;
}

static void pt_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	close((int)fi->fh);
	fuse_reply_err(req, 0);
	(void)ino;
}

static void pt_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	int fd = (int)fi->fh;
	int r = datasync ? fdatasync(fd) : fsync(fd);

	fuse_reply_err(req, r < 0 ? errno : 0);
	(void)ino;
}

static void pt_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirh *d = calloc(1, sizeof(*d));
	int fd;

	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fd = openat(N(ino)->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d->dp = fdopendir(fd))) {
		int err = errno;

		if (fd >= 0)
			close(fd);
		free(d);
		fuse_reply_err(req, err);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->keep_cache = 1;
	fi->cache_readdir = 1;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		closedir(d->dp);
		free(d);
	}
}

static bool is_dot(const char *s)
{
	return s[0] == '.' && (s[1] == '\0' || (s[1] == '.' && s[2] == '\0'));
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;
	char *buf = malloc(size), *p = buf;
	size_t left = size;
	int err = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off != d->pos) {
		seekdir(d->dp, off);
		d->pending = NULL;
		d->pos = off;
	}
	for (;;) {
		struct dirent *de = d->pending;
		off_t next;
		size_t len;

		if (!de) {
			errno = 0;
			de = readdir(d->dp);
			if (!de) {
				err = errno;
				break;
			}
		}
		d->pending = de;
		next = telldir(d->dp);
		if (plus) {
			struct fuse_entry_param e;

			if (is_dot(de->d_name)) {
				memset(&e, 0, sizeof(e));
				e.attr.st_ino = de->d_ino;
				e.attr.st_mode = (mode_t)de->d_type << 12;
			} else if (do_lookup(N(ino), de->d_name, &e) != 0) {
				/* Gone since readdir(): skip it. */
				d->pending = NULL;
				d->pos = next;
				continue;
			}
			len = fuse_add_direntry_plus(req, p, left, de->d_name, &e, next);
			if (len > left) {
				if (e.ino)
					node_put(N(e.ino), 1);
				break;
			}
		} else {
			struct stat st;

			memset(&st, 0, sizeof(st));
			st.st_ino = de->d_ino;
			st.st_mode = (mode_t)de->d_type << 12;
			len = fuse_add_direntry(req, p, left, de->d_name, &st, next);
			if (len > left)
				break;
		}
		p += len;
		left -= len;
		d->pending = NULL;
		d->pos = next;
	}
	/* An error after some entries: send those, the error comes next time. */
	if (err && p == buf)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, size - left);
	free(buf);
}

static void pt_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void pt_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void pt_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirh *d = (struct dirh *)(uintptr_t)fi->fh;

	closedir(d->dp);
	free(d);
	fuse_reply_err(req, 0);
	(void)ino;
}

static void pt_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	int fd = dirfd(((struct dirh *)(uintptr_t)fi->fh)->dp);
	int r = datasync ? fdatasync(fd) : fsync(fd);

	fuse_reply_err(req, r < 0 ? errno : 0);
	(void)ino;
}

static void pt_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	if (fstatvfs(N(ino)->fd, &sv) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

static const struct fuse_lowlevel_ops ops = {
	.init = pt_init,
	.lookup = pt_lookup,
	.forget = pt_forget,
	.forget_multi = pt_forget_multi,
	.getattr = pt_getattr,
	.setattr = pt_setattr,
	.readlink = pt_readlink,
	.mknod = pt_mknod,
	.mkdir = pt_mkdir,
	.symlink = pt_symlink,
	.link = pt_link,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.rename = pt_rename,
	.open = pt_open,
	.create = pt_create,
	.read = pt_read,
	.write_buf = pt_write_buf,
	.flush = pt_flush,
	.release = pt_release,
	.fsync = pt_fsync,
	.opendir = pt_opendir,
	.readdir = pt_readdir,
	.readdirplus = pt_readdirplus,
	.releasedir = pt_releasedir,
	.fsyncdir = pt_fsyncdir,
	.statfs = pt_statfs,
};

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config cfg;
	struct fuse_session *se;
	struct stat st;
	bool fg = argc > 3 && strcmp(argv[3], "-f") == 0;
	int r = 1;

	if (argc < 3 || (argc > 3 && !fg)) {
		fprintf(stderr, "usage: %s SRC MNT [-f]\n", argv[0]);
		return 2;
	}
	root.fd = open(argv[1], O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root.fd < 0 || fstat(root.fd, &st) < 0) {
		perror(argv[1]);
		return 1;
	}
	root.dev = st.st_dev;
	root.ino = st.st_ino;
	root.refs = 2;
	if (fuse_opt_add_arg(&args, argv[0]) || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, "default_permissions,fsname=ptfs,subtype=ptfs,"
				    "max_read=1048576"))
		return 1;
	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se)
		return 1;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_destroy;
	if (fuse_session_mount(se, argv[2]) != 0)
		goto out_signals;
	if (fuse_daemonize(fg) != 0)
		goto out_unmount;
	memset(&cfg, 0, sizeof(cfg));
	cfg.clone_fd = 1;
	cfg.max_idle_threads = 10;
	r = fuse_session_loop_mt(se, &cfg) < 0 ? 1 : 0;
out_unmount:
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	return r;
}
