/*
 * vector_open.c - open a collection directory for the query tool: list its
 * segments, open and probe them (in parallel, in io_uring batches on a
 * plain directory), check them in name order against the schema, and
 * release them; the deferred open, whose small segments the first search
 * reads (vector_tiny.c) or, on a local vecvault mount, names to the
 * daemon and opens only those it did not scan (vector_dir.c), or, when
 * the daemon may scan none of them, asks it for in bulk (vector_tiny.c)
 * or opens while its scan runs; query files.
 *
 * The collection may be a directory on the vecvault mount or a plain one:
 * segments are opened and mmap'd like any reader would (falling back to
 * read(2) when the filesystem refuses mmap), so the mount's permission
 * checks and audit log see the query.  These are not STORE files, so they
 * do not go through vv_os_*.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "buf.h"
#include "grow.h"
#include "vecvault/log.h"
#include "vector_int.h"

#define SMALL_SEG_BYTES (4u << 20) /* segments up to this size are never mapped */
#define FUSE_SUPER_MAGIC 0x65735546
#define BULK_MAX_THREADS 16u       /* scan threads reading in bulk, at most */

void vv_coll_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
/* ---- loading files ------------------------------------------------------ */

static void unmap(uint8_t *p, size_t len, bool mapped)
{
	if (!p)
		return;
	if (mapped)
		munmap(p, len);
	else
		free(p);
}

/* vv_vector_config.scan_io: READ scans every segment with pread(2), MMAP
 * every one through its mapping, AUTO lets the size and file system decide
 * (struct vv_seg_io). */
static atomic_int scan_io_mode;
/* vv_vector_config.no_uring: open, read and close segments one system call
 * at a time even where io_uring works */
static atomic_bool uring_off;
/* vv_vector_config.no_bulk */
static atomic_bool bulk_off;

void vv_vector_configure(const struct vv_vector_config *c)
{
	struct vv_vector_config dflt = { 0 };

	if (!c)
		c = &dflt;
	atomic_store(&scan_io_mode, (int)c->scan_io);
	atomic_store(&uring_off, c->no_uring);
	atomic_store(&bulk_off, c->no_bulk);
	vv_kernels_configure(c->simd, c->no_blas);
}

/* 1 = pread every segment, -1 = map every one, 0 = decide per segment. */
static int scan_io_forced(void)
{
	switch (atomic_load(&scan_io_mode)) {
	case VV_SCAN_IO_READ:
		return 1;
	case VV_SCAN_IO_MMAP:
		return -1;
	default:
		return 0;
	}
}

/* vector_int.h */
int vv_coll_pread(int fd, uint8_t *p, size_t n, uint64_t off, const char **why)
{
	size_t got = 0;

	while (got < n) {
		ssize_t k = pread(fd, p + got, n - got, (off_t)(off + got));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			*why = k < 0 ? strerror(errno) : "file shrank while reading";
			return k < 0 ? vv_err_from_errno(errno) : VV_EIO;
		}
		got += (size_t)k;
	}
	return 0;
}

/* Map (or read) the whole open regular file fd of n bytes.  Files up to
 * read_below bytes are read into malloc'd memory: for them mmap, madvise,
 * the page faults and munmap cost more than copying the bytes (on this
 * kind of VM a page-table update is a hypercall).  *why gets strerror-style
 * text. */
static int load_fd(int fd, size_t n, size_t read_below, uint8_t **out, bool *mapped,
		   const char **why)
{
	uint8_t *p = MAP_FAILED;
	int r;

	*out = NULL;
	*mapped = false;
	if (n == 0)
		return 0;
	if (n > read_below)
		p = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, 0);
	if (p != MAP_FAILED) {
		/* Sequential scans: ask for aggressive readahead when cold. */
		madvise(p, n, MADV_SEQUENTIAL);
		*mapped = true;
		*out = p;
		return 0;
	}
	/* small, or e.g. a FUSE file opened with direct_io: read it */
	if (!(p = malloc(n))) {
		*why = "out of memory";
		return VV_ENOMEM;
	}
	if ((r = vv_coll_pread(fd, p, n, 0, why)) < 0) {
		free(p);
		return r;
	}
	*out = p;
	return 0;
}

/* Open name relative to dirfd for reading; a regular file, its type, size,
 * device, inode and ctime in *st (nothing else is filled: struct
 * vv_seg_id).  O_NONBLOCK (VV_SEG_OPEN):
 * a FIFO named like a segment would otherwise block the open until some
 * writer came, and one user's FIFO in a shared collection hung everyone's
 * query; it opens at once and is refused as not a regular file.  statx asks for just those:
 * on a FUSE mount fstat also wants the atime, which the kernel forgets
 * whenever the daemon served a read of the file, so after a cold read every
 * segment cost a GETATTR round trip.  Returns the descriptor or a VV_E*
 * code with *why set. */
static int open_reg(int dirfd, const char *name, struct stat *st, const char **why)
{
	int fd = openat(dirfd, name, VV_SEG_OPEN), r;
	struct statx sx;

	if (fd < 0) {
		*why = strerror(errno);
		return vv_err_from_errno(errno);
	}
	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, VV_SEG_STATX, &sx) == 0) {
		memset(st, 0, sizeof(*st));
		st->st_mode = sx.stx_mode;
		st->st_size = (off_t)sx.stx_size;
		st->st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
		st->st_ino = (ino_t)sx.stx_ino;
		st->st_ctim = (struct timespec){ (time_t)sx.stx_ctime.tv_sec, (long)sx.stx_ctime.tv_nsec };
	} else if (errno != ENOSYS || fstat(fd, st) < 0) {   /* no statx: a seccomp filter */
		*why = strerror(errno);
		r = vv_err_from_errno(errno);
		close(fd);
		return r;
	}
	if (!S_ISREG(st->st_mode)) {
		*why = "not a regular file";
		close(fd);
		return VV_EINVAL;
	}
	return fd;
}

/* Map (or read) a whole regular file (query files).  *why as above. */
static int load_file(const char *path, uint8_t **out, size_t *len, bool *mapped, const char **why)
{
	struct stat st;
	int fd, r;

	*out = NULL;
	*len = 0;
	*mapped = false;
	if ((fd = open_reg(AT_FDCWD, path, &st, why)) < 0)
		return fd;
	if ((r = load_fd(fd, (size_t)st.st_size, 0, out, mapped, why)) == 0)
		*len = (size_t)st.st_size;
	close(fd);
	return r;
}

/* How the segments of one collection are reached, decided once per open:
 *  - small segments (<= SMALL_SEG_BYTES) are never mapped: the open reads
 *    their header with one pread, keeps the descriptor, and the scan
 *    preads their rows into a per-thread buffer.  Mapping thousands of
 *    small files costs an mmap, madvise, page faults and munmap each, far
 *    more than their bytes: that made 500 segments of 1k rows scan at a
 *    tenth of the rate of one 500k-row segment.
 *  - large segments are mapped, but scanned by pread too (the mapping
 *    serves only the header, the re-ranking rows and ids).  A scan through
 *    a mapping of 4 KiB pages is TLB-bound on this kind of VM (nested page
 *    walks: 3-7 GB/s for 488 MB on ext4, most of it user time, and
 *    MADV_POPULATE_READ does not help), while pread into an L2-sized
 *    buffer runs at 15-20 GB/s whatever the page cache's folio sizes; only
 *    a file the kernel happens to map with huge folios scanned faster
 *    mapped.  The FUSE page cache holds only 4 KiB folios anyway, and
 *    pread of a keep_cache'd FUSE file is served from the page cache
 *    without a daemon round trip.
 *  - descriptors are kept open for pread-scanned segments while the
 *    RLIMIT_NOFILE budget allows; past it small segments are opened again
 *    by the scan and large ones scanned mapped.
 * VV_SCAN_IO=mmap (forced -1) maps and scans every segment mapped.
 * (struct vv_seg_io, vector_int.h, holds the decision.) */

/* Is device dev a vv:// client mount?  Its mountinfo line (matched by
 * major:minor) names a fuse file system whose source is the vv:// URL.
 * Only decides how a large batch is offloaded (offload_group). */
static bool mount_is_remote(dev_t dev)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], want[32];
	bool remote = false;

	if (!f)
		return false;
	snprintf(want, sizeof(want), " %u:%u ", major(dev), minor(dev));
	while (fgets(line, sizeof(line), f)) {
		const char *sep = strstr(line, " - "), *src;
		if (!sep || !strstr(line, want) || strstr(line, want) > sep)
			continue;
		src = strchr(sep + 3, ' ');
		remote = !strncmp(sep + 3, "fuse", 4) && src && !strncmp(src + 1, "vv://", 5);
		break;
	}
	fclose(f);
	return remote;
}

static void scan_io_init(struct vv_seg_io *io, int dirfd)
{
	struct stat st;
	struct statfs sf;
	struct rlimit rl;

	memset(io, 0, sizeof(*io));
	io->forced = scan_io_forced();
	io->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (fstat(dirfd, &st) == 0)
		io->dir_dev = st.st_dev;
	io->dir_fuse = fstatfs(dirfd, &sf) == 0 && (unsigned long)sf.f_type == FUSE_SUPER_MAGIC;
	io->dir_remote = io->dir_fuse && mount_is_remote(io->dir_dev);
	/* leave room for the caller's own files, stdio, libraries, the
	 * rings and the descriptors the loaders hold for a moment: 96, and
	 * under a limit of 128 at most 32 or half of it (a flat 32 under a
	 * limit of 40 left the plain open failing with EMFILE) */
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		io->maxfds = 32;
	else if (rl.rlim_cur == RLIM_INFINITY)
		io->maxfds = 1u << 20;
	else if (rl.rlim_cur > 128)
		io->maxfds = (size_t)rl.rlim_cur - 96;
	else
		io->maxfds = rl.rlim_cur / 2 < 32 ? (size_t)rl.rlim_cur / 2 : 32;
	/* on a FUSE mount each open is a round trip to the daemon, which a
	 * ring would only move to its worker threads */
	io->batched = !io->dir_fuse && io->forced != -1 && io->dirfd >= 0 &&
		      !atomic_load(&uring_off);
}

/* vector_int.h */
bool vv_coll_fd_take(struct vv_seg_io *io)
{
	if (atomic_fetch_add(&io->fds, 1) < io->maxfds)
		return true;
	atomic_fetch_sub(&io->fds, 1);
	return false;
}

/* Take up to n descriptors of the budget at once (a batch holds them all
 * open together); how many were taken. */
static size_t fd_take_n(struct vv_seg_io *io, size_t n)
{
	size_t cur = atomic_load(&io->fds), k;

	do {
		k = cur >= io->maxfds ? 0 : io->maxfds - cur < n ? io->maxfds - cur : n;
		if (!k)
			return 0;
	} while (!atomic_compare_exchange_weak(&io->fds, &cur, cur + k));
	return k;
}

/* Is fd (with fstat st) on a FUSE mount?  Same device as the directory:
 * the directory's answer, without a statfs per segment. */
static bool on_fuse(const struct vv_seg_io *io, int fd, const struct stat *st)
{
	struct statfs sf;

	if (st->st_dev == io->dir_dev)
		return io->dir_fuse;
	return fstatfs(fd, &sf) == 0 && (unsigned long)sf.f_type == FUSE_SUPER_MAGIC;
}

/* BASE.ids.npy for segment name BASE.EXT (malloc'd), or NULL. */
static char *ids_name(const char *name)
{
	const char *dot = strrchr(name, '.');
	size_t b = dot ? (size_t)(dot - name) : strlen(name);
	char *p = malloc(b + 9);

	if (p) {
		memcpy(p, name, b);
		memcpy(p + b, ".ids.npy", 9);
	}
	return p;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Probe segment s (n bytes, its head hp[0 .. hl)), then open and probe its
 * id sidecar when the sorted listing idsv[0 .. nids) has one. */
static int seg_head(int dirfd, char *const *idsv, size_t nids, struct vv_cseg *s, const uint8_t *hp,
		    size_t hl, size_t n, const char **why)
{
	struct vv_segment_info ii;
	struct stat st;
	char *ids = NULL;
	int fd = -1, r;

	if ((r = vv_segment_probe(vv_segment_format_from_name(s->name), hp, hl, n, &s->pub.info,
				  why)) < 0 || !nids)
		goto out;            /* no sidecar listed: no name to build */
	if (!(ids = ids_name(s->name))) {
		r = VV_ENOMEM;
		*why = "out of memory";
		goto out;
	}
	if (!bsearch(&ids, idsv, nids, sizeof(*idsv), name_cmp))
		goto out;
	if ((fd = r = open_reg(dirfd, ids, &st, why)) < 0 ||
	    (r = load_fd(fd, (size_t)st.st_size, SMALL_SEG_BYTES, &s->ids_base, &s->ids_mapped,
			 why)) < 0) {
		if (r == VV_ENOENT) {       /* removed since the listing */
			r = 0;
			goto out;
		}
		*why = "id sidecar unreadable";
		goto out;
	}
	s->ids_len = (size_t)st.st_size;
	if ((r = vv_segment_probe_ids(s->ids_base, s->ids_len < VV_VEC_PROBE_LEN ? s->ids_len : VV_VEC_PROBE_LEN,
				      s->ids_len, &ii, why)) < 0) {
		*why = "id sidecar (.ids.npy) is malformed or not int64";
		goto out;
	}
	if (ii.count != s->pub.info.count) {
		r = VV_ESCHEMA;
		*why = "id sidecar (.ids.npy) row count differs from the segment's";
		goto out;
	}
	s->ids_off = ii.data_off;
	s->pub.has_ids = true;
out:
	if (fd >= 0)
		close(fd);
	free(ids);
	return r;
}

/* Open one segment and its id sidecar (when the listing has one, sorted
 * idsv[0 .. nids)); probe both.  Costs a small segment openat, fstat,
 * one pread of its head: no mapping, no statfs, no failed open of a
 * sidecar that the directory does not list. */
static int seg_load(int dirfd, struct vv_seg_io *io, char *const *idsv, size_t nids, struct vv_cseg *s,
		    const char **why)
{
	uint8_t head[VV_VEC_PROBE_LEN];
	const uint8_t *hp;
	struct stat st;
	size_t n, hl;
	int fd = -1, r;
	bool small, keep = false, lazy = false;

	s->fd = -1;
	if ((fd = r = open_reg(dirfd, s->name, &st, why)) < 0)
		goto out;
	n = (size_t)st.st_size;
	s->len = n;
	s->pub.file_size = n;
	s->id = (struct vv_seg_id){ st.st_dev, st.st_ino, n, st.st_ctim };
	hl = n < VV_VEC_PROBE_LEN ? n : VV_VEC_PROBE_LEN;
	s->fuse = on_fuse(io, fd, &st);
	small = io->forced >= 0 && n <= SMALL_SEG_BYTES;
	if (io->forced != -1) {
		keep = vv_coll_fd_take(io);
		lazy = !keep && small && io->dirfd >= 0;
	}
	if (lazy) {
		/* past the descriptor budget: probe now, reopen to scan, so
		 * that opening (vecvault stats too) stays O(1) per segment */
		if ((r = vv_coll_pread(fd, head, hl, 0, why)) < 0)
			goto out;
		hp = head;
		s->stream = true;
	} else if (keep) {
		/* scanned by pread through fd; large ones mapped for the rest,
		 * except on a FUSE mount: there the daemon's exact offload
		 * replies leave the mapping only the header, and its first
		 * fault (read-ahead of a sequential mapping) cost a vv://
		 * mount a round trip of megabytes; a fallback re-ranking
		 * preads its few rows */
		if (!small && !s->fuse && (r = load_fd(fd, n, 0, &s->base, &s->mapped, why)) < 0)
			goto out;
		if (s->base) {
			hp = s->base;
		} else {
			if ((r = vv_coll_pread(fd, head, hl, 0, why)) < 0)
				goto out;
			hp = head;
		}
		s->stream = true;
		s->fd = fd;
		fd = -1;
	} else {
		if ((r = load_fd(fd, n, small ? SMALL_SEG_BYTES : 0, &s->base, &s->mapped, why)) < 0)
			goto out;
		hp = s->base;
	}
	/* hp is the head buffer or the segment in memory: fd is no longer
	 * needed (one descriptor at a time while the sidecar opens) */
	if (fd >= 0) {
		close(fd);
		fd = -1;
	}
	r = seg_head(dirfd, idsv, nids, s, hp, hl, n, why);
out:
	if (fd >= 0)
		close(fd);
	return r;
}

static void seg_release(struct vv_cseg *s, struct vv_seg_io *io)
{
	unmap(s->base, s->len, s->mapped);
	unmap(s->ids_base, s->ids_len, s->ids_mapped);
	if (s->fd >= 0) {
		close(s->fd);
		if (io)
			atomic_fetch_sub(&io->fds, 1);
	}
	s->stream = false;
	s->fd = -1;
	s->base = s->ids_base = NULL;
	s->pub.has_ids = false;
}

/* Opening thousands of segments is a few syscalls each, most of the open's
 * time for small ones, and closing them is one more each: threads open and
 * probe them in parallel (the caller then checks them in name order), and
 * release them in parallel, each thread taking the next index.  On a FUSE
 * mount an open is an OPEN round trip, during which the thread sleeps
 * while a daemon worker answers: there LOAD_MAX_THREADS open at once,
 * whatever the CPUs (10,000 segments of 100 rows on 2 CPUs: 17-32% less
 * wall time than 2 openers, the same CPU time; docs/design.md).  RELEASE
 * is sent asynchronously by the kernel, so releases stay one per CPU. */
#define LOAD_PER_THREAD 64u      /* fewer segments per thread: not worth one */
#define LOAD_MAX_THREADS 8u

struct par {
	void (*fn)(void *ctx, size_t i);
	void *ctx;
	size_t n;
	atomic_size_t next;
};

static void *par_work(void *arg)
{
	struct par *p = arg;
	size_t i;

	while ((i = atomic_fetch_add(&p->next, 1)) < p->n)
		p->fn(p->ctx, i);
	return NULL;
}

/* work(arg) on this thread and on up to LOAD_MAX_THREADS - 1 more, as
 * many as n items are worth (at most max_nt in all); returns when all are
 * done.  One per CPU, unless waiting bounds the items (the OPEN round trips
 * of a FUSE mount, where a thread sleeps while the daemon answers): then
 * LOAD_MAX_THREADS. */
static void par_threads(size_t n, size_t max_nt, bool waiting, void *(*work)(void *), void *arg)
{
	pthread_t th[LOAD_MAX_THREADS];
	size_t nt = waiting ? LOAD_MAX_THREADS : (size_t)sysconf(_SC_NPROCESSORS_ONLN), started;

	nt = nt < 1 ? 1 : nt > LOAD_MAX_THREADS ? LOAD_MAX_THREADS : nt;
	if (nt > n / LOAD_PER_THREAD + 1)
		nt = n / LOAD_PER_THREAD + 1;
	if (nt > max_nt)
		nt = max_nt ? max_nt : 1;
	for (started = 1; started < nt; started++)
		if (pthread_create(&th[started], NULL, work, arg) != 0)
			break;
	work(arg);
	for (size_t t = 1; t < started; t++)
		pthread_join(th[t], NULL);
}

/* fn(ctx, i) for every i < n, on up to LOAD_MAX_THREADS threads. */
static void par_run(size_t n, bool waiting, void (*fn)(void *, size_t), void *ctx)
{
	struct par p = { .fn = fn, .ctx = ctx, .n = n };

	par_threads(n, LOAD_MAX_THREADS, waiting, par_work, &p);
}

/* Many segments are opened, and released, in batches through io_uring
 * (vector_uring.c): per batch of URING_BATCH files, one submission opens
 * them, one reads their heads, one closes them, and each costs one statx;
 * one by one they cost four system calls each.  Each thread has its
 * ring, made at its first batch; where no ring can be made (no liburing,
 * a seccomp filter, io_uring disabled) or one fails, the thread goes on
 * one segment at a time, and so does any segment the batch cannot take
 * whole (not a small regular file on the directory's device, a short head,
 * past the descriptor budget, an error): seg_load then does exactly what it
 * always did, error text included. */
#define URING_BATCH 128u

struct batch_tls {
	bool tried;
	struct vv_uring *u;
	struct vv_uring_file *f;
	uint8_t *heads;          /* URING_BATCH heads of VV_VEC_PROBE_LEN */
};

struct pbatch {
	void (*fn)(void *ctx, struct batch_tls *t, size_t i0, size_t i1);
	void *ctx;
	size_t n;
	atomic_size_t next;
};

static void *pbatch_work(void *arg)
{
	struct pbatch *p = arg;
	struct batch_tls t = { 0 };
	size_t i;

	while ((i = atomic_fetch_add(&p->next, URING_BATCH)) < p->n)
		p->fn(p->ctx, &t, i, p->n - i < URING_BATCH ? p->n : i + URING_BATCH);
	/* no read is in flight here: every batch reaped its own, or drained
	 * them when the ring failed (or left heads to them: t.heads NULL) */
	vv_uring_free(t.u);
	free(t.f);
	free(t.heads);
	return NULL;
}

/* fn(ctx, tls, i0, i1) for batches covering 0 .. n, threads as par_run. */
static void pbatch_run(size_t n, void (*fn)(void *, struct batch_tls *, size_t, size_t), void *ctx)
{
	struct pbatch p = { .fn = fn, .ctx = ctx, .n = n };

	par_threads(n, (n + URING_BATCH - 1) / URING_BATCH, false, pbatch_work, &p);
}

/* The thread's ring (made at its first call; heads too when asked), or
 * NULL: then one system call at a time. */
static struct vv_uring *batch_ring(struct batch_tls *t, bool heads)
{
	int r;

	if (!t->tried) {
		t->tried = true;
		if ((r = vv_uring_new(URING_BATCH, &t->u)) < 0)
			vv_log(VV_LOG_DEBUG, "query: no io_uring (%s): opening segments one by one",
			       vv_strerror(r));
	}
	if (t->u && heads && !t->f) {
		t->f = calloc(URING_BATCH, sizeof(*t->f));
		t->heads = aligned_alloc(64, (size_t)URING_BATCH * VV_VEC_PROBE_LEN);
		if (!t->f || !t->heads) {
			vv_uring_free(t->u);
			t->u = NULL;
		}
	}
	return t->u;
}

struct loader {
	int dirfd;
	struct vv_seg_io *io;
	char *const *idsv;
	size_t nids;
	struct vv_cseg *segs;
	int *res;
	const char **why;
	atomic_size_t *nbatched;
};

static void load_one(void *arg, size_t i)
{
	struct loader *l = arg;

	l->res[i] = seg_load(l->dirfd, l->io, l->idsv, l->nids, &l->segs[i], &l->why[i]);
}

/* Segment s as the batch opened it (f), its descriptor already counted in
 * the budget: kept when it is a small regular file on the directory's
 * device whose head came whole, otherwise closed (and uncounted) and
 * loaded one by one. */
static int seg_batched(struct loader *l, struct vv_cseg *s, struct vv_uring_file *f, const char **why)
{
	size_t n = (size_t)f->sx.stx_size, hl = n < VV_VEC_PROBE_LEN ? n : VV_VEC_PROBE_LEN;

	s->fd = -1;
	if (f->fd < 0 || f->statx_err || !S_ISREG(f->sx.stx_mode) ||
	    makedev(f->sx.stx_dev_major, f->sx.stx_dev_minor) != l->io->dir_dev ||
	    f->sx.stx_size > SMALL_SEG_BYTES || f->headlen < 0 || (size_t)f->headlen != hl) {
		if (f->fd >= 0)
			close(f->fd);
		f->fd = -1;
		atomic_fetch_sub(&l->io->fds, 1);
		return seg_load(l->dirfd, l->io, l->idsv, l->nids, s, why);
	}
	s->len = n;
	s->pub.file_size = n;
	s->id = (struct vv_seg_id){ makedev(f->sx.stx_dev_major, f->sx.stx_dev_minor),
				    (ino_t)f->sx.stx_ino, n,
				    { (time_t)f->sx.stx_ctime.tv_sec, (long)f->sx.stx_ctime.tv_nsec } };
	s->fuse = false;         /* the directory's device, which is not FUSE */
	s->stream = true;
	s->fd = f->fd;
	f->fd = -1;
	atomic_fetch_add(l->nbatched, 1);
	return seg_head(l->dirfd, l->idsv, l->nids, s, f->head, hl, n, why);
}

/* Segments i0 .. i1: as many in one batch as the descriptor budget still
 * holds (each thread's batch keeps all its files open at once; past the
 * budget the one-by-one path probes and closes), the rest one by one. */
static void load_batch(void *arg, struct batch_tls *t, size_t i0, size_t i1)
{
	struct loader *l = arg;
	struct vv_uring *u = batch_ring(t, true);
	size_t n = i1 - i0, nb = u ? fd_take_n(l->io, n) : 0;

	if (nb) {
		for (size_t k = 0; k < nb; k++)
			t->f[k] = (struct vv_uring_file){ .name = l->segs[i0 + k].name,
							  .head = t->heads + k * VV_VEC_PROBE_LEN,
							  .headcap = VV_VEC_PROBE_LEN, .fd = -1 };
		if (vv_uring_open_batch(u, l->dirfd, t->f, nb) < 0) {
			vv_log(VV_LOG_DEBUG, "query: io_uring failed: opening segments one by one");
			if (vv_uring_lost(u)) {
				/* reads may still land in the heads: never freed */
				vv_log(VV_LOG_WARN, "query: io_uring failed with reads in flight; "
				       "leaving their %u KiB of buffers to them",
				       URING_BATCH * VV_VEC_PROBE_LEN / 1024);
				t->heads = NULL;
			}
			vv_uring_free(t->u);
			t->u = NULL;
			atomic_fetch_sub(&l->io->fds, nb);
			nb = 0;
		}
	}
	for (size_t k = 0; k < n; k++)
		l->res[i0 + k] = k < nb ? seg_batched(l, &l->segs[i0 + k], &t->f[k], &l->why[i0 + k])
					: seg_load(l->dirfd, l->io, l->idsv, l->nids, &l->segs[i0 + k],
						   &l->why[i0 + k]);
}

static void release_one(void *arg, size_t i)
{
	struct vv_collection *c = arg;

	seg_release(&c->segs[i], c->io);
	free(c->segs[i].name);
	c->segs[i].name = NULL;
}

/* Release segments i0 .. i1, their descriptors closed in one submission. */
static void release_batch(void *arg, struct batch_tls *t, size_t i0, size_t i1)
{
	struct vv_collection *c = arg;
	struct vv_uring *u = batch_ring(t, false);
	int fds[URING_BATCH];
	size_t nf = 0;

	for (size_t i = i0; i < i1; i++) {
		struct vv_cseg *s = &c->segs[i];
		if (u && s->fd >= 0) {
			fds[nf++] = s->fd;
			s->fd = -1;
			atomic_fetch_sub(&c->io->fds, 1);
		}
		release_one(c, i);
	}
	if (nf && vv_uring_close_fds(u, fds, nf) < 0) {
		vv_log(VV_LOG_WARN, "query: io_uring failed closing segments; closing one by one");
		vv_uring_free(t->u);
		t->u = NULL;
	}
}

static int read_schema(const char *dir, struct vv_schema *s, char *err, size_t errlen)
{
	static const char *const names[] = { "user.vecvault.dim", "user.vecvault.dtype",
					     "user.vecvault.metric" };
	char v[64];
	int r = 0;

	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < 3; i++) {
		ssize_t n = getxattr(dir, names[i], v, sizeof(v));
		if (n < 0) {
			if (errno == ENODATA || errno == ENOTSUP || errno == ERANGE)
				continue;
			r = vv_err_from_errno(errno);
			vv_coll_seterr(err, errlen, "%s: cannot read %s: %s", dir, names[i], strerror(errno));
			goto out;
		}
		if (vv_schema_set_xattr(s, names[i], v, (size_t)n) < 0) {
			r = VV_ESCHEMA;
			vv_coll_seterr(err, errlen, "%s: invalid %s value '%.*s'", dir, names[i], (int)n, v);
			goto out;
		}
	}
out:
	return r;
}

static int add_skipped(struct vv_collection *c, const char *name, const char *why)
{
	char **p = realloc(c->skipped, (c->nskipped + 1) * sizeof(*p));
	size_t n = strlen(name) + strlen(why) + 3;

	if (!p)
		return VV_ENOMEM;
	c->skipped = p;
	if (!(p[c->nskipped] = malloc(n)))
		return VV_ENOMEM;
	snprintf(p[c->nskipped], n, "%s: %s", name, why);
	c->nskipped++;
	return 0;
}

/* Check segments i0 .. n of c in name order, as they opened (res[i - i0],
 * whys[i - i0]): the first good one fixes what the schema leaves unset,
 * the first bad one fails, or with skip_bad is left out and listed.  Kept
 * ones move down to segs[*kept ..], numbered from *rows; map[i - i0] (when
 * map) gets segment i's new index, UINT32_MAX if left out.  On an error
 * the segments not reached are released (names freed). */
static int settle(struct vv_collection *c, size_t i0, size_t n, const int *res,
		  const char *const *whys, size_t *kept, uint64_t *rows, uint32_t *map, char *err,
		  size_t errlen)
{
	size_t i;
	int r = 0;

	for (i = i0; i < n; i++) {
		struct vv_cseg *s = &c->segs[*kept];
		const char *why = whys[i - i0];
		int e = res[i - i0];

		if (*kept != i) {
			*s = c->segs[i];
			memset(&c->segs[i], 0, sizeof(c->segs[i]));
			c->segs[i].fd = -1;
		}
		if (e == 0) {
			/* the first good segment fixes what the xattrs leave unset */
			if (!c->schema.dim)
				c->schema.dim = s->pub.info.dim;
			if (c->schema.dtype == VV_DT_ANY)
				c->schema.dtype = s->pub.info.dtype;
			e = vv_schema_match(&c->schema, &s->pub.info, &why);
		}
		if (e < 0) {
			vv_log(VV_LOG_WARN, "segment %s/%s: %s", c->dir, s->name, why ? why : vv_strerror(e));
			if (map)
				map[i - i0] = UINT32_MAX;
			if (!c->skip_bad) {
				r = e;
				vv_coll_seterr(err, errlen, "%s/%s: %s", c->dir, s->name, why ? why : vv_strerror(e));
				seg_release(s, c->io);
				free(s->name);
				s->name = NULL;
				i++;
				goto out;
			}
			r = add_skipped(c, s->name, why ? why : vv_strerror(e));
			seg_release(s, c->io);
			free(s->name);
			memset(s, 0, sizeof(*s));
			s->fd = -1;
			if (r < 0) {
				i++;
				goto out;
			}
			continue;
		}
		if (map)
			map[i - i0] = (uint32_t)*kept;
		s->pub.first_row = *rows;
		*rows += s->pub.info.count;
		(*kept)++;
	}
	return 0;
out:
	for (; i < n; i++) {
		seg_release(&c->segs[i], c->io);
		free(c->segs[i].name);
		c->segs[i].name = NULL;
	}
	return r;
}

/* Segments up to this size may be deferred to the search (a thread's
 * slots hold a few; vector_tiny.c) */
#define TINY_MAX_BYTES (512u << 10)

/* The deferred open: open segments one by one until one is good (it fixes
 * the dimension, and its size the slots'); the rest wait for the search
 * when that one is small.  *p: how many were opened. */
static bool defer_rest(struct vv_collection *c, struct loader *ld, size_t nnames, size_t *p)
{
	struct vv_schema sc = c->schema;
	const char *why;
	size_t i;
	uint64_t len;

	for (i = 0; i < nnames; i++) {
		struct vv_cseg *s = &c->segs[i];
		load_one(ld, i);
		if (ld->res[i] < 0) {
			if (!c->skip_bad)
				break;   /* the open fails there */
			continue;
		}
		if (!sc.dim)
			sc.dim = s->pub.info.dim;
		if (sc.dtype == VV_DT_ANY)
			sc.dtype = s->pub.info.dtype;
		if (vv_schema_match(&sc, &s->pub.info, &why) == 0)
			break;
		if (!c->skip_bad)
			break;
	}
	*p = i < nnames ? i + 1 : nnames;
	if (i >= nnames || *p == nnames || (len = c->segs[i].len) > TINY_MAX_BYTES)
		return false;
	/* twice the first one's size, so that segments a little larger still
	 * fit: a read that fills its slot sends the segment to the open */
	c->slot = ((size_t)len * 2 + 4096 + 4095) & ~(size_t)4095;
	for (i = *p; i < nnames; i++)
		c->segs[i].deferred = true;
	return true;
}

/* Append a copy of name to the list *v (n names, capacity *cap). */
static int push_name(char ***v, size_t *n, size_t *cap, const char *name)
{
	if (VV_GROW(*v, *n, *cap) < 0 || !((*v)[*n] = strdup(name)))
		return VV_ENOMEM;
	(*n)++;
	return 0;
}

static int coll_open(const char *dir, const struct vv_schema *override, bool skip_bad, bool defer,
		     struct vv_collection **out, char *err, size_t errlen)
{
	struct vv_collection *c = NULL;
	DIR *d = NULL;
	struct dirent *de;
	char **names = NULL, **idsv = NULL;
	size_t nnames = 0, cap = 0, kept = 0, nids = 0, idscap = 0, i = 0, p = 0;
	struct loader ld;
	int *res = NULL;
	const char **whys = NULL;
	uint64_t rows = 0;
	int r = 0;

	*out = NULL;
	if (!(c = calloc(1, sizeof(*c))) || !(c->dir = strdup(dir)) ||
	    !(c->io = calloc(1, sizeof(*c->io)))) {
		r = VV_ENOMEM;
		goto out;
	}
	c->skip_bad = skip_bad;
	if (!(d = opendir(dir))) {
		r = vv_err_from_errno(errno);
		vv_coll_seterr(err, errlen, "%s: %s", dir, strerror(errno));
		goto out;
	}
	scan_io_init(c->io, dirfd(d));
	while ((errno = 0, de = readdir(d))) {
		/* id sidecars listed here, so a segment without one costs no
		 * failed open */
		if (vv_segment_name_is_ids(de->d_name))
			r = push_name(&idsv, &nids, &idscap, de->d_name);
		else if (vv_segment_name_is_segment(de->d_name))
			r = push_name(&names, &nnames, &cap, de->d_name);
		if (r < 0)
			goto out;
	}
	if (errno) {
		r = vv_err_from_errno(errno);
		vv_coll_seterr(err, errlen, "%s: %s", dir, strerror(errno));
		goto out;
	}
	/* qsort's array must not be NULL, even for 0 elements (UBSan) */
	if (nnames)
		qsort(names, nnames, sizeof(*names), name_cmp);
	if (nids)
		qsort(idsv, nids, sizeof(*idsv), name_cmp);
	if ((r = read_schema(dir, &c->schema, err, errlen)) < 0)
		goto out;
	if (override) {
		if (override->dim)
			c->schema.dim = override->dim;
		if (override->dtype != VV_DT_ANY)
			c->schema.dtype = override->dtype;
		if (override->metric != VV_METRIC_NONE)
			c->schema.metric = override->metric;
	}
	if (c->schema.metric == VV_METRIC_NONE)
		c->schema.metric = VV_METRIC_L2;
	if (!(c->segs = calloc(nnames ? nnames : 1, sizeof(*c->segs))) ||
	    !(res = calloc(nnames ? nnames : 1, sizeof(*res))) ||
	    !(whys = calloc(nnames ? nnames : 1, sizeof(*whys)))) {
		r = VV_ENOMEM;
		goto out;
	}
	for (i = 0; i < nnames; i++) {
		c->segs[i].name = names[i];
		c->segs[i].pub.name = names[i];
		c->segs[i].fd = -1;
		names[i] = NULL;
	}
	c->nsegs = nnames;       /* until checked: vv_collection_free releases them */
	memset(&ld, 0, sizeof(ld));
	ld = (struct loader){ .dirfd = dirfd(d), .io = c->io, .idsv = idsv, .nids = nids,
			      .segs = c->segs, .res = res, .why = whys, .nbatched = &c->nbatched };
	/* deferred: a directory of small segments without sidecars, where
	 * the scan threads may read segments by name themselves (a plain
	 * one), or the daemon scans them without their being opened (a
	 * vecvault mount, local or vv://, whose every open and release is a
	 * round trip: vector_dir.c; a daemon or server without the directory
	 * request answers ENOTTY and each file is opened as before) */
	c->dirserve = c->io->dir_fuse || vv_coll_dir_test_hooked();
	if (defer && !nids && (!c->io->dir_fuse || c->dirserve) && !c->io->forced && c->io->dirfd >= 0)
		c->pending = defer_rest(c, &ld, nnames, &p);
	if (!c->pending && p < nnames) {
		ld.segs += p;
		ld.res += p;
		ld.why += p;
		if (c->io->batched)
			pbatch_run(nnames - p, load_batch, &ld);
		else
			par_run(nnames - p, c->io->dir_fuse, load_one, &ld);
		p = nnames;
	}
	/* in name order: the first good segment fixes the schema, the first
	 * bad one fails the open */
	if ((r = settle(c, 0, p, res, whys, &kept, &rows, NULL, err, errlen)) < 0) {
		c->nsegs = kept;
		for (i = p; i < nnames; i++)
			free(c->segs[i].name);
		goto out;
	}
	for (i = p; i < nnames; i++) {
		c->segs[kept + i - p] = c->segs[i];
		if (kept + i - p != i) {
			memset(&c->segs[i], 0, sizeof(c->segs[i]));
			c->segs[i].fd = -1;
		}
	}
	c->pend0 = kept;
	c->nsegs = kept + nnames - p;
	c->rows = rows;
	*out = c;
	c = NULL;
out:
	free(res);
	free(whys);
	if (d)
		closedir(d);
	for (i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	for (size_t i = 0; i < nids; i++)
		free(idsv[i]);
	free(idsv);
	vv_collection_free(c);
	return r;
}

int vv_collection_open(const char *dir, const struct vv_schema *override, bool skip_bad,
		       struct vv_collection **out, char *err, size_t errlen)
{
	return coll_open(dir, override, skip_bad, false, out, err, errlen);
}

int vv_collection_open_deferred(const char *dir, const struct vv_schema *override, bool skip_bad,
				struct vv_collection **out, char *err, size_t errlen)
{
	return coll_open(dir, override, skip_bad, true, out, err, errlen);
}

bool vv_collection_check_failed(const struct vv_collection *c) { return c->check_failed; }

void vv_collection_free(struct vv_collection *c)
{
	if (!c)
		return;
	if (c->io && c->io->batched)
		pbatch_run(c->nsegs, release_batch, c);
	else
		par_run(c->nsegs, false, release_one, c);
	for (size_t i = 0; i < c->nskipped; i++)
		free(c->skipped[i]);
	free(c->skipped);
	free(c->segs);
	free(c->dir);
	if (c->io && c->io->dirfd >= 0)
		close(c->io->dirfd);
	free(c->io);
	free(c);
}

const struct vv_schema *vv_collection_schema(const struct vv_collection *c) { return &c->schema; }
size_t vv_collection_nsegs(const struct vv_collection *c) { return c->nsegs; }
const struct vv_collection_seg *vv_collection_seg(const struct vv_collection *c, size_t i)
{
	return i < c->nsegs ? &c->segs[i].pub : NULL;
}
size_t vv_collection_nskipped(const struct vv_collection *c) { return c->nskipped; }
size_t vv_collection_nbatched(const struct vv_collection *c) { return atomic_load(&c->nbatched); }
const char *vv_collection_skipped(const struct vv_collection *c, size_t i)
{
	return i < c->nskipped ? c->skipped[i] : NULL;
}

/* ---- the first search of a deferred open -------------------------------------- */

struct relist {
	struct loader *ld;
	const uint32_t *idx;
};

static void load_listed(void *arg, size_t i)
{
	struct relist *l = arg;

	load_one(l->ld, l->idx[i]);
}

/* Which of two failed scans' errors the whole scan reports: a read error
 * before a bad row, then the first segment, then the first row (as
 * vector_scan.c's job_errors). */
static bool scan_err_first(const struct vv_scan *a, int ra, const struct vv_scan *b, int rb)
{
	if (ra >= 0 || rb >= 0)
		return ra < 0;
	if (!!a->err_errno != !!b->err_errno)
		return a->err_errno != 0;
	if (a->err_seg != b->err_seg)
		return a->err_seg < b->err_seg;
	return a->err_row <= b->err_row;
}

/* vector_int.h */
int vv_coll_dir_open(struct vv_collection *c, const float *queries, size_t nq, enum vv_metric m,
		     uint32_t kk, const struct vv_search_opts *o, struct vv_offload *dir, bool *check,
		     char *err, size_t errlen)
{
	size_t p0 = c->pend0, n = c->nsegs - p0, kept = p0, nother = 0;
	uint8_t *served = NULL;
	uint64_t *rows = NULL;
	uint32_t *idx = NULL, *map = NULL;
	int *res = NULL, r;
	const char **whys = NULL;
	struct loader ld;
	struct relist rl;

	memset(dir, 0, sizeof(*dir));
	if (!(served = calloc(n + 1, 1)) || !(rows = calloc(n + 1, sizeof(*rows))) ||
	    !(idx = malloc((n + 1) * sizeof(*idx))) || !(map = malloc((n + 1) * sizeof(*map))) ||
	    !(res = calloc(n + 1, sizeof(*res))) || !(whys = calloc(n + 1, sizeof(*whys)))) {
		r = VV_ENOMEM;
		goto out;
	}
	if ((r = vv_coll_dir_offload(c, queries, nq, m, kk, o, served, rows, dir)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct vv_cseg *s = &c->segs[p0 + i];
		enum vv_seg_format f = vv_segment_format_from_name(s->name);
		s->deferred = false;
		if (!served[i]) {
			idx[nother++] = (uint32_t)i;
			continue;
		}
		/* what settle and the results need: the rows as the daemon
		 * found them; bytes as their rows' (the header is not known) */
		s->pub.info = (struct vv_segment_info){ .format = f, .dtype = c->schema.dtype,
							.dim = c->schema.dim, .count = rows[i] };
		s->pub.info.stride = (uint64_t)c->schema.dim * vv_dtype_size(c->schema.dtype) +
				     (f == VV_SEG_NPY ? 0 : 4);
		s->len = s->pub.file_size = rows[i] * s->pub.info.stride;
		s->dirserved = true;
	}
	ld = (struct loader){ .dirfd = c->io->dirfd, .io = c->io, .segs = c->segs + p0, .res = res,
			      .why = whys, .nbatched = &c->nbatched };
	rl = (struct relist){ &ld, idx };
	par_run(nother, c->io->dir_fuse, load_listed, &rl);
	c->pending = false;
	if ((r = settle(c, p0, c->nsegs, res, whys, &kept, &c->rows, map, err, errlen)) < 0) {
		c->nsegs = kept;
		*check = true;
		goto out;
	}
	c->nsegs = kept;
	/* a served segment passes settle's check (its dim and dtype are the
	 * schema's): it is never left out */
	for (size_t q = 0; q < nq && dir->on; q++)
		for (size_t i = 0; i < dir->on[q]; i++) {
			struct vv_dcand *x = &dir->oc[q * dir->ocap + i];
			x->seg = map[x->seg - p0];
		}
out:
	if (r < 0)
		vv_offload_release(dir);
	free(served);
	free(rows);
	free(idx);
	free(map);
	free(res);
	free(whys);
	return r;
}

/* vector_int.h */
int vv_coll_open_served(struct vv_collection *c, char *err, size_t errlen)
{
	uint32_t *idx = NULL;
	uint64_t *count = NULL;
	int *res = NULL, r = 0;
	const char **whys = NULL;
	size_t n = 0;
	struct loader ld;
	struct relist rl;

	for (size_t i = 0; i < c->nsegs; i++)
		n += c->segs[i].dirserved;
	if (!n)
		return 0;
	if (!(idx = malloc(n * sizeof(*idx))) || !(count = malloc(c->nsegs * sizeof(*count))) ||
	    !(res = calloc(c->nsegs, sizeof(*res))) || !(whys = calloc(c->nsegs, sizeof(*whys)))) {
		r = VV_ENOMEM;
		goto out;
	}
	n = 0;
	for (size_t i = 0; i < c->nsegs; i++)
		if (c->segs[i].dirserved) {
			idx[n++] = (uint32_t)i;
			count[i] = c->segs[i].pub.info.count;
			c->segs[i].dirserved = false;
		}
	ld = (struct loader){ .dirfd = c->io->dirfd, .io = c->io, .segs = c->segs, .res = res,
			      .why = whys, .nbatched = &c->nbatched };
	rl = (struct relist){ &ld, idx };
	par_run(n, c->io->dir_fuse, load_listed, &rl);
	for (size_t k = 0; k < n; k++) {
		struct vv_cseg *s = &c->segs[idx[k]];
		const char *why = whys[idx[k]];
		int e;
		if ((e = res[idx[k]]) == 0 && (e = vv_schema_match(&c->schema, &s->pub.info, &why)) == 0 &&
		    s->pub.info.count != count[idx[k]]) {
			e = VV_EIO;
			why = VV_SEG_CHANGED;
		}
		if (e == 0)
			continue;
		if (r == 0)
			vv_coll_seterr(err, errlen, "%s/%s: %s", c->dir, s->name,
				       why ? why : vv_strerror(e));
		r = r ? r : e;
		/* as it was: the next search tries again */
		seg_release(s, c->io);
		s->pub.info.count = count[idx[k]];
		s->dirserved = true;
	}
out:
	free(idx);
	free(count);
	free(res);
	free(whys);
	return r;
}

/* ---- opening ahead of the scan (a FUSE mount) ------------------------------
 * On a FUSE mount each open is the daemon's OPEN round trip, checked and
 * audited there; with the opens done first and the scan after, the CPUs
 * idled through the opens (the threads wait for the daemon) and then the
 * daemon idled through the scan.  Here openers (LOAD_MAX_THREADS, as
 * par_run on a mount) open the deferred segments in name order exactly as
 * the one-by-one open does (seg_load: statx, the head, the descriptor
 * kept within the budget), while the scan threads take them, a batch at
 * a time, as soon as the batch is open; each that passes the checks the
 * open's settle will make (its probe, the schema fixed before the search)
 * is scanned, its rows pread through the descriptor as after a plain
 * open.  Anything else is not scanned;
 * settle reports it afterwards in its own words, and good segments not
 * scanned go to the second pass, as for vector_tiny.c. */
struct ahead {
	struct loader *ld;       /* segs, res, why: the deferred ones (0 .. n) */
	struct vv_scan_seg *ss;  /* the scan's segments; deferred i is ss[p0 + i] */
	size_t p0, n;
	const struct vv_schema *schema;
	int dirfd;
	uint8_t *state;          /* per deferred segment: VV_TINY_SCANNED or not */
	bool skip_bad;
	atomic_bool stop;        /* a bad segment without skip_bad: the search
				    fails at settle, scanning more is waste */
	atomic_size_t open_next, scan_next;  /* segment, batch */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint8_t *left;           /* under mu: per batch, opens not yet ended */
	size_t nwait;            /* under mu: scan threads waiting for a batch */
};

/* Scan threads take the segments AHEAD_BATCH at a time, once the whole
 * batch is open: one wait and one wake-up per batch, not per segment
 * (waking the scan thread at each of 10,000 opens cost 11% of the query's
 * CPU, perf).  As many as the openers open at once. */
#define AHEAD_BATCH LOAD_MAX_THREADS

struct ahead_tls {
	uint32_t seg[AHEAD_BATCH];
};

static void *ahead_open(void *arg)
{
	struct ahead *a = arg;
	size_t i;

	while ((i = atomic_fetch_add(&a->open_next, 1)) < a->n) {
		load_one(a->ld, i);
		pthread_mutex_lock(&a->mu);
		if (--a->left[i / AHEAD_BATCH] == 0 && a->nwait)
			pthread_cond_broadcast(&a->cv);
		pthread_mutex_unlock(&a->mu);
	}
	return NULL;
}

/* vv_scan.feed: the next batch of deferred segments in name order, once
 * all of it is open: those that may be scanned now. */
static size_t ahead_feed(void *ctx, void **tlsp, const uint32_t **segs)
{
	struct ahead *a = ctx;
	struct ahead_tls *x = *tlsp;
	size_t b, fed = 0;

	if (!x && !(x = *tlsp = calloc(1, sizeof(*x))))
		return 0;                /* the rest go to the second pass */
	while (!fed && !atomic_load(&a->stop) &&
	       (b = atomic_fetch_add(&a->scan_next, 1)) * AHEAD_BATCH < a->n) {
		size_t i0 = b * AHEAD_BATCH, i1 = i0 + AHEAD_BATCH < a->n ? i0 + AHEAD_BATCH : a->n;

		pthread_mutex_lock(&a->mu);
		while (a->left[b]) {
			a->nwait++;
			pthread_cond_wait(&a->cv, &a->mu);
			a->nwait--;
		}
		pthread_mutex_unlock(&a->mu);
		for (size_t i = i0; i < i1; i++) {
			const struct vv_cseg *s = &a->ld->segs[i];
			const char *why;
			if (a->ld->res[i] < 0 || vv_schema_match(a->schema, &s->pub.info, &why) < 0 ||
			    s->pub.info.dim != a->schema->dim) {
				if (!a->skip_bad)
					atomic_store(&a->stop, true);
				continue;
			}
			a->ss[a->p0 + i] = (struct vv_scan_seg){
				.info = s->pub.info, .base = s->base, .stream = s->stream, .fd = s->fd,
				.dirfd = a->dirfd, .name = s->name, .id = &s->id };
			a->state[i] = VV_TINY_SCANNED;
			x->seg[fed++] = (uint32_t)(a->p0 + i);
		}
	}
	*segs = x->seg;
	return fed;
}

static void ahead_end(void *ctx, void *tls)
{
	(void)ctx;
	free(tls);
}

/* The scan of a collection whose segments pend0 .. nsegs are deferred
 * (sc filled as for vv_scan_run, ss its segments): the scan threads read
 * and scan those they can take whole (vector_tiny.c) beside the others,
 * or on a FUSE mount those opened ahead of them (struct ahead); the rest
 * are opened one by one; then all of them are checked in name
 * order as the open would have (a failure: *check set, err written) and
 * the good ones not yet scanned are scanned in a second pass.  Candidates
 * of both passes, with segment indices as after the check, end in sc. */
int vv_coll_pending_scan(struct vv_collection *c, struct vv_scan *sc, struct vv_scan_seg *ss,
			bool *check, char *err, size_t errlen)
{
	size_t p0 = c->pend0, n = c->nsegs - p0, kept = p0, nother = 0, nfed = 0, nopeners = 0;
	/* on a local vecvault mount small segments come in bulk when the
	 * daemon has the request (knn_ioctl.h "the bulk read"); else, on any
	 * FUSE mount, they are opened ahead of the scan */
	bool bulk = c->io->dir_fuse && !c->io->dir_remote && !atomic_load(&bulk_off) &&
		    c->slot <= VV_TINY_BULK_SLOT &&
		    vv_tiny_bulk_probe(c->io->dirfd);
	bool ahead = c->io->dir_fuse && !bulk;
	pthread_t opener[LOAD_MAX_THREADS];
	struct ahead ah;
	uint8_t *left = NULL;
	struct vv_tiny tn;
	struct vv_scan sc2 = *sc;
	uint32_t *idx = NULL, *map = NULL;
	int *res = NULL, r1, r2 = 0, r;
	const char **whys = NULL;
	struct loader ld;
	struct relist rl;
	struct timespec since;

	memset(&tn, 0, sizeof(tn));
	c->nahead = c->nahead_fed = c->nbulk = c->nbulk_req = 0;
	if (!(idx = malloc(n * sizeof(*idx))) || !(map = malloc(n * sizeof(*map))) ||
	    !(res = calloc(n, sizeof(*res))) || !(whys = calloc(n, sizeof(*whys))) ||
	    !(tn.state = calloc(n, 1)) || !(tn.size = calloc(n, sizeof(*tn.size))) ||
	    !(left = calloc(n / AHEAD_BATCH + 1, 1))) {
		r = VV_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		idx[i] = (uint32_t)(p0 + i);
		ss[p0 + i].skip = true;
	}
	tn.dirfd = c->io->dirfd;
	tn.ss = ss;
	tn.idx = idx;
	tn.n = n;
	tn.schema = &c->schema;
	tn.slot = c->slot;
	tn.no_uring = atomic_load(&uring_off);
	tn.bulk = bulk;
	/* segments read in bulk are not held open: their candidates' exact
	 * distances come from the scan, not from opening each again (one
	 * round trip after the other; for 100 queries over 10,000 segments
	 * that made the bulk read slower than opening them all ahead) */
	sc->exact_fed = bulk;
	ld = (struct loader){ .dirfd = c->io->dirfd, .io = c->io, .segs = c->segs + p0, .res = res,
			      .why = whys, .nbatched = &c->nbatched };
	if (ahead) {
		ah = (struct ahead){ .ld = &ld, .ss = ss, .p0 = p0, .n = n, .schema = &c->schema,
				     .dirfd = c->io->dirfd, .state = tn.state, .skip_bad = c->skip_bad,
				     .left = left };
		for (size_t i = 0; i < n; i++)
			left[i / AHEAD_BATCH]++;
		pthread_mutex_init(&ah.mu, NULL);
		pthread_cond_init(&ah.cv, NULL);
		nopeners = n / LOAD_PER_THREAD + 1;
		nopeners = nopeners > LOAD_MAX_THREADS ? LOAD_MAX_THREADS : nopeners;
		for (size_t t = 0; t < nopeners; t++)
			if (pthread_create(&opener[t], NULL, ahead_open, &ah) != 0) {
				nopeners = t;
				break;
			}
		if (!nopeners)
			ahead_open(&ah);         /* no thread: open them all first */
		sc->feed = ahead_feed;
		sc->feed_end = ahead_end;
		sc->feed_ctx = &ah;
	} else {
		sc->feed = vv_tiny_feed;
		sc->feed_end = vv_tiny_end;
		sc->feed_ctx = &tn;
	}
	if (bulk) {
		/* twice the threads: while one waits for the daemon's copy of
		 * its batch another scans, so the copy hides behind the scan
		 * (each thread's batch is one request; the daemon serves them
		 * on its own workers) */
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		unsigned t = sc->threads ? sc->threads : (unsigned)(ncpu > 0 ? ncpu : 1);
		sc->threads = t * 2 > BULK_MAX_THREADS ? BULK_MAX_THREADS : t * 2;
	}
	/* what the re-ranking's reopen may find of a segment read here:
	 * nothing changed since now (struct vv_seg_id), with the coarse
	 * clock past it before the first read (vv_seg_since) */
	vv_seg_since(&since);
	r1 = vv_scan_run(sc);
	atomic_fetch_add(&c->nbatched, atomic_load(&tn.nuring));
	c->nbulk = atomic_load(&tn.nbulk);
	c->nbulk_req = atomic_load(&tn.nbulk_req);
	if (ahead) {
		/* the openers open every one, whether the scan took it or not */
		for (size_t t = 0; t < nopeners; t++)
			pthread_join(opener[t], NULL);
		pthread_cond_destroy(&ah.cv);
		pthread_mutex_destroy(&ah.mu);
	}

	/* what the scan took is open and probed; the rest opens one by one */
	for (size_t i = 0; i < n; i++) {
		struct vv_cseg *s = &c->segs[p0 + i];
		s->deferred = false;
		if (ahead) {
			s->fed = tn.state[i] == VV_TINY_SCANNED;
			nfed += s->fed;
			c->nahead++;
			c->nahead_fed += s->fed;
		} else if (tn.state[i] == VV_TINY_SCANNED) {
			s->pub.info = ss[p0 + i].info;
			s->len = s->pub.file_size = tn.size[i];
			s->id = (struct vv_seg_id){ .size = tn.size[i], .ctime = since };
			s->stream = true;        /* rows read by name (fd -1) */
			s->fed = true;
			nfed++;
		} else {
			idx[nother++] = (uint32_t)i;
		}
	}
	rl = (struct relist){ &ld, idx };
	par_run(nother, false, load_listed, &rl);
	c->pending = false;
	if ((r = settle(c, p0, c->nsegs, res, whys, &kept, &c->rows, map, err, errlen)) < 0) {
		c->nsegs = kept;
		*check = true;
		goto out;
	}
	c->nsegs = kept;
	/* the second pass: good segments the first did not scan */
	for (size_t i = 0; i < c->nsegs; i++) {
		const struct vv_cseg *cs = &c->segs[i];
		ss[i] = (struct vv_scan_seg){ .info = cs->pub.info, .base = cs->base,
					      .stream = cs->stream, .fd = cs->fd,
					      .dirfd = c->io->dirfd, .name = cs->name,
					      .id = &cs->id, .skip = i < p0 || cs->fed };
	}
	sc2.segs = ss;
	sc2.nsegs = c->nsegs;
	sc2.feed = NULL;
	sc2.progress = NULL;
	if (c->nsegs - p0 > nfed)
		r2 = vv_scan_run(&sc2);
	if (r1 < 0 && sc->err_seg >= p0)
		sc->err_seg = map[sc->err_seg - p0];
	if (r1 < 0 || r2 < 0) {
		bool first = scan_err_first(sc, r1, &sc2, r2);
		r = first ? r1 : r2;
		if (!first) {
			sc->err_seg = sc2.err_seg;
			sc->err_row = sc2.err_row;
			sc->err_dim = sc2.err_dim;
			sc->err_errno = sc2.err_errno;
			sc->err_short = sc2.err_short;
		}
		goto out;
	}
	/* both passes' candidates side by side, segments renumbered */
	if (sc2.cand) {
		size_t cap = sc->ncap + sc2.ncap;
		struct vv_cand *m = malloc(sc->nq * cap * sizeof(*m) + 1);
		if (!m) {
			r = VV_ENOMEM;
			goto out;
		}
		for (size_t q = 0; q < sc->nq; q++) {
			memcpy(m + q * cap, sc->cand + q * sc->ncap, sc->ncand[q] * sizeof(*m));
			memcpy(m + q * cap + sc->ncand[q], sc2.cand + q * sc2.ncap,
			       sc2.ncand[q] * sizeof(*m));
		}
		for (size_t q = 0; q < sc->nq; q++) {
			for (size_t i = 0; i < sc->ncand[q]; i++) {
				struct vv_cand *x = m + q * cap + i;
				if (x->seg >= p0)
					x->seg = map[x->seg - p0];
			}
			sc->ncand[q] += sc2.ncand[q];
		}
		free(sc->cand);
		sc->cand = m;
		sc->ncap = cap;
		sc->rows += sc2.rows;
	} else {
		for (size_t q = 0; q < sc->nq; q++)
			for (size_t i = 0; i < sc->ncand[q]; i++) {
				struct vv_cand *x = sc->cand + q * sc->ncap + i;
				if (x->seg >= p0)
					x->seg = map[x->seg - p0];
			}
	}
	for (size_t i = 0; i < sc->nxd; i++)
		if (sc->xd[i].seg >= p0)
			sc->xd[i].seg = map[sc->xd[i].seg - p0];
	vv_scan_exact_sort(sc);
	r = 0;
out:
	for (size_t i = 0; i < c->nsegs; i++)
		c->segs[i].fed = false;
	if (r < 0)
		vv_scan_release(sc);
	vv_scan_release(&sc2);
	sc->feed = NULL;
	free(idx);
	free(map);
	free(res);
	free(whys);
	free(tn.state);
	free(tn.size);
	free(left);
	return r;
}

/* ---- query files ------------------------------------------------------------ */

int vv_vectors_load(const char *path, float **out, size_t *n, uint32_t *dim,
		    char *err, size_t errlen)
{
	uint8_t *base = NULL;
	size_t len = 0;
	bool mapped = false;
	const char *why = NULL, *name = strrchr(path, '/');
	struct vv_segment_info si;
	float *v = NULL;
	int r;

	*out = NULL;
	name = name ? name + 1 : path;
	if ((r = load_file(path, &base, &len, &mapped, &why)) < 0) {
		vv_coll_seterr(err, errlen, "%s: %s", path, why);
		goto out;
	}
	if ((r = vv_segment_probe(vv_segment_format_from_name(name), base,
				  len < VV_VEC_PROBE_LEN ? len : VV_VEC_PROBE_LEN, len, &si, &why)) < 0) {
		vv_coll_seterr(err, errlen, "%s: %s", path, why);
		goto out;
	}
	if (si.count > SIZE_MAX / 4 / si.dim || !(v = malloc(si.count * si.dim * sizeof(float) + 1))) {
		r = VV_ENOMEM;
		vv_coll_seterr(err, errlen, "%s: out of memory", path);
		goto out;
	}
	for (uint64_t i = 0; i < si.count; i++) {
		const uint8_t *p = base + si.data_off + i * si.stride;
		if (si.format != VV_SEG_NPY && vv_get_le32(p - 4) != si.dim) {
			r = VV_ECORRUPT;
			vv_coll_seterr(err, errlen, "%s: row %llu has dimension word %u, expected %u", path,
			       (unsigned long long)i, vv_get_le32(p - 4), si.dim);
			goto out;
		}
		vv_convert_row(si.dtype, p, si.dim, v + i * si.dim);
	}
	*out = v;
	v = NULL;
	*n = (size_t)si.count;
	*dim = si.dim;
out:
	free(v);
	unmap(base, len, mapped);
	return r;
}
