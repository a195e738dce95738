/*
 * vector_scan.c - the exact k-NN scan over segments, the one engine behind
 * both sides of the query offload: the query tool's collection search
 * (vector_search.c) and the daemon's offload (vv_segment_knn, called by
 * engine/vault_knn.c).  Neither side dresses up as the other: both hand in
 * an array of struct vv_scan_seg (a parsed header and where the rows are).
 *
 * The rows of all segments are cut into units of about the same number of
 * bytes (vv_plan_build: small segments packed together into one unit, large
 * ones split); worker threads take units from a shared counter and keep one
 * top-k heap per query each.  A unit is scanned in row blocks sized for L2;
 * each row block is compared to the queries in blocks sized for L1
 * (vector_knn.c's tiled kernel), so one pass over the data serves every
 * query.  Segments held in memory are read in place; streamed ones are
 * read with pread(2) into a per-thread buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "grow.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/log.h"
#include "vector_int.h"

#define QBLOCK 128u              /* queries per kernel block */
#define BLAS_MIN_Q 16u           /* batches from this size use BLAS sgemm */
#define BLAS_QBLOCK 256u         /* queries per sgemm */
#define BLAS_RBYTES (256u << 10) /* rows per sgemm: this many bytes of f32 */
#define STREAM_BYTES (256u << 10) /* pread size of the streaming scan */
/* ---- the work plan ------------------------------------------------------------ */

#define UNIT_MIN_BYTES (256u << 10)
#define UNIT_MAX_BYTES (4u << 20)
#define UNITS_PER_THREAD 8u      /* enough units that threads finish together */

static int plan_add(struct vv_plan *p, size_t *pcap, size_t *ucap, bool new_unit, uint32_t seg,
		    uint64_t row0, uint64_t nrows, uint64_t stride)
{
	if (VV_GROW(p->pieces, p->npieces, *pcap) < 0)
		return VV_ENOMEM;
	if (new_unit) {
		if (VV_GROW(p->units, p->nunits, *ucap) < 0)
			return VV_ENOMEM;
		p->units[p->nunits++] = (struct vv_unit){ p->npieces, p->npieces, 0, 0 };
	}
	p->pieces[p->npieces++] = (struct vv_piece){ seg, row0, nrows };
	p->units[p->nunits - 1].p1 = p->npieces;
	p->units[p->nunits - 1].rows += nrows;
	p->units[p->nunits - 1].bytes += nrows * stride;
	return 0;
}

int vv_plan_build(const struct vv_plan_seg *segs, size_t n, size_t nthreads, uint64_t unit_bytes,
		  struct vv_plan *p)
{
	size_t pcap = 0, ucap = 0;
	uint64_t total = 0, ub;
	int r = 0;

	memset(p, 0, sizeof(*p));
	for (size_t i = 0; i < n; i++)
		if (!segs[i].skip)
			total += segs[i].rows * (segs[i].stride ? segs[i].stride : 1);
	if (!unit_bytes) {
		unit_bytes = total / ((nthreads ? nthreads : 1) * UNITS_PER_THREAD);
		unit_bytes = unit_bytes < UNIT_MIN_BYTES ? UNIT_MIN_BYTES :
			     unit_bytes > UNIT_MAX_BYTES ? UNIT_MAX_BYTES : unit_bytes;
	}
	p->unit_bytes = unit_bytes;
	ub = unit_bytes;                 /* bytes in the open unit: none open yet */
	for (size_t i = 0; i < n; i++) {
		uint64_t st = segs[i].stride ? segs[i].stride : 1, rows = segs[i].rows;
		if (segs[i].skip)
			continue;
		for (uint64_t r0 = 0; r0 < rows;) {
			bool fresh = ub >= unit_bytes;
			uint64_t want;
			if (fresh)
				ub = 0;
			/* fill the open unit up to its size: a large segment
			 * continues in the next unit */
			want = (unit_bytes - ub + st - 1) / st;
			want = want < 1 ? 1 : want > rows - r0 ? rows - r0 : want;
			if ((r = plan_add(p, &pcap, &ucap, fresh, (uint32_t)i, r0, want, st)) < 0)
				return r;
			ub += want * st;
			r0 += want;
			p->rows += want;
			p->bytes += want * st;
		}
	}
	return r;
}

void vv_plan_release(struct vv_plan *p)
{
	free(p->pieces);
	free(p->units);
	memset(p, 0, sizeof(*p));
}

/* ---- the scan ----------------------------------------------------------------- */

struct job {
	struct vv_scan *s;
	const struct vv_kernels *kern;
	const float *q;          /* prepared queries (cosine: normalised) */
	const float *qn;         /* |q|^2 (l2) */
	size_t nq, d;
	uint32_t kk;
	bool blas;               /* batch path: sgemm + filtered top-k */
	struct vv_plan plan;
	atomic_size_t next;
	atomic_uint_least64_t done;
	atomic_uint_least64_t fed;   /* rows of the segments s->feed handed in */
	uint64_t total;
};

struct worker {
	pthread_t th;
	struct job *j;
	int id;
	struct vv_cand *cand;    /* nq * kk */
	struct vv_topk *tk;      /* nq */
	float *scratch, *norms, *inv, *out;
	size_t brows;
	/* first bad TEXMEX row seen */
	int bad;
	uint32_t bad_seg;
	uint64_t bad_row;
	uint32_t bad_dim;
	/* streamed segments: read buffer, rows per read, first read error */
	uint8_t *io;
	size_t iorows;
	uint64_t iostride;       /* the largest stride io holds iorows rows of */
	int ioerr;
	uint32_t ioerr_seg;
	bool ioerr_short;        /* ioerr EIO: end of file before the rows */
	bool ioerr_changed;      /* ioerr EIO: the name leads to another file */
	/* exact_fed: the fed segments' candidates' exact distances */
	struct vv_xdist *xd;
	size_t nxd, xdcap;
	uint8_t *infeed;         /* nsegs: 1 for the segments of the batch */
	float *xbuf;             /* d floats */
	bool xd_failed;          /* no memory: the re-ranking reads them back */
};

/* Rows r.. of segment s as floats, their bytes at p (the mapping or a
 * pread buffer; TEXMEX dim words 4 bytes before each row): p itself when the
 * layout allows, else converted into buf.  NULL on a bad TEXMEX dim word. */
static const float *rows_f32(const struct vv_scan_seg *s, const uint8_t *p, uint64_t r, size_t n,
			     size_t d, float *buf, size_t *xs, uint64_t *bad_row, uint32_t *bad_dim)
{
	const struct vv_segment_info *si = &s->info;

	if (si->format != VV_SEG_NPY)
		for (size_t i = 0; i < n; i++) {
			uint32_t w = vv_get_le32(p + i * si->stride - 4);
			if (w != si->dim) {
				*bad_row = r + i;
				*bad_dim = w;
				return NULL;
			}
		}
	if (si->dtype == VV_DT_F32 && ((uintptr_t)p & 3) == 0 && (si->stride & 3) == 0) {
		*xs = si->stride / 4;
		return (const float *)(const void *)p;
	}
	for (size_t i = 0; i < n; i++)
		vv_convert_row(si->dtype, p + i * si->stride, d, buf + i * d);
	*xs = d;
	return buf;
}

static bool ts_after(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

/* vector_int.h.  One statx asking what a FUSE mount keeps cached
 * (VV_SEG_STATX), fstat where a seccomp filter refuses statx. */
int vv_seg_reopen(int dirfd, const char *name, const struct vv_seg_id *id, const char **why)
{
	int fd = openat(dirfd, name, VV_SEG_OPEN), r;
	struct statx sx;
	struct stat st;
	bool same;

	if (fd < 0) {
		*why = strerror(errno);
		return vv_err_from_errno(errno);
	}
	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, VV_SEG_STATX, &sx) == 0) {
		st.st_mode = sx.stx_mode;
		st.st_size = (off_t)sx.stx_size;
		st.st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
		st.st_ino = (ino_t)sx.stx_ino;
		st.st_ctim = (struct timespec){ (time_t)sx.stx_ctime.tv_sec, (long)sx.stx_ctime.tv_nsec };
	} else if (errno != ENOSYS || fstat(fd, &st) < 0) {
		*why = strerror(errno);
		r = vv_err_from_errno(errno);
		close(fd);
		return r;
	}
	/* renamed over (whatever its size and header), a FIFO or symlink
	 * swapped in: another file's rows would get this segment's name */
	same = S_ISREG(st.st_mode) && (uint64_t)st.st_size == id->size;
	if (same && id->ino)
		same = st.st_dev == id->dev && st.st_ino == id->ino &&
		       st.st_ctim.tv_sec == id->ctime.tv_sec && st.st_ctim.tv_nsec == id->ctime.tv_nsec;
	else if (same)
		same = !ts_after(&st.st_ctim, &id->ctime);
	if (!same) {
		close(fd);
		*why = VV_SEG_CHANGED;
		return VV_EIO;
	}
	return fd;
}

/* vector_int.h */
void vv_seg_since(struct timespec *since)
{
	struct timespec c;

	clock_gettime(CLOCK_REALTIME, since);
	for (int i = 0; i < 64; i++) {       /* a tick is 1-10 ms; 64 x 250 us = 16 ms */
		if (clock_gettime(CLOCK_REALTIME_COARSE, &c) != 0 || ts_after(&c, since))
			return;
		nanosleep(&(struct timespec){ 0, 250000 }, NULL);
	}
}

/* Open a streamed segment whose descriptor the caller could not keep
 * (past RLIMIT_NOFILE); the caller closes it.  The fd, or a VV_E* code
 * (VV_EIO with *changed: not the file opened before). */
static int seg_reopen(const struct vv_scan_seg *s, int *err, bool *changed)
{
	const char *why = NULL;
	int fd;

	if (s->dirfd < 0 || !s->name || !s->id) {
		*err = EBADF;
		return VV_EBADF;
	}
	if ((fd = vv_seg_reopen(s->dirfd, s->name, s->id, &why)) < 0) {
		*changed = why && !strcmp(why, VV_SEG_CHANGED);
		*err = vv_errno(fd);
	}
	return fd;
}

/* w->io sized for streamed rows of `stride` bytes: the plan's streamed
 * segments are known when the workers start (job_run sizes it for the
 * largest); a feed may hand in a streamed segment of any stride.  0, or
 * ENOMEM. */
static int io_fit(struct worker *w, uint64_t stride)
{
	size_t m;

	if (w->io && stride <= w->iostride)
		return 0;
	free(w->io);
	m = STREAM_BYTES / (w->brows * stride);
	w->iorows = (m ? m : 1) * w->brows;
	w->iostride = stride;
	w->io = aligned_alloc(64, (w->iorows * stride + 63) & ~(size_t)63);
	return w->io ? 0 : ENOMEM;
}

/* Read rows r.. (n of them) of a streamed segment into w->io; returns where
 * row r's values start, NULL on error (w->ioerr set). */
static const uint8_t *rows_read(struct worker *w, const struct vv_scan_seg *s, int fd, uint64_t r,
			       size_t n)
{
	const struct vv_segment_info *si = &s->info;
	size_t pre = si->format != VV_SEG_NPY ? 4 : 0, len = n * si->stride, got = 0;
	off_t off = (off_t)(si->data_off + r * si->stride - pre);

	while (got < len) {
		ssize_t k = pread(fd, w->io + got, len - got, off + (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			w->ioerr = k < 0 ? errno : EIO;
			w->ioerr_short = k == 0;
			return NULL;
		}
		got += (size_t)k;
	}
	return w->io + pre;
}

/* The batch path: per query block, one sgemm gives alpha*q.x for the whole
 * row block (queries x rows, so each query's values are contiguous), then a
 * SIMD threshold filter per query adds the row terms and offers only values
 * that beat the query's current k+SPARE-th best.
 *   l2:     |x|^2 - 2 q.x + |q|^2   (alpha -2, a = |x|^2, c = |q|^2)
 *   ip:     -q.x                    (alpha -1)
 *   cosine: 1 - q.x / |x|           (alpha -1, b = 1/|x|, c = 1; q normalised) */
static void scan_blas(struct worker *w, const float *x, size_t xs, size_t n, uint32_t seg,
		      uint64_t row)
{
	struct job *j = w->j;
	size_t d = j->d, nq = j->nq;
	const float *a = NULL, *b = NULL;
	enum vv_metric m = j->s->metric;
	float alpha = m == VV_METRIC_L2 ? -2.0f : -1.0f;

	if (m == VV_METRIC_L2) {
		j->kern->norms(x, xs, n, d, w->norms);
		a = w->norms;
	} else if (m == VV_METRIC_COSINE) {
		j->kern->norms(x, xs, n, d, w->norms);
		for (size_t i = 0; i < n; i++)
			w->inv[i] = w->norms[i] > 0 ? 1.0f / sqrtf(w->norms[i]) : 0.0f;
		b = w->inv;
	}
	for (size_t q0 = 0; q0 < nq; q0 += BLAS_QBLOCK) {
		size_t qb = nq - q0 < BLAS_QBLOCK ? nq - q0 : BLAS_QBLOCK;
		vv_blas_dots(x, xs, n, j->q + q0 * d, qb, d, alpha, w->out, n);
		for (size_t q = 0; q < qb; q++) {
			float c = m == VV_METRIC_L2 ? j->qn[q0 + q] : m == VV_METRIC_COSINE ? 1.0f : 0.0f;
			vv_topk_offer_block(&w->tk[q0 + q], w->out + q * n, a, b, c, n, seg, row);
		}
	}
}

static void scan_piece(struct worker *w, const struct vv_piece *u)
{
	struct job *j = w->j;
	const struct vv_scan_seg *s = &j->s->segs[u->seg];
	enum vv_metric m = j->s->metric;
	size_t d = j->d, nq = j->nq;
	bool direct = m == VV_METRIC_L2 && nq < 4;
	size_t chunk;
	const uint8_t *cp = NULL;
	int fd = s->fd;

	if (w->ioerr)
		return;
	if (s->stream && (w->ioerr = io_fit(w, s->info.stride))) {
		w->ioerr_seg = u->seg;
		return;
	}
	chunk = s->stream ? w->iorows : w->brows;
	if (s->stream && fd < 0 && (fd = seg_reopen(s, &w->ioerr, &w->ioerr_changed)) < 0) {
		w->ioerr_seg = u->seg;
		return;
	}
	for (uint64_t r0 = 0; r0 < u->nrows; r0 += w->brows) {
		size_t n = (size_t)(u->nrows - r0 < w->brows ? u->nrows - r0 : w->brows), xs;
		uint64_t row = u->row0 + r0;
		uint64_t brow = 0;
		uint32_t bdim = 0;
		const uint8_t *p;
		const float *x;

		if (!s->stream) {
			p = s->base + s->info.data_off + row * s->info.stride;
		} else {
			/* chunks of iorows (a multiple of brows) rows */
			if (r0 % chunk == 0) {
				size_t cn = (size_t)(u->nrows - r0 < chunk ? u->nrows - r0 : chunk);
				if (!(cp = rows_read(w, s, fd, row, cn))) {
					w->ioerr_seg = u->seg;
					goto out;
				}
			}
			p = cp + (r0 % chunk) * s->info.stride;
		}
		x = rows_f32(s, p, row, n, d, w->scratch, &xs, &brow, &bdim);

		if (!x) {
			if (!w->bad || u->seg < w->bad_seg || (u->seg == w->bad_seg && brow < w->bad_row)) {
				w->bad = 1;
				w->bad_seg = u->seg;
				w->bad_row = brow;
				w->bad_dim = bdim;
			}
			goto out;
		}
		if (j->blas) {
			scan_blas(w, x, xs, n, u->seg, row);
			continue;
		}
		if (direct) {
			for (size_t q = 0; q < nq; q++) {
				struct vv_topk *t = &w->tk[q];
				j->kern->l2sq(x, xs, n, j->q + q * d, d, w->out);
				for (size_t i = 0; i < n; i++)
					if (w->out[i] <= t->thr)
						vv_topk_push(t, w->out[i], u->seg, row + i);
			}
			continue;
		}
		if (m != VV_METRIC_IP)
			j->kern->norms(x, xs, n, d, w->norms);
		for (size_t q0 = 0; q0 < nq; q0 += QBLOCK) {
			size_t qb = nq - q0 < QBLOCK ? nq - q0 : QBLOCK;
			j->kern->dots(x, xs, n, j->q + q0 * d, qb, d, w->out, qb);
			for (size_t i = 0; i < n; i++) {
				const float *o = w->out + i * qb;
				float xn = w->norms[i], inv = 0;
				if (m == VV_METRIC_COSINE)
					inv = xn > 0 ? 1.0f / sqrtf(xn) : 0;
				for (size_t q = 0; q < qb; q++) {
					struct vv_topk *t = &w->tk[q0 + q];
					float v;
					if (m == VV_METRIC_L2)
						v = xn + j->qn[q0 + q] - 2 * o[q];
					else if (m == VV_METRIC_IP)
						v = -o[q];
					else
						v = 1 - o[q] * inv;
					if (v <= t->thr)
						vv_topk_push(t, v, u->seg, row + i);
				}
			}
		}
	}
out:
	if (fd != s->fd)
		close(fd);
}

/* After the scan of a fed batch segs[0 .. n), whose bytes the next feed
 * call reuses: the exact distance of every candidate now in the worker's
 * heaps from those segments.  A candidate kept to the end was in the heap
 * when its segment's scan ended (none comes back once pushed out), so
 * each final one of theirs is here; each (q, seg, row) at most once (a
 * segment is in one batch).  Without memory the rest are left to the
 * re-ranking, which reads them back. */
static void exact_batch(struct worker *w, const uint32_t *segs, size_t n)
{
	struct job *j = w->j;
	const struct vv_scan *s = j->s;

	if (w->xd_failed)
		return;
	if (!w->infeed && !(w->infeed = calloc(s->nsegs, 1))) {
		w->xd_failed = true;
		return;
	}
	if (!w->xbuf && !(w->xbuf = malloc(j->d * sizeof(float)))) {
		w->xd_failed = true;
		return;
	}
	for (size_t i = 0; i < n; i++)
		w->infeed[segs[i]] = 1;
	for (size_t q = 0; q < j->nq && !w->xd_failed; q++) {
		const struct vv_topk *t = &w->tk[q];
		for (uint32_t i = 0; i < t->n; i++) {
			const struct vv_cand *c = &t->c[i];
			const struct vv_scan_seg *g = &s->segs[c->seg];
			if (!w->infeed[c->seg])
				continue;
			if (VV_GROW(w->xd, w->nxd, w->xdcap) < 0) {
				w->xd_failed = true;
				break;
			}
			w->xd[w->nxd++] = (struct vv_xdist){
				(uint32_t)q, c->seg, c->row,
				vv_row_dist(s->metric, g->info.dtype,
					    g->base + g->info.data_off + c->row * g->info.stride,
					    s->queries + q * j->d, j->d, w->xbuf) };
		}
	}
	for (size_t i = 0; i < n; i++)
		w->infeed[segs[i]] = 0;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct job *j = w->j;

	for (;;) {
		size_t i = atomic_fetch_add(&j->next, 1);
		const struct vv_unit *u;
		uint64_t done;
		if (i >= j->plan.nunits)
			break;
		u = &j->plan.units[i];
		for (size_t p = u->p0; p < u->p1; p++)
			scan_piece(w, &j->plan.pieces[p]);
		done = atomic_fetch_add(&j->done, u->rows) + u->rows;
		if (w->id == 0 && j->s->progress)
			j->s->progress(j->s->progress_ctx, done, j->total);
	}
	if (j->s->feed) {
		/* segments read by this thread into its own memory, scanned
		 * there before the next call reuses it */
		void *tls = NULL;
		const uint32_t *segs;
		size_t n;
		while ((n = j->s->feed(j->s->feed_ctx, &tls, &segs)) > 0) {
			for (size_t i = 0; i < n; i++) {
				uint64_t rows = j->s->segs[segs[i]].info.count;
				scan_piece(w, &(struct vv_piece){ segs[i], 0, rows });
				atomic_fetch_add(&j->fed, rows);
			}
			if (j->s->exact_fed)
				exact_batch(w, segs, n);
		}
		if (j->s->feed_end)
			j->s->feed_end(j->s->feed_ctx, tls);
	}
	return NULL;
}

/* Queries as the kernels take them: normalised for cosine; qn = |q|^2. */
static int prep_queries(enum vv_metric m, const float *queries, size_t nq, size_t d,
			float **qp, float **qn)
{
	*qp = malloc(nq * d * sizeof(float) + 1);
	*qn = malloc(nq * sizeof(float) + 1);
	if (!*qp || !*qn)
		return VV_ENOMEM;
	memcpy(*qp, queries, nq * d * sizeof(float));
	for (size_t i = 0; i < nq; i++) {
		float *q = *qp + i * d;
		double s = 0;
		for (size_t t = 0; t < d; t++)
			s += (double)q[t] * q[t];
		(*qn)[i] = (float)s;
		if (m == VV_METRIC_COSINE && s > 0)
			for (size_t t = 0; t < d; t++)
				q[t] = (float)(q[t] / sqrt(s));
	}
	return 0;
}


static void job_free(struct job *j, struct worker *ws, size_t nws)
{
	if (ws)
		for (size_t t = 0; t < nws; t++) {
			free(ws[t].cand);
			free(ws[t].tk);
			free(ws[t].scratch);
			free(ws[t].norms);
			free(ws[t].inv);
			free(ws[t].out);
			free(ws[t].io);
			free(ws[t].xd);
			free(ws[t].infeed);
			free(ws[t].xbuf);
		}
	free(ws);
	vv_plan_release(&j->plan);
}

/* Scan every segment of j->s not marked skip, with up to `threads` threads
 * (0 = all CPUs).  On return ws[0 .. *started) hold one heap of the j->kk
 * best candidates per query each; the caller frees with
 * job_free(j, *ws, *nws). */
static int job_run(struct job *j, unsigned threads, struct worker **wsp, size_t *nws,
		   size_t *startedp)
{
	const struct vv_scan *s = j->s;
	struct worker *ws;
	struct vv_plan_seg *ps;
	size_t d = j->d, nq = j->nq, nthreads, maxstride = 0, started;
	int r;

	*wsp = NULL;
	*nws = *startedp = 0;
	nthreads = threads ? threads : (size_t)sysconf(_SC_NPROCESSORS_ONLN);
	if (nthreads < 1)
		nthreads = 1;
	if (!(ps = malloc((s->nsegs ? s->nsegs : 1) * sizeof(*ps))))
		return VV_ENOMEM;
	for (size_t i = 0; i < s->nsegs; i++) {
		const struct vv_scan_seg *g = &s->segs[i];
		ps[i] = (struct vv_plan_seg){ g->info.count, g->info.stride, g->skip };
		if (!g->skip && g->stream && g->info.count && g->info.stride > maxstride)
			maxstride = g->info.stride;
	}
	r = vv_plan_build(ps, s->nsegs, nthreads, s->unit_bytes, &j->plan);
	free(ps);
	if (r < 0)
		return r;
	j->total = j->plan.rows;
	if (nthreads > j->plan.nunits && !s->feed)
		nthreads = j->plan.nunits ? j->plan.nunits : 1;
	if (!(ws = calloc(nthreads, sizeof(*ws))))
		return VV_ENOMEM;
	*wsp = ws;
	*nws = nthreads;
	for (size_t t = 0; t < nthreads; t++) {
		struct worker *w = &ws[t];
		size_t qbmax = j->blas ? BLAS_QBLOCK : QBLOCK;
		/* ~256 KiB of rows per block (half of L2), a multiple of the
		 * kernel's 3-row tile */
		size_t br = (256u << 10) / (d * 4);
		br = br < 3 ? 3 : br > 384 ? 384 : br - br % 3;
		if (j->blas) {
			br = BLAS_RBYTES / (d * 4);
			br = br < 16 ? 16 : br > 4096 ? 4096 : br;
		}
		w->j = j;
		w->id = (int)t;
		w->brows = br;
		w->cand = malloc(nq * j->kk * sizeof(*w->cand));
		w->tk = malloc(nq * sizeof(*w->tk));
		w->scratch = malloc(br * d * sizeof(float));
		w->norms = malloc(br * sizeof(float));
		w->inv = malloc(br * sizeof(float));
		w->out = malloc(br * (nq < qbmax ? nq : qbmax) * sizeof(float) + br * sizeof(float));
		if (!w->cand || !w->tk || !w->scratch || !w->norms || !w->inv || !w->out ||
		    (maxstride && io_fit(w, maxstride)))
			return VV_ENOMEM;
		for (size_t q = 0; q < nq; q++)
			vv_topk_init(&w->tk[q], w->cand + q * j->kk, j->kk);
	}
	for (started = 1; started < nthreads; started++)
		if (pthread_create(&ws[started].th, NULL, work, &ws[started]) != 0) {
			vv_log(VV_LOG_WARN, "knn: could not start thread %zu; continuing with fewer",
			       started);
			break;
		}
	work(&ws[0]);
	for (size_t t = 1; t < started; t++)
		pthread_join(ws[t].th, NULL);
	/* Worker 0 reports as it goes, but the last unit may have been another
	 * worker's: say where the scan ended (one thread again here), so a
	 * progress line reaches 100% whichever worker finished. */
	if (j->s->progress)
		j->s->progress(j->s->progress_ctx, atomic_load(&j->done), j->total);
	*startedp = started;
	return 0;
}

/* A read error or a bad TEXMEX row anywhere fails the whole scan: results
 * may already hold rows from that segment.  The first by segment wins, a
 * read error before a bad row. */
static int job_errors(struct vv_scan *s, const struct worker *ws, size_t started)
{
	const struct worker *bad = NULL, *ioe = NULL;

	for (size_t t = 0; t < started; t++) {
		if (ws[t].bad && (!bad || ws[t].bad_seg < bad->bad_seg ||
				  (ws[t].bad_seg == bad->bad_seg && ws[t].bad_row < bad->bad_row)))
			bad = &ws[t];
		if (ws[t].ioerr && (!ioe || ws[t].ioerr_seg < ioe->ioerr_seg))
			ioe = &ws[t];
	}
	if (ioe) {
		s->err_seg = ioe->ioerr_seg;
		s->err_errno = ioe->ioerr;
		s->err_short = ioe->ioerr_short;
		s->err_changed = ioe->ioerr_changed;
		return vv_err_from_errno(ioe->ioerr);
	}
	if (bad) {
		s->err_seg = bad->bad_seg;
		s->err_row = bad->bad_row;
		s->err_dim = bad->bad_dim;
		return VV_ECORRUPT;
	}
	return 0;
}

int vv_scan_run(struct vv_scan *s)
{
	struct job j;
	struct worker *ws = NULL;
	float *qp = NULL, *qn = NULL;
	size_t nws = 0, started = 0;
	int r;

	memset(&j, 0, sizeof(j));
	s->cand = NULL;
	s->ncand = NULL;
	s->ncap = 0;
	s->xd = NULL;
	s->nxd = 0;
	s->rows = 0;
	s->err_seg = 0;
	s->err_row = 0;
	s->err_dim = 0;
	s->err_errno = 0;
	s->err_short = false;
	s->err_changed = false;
	if (!s->nq || !s->kk || !s->d ||
	    (s->metric != VV_METRIC_L2 && s->metric != VV_METRIC_IP && s->metric != VV_METRIC_COSINE))
		return VV_EINVAL;
	j.s = s;
	j.kern = vv_kernels_get();
	j.nq = s->nq;
	j.d = s->d;
	j.kk = s->kk;
	j.blas = s->nq >= BLAS_MIN_Q && vv_blas_available();
	if ((r = prep_queries(s->metric, s->queries, s->nq, s->d, &qp, &qn)) < 0)
		goto out;
	j.q = qp;
	j.qn = qn;
	if ((r = job_run(&j, s->threads, &ws, &nws, &started)) < 0 ||
	    (r = job_errors(s, ws, started)) < 0)
		goto out;
	/* each query's candidates: the workers' heaps side by side */
	s->ncap = started * j.kk;
	if (!(s->cand = malloc(s->nq * s->ncap * sizeof(*s->cand) + 1)) ||
	    !(s->ncand = calloc(s->nq, sizeof(*s->ncand)))) {
		r = VV_ENOMEM;
		goto out;
	}
	for (size_t q = 0; q < s->nq; q++)
		for (size_t t = 0; t < started; t++) {
			memcpy(s->cand + q * s->ncap + s->ncand[q], ws[t].tk[q].c,
			       ws[t].tk[q].n * sizeof(*s->cand));
			s->ncand[q] += ws[t].tk[q].n;
		}
	s->rows = j.plan.rows + atomic_load(&j.fed);
	/* the workers' exact distances, one sorted table */
	for (size_t t = 0; t < started; t++)
		s->nxd += ws[t].nxd;
	if (s->nxd && !(s->xd = malloc(s->nxd * sizeof(*s->xd)))) {
		s->nxd = 0;              /* the re-ranking reads them back */
	} else {
		s->nxd = 0;
		for (size_t t = 0; t < started; t++) {
			if (ws[t].nxd)
				memcpy(s->xd + s->nxd, ws[t].xd, ws[t].nxd * sizeof(*s->xd));
			s->nxd += ws[t].nxd;
		}
		vv_scan_exact_sort(s);
	}
out:
	if (r < 0)
		vv_scan_release(s);
	job_free(&j, ws, nws);
	free(qp);
	free(qn);
	return r;
}

static int xdist_cmp(const void *a, const void *b)
{
	const struct vv_xdist *x = a, *y = b;

	if (x->q != y->q)
		return x->q < y->q ? -1 : 1;
	if (x->seg != y->seg)
		return x->seg < y->seg ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

void vv_scan_exact_sort(struct vv_scan *s)
{
	if (s->nxd)
		qsort(s->xd, s->nxd, sizeof(*s->xd), xdist_cmp);
}

double vv_scan_exact(const struct vv_scan *s, uint32_t q, uint32_t seg, uint64_t row)
{
	struct vv_xdist key = { q, seg, row, 0 };
	const struct vv_xdist *x = s->nxd ? bsearch(&key, s->xd, s->nxd, sizeof(*s->xd), xdist_cmp)
					  : NULL;

	return x ? x->d : NAN;
}

void vv_scan_release(struct vv_scan *s)
{
	free(s->xd);
	s->xd = NULL;
	s->nxd = 0;
	free(s->cand);
	free(s->ncand);
	s->cand = NULL;
	s->ncand = NULL;
	s->ncap = 0;
}

/* ---- the daemon's offload ------------------------------------------------------- */

static int cand_cmp(const void *a, const void *b)
{
	const struct vv_cand *x = a, *y = b;

	return vv_cand_less(x, y) ? -1 : vv_cand_less(y, x) ? 1 : 0;
}

/* Exact distance in double precision between one row (raw bytes of dtype
 * t) and query q, both of d values, in the "smaller is better" form; buf
 * holds d floats.  The one function both re-rankings use (the tool's,
 * vector_search.c, and the daemon's exact replies below), so that an
 * offloaded answer is byte-identical to a local one. */
double vv_row_dist(enum vv_metric m, enum vv_dtype t, const uint8_t *row, const float *q, size_t d,
		   float *buf)
{
	double acc = 0, xx = 0, qq = 0;

	vv_convert_row(t, row, d, buf);
	for (size_t i = 0; i < d; i++) {
		double a = buf[i], b = q[i];
		if (m == VV_METRIC_L2) {
			acc += (a - b) * (a - b);
		} else {
			acc += a * b;
			xx += a * a;
			qq += b * b;
		}
	}
	if (m == VV_METRIC_L2)
		return acc;
	if (m == VV_METRIC_IP)
		return -acc;
	return xx > 0 && qq > 0 ? 1 - acc / (sqrt(xx) * sqrt(qq)) : 1;
}

static int xcand_cmp(const void *a, const void *b)
{
	const struct vv_knn_ioc_xcand *x = a, *y = b;

	if (x->d != y->d)
		return x->d < y->d ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

/* The scan of one in-memory segment; its kk best per query, best first by
 * float distance, go to out (v1) or, with exact distances, to xout. */
static int segment_knn(const struct vv_segment_view *sv, enum vv_metric m, const float *queries,
		       size_t nq, uint32_t kk, unsigned threads, struct vv_knn_ioc_cand *out,
		       struct vv_knn_ioc_xcand *xout)
{
	const struct vv_segment_info *si = &sv->info;
	struct vv_scan_seg seg = { .info = *si, .base = sv->base, .fd = -1, .dirfd = -1 };
	struct vv_scan s = { .segs = &seg, .nsegs = 1, .metric = m, .queries = queries, .nq = nq,
			     .d = si->dim, .kk = kk, .threads = threads };
	float *buf = NULL;
	int r;

	/* the view's probe checked si against its length; check again here,
	 * as the scan reads within it (TEXMEX: data_off and stride include
	 * the next row's dim word) */
	if (!sv->base || (si->count && si->data_off + (si->count - 1) * si->stride +
				       (uint64_t)si->dim * vv_dtype_size(si->dtype) > sv->len))
		return VV_EINVAL;
	if (xout && !(buf = malloc((si->dim ? si->dim : 1) * sizeof(float))))
		return VV_ENOMEM;
	if ((r = vv_scan_run(&s)) < 0) {
		free(buf);
		return r;
	}
	/* the workers' kk best each: the kk best of all, best first */
	for (size_t q = 0; q < nq; q++) {
		struct vv_cand *c = s.cand + q * s.ncap;
		size_t n = s.ncand[q];
		if (n)
			qsort(c, n, sizeof(*c), cand_cmp);
		if (!xout) {
			for (size_t i = 0; i < kk; i++)
				out[q * kk + i] = i < n ? (struct vv_knn_ioc_cand){ c[i].d, 0, c[i].row }
							: (struct vv_knn_ioc_cand){ INFINITY, 0, VV_KNN_NO_ROW };
			continue;
		}
		struct vv_knn_ioc_xcand *x = xout + q * kk;
		size_t nx = n < kk ? n : kk;
		for (size_t i = 0; i < kk; i++)
			x[i] = i < nx ? (struct vv_knn_ioc_xcand){
						vv_row_dist(m, si->dtype, sv->base + si->data_off +
							    c[i].row * si->stride, queries + q * si->dim,
							    si->dim, buf), c[i].row }
				      : (struct vv_knn_ioc_xcand){ INFINITY, VV_KNN_NO_ROW };
		if (nx)
			qsort(x, nx, sizeof(*x), xcand_cmp);
	}
	vv_scan_release(&s);
	free(buf);
	return 0;
}

/* The candidates of a scan over segs (threads 1, so up to kk per query,
 * from one heap): the kk best by float distance, each with its exact
 * distance from its segment's row, best first by (exact distance, segment,
 * row), to out[q * kk ...]; unused slots last. */
static int many_exact(const struct vv_segment_view *sv, const struct vv_scan *s, enum vv_metric m,
		      const float *queries, size_t nq, uint32_t kk, size_t d,
		      struct vv_knn_dir_cand *out)
{
	float *buf = malloc((d ? d : 1) * sizeof(float));

	if (!buf)
		return VV_ENOMEM;
	for (size_t q = 0; q < nq; q++) {
		struct vv_cand *c = s->cand + q * s->ncap;
		struct vv_knn_dir_cand *x = out + q * kk;
		size_t n = s->ncand[q], nx;
		if (n)
			qsort(c, n, sizeof(*c), cand_cmp);
		nx = n < kk ? n : kk;
		for (size_t i = 0; i < kk; i++) {
			if (i >= nx) {
				x[i] = (struct vv_knn_dir_cand){ INFINITY, VV_KNN_DIR_NO_NAME, 0,
								 VV_KNN_NO_ROW };
				continue;
			}
			const struct vv_segment_info *si = &sv[c[i].seg].info;
			x[i] = (struct vv_knn_dir_cand){
				vv_row_dist(m, si->dtype, sv[c[i].seg].base + si->data_off +
					    c[i].row * si->stride, queries + q * d, d, buf),
				c[i].seg, 0, c[i].row };
		}
		if (nx)
			qsort(x, nx, sizeof(*x), vv_knn_dir_cand_cmp);
	}
	free(buf);
	return 0;
}

int vv_segments_knn_exact(const struct vv_segment_view *sv, size_t n, enum vv_metric m,
			  const float *queries, size_t nq, uint32_t kk, struct vv_knn_dir_cand *out)
{
	struct vv_scan_seg *segs;
	struct vv_scan s;
	size_t d;
	int r;

	if (!n || n > UINT32_MAX)
		return VV_EINVAL;
	d = sv[0].info.dim;
	if (!(segs = calloc(n, sizeof(*segs))))
		return VV_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct vv_segment_info *si = &sv[i].info;
		/* as segment_knn: every view within its bytes, one dim for all */
		if (!sv[i].base || si->dim != d ||
		    (si->count && si->data_off + (si->count - 1) * si->stride +
					  (uint64_t)si->dim * vv_dtype_size(si->dtype) > sv[i].len)) {
			free(segs);
			return VV_EINVAL;
		}
		segs[i] = (struct vv_scan_seg){ .info = *si, .base = sv[i].base, .fd = -1, .dirfd = -1 };
	}
	s = (struct vv_scan){ .segs = segs, .nsegs = n, .metric = m, .queries = queries, .nq = nq,
			      .d = d, .kk = kk, .threads = 1 };
	if ((r = vv_scan_run(&s)) == 0)
		r = many_exact(sv, &s, m, queries, nq, kk, d, out);
	vv_scan_release(&s);
	free(segs);
	return r;
}

int vv_segment_knn(const struct vv_segment_view *sv, enum vv_metric m, const float *queries,
		   size_t nq, uint32_t kk, unsigned threads, struct vv_knn_ioc_cand *out)
{
	return segment_knn(sv, m, queries, nq, kk, threads, out, NULL);
}

int vv_segment_knn_exact(const struct vv_segment_view *sv, enum vv_metric m, const float *queries,
			 size_t nq, uint32_t kk, unsigned threads, struct vv_knn_ioc_xcand *out)
{
	return segment_knn(sv, m, queries, nq, kk, threads, NULL, out);
}
