/*
 * vector_tiny.c - the query-time open of small segments: each read whole
 * once by a scan thread into a slot of its own and scanned there at once
 * (vector_int.h, struct vv_tiny; docs/design.md, "Query scan", sixth
 * round).
 *
 * Per file the collection open costs openat, statx, a read of the head, the
 * scan's pread and close; with the file read whole at once what remains is
 * openat, one read and close, which io_uring links into one submission per
 * batch (openat into a direct descriptor, so no slot of the process's
 * descriptor table and no RLIMIT_NOFILE budget; the read hard-linked to it;
 * the close).  The slots are the thread's, reused batch after batch, so
 * they stay in the cache and cost no page faults (fresh memory per segment
 * did: 6.5 s of faults for 10,000 x 50 KB).
 *
 * The checks a segment needs before its rows may reach the heaps (header,
 * schema) are done here, by the thread, before it is handed to the scan;
 * anything odd is left to the caller's one-by-one open (VV_TINY_OTHER),
 * so a bad segment is never scanned and its error text is the open's.
 * The ring does only what the process could do itself: openat(O_RDONLY)
 * relative to the collection's directory descriptor, read, close.
 *
 * On a local vecvault mount (struct vv_tiny.bulk) a batch is instead one
 * bulk read (knn_ioctl.h "the bulk read"): the daemon checks and audits
 * each name as its open and writes the file into the thread's slots,
 * which are then a memfd of this process; what it does not write goes to
 * the one-by-one open as above.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vecvault/knn_ioctl.h"
#include "vecvault/log.h"
#include "vector_int.h"

#ifdef VV_HAVE_LIBURING
#include <liburing.h>
#endif

#define SET_BYTES (1u << 20)     /* a thread's slots together, about */
#define MAX_SLOTS 16u            /* files per batch */
/* In bulk (a request per batch, a round trip to the daemon each) batches
 * are larger: 4 MiB, up to 64 files. */
#define BULK_SET_BYTES (4u << 20)
#define BULK_MAX_SLOTS 64u

struct tls {
	uint8_t *mem;            /* nslots slots of t->slot bytes */
	size_t nslots;
	int memfd;               /* bulk: mem is this memfd, mapped; else -1 */
	uint64_t mem_dev, mem_ino;
	uint32_t segs[BULK_MAX_SLOTS];  /* what the last call fed */
#ifdef VV_HAVE_LIBURING
	struct io_uring ring;
	bool ring_ok;
#endif
	bool ring_tried;
};

/* The thread's slots for the bulk read: a memfd the daemon writes into
 * (knn_ioctl.h "the bulk read"), allocated and mapped here, so that the
 * daemon's writes land in pages this process already owns (charged to it,
 * not to the daemon, which refuses slots with holes). */
static int bulk_mem(const struct vv_tiny *t, struct tls *x)
{
	size_t ns = BULK_SET_BYTES / t->slot, len;
	struct stat st;
	void *m;
	int fd;

	x->nslots = ns < 1 ? 1 : ns > BULK_MAX_SLOTS ? BULK_MAX_SLOTS : ns;
	len = x->nslots * t->slot;
	if ((fd = memfd_create("vecvault-bulk", MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0)
		return -1;
	/* fallocate: every page allocated here, charged to this process (the
	 * daemon refuses slots with holes); sealed against shrinking, so the
	 * daemon may keep it mapped from one request to the next (fs/bulk_map.c)
	 * where it would otherwise pwrite each file */
	if (ftruncate(fd, (off_t)len) < 0 || fallocate(fd, 0, 0, (off_t)len) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0 || fstat(fd, &st) < 0 ||
	    (m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0)) ==
		    MAP_FAILED) {
		close(fd);
		return -1;
	}
	x->mem = m;
	x->memfd = fd;
	x->mem_dev = (uint64_t)st.st_dev;
	x->mem_ino = (uint64_t)st.st_ino;
	return 0;
}

static void mem_free(const struct vv_tiny *t, struct tls *x)
{
	if (x->memfd >= 0) {
		munmap(x->mem, x->nslots * t->slot);
		close(x->memfd);
		x->memfd = -1;
	} else {
		free(x->mem);
	}
	x->mem = NULL;
}

bool vv_tiny_bulk_probe(int dirfd)
{
	struct vv_bulk_ioc *io = calloc(1, sizeof(*io));
	bool ok;

	if (!io)
		return false;
	io->h.magic = VV_BULK_MAGIC;
	io->h.version = VV_BULK_VERSION;       /* nnames 0: refused before anything */
	ok = ioctl(dirfd, VV_IOC_BULK_READ, io) < 0 && errno == EINVAL;
	free(io);
	return ok;
}

/* Files name[0 .. n) into slots 0 .. n through one bulk read on the
 * directory: got[k] = the file's bytes, or -1 (the one-by-one open will
 * say why).  -1 when the request failed whole: then t->bulk_failed (the
 * daemon cannot write into this process, or the reply does not answer
 * the request), but for EBUSY, which fails only this batch. */
static int read_bulk(struct vv_tiny *t, struct tls *x, const char *const *name, size_t n,
		     ssize_t *got)
{
	struct vv_bulk_ioc *io = malloc(sizeof(*io));
	size_t len = 0;
	int r = -1;
	bool busy = false;

	for (size_t k = 0; k < n; k++)
		got[k] = -1;
	if (!io)
		return -1;
	memset(&io->h, 0, sizeof(io->h));
	for (size_t k = 0; k < n; k++) {
		size_t l = strlen(name[k]) + 1;
		if (len + l > sizeof(io->u))
			break;                   /* the rest: -1, opened one by one */
		memcpy(io->u + len, name[k], l);
		len += l;
		io->h.nnames++;
	}
	io->h.magic = VV_BULK_MAGIC;
	io->h.version = VV_BULK_VERSION;
	io->h.memfd = x->memfd;
	io->h.mem_dev = x->mem_dev;
	io->h.mem_ino = x->mem_ino;
	io->h.slot = t->slot;
	io->h.names_len = (uint32_t)len;
	if (io->h.nnames == 0 || ioctl(t->dirfd, VV_IOC_BULK_READ, io) < 0) {
		/* EBUSY: the uid's offload slots are taken now (its other
		 * requests, a decryption the offload queued): this batch is
		 * opened one by one, the next asks again */
		busy = io->h.nnames && errno == EBUSY;
		if (io->h.nnames && !busy)
			vv_log(VV_LOG_DEBUG, "query: bulk read refused (%s): opening small segments "
			       "one by one", strerror(errno));
		goto out;
	}
	atomic_fetch_add(&t->nbulk_req, 1);
	if (io->h.magic != VV_BULK_MAGIC_REPLY || io->h.version != VV_BULK_VERSION ||
	    io->h.nnames > n || io->h.slot != t->slot) {
		vv_log(VV_LOG_WARN, "query: a bulk read's reply does not answer its request; "
		       "opening small segments one by one");
		goto out;
	}
	for (size_t k = 0; k < io->h.nnames; k++) {
		const struct vv_bulk_stat *st =
			(const struct vv_bulk_stat *)(const void *)(io->u + k * sizeof(*st));
		if (st->err == 0 && st->size < t->slot)
			got[k] = (ssize_t)st->size;
	}
	r = 0;
out:
	free(io);
	if (r < 0 && !busy)
		atomic_store(&t->bulk_failed, true);
	return r;
}

static struct tls *tls_get(const struct vv_tiny *t, void **p)
{
	struct tls *x = *p;
	size_t ns;

	if (x)
		return x;
	if (!(x = calloc(1, sizeof(*x))))
		return NULL;
	x->memfd = -1;
	if (t->bulk && !atomic_load(&t->bulk_failed) && bulk_mem(t, x) == 0) {
		*p = x;
		return x;
	}
	ns = SET_BYTES / t->slot;
	x->nslots = ns < 1 ? 1 : ns > MAX_SLOTS ? MAX_SLOTS : ns;
	if (!(x->mem = aligned_alloc(4096, x->nslots * t->slot))) {
		free(x);
		return NULL;
	}
	*p = x;
	return x;
}

/* Files are opened O_NONBLOCK: the type is not known before the read
 * (no statx), and a segment name may be a symlink to a terminal or a FIFO,
 * which the one-by-one open refuses as "not a regular file" without
 * reading.  A regular file's read(2) ignores the flag; should io_uring's
 * fail with EAGAIN (pages not in the cache; 6.18 waits for them instead),
 * the file is read again with read(2). */
#define OPEN_FLAGS (O_RDONLY | O_NONBLOCK)

/* One by one: openat, read up to the slot, close.  The bytes read, or -1
 * (the caller's open will say why). */
static ssize_t read_one(const struct vv_tiny *t, const char *name, uint8_t *slot)
{
	int fd = openat(t->dirfd, name, OPEN_FLAGS | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	do
		n = read(fd, slot, t->slot);
	while (n < 0 && errno == EINTR);
	close(fd);
	return n;
}

#ifdef VV_HAVE_LIBURING
/* The thread's ring with a table of nslots direct descriptors, or false:
 * then one system call at a time. */
static bool ring_get(struct tls *x)
{
	int r;

	if (x->ring_tried)
		return x->ring_ok;
	x->ring_tried = true;
	r = io_uring_queue_init(4 * MAX_SLOTS, &x->ring,
				IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
	if (r == -EINVAL)
		r = io_uring_queue_init(4 * MAX_SLOTS, &x->ring, 0);
	if (r < 0) {
		vv_log(VV_LOG_DEBUG, "query: no io_uring (%s): reading small segments one by one",
		       strerror(-r));
		return false;
	}
	if ((r = io_uring_register_files_sparse(&x->ring, (unsigned)x->nslots)) < 0) {
		vv_log(VV_LOG_DEBUG, "query: io_uring has no direct descriptors (%s): reading "
		       "small segments one by one", strerror(-r));
		io_uring_queue_exit(&x->ring);
		return false;
	}
	x->ring_ok = true;
	return true;
}

/* The ring failed with `pending` requests not reaped: cancel and reap them
 * (vv_uring_drain), so that no read lands in a slot after this, close the
 * direct descriptors still open (unregistering the table closes them at
 * once) and drop the ring.  When the ring would not give its requests
 * back, the slots stay theirs: the thread goes on with fresh ones, or, if
 * none can be had, reads no more (x->mem NULL). */
static void ring_fail(const struct vv_tiny *t, struct tls *x, unsigned pending)
{
	if (vv_uring_drain(&x->ring, pending, NULL, 0) == 0) {
		io_uring_unregister_files(&x->ring);
	} else {
		vv_log(VV_LOG_WARN, "query: io_uring failed with reads in flight; leaving their "
		       "%zu KiB of buffers to them", x->nslots * t->slot / 1024);
		x->mem = aligned_alloc(4096, x->nslots * t->slot);   /* never a memfd: no bulk here */
	}
	io_uring_queue_exit(&x->ring);
	x->ring_ok = false;
}

/* Read files name[0 .. n) into slots 0 .. n: per file a linked openat
 * (direct descriptor k), read (hard-linked: the close runs whatever the
 * read did) and close.  got[k] = the read's bytes or -errno.  0, or -1 when
 * the ring failed (ring_fail: then it is gone, and the caller reads the
 * files one by one). */
static int read_ring(const struct vv_tiny *t, struct tls *x, const char *const *name, size_t n,
		     ssize_t *got)
{
	unsigned want = 3 * (unsigned)n, seen = 0;

	for (size_t k = 0; k < n; k++) {
		struct io_uring_sqe *s = io_uring_get_sqe(&x->ring);
		io_uring_prep_openat_direct(s, t->dirfd, name[k], OPEN_FLAGS, 0, (unsigned)k);
		s->flags |= IOSQE_IO_LINK;
		io_uring_sqe_set_data64(s, UINT64_MAX);
		s = io_uring_get_sqe(&x->ring);
		io_uring_prep_read(s, (int)k, x->mem + k * t->slot, (unsigned)t->slot, 0);
		s->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;
		io_uring_sqe_set_data64(s, k);
		s = io_uring_get_sqe(&x->ring);
		io_uring_prep_close_direct(s, (unsigned)k);
		io_uring_sqe_set_data64(s, UINT64_MAX);
		got[k] = -1;
	}
	while (seen < want) {
		struct io_uring_cqe *cqe;
		unsigned head, c = 0;
		int r = vv_uring_wait(&x->ring);
		if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY) {
			vv_log(VV_LOG_DEBUG, "query: io_uring failed (%s): reading small segments "
			       "one by one", strerror(-r));
			ring_fail(t, x, want - seen);
			return -1;
		}
		io_uring_for_each_cqe(&x->ring, head, cqe) {
			if (cqe->user_data < n)
				got[cqe->user_data] = cqe->res;
			c++;
		}
		io_uring_cq_advance(&x->ring, c);
		seen += c;
	}
	return 0;
}
#endif

/* May segment i (its bytes in slot p, len of them) be scanned from there?
 * Fills its scan entry when so. */
static bool take(struct vv_tiny *t, size_t i, const uint8_t *p, ssize_t len)
{
	struct vv_scan_seg *g = &t->ss[t->idx[i]];
	struct vv_segment_info si;
	const char *why = NULL;

	if (len < 0 || (size_t)len >= t->slot)
		return false;            /* failed, or maybe larger than the slot */
	if (vv_segment_probe(vv_segment_format_from_name(g->name), p,
			     (size_t)len < VV_VEC_PROBE_LEN ? (size_t)len : VV_VEC_PROBE_LEN,
			     (uint64_t)len, &si, &why) < 0 ||
	    vv_schema_match(t->schema, &si, &why) < 0 || si.dim != t->schema->dim)
		return false;
	g->info = si;
	g->base = p;
	g->stream = false;
	g->fd = -1;
	t->size[i] = (uint64_t)len;
	t->state[i] = VV_TINY_SCANNED;
	return true;
}

size_t vv_tiny_feed(void *ctx, void **tlsp, const uint32_t **segs)
{
	struct vv_tiny *t = ctx;
	struct tls *x = tls_get(t, tlsp);
	const char *name[BULK_MAX_SLOTS];
	ssize_t got[BULK_MAX_SLOTS];
	size_t i0, n, fed = 0;
	bool ring = false;

	if (!x || !x->mem)
		return 0;                /* the rest stay VV_TINY_OTHER */
	/* until a batch has one to scan, or none are left */
	while (!fed && (i0 = atomic_fetch_add(&t->next, x->nslots)) < t->n) {
		n = t->n - i0 < x->nslots ? t->n - i0 : x->nslots;
		for (size_t k = 0; k < n; k++)
			name[k] = t->ss[t->idx[i0 + k]].name;
		if (x->memfd >= 0) {
			/* in bulk: what the daemon did not write goes to the
			 * one-by-one open (VV_TINY_OTHER), never read here */
			bool ok = !atomic_load(&t->bulk_failed) &&
				  read_bulk(t, x, name, n, got) == 0;
			for (size_t k = 0; ok && k < n; k++)
				if (take(t, i0 + k, x->mem + k * t->slot, got[k]))
					x->segs[fed++] = t->idx[i0 + k];
			atomic_fetch_add(&t->nbulk, fed);
			continue;
		}
#ifdef VV_HAVE_LIBURING
		ring = !t->no_uring && ring_get(x) && read_ring(t, x, name, n, got) == 0;
		if (!x->mem)
			return 0;        /* slots lost to a failed ring: the rest stay
					    VV_TINY_OTHER, these too */
#endif
		for (size_t k = 0; k < n; k++)
			if (!ring || got[k] == -EAGAIN)   /* not cached: read(2) waits */
				got[k] = read_one(t, name[k], x->mem + k * t->slot);
		for (size_t k = 0; k < n; k++)
			if (take(t, i0 + k, x->mem + k * t->slot, got[k]))
				x->segs[fed++] = t->idx[i0 + k];
		if (ring)
			atomic_fetch_add(&t->nuring, fed);
	}
	*segs = x->segs;
	return fed;
}

void vv_tiny_end(void *ctx, void *tlsp)
{
	struct tls *x = tlsp;

	if (!x)
		return;
#ifdef VV_HAVE_LIBURING
	if (x->ring_ok)
		io_uring_queue_exit(&x->ring);
#endif
	mem_free(ctx, x);
	free(x);
}
