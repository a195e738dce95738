/*
 * vector_int.h - internals of the vector module shared by its files:
 * vector_format.c (parsers), vector_knn.c (SIMD kernels, top-k),
 * vector_scan.c (the scan over segments: plan, threads, heaps; the tool's
 * search and the daemon's offload both run it), vector_uring.c and
 * vector_tiny.c (batched file I/O), and the collections of the tool:
 * vector_open.c (open, segment load and release, the deferred open, query
 * files), vector_offload.c (the daemon's offload of large segments),
 * vector_dir.c (its directory requests for small unopened ones) and
 * vector_search.c (the search: offload, scan, re-ranking).
 */
#ifndef VV_VECTOR_INT_H
#define VV_VECTOR_INT_H

#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "vecvault/error.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/vector.h"

/* ---- kernels (vector_knn.c) ------------------------------------------------
 * x rows are at x + i*xs (xs in floats), i < nx; q rows are contiguous,
 * d floats each.  Any alignment. */
struct vv_kernels {
	const char *name;
	/* out[i*ldo + j] = dot(x_i, q_j) for i < nx, j < nq */
	void (*dots)(const float *x, size_t xs, size_t nx, const float *q, size_t nq,
		     size_t d, float *out, size_t ldo);
	/* out[i] = |x_i - q|^2 */
	void (*l2sq)(const float *x, size_t xs, size_t nx, const float *q, size_t d, float *out);
	/* out[i] = |x_i|^2 */
	void (*norms)(const float *x, size_t xs, size_t nx, size_t d, float *out);
};

/* The order of a directory request's candidates (knn_ioctl.h): by
 * (distance, name index, row); a qsort comparator.  The daemon's scan
 * sorts its reply by it (vector_scan.c), the tool checks a reply against
 * it (vector_dir.c). */
static inline int vv_knn_dir_cand_cmp(const void *a, const void *b)
{
	const struct vv_knn_dir_cand *x = a, *y = b;

	if (x->d != y->d)
		return x->d < y->d ? -1 : 1;
	if (x->name != y->name)
		return x->name < y->name ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

/* The kernels for this CPU (or the ones vv_vector_configure forced),
 * thread-safe. */
const struct vv_kernels *vv_kernels_get(void);
/* vv_vector_configure's part for vector_knn.c: simd NULL/"" = the best. */
void vv_kernels_configure(const char *simd, bool no_blas);
/* Kernel sets by name ("scalar", "avx2", "avx512"), NULL if the CPU lacks
 * it; for tests comparing kernels. */
const struct vv_kernels *vv_kernels_by_name(const char *name);

/* ---- top-k (vector_knn.c) ------------------------------------------------ */

struct vv_cand {
	float d;
	uint32_t seg;
	uint64_t row;
};

/* A bounded max-heap keeping the k best candidates by (d, seg, row). */
struct vv_topk {
	uint32_t k, n;
	float thr;               /* worst kept d once full, else +inf */
	struct vv_cand *c;       /* k entries, caller-owned storage */
};

void vv_topk_init(struct vv_topk *t, struct vv_cand *storage, uint32_t k);
/* Offer a candidate (callers pre-filter with d <= t->thr). */
void vv_topk_push(struct vv_topk *t, float d, uint32_t seg, uint64_t row);
/* Sort the kept candidates best first (destroys the heap order). */
void vv_topk_sort(struct vv_topk *t);
bool vv_cand_less(const struct vv_cand *a, const struct vv_cand *b);

/* ---- batch path (vector_knn.c) ----------------------------------------------
 * With BLAS (built with OpenBLAS's header: VV_HAVE_OPENBLAS), large query
 * blocks use sgemm from libopenblas, dlopened at the first batch that would
 * use it (vv_blas_available() loads it; false, and one log line, when it is
 * missing: the SIMD kernel then serves the batch).  vv_blas_dots: out[j*ldo + i] = alpha * dot(q_j, x_i) for j < nq,
 * i < nx (queries x rows, so each query's distances are contiguous); false
 * when the library has no BLAS.  Single-threaded per call: the search
 * threads split the database. */
bool vv_blas_available(void);
/* Tests: load BLAS from this soname instead (before the first batch). */
void vv_blas_test_library(const char *soname);
bool vv_blas_dots(const float *x, size_t xs, size_t nx, const float *q, size_t nq, size_t d,
		  float alpha, float *out, size_t ldo);
/* Offer v_i = (a ? a[i] : 0) + (b ? b[i] : 1) * o[i] + c for i < n, rows
 * row0.., to t: only values <= t->thr reach the heap (SIMD filter). */
void vv_topk_offer_block(struct vv_topk *t, const float *o, const float *a, const float *b,
			 float c, size_t n, uint32_t seg, uint64_t row0);

/* ---- work plan of a scan (vector_scan.c) ---------------------------------
 * The rows of the whole collection are cut into work units of about the
 * same number of bytes, whatever the segments' sizes: small segments are
 * packed together, large ones split, a segment may span two units.  The
 * scan threads take units from one shared counter in a single pass (no
 * per-segment dispatch or wake-up).  A piece is one segment's rows
 * row0 .. row0+nrows-1; unit u covers pieces[u.p0 .. u.p1).  Pieces are in
 * (segment, row) order; segments with no rows or `skip` have none. */
struct vv_plan_seg {
	uint64_t rows, stride;   /* stride: bytes per row as the scan reads them */
	bool skip;               /* scanned elsewhere (the daemon's offload) */
};

struct vv_piece {
	uint32_t seg;
	uint64_t row0, nrows;
};

struct vv_unit {
	size_t p0, p1;
	uint64_t rows, bytes;
};

struct vv_plan {
	struct vv_piece *pieces;
	size_t npieces;
	struct vv_unit *units;
	size_t nunits;
	uint64_t rows, bytes;    /* totals */
	uint64_t unit_bytes;     /* the target size of a unit */
};

/* Plan segs[0 .. n) for nthreads threads: units of unit_bytes (0 = the
 * default: a fraction of the total per thread, within 256 KiB .. 4 MiB).
 * Returns 0 or VV_ENOMEM; free with vv_plan_release (also after errors). */
int vv_plan_build(const struct vv_plan_seg *segs, size_t n, size_t nthreads, uint64_t unit_bytes,
		  struct vv_plan *p);
void vv_plan_release(struct vv_plan *p);

/* ---- the scan (vector_scan.c) ----------------------------------------------
 * One segment as the scan reads it: its parsed header, and where its rows
 * are.  In memory (base: the whole file, stream false), or streamed with
 * pread(2) from fd, or, when fd < 0, from a descriptor the scan opens with
 * openat(dirfd, name) for each unit (collections past RLIMIT_NOFILE).
 * Borrowed by the scan, never closed or freed by it. */
struct vv_scan_seg {
	struct vv_segment_info info;
	const uint8_t *base;
	bool stream;
	int fd;
	int dirfd;
	const char *name;
	const struct vv_seg_id *id;  /* with name: what the reopen must find */
	bool skip;               /* not scanned (the daemon scanned it) */
};

/* Which file a segment's name led to when it was first opened, so that a
 * later open by name (the scan's past the descriptor budget, the
 * re-ranking's) can tell the same file from one renamed over it, even of
 * the same size and header.  The collection open knows the device, inode,
 * size and ctime (statx, VV_SEG_STATX: a FUSE mount answers those from its
 * attribute cache, they are not among what a read invalidates).  The
 * deferred open reads a file whole without statx (vector_tiny.c): it knows
 * only the size, so ino is 0 there and ctime is the time the search began:
 * a file changed, renamed or linked since has a later ctime (up to a clock
 * tick's slack: a file's ctime comes from the coarse clock). */
struct vv_seg_id {
	dev_t dev;
	ino_t ino;               /* 0: not known (read by the deferred open) */
	uint64_t size;
	struct timespec ctime;   /* ino known: equal; else the latest allowed */
};

#define VV_SEG_STATX (STATX_TYPE | STATX_SIZE | STATX_INO | STATX_CTIME)
/* The words every refused reopen gives, after the segment's name. */
#define VV_SEG_CHANGED "replaced since the collection was opened (not the same file any more)"

/* Open segment name (relative to dirfd, VV_SEG_OPEN) again and check that
 * it is the file id describes.  The descriptor (the caller closes it), or
 * a VV_E* code with *why set: strerror's text, or VV_SEG_CHANGED with
 * VV_EIO. */
int vv_seg_reopen(int dirfd, const char *name, const struct vv_seg_id *id, const char **why);
/* The time a deferred open's identity starts from (struct vv_seg_id:
 * ctime no later than it), taken before the first read: now, returned
 * once the coarse clock has passed it.  File systems stamp ctime from
 * the coarse clock, up to a tick behind this one (on ext4 every change
 * made within the tick after a time got a ctime before it), so a file
 * renamed over a segment right after the scan read it would pass the
 * reopen and lend the segment its rows; once the coarse clock is past
 * since, any later change stamps a later ctime.  Waits at most a tick
 * (4 ms at HZ=250). */
void vv_seg_since(struct timespec *since);

/* One scan: inputs first, then what vv_scan_run fills. */
struct vv_scan {
	const struct vv_scan_seg *segs;
	size_t nsegs;
	enum vv_metric metric;   /* L2, IP or COSINE */
	const float *queries;    /* nq raw queries of d floats, finite */
	size_t nq, d;            /* d: every segment's dim */
	uint32_t kk;             /* candidates per query kept by each thread */
	unsigned threads;        /* 0 = all online CPUs */
	uint64_t unit_bytes;     /* vv_plan_build's; 0 = the default */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
	/* optional: segments the scan threads read themselves (the query-time
	 * open of small segments, vector_tiny.c).  A worker with no unit of the
	 * plan left calls feed(feed_ctx, &tls, &segs, &n) until it returns 0:
	 * each call fills in segs[*segs[i]] (info, base: in memory) for
	 * i < *n, which the worker scans whole before its next call (the
	 * memory is reused then); tls starts NULL and goes to
	 * feed_end(feed_ctx, tls) when the worker ends.  Mark those segments
	 * skip: the plan leaves them out. */
	size_t (*feed)(void *ctx, void **tls, const uint32_t **segs);
	void (*feed_end)(void *ctx, void *tls);
	void *feed_ctx;
	/* with feed: the fed segments' bytes are gone after the scan (read in
	 * bulk on a mount: reading a row again is a round trip), so each
	 * candidate of theirs gets its exact distance (vv_row_dist, as the
	 * re-ranking would compute it) while they are in memory, in xd */
	bool exact_fed;
	/* out: query q's candidates, float distances, in no order, are
	 * cand[q * ncap .. q * ncap + ncand[q]) (each thread's kk best: up to
	 * ncap per query, no (seg, row) twice); rows scanned */
	struct vv_cand *cand;
	uint32_t *ncand;
	size_t ncap;
	uint64_t rows;
	/* out, with exact_fed: exact distances of fed segments' candidates,
	 * sorted by (q, seg, row) (vv_scan_exact finds one); a superset of
	 * those in cand */
	struct vv_xdist *xd;
	size_t nxd;
	/* out, on VV_ECORRUPT: the first TEXMEX row (err_seg, err_row) whose dim
	 * word (err_dim) is wrong; on a read error (VV_E* from err_errno): the
	 * first segment that failed */
	uint32_t err_seg;
	uint64_t err_row;
	uint32_t err_dim;
	int err_errno;
	bool err_short;          /* err_errno EIO: the segment ended before its
				    rows (shrank since it was opened) */
	bool err_changed;        /* err_errno EIO: its name now leads to another
				    file (vv_seg_reopen) */
};

/* An exact distance computed by the scan (struct vv_scan.exact_fed). */
struct vv_xdist {
	uint32_t q, seg;
	uint64_t row;
	double d;
};
/* Sort s->xd by (q, seg, row) (after its segments were renumbered). */
void vv_scan_exact_sort(struct vv_scan *s);
/* The exact distance the scan computed for (q, seg, row), or NAN. */
double vv_scan_exact(const struct vv_scan *s, uint32_t q, uint32_t seg, uint64_t row);

/* Run scan s.  0 with s->cand and s->ncand allocated (free with
 * vv_scan_release), or VV_EINVAL (no queries, k or dim; unknown metric),
 * VV_ENOMEM, VV_ECORRUPT or a read error, with nothing to release. */
int vv_scan_run(struct vv_scan *s);
void vv_scan_release(struct vv_scan *s);

/* The exact double-precision distance of one row (raw, dtype t) to query
 * q of d floats, smaller is better; buf holds d floats.  Both re-rankings
 * use it: the tool's (vector_search.c) and the daemon's exact offload
 * replies (vv_segment_knn_exact), so their results are byte-identical. */
double vv_row_dist(enum vv_metric m, enum vv_dtype t, const uint8_t *row, const float *q, size_t d,
		   float *buf);

/* Convert n values of type t at src to float (TEXMEX/npy element types). */
void vv_convert_row(enum vv_dtype t, const uint8_t *src, size_t n, float *dst);

/* How every segment file is opened by name (the open, the scan's and the
 * re-ranking's reopen, the io_uring batches; vector_tiny.c likewise):
 * O_NONBLOCK, so that a FIFO named like a segment (or swapped in for one)
 * opens at once and fails as not a regular file, or its read fails,
 * instead of blocking the query until a writer comes.  A regular file's
 * reads ignore the flag. */
#define VV_SEG_OPEN (O_RDONLY | O_NONBLOCK | O_CLOEXEC)

/* ---- batched file I/O (vector_uring.c) ------------------------------------
 * io_uring where liburing was built in and the kernel allows it: a ring per
 * thread, used by one thread.  vv_uring_new fails (VV_ENOTSUP without
 * liburing, else the errno of io_uring_setup) and the caller does the
 * system calls one by one. */
struct vv_uring;

struct vv_uring_file {
	const char *name;        /* in: relative to dirfd */
	uint8_t *head;           /* in: where the head goes, headcap bytes */
	size_t headcap;
	int fd;                  /* out: the open descriptor (O_RDONLY|O_CLOEXEC), or -1 */
	int open_err;            /* out: openat's errno, or 0 */
	int statx_err;           /* out, fd >= 0: statx's errno, or 0 ... */
	struct statx sx;         /* ... and its type, size, device, inode, ctime */
	int headlen;             /* out, a regular file: the read's bytes (of
				    min(size, headcap)), or -errno; else 0 */
};

int vv_uring_new(unsigned entries, struct vv_uring **out);
void vv_uring_free(struct vv_uring *u);
/* Open f[0 .. n) (n <= entries) relative to dirfd, statx each open one,
 * and read the first min(size, headcap) bytes of the regular files: two
 * submissions and n statx calls for the batch.
 * 0 with each file's outcome in f[], or a VV_E* code when the ring itself
 * failed: then the requests in flight were cancelled and reaped
 * (vv_uring_drain) and no descriptor is left open; f[] and head are the
 * caller's again unless vv_uring_lost(u) (then never free or reuse head).
 * The caller drops the ring either way. */
int vv_uring_open_batch(struct vv_uring *u, int dirfd, struct vv_uring_file *f, size_t n);
/* Close fds[0 .. n), entries at a time.  0, or VV_EIO when the ring
 * failed (each descriptor closed one way or the other, except, when the
 * ring could not be reaped either, those of the batch in flight). */
int vv_uring_close_fds(struct vv_uring *u, const int *fds, size_t n);
/* Did u fail with requests it could not reap?  Closing a ring does not wait
 * for the requests in flight (the kernel tears it down asynchronously), so
 * until they complete the kernel may still write into their buffers: the
 * caller leaks those instead of freeing or reusing them. */
bool vv_uring_lost(const struct vv_uring *u);

/* For the rings of vector_uring.c and vector_tiny.c (liburing builds):
 * vv_uring_wait submits what is queued and waits for a completion
 * (io_uring_submit_and_wait), or fails as the test hook says.  After a
 * failure, vv_uring_drain cancels (IORING_ASYNC_CANCEL_ANY) and reaps the
 * `pending` requests prepared and not reaped yet (queued ones are
 * submitted first), results to res[user_data] when user_data < nres: 0
 * when every one has completed, so nothing writes into their buffers any
 * more; -1 when the ring would not give them back within seconds (a leak:
 * see vv_uring_lost). */
struct io_uring;
int vv_uring_wait(struct io_uring *ring);
int vv_uring_drain(struct io_uring *ring, unsigned pending, int *res, size_t nres);
/* Tests: the nth ring wait from now (of any thread) fails with EIO after
 * submitting its requests, as a ring that breaks mid-batch; 0 = never. */
void vv_uring_test_fail(unsigned nth);

/* ---- small segments read whole by the scan (vector_tiny.c) ----------------
 * The query-time open of a collection's small segments on a plain
 * directory: each scan thread takes batches of them, reads each whole
 * (openat, one read into a slot of `slot` bytes, close: linked in one
 * io_uring submission per batch where io_uring works, else one system call
 * each), probes its header and checks it against the schema, and hands
 * those that pass to the scan (vv_scan.feed) in the slots they were read
 * into.  Anything else (a read that fills its slot: the file may be
 * larger; a failed open or read; a bad header or schema; a listed id
 * sidecar) is left for the caller's one-by-one open, which reports errors
 * in its own words.  No statx: a read shorter than the slot is the whole
 * file (the header's row count must fit in it, or the probe fails). */
enum { VV_TINY_OTHER = 0, VV_TINY_SCANNED = 1 };

struct vv_tiny {
	/* in */
	int dirfd;
	struct vv_scan_seg *ss;  /* the scan's segments (name, dirfd); info and
				    base filled for the ones fed */
	const uint32_t *idx;     /* those to read: indices into ss, n of them */
	size_t n;
	const struct vv_schema *schema; /* dim and dtype fixed */
	size_t slot;             /* bytes per slot, a multiple of 4096 */
	bool no_uring;
	/* read through the daemon's bulk read (knn_ioctl.h): dirfd is a
	 * directory on a local vecvault mount that answered vv_tiny_bulk_probe */
	bool bulk;
	atomic_bool bulk_failed; /* a request failed whole: the rest go to the
				    one-by-one open */
	atomic_size_t nbulk, nbulk_req;  /* fed segments read in bulk, requests */
	/* out: per idx[i], VV_TINY_SCANNED (fed, its bytes in size[i]) or
	 * VV_TINY_OTHER */
	uint8_t *state;
	uint64_t *size;
	atomic_size_t next;
	atomic_size_t nuring;    /* fed segments read through io_uring */
};

/* Does directory dirfd answer the bulk read (a request with no names is
 * refused EINVAL by a daemon that has it, ENOTTY by one without)? */
bool vv_tiny_bulk_probe(int dirfd);
/* Slots up to this size are read in bulk on a mount; larger segments are
 * opened (the daemon's copy costs more per byte than the page cache's). */
#define VV_TINY_BULK_SLOT (256u << 10)

/* vv_scan.feed and .feed_end with ctx a struct vv_tiny. */
size_t vv_tiny_feed(void *ctx, void **tls, const uint32_t **segs);
void vv_tiny_end(void *ctx, void *tls);

/* ---- collections of the tool (vector_open.c, vector_offload.c,
 * vector_search.c) -------------------------------------------------------------
 * A collection opened by vv_collection_open: its segments in name order,
 * each with what the scan and the re-ranking read it through.  Only the
 * thread that owns the collection uses it (the loaders and the scan run
 * inside its calls). */

/* One segment of a collection. */
struct vv_cseg {
	struct vv_collection_seg pub;
	char *name;
	uint8_t *base;           /* whole file (mmap or malloc) */
	size_t len;
	bool mapped;
	uint8_t *ids_base;
	size_t ids_len;
	bool ids_mapped;
	uint64_t ids_off;
	bool stream;             /* scan through pread(fd) instead of base */
	bool fuse;               /* on a FUSE mount: the daemon may scan it */
	bool offloaded;          /* this search: the daemon scanned it */
	bool deferred;           /* not opened yet: the first search reads it */
	bool fed;                /* that search scanned it as it read it */
	bool dirserved;          /* never opened: the daemon scanned it by name
				    (vector_dir.c); info has only format, dim,
				    dtype and count */
	int fd;                  /* open when stream */
	struct vv_seg_id id;     /* the file the name led to at open */
};

/* How the segments of one collection are reached, decided once per open
 * (vector_open.c says why). */
struct vv_seg_io {
	int forced;              /* 1 = pread every segment, -1 = map every one */
	dev_t dir_dev;           /* the directory's device ... */
	bool dir_fuse;           /* ... and whether it is a FUSE mount */
	bool dir_remote;         /* ... a vv:// mount */
	atomic_size_t fds;       /* descriptors kept (segments load in parallel) */
	size_t maxfds;           /* and the budget */
	int dirfd;               /* the directory: small segments past the budget
				  * are opened again by the scan (O(1) at open) */
	bool batched;            /* open and release in io_uring batches */
};

struct vv_collection {
	char *dir;
	struct vv_schema schema;
	struct vv_cseg *segs;
	size_t nsegs;
	char **skipped;
	size_t nskipped;
	struct vv_seg_io *io;
	atomic_size_t nbatched;  /* segments opened and released through io_uring */
	/* vv_collection_open_deferred: segs[pend0 .. nsegs) are deferred, to
	 * be read, checked and numbered (from row `rows`) by the first search,
	 * in slots of `slot` bytes */
	bool pending, skip_bad, check_failed;
	/* deferred on a local vecvault mount: the first search names the
	 * deferred segments to the daemon (vector_dir.c) and opens one by one
	 * (as the plain open) only those it did not scan */
	bool dirserve;
	/* the last vv_coll_pending_scan on a FUSE mount: segments opened
	 * ahead of its scan, and of those scanned as they opened */
	size_t nahead, nahead_fed;
	/* ... and of those read in bulk (vector_tiny.c), in how many requests */
	size_t nbulk, nbulk_req;
	size_t pend0, slot;
	uint64_t rows;
};

struct vv_offload;

/* A candidate with its exact distance (NAN: not computed yet). */
struct vv_dcand {
	double d;
	uint32_t seg;
	uint64_t row;
};

/* snprintf into err (errlen bytes; nothing when err is NULL). */
void vv_coll_seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* pread exactly n bytes at off: 0, or a VV_E* code with *why set
 * (strerror-style text). */
int vv_coll_pread(int fd, uint8_t *p, size_t n, uint64_t off, const char **why);
/* May one more descriptor be kept open (io's RLIMIT_NOFILE budget)? */
bool vv_coll_fd_take(struct vv_seg_io *io);
/* The scan of collection c while segments pend0 .. nsegs are deferred (sc
 * filled as for vv_scan_run over ss): reads (on a FUSE mount: opens, as
 * the plain open does, while the scan runs), checks and numbers them, then
 * scans; as vv_scan_run, plus *check true (err written) when the check in
 * name order failed. */
int vv_coll_pending_scan(struct vv_collection *c, struct vv_scan *sc, struct vv_scan_seg *ss,
			 bool *check, char *err, size_t errlen);
/* The first search of a deferred open on a vecvault mount (dirserve),
 * before anything is scanned: the deferred segments are named to the
 * daemon (vv_coll_dir_offload); those it scanned are numbered by the rows
 * it reported and never opened here (dirserved), the rest are opened one
 * by one as the plain open does (its errors, its words); all are checked
 * in name order as the open would have (a failure: *check set, err
 * written).  The daemon's candidates end in dir (vv_offload_release),
 * segment indices as after the check.  0 or a VV_E* code; the collection
 * is no longer pending either way. */
int vv_coll_dir_open(struct vv_collection *c, const float *queries, size_t nq, enum vv_metric m,
		     uint32_t kk, const struct vv_search_opts *o, struct vv_offload *dir, bool *check,
		     char *err, size_t errlen);
/* Segments a directory request served (dirserved) are opened and probed
 * before a later search of the same collection scans them: 0, or a VV_E*
 * code with err written (VV_EIO and VV_SEG_CHANGED when the file has other
 * rows than the first search numbered). */
int vv_coll_open_served(struct vv_collection *c, char *err, size_t errlen);

/* Could a batch of nq queries (kk candidates each) go to the daemon at all:
 * in one directory request (vector_dir.c), in the single-segment requests
 * of one segment (vector_offload.c)?  Neither: no segment of the search
 * is offloaded whatever its size, so the search opens deferred segments
 * ahead of its scan instead (vv_coll_pending_scan). */
bool vv_coll_dir_batch_fits(const struct vv_collection *c, size_t nq, uint32_t kk);
bool vv_coll_offload_batch_fits(const struct vv_collection *c, size_t nq, uint32_t kk);

/* What the daemon answered for one search (vv_coll_offload): query q's
 * candidates are oc[q * ocap .. q * ocap + on[q]); the segments it scanned
 * are marked offloaded.  Free with vv_offload_release. */
struct vv_offload {
	struct vv_dcand *oc;
	size_t *on;
	size_t ocap;
};

/* Offer c's segments on a vecvault mount to the daemon for queries[0 ..
 * nq) (d = the schema's dim, kk candidates each); marks those it scanned.
 * 0 (maybe with nothing offloaded) or VV_ENOMEM. */
int vv_coll_offload(struct vv_collection *c, const float *queries, size_t nq, enum vv_metric m,
		    uint32_t kk, const struct vv_search_opts *o, struct vv_offload *out);
void vv_offload_release(struct vv_offload *out);

/* ---- the directory offload (vector_dir.c) ------------------------------------
 * vv_coll_dir_offload: offer c's deferred segments (pend0 .. nsegs, known
 * by name only) to the daemon in VV_IOC_KNN_DIR requests on c->io->dirfd
 * (opened O_RDONLY, a directory), a few in flight at once, each carrying
 * the whole batch (none when it does not fit one request, or o says no
 * offload).  For deferred segment i (0-based from pend0) the daemon
 * scanned, served[i] = 1 and rows[i] = its rows; its candidates, exact
 * distances and seg = pend0 + i, are in out (vv_offload_release).  Names of
 * a request that failed or whose reply failed vv_knn_dir_reply_bad are not
 * served.  0 (maybe nothing served), or VV_ENOMEM with nothing served. */
int vv_coll_dir_offload(const struct vv_collection *c, const float *queries, size_t nq,
			enum vv_metric m, uint32_t kk, const struct vv_search_opts *o, uint8_t *served,
			uint64_t *rows, struct vv_offload *out);
/* Is reply io to request header sent sane?  Header echoed, per-name
 * statuses (err 0 or -errno with no rows; rows within the work budget;
 * totals), per query: candidates of served names only, rows within their
 * file, finite distances in the metric's range, sorted by (distance,
 * name, row), unused slots only last, no (name, row) twice.  NULL, or what
 * is wrong.  scratch holds sent->kk * 16 bytes. */
const char *vv_knn_dir_reply_bad(const struct vv_knn_dir_hdr *sent, const struct vv_knn_dir_ioc *io,
				 void *scratch);
/* Tests: send directory requests to fn instead of ioctl(2) (NULL: the
 * kernel again); while set, deferred opens of plain directories take the
 * mount's path (dirserve). */
void vv_coll_dir_test_ioctl(int (*fn)(int fd, struct vv_knn_dir_ioc *io, void *ctx), void *ctx);
bool vv_coll_dir_test_hooked(void);

#endif
