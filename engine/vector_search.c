/*
 * vector_search.c - open a collection directory and run exact k-NN over it.
 *
 * The collection may be a directory on the vecvault mount or a plain one:
 * segments are opened and mmap'd like any reader would (falling back to
 * read(2) when the filesystem refuses mmap), so the mount's permission
 * checks and audit log see the query.  These are not STORE files, so they
 * do not go through vv_os_*.
 *
 * Search: the rows of all segments are cut into units; worker threads take
 * units from a shared counter and keep one top-k heap per query each.  A
 * unit is scanned in row blocks sized for L2; each row block is compared to
 * the queries in blocks sized for L1 (vector_knn.c's tiled kernel), so one
 * pass over the data serves every query.  Heaps keep a few spare candidates
 * past k; at the end their distances are recomputed in double precision from
 * the rows and re-sorted by (distance, segment, row), so float rounding can
 * only change which id is reported where distances tie within ~1e-6
 * relative (docs/query.md).
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "buf.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/log.h"
#include "vector_int.h"

#define UNIT_ROWS 8192u          /* rows per work unit */
#define SPARE 16u                /* extra candidates kept past k */
#define QBLOCK 128u              /* queries per kernel block */
#define BLAS_MIN_Q 16u           /* batches from this size use BLAS sgemm */
#define BLAS_QBLOCK 256u         /* queries per sgemm */
#define BLAS_RBYTES (256u << 10) /* rows per sgemm: this many bytes of f32 */
#define STREAM_BYTES (256u << 10) /* pread size of the streaming scan */
#define FUSE_SUPER_MAGIC 0x65735546

struct cseg {
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
	bool offloaded;          /* this search: the daemon scanned it */
	int fd;                  /* open when stream */
};

struct vv_collection {
	char *dir;
	struct vv_schema schema;
	struct cseg *segs;
	size_t nsegs;
	char **skipped;
	size_t nskipped;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
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

/* Scan this file with pread(2) rather than through its mapping?  On a FUSE
 * mount the page cache holds order-0 folios, so faulting a mapping in (and
 * tearing it down) costs more than the scan itself: 4 KiB PTEs, fault-around
 * of 16 pages, per-page rmap work; a plain ext4 file maps large folios.
 * pread of a keep_cache'd FUSE file is served from the page cache without a
 * daemon round trip, into a small per-thread buffer that stays in L2.
 * $VV_SCAN_IO=mmap|read forces one way. */
static bool scan_by_read(int fd)
{
	const char *e = getenv("VV_SCAN_IO");
	struct statfs sf;

	if (e && !strcmp(e, "read"))
		return true;
	if (e && !strcmp(e, "mmap"))
		return false;
	return fstatfs(fd, &sf) == 0 && (unsigned long)sf.f_type == FUSE_SUPER_MAGIC;
}

/* Map (or read) a whole regular file.  *why gets strerror-style text. */
static int load_file(const char *path, uint8_t **out, size_t *len, bool *mapped,
		     int *keep_fd, const char **why)
{
	int fd, r = 0;
	struct stat st;
	uint8_t *p = NULL;
	size_t n;

	*out = NULL;
	*len = 0;
	*mapped = false;
	if (keep_fd)
		*keep_fd = -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = vv_err_from_errno(errno);
		*why = strerror(errno);
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		r = vv_err_from_errno(errno);
		*why = strerror(errno);
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		r = VV_EINVAL;
		*why = "not a regular file";
		goto out_close;
	}
	n = (size_t)st.st_size;
	if (n == 0)
		goto out_close;
	p = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, 0);
	if (p != MAP_FAILED) {
		/* Sequential scans: ask for aggressive readahead when cold. */
		madvise(p, n, MADV_SEQUENTIAL);
		*mapped = true;
		if (keep_fd && scan_by_read(fd)) {
			*keep_fd = fd;
			fd = -1;
		}
	} else {
		/* e.g. a FUSE file opened with direct_io: read it instead */
		size_t got = 0;
		p = malloc(n);
		if (!p) {
			r = VV_ENOMEM;
			*why = "out of memory";
			goto out_close;
		}
		while (got < n) {
			ssize_t k = pread(fd, p + got, n - got, (off_t)got);
			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				r = k < 0 ? vv_err_from_errno(errno) : VV_EIO;
				*why = k < 0 ? strerror(errno) : "file shrank while reading";
				free(p);
				p = NULL;
				goto out_close;
			}
			got += (size_t)k;
		}
	}
	*out = p;
	*len = n;
out_close:
	if (fd >= 0)
		close(fd);
out:
	return r;
}

static char *path_join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = malloc(a + b + 2);

	if (p) {
		memcpy(p, dir, a);
		p[a] = '/';
		memcpy(p + a + 1, name, b + 1);
	}
	return p;
}

/* Open one segment and its optional id sidecar; probe both. */
#define MAX_STREAM_FDS 256          /* beyond this, segments are scanned mapped */

static int seg_load(const char *dir, struct cseg *s, size_t *nstream, const char **why)
{
	char *path = NULL, *ids = NULL, *dot;
	int r;
	struct vv_segment_info ii;

	if (!(path = path_join(dir, s->name))) {
		r = VV_ENOMEM;
		*why = "out of memory";
		goto out;
	}
	if ((r = load_file(path, &s->base, &s->len, &s->mapped,
			    *nstream < MAX_STREAM_FDS ? &s->fd : NULL, why)) < 0)
		goto out;
	s->stream = *nstream < MAX_STREAM_FDS && s->fd >= 0;
	if (s->stream)
		++*nstream;
	else
		s->fd = -1;
	s->pub.file_size = s->len;
	if ((r = vv_segment_probe(s->name, s->base, s->len < VV_VEC_PROBE_LEN ? s->len : VV_VEC_PROBE_LEN,
				  s->len, &s->pub.info, why)) < 0)
		goto out;
	/* sidecar: BASE.ids.npy for BASE.EXT */
	if (!(ids = malloc(strlen(path) + 9))) {
		r = VV_ENOMEM;
		goto out;
	}
	strcpy(ids, path);
	dot = strrchr(ids, '.');
	strcpy(dot, ".ids.npy");
	r = load_file(ids, &s->ids_base, &s->ids_len, &s->ids_mapped, NULL, why);
	if (r == VV_ENOENT) {
		r = 0;
		goto out;
	}
	if (r < 0) {
		*why = "id sidecar unreadable";
		goto out;
	}
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
	free(path);
	free(ids);
	return r;
}

static void seg_release(struct cseg *s)
{
	unmap(s->base, s->len, s->mapped);
	unmap(s->ids_base, s->ids_len, s->ids_mapped);
	if (s->stream)
		close(s->fd);
	s->stream = false;
	s->fd = -1;
	s->base = s->ids_base = NULL;
	s->pub.has_ids = false;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
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
			seterr(err, errlen, "%s: cannot read %s: %s", dir, names[i], strerror(errno));
			goto out;
		}
		if (vv_schema_set_xattr(s, names[i], v, (size_t)n) < 0) {
			r = VV_ESCHEMA;
			seterr(err, errlen, "%s: invalid %s value '%.*s'", dir, names[i], (int)n, v);
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

int vv_collection_open(const char *dir, const struct vv_schema *override, bool skip_bad,
		       struct vv_collection **out, char *err, size_t errlen)
{
	size_t nstream = 0;
	struct vv_collection *c = NULL;
	DIR *d = NULL;
	struct dirent *de;
	char **names = NULL;
	size_t nnames = 0, cap = 0, kept = 0;
	uint64_t rows = 0;
	int r = 0;

	*out = NULL;
	if (!(c = calloc(1, sizeof(*c))) || !(c->dir = strdup(dir))) {
		r = VV_ENOMEM;
		goto out;
	}
	if (!(d = opendir(dir))) {
		r = vv_err_from_errno(errno);
		seterr(err, errlen, "%s: %s", dir, strerror(errno));
		goto out;
	}
	while ((errno = 0, de = readdir(d))) {
		if (!vv_segment_name_is_segment(de->d_name))
			continue;
		if (nnames == cap) {
			char **p = realloc(names, (cap = cap ? 2 * cap : 16) * sizeof(*p));
			if (!p) {
				r = VV_ENOMEM;
				goto out;
			}
			names = p;
		}
		if (!(names[nnames] = strdup(de->d_name))) {
			r = VV_ENOMEM;
			goto out;
		}
		nnames++;
	}
	if (errno) {
		r = vv_err_from_errno(errno);
		seterr(err, errlen, "%s: %s", dir, strerror(errno));
		goto out;
	}
	qsort(names, nnames, sizeof(*names), name_cmp);
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
	if (!(c->segs = calloc(nnames ? nnames : 1, sizeof(*c->segs)))) {
		r = VV_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nnames; i++) {
		struct cseg *s = &c->segs[kept];
		const char *why = NULL;
		int e;

		s->name = names[i];
		names[i] = NULL;
		s->pub.name = s->name;
		e = seg_load(dir, s, &nstream, &why);
		if (e == 0) {
			/* the first good segment fixes what the xattrs leave unset */
			if (!c->schema.dim)
				c->schema.dim = s->pub.info.dim;
			if (c->schema.dtype == VV_DT_ANY)
				c->schema.dtype = s->pub.info.dtype;
			e = vv_schema_match(&c->schema, &s->pub.info, &why);
		}
		if (e < 0) {
			vv_log(VV_LOG_WARN, "segment %s/%s: %s", dir, s->name, why ? why : vv_strerror(e));
			if (!skip_bad) {
				r = e;
				seterr(err, errlen, "%s/%s: %s", dir, s->name, why ? why : vv_strerror(e));
				seg_release(s);
				free(s->name);
				s->name = NULL;
				goto out;
			}
			if ((r = add_skipped(c, s->name, why ? why : vv_strerror(e))) < 0)
				goto out;
			seg_release(s);
			free(s->name);
			memset(s, 0, sizeof(*s));
			continue;
		}
		s->pub.first_row = rows;
		rows += s->pub.info.count;
		kept++;
	}
	c->nsegs = kept;
	*out = c;
	c = NULL;
out:
	if (d)
		closedir(d);
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
	if (c) {
		c->nsegs = kept;
		vv_collection_free(c);
	}
	return r;
}

void vv_collection_free(struct vv_collection *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nsegs; i++) {
		seg_release(&c->segs[i]);
		free(c->segs[i].name);
	}
	for (size_t i = 0; i < c->nskipped; i++)
		free(c->skipped[i]);
	free(c->skipped);
	free(c->segs);
	free(c->dir);
	free(c);
}

const struct vv_schema *vv_collection_schema(const struct vv_collection *c) { return &c->schema; }
size_t vv_collection_nsegs(const struct vv_collection *c) { return c->nsegs; }
const struct vv_collection_seg *vv_collection_seg(const struct vv_collection *c, size_t i)
{
	return i < c->nsegs ? &c->segs[i].pub : NULL;
}
size_t vv_collection_nskipped(const struct vv_collection *c) { return c->nskipped; }
const char *vv_collection_skipped(const struct vv_collection *c, size_t i)
{
	return i < c->nskipped ? c->skipped[i] : NULL;
}

/* ---- search --------------------------------------------------------------- */

struct unit {
	uint32_t seg;
	uint64_t row0, nrows;
};

struct job {
	struct vv_collection *c;
	const struct vv_kernels *kern;
	enum vv_metric metric;
	const float *q;          /* prepared queries (cosine: normalised) */
	const float *qn;         /* |q|^2 (l2) */
	size_t nq, d;
	uint32_t kk;
	bool blas;               /* batch path: sgemm + filtered top-k */
	struct unit *units;
	size_t nunits;
	atomic_size_t next;
	atomic_uint_least64_t done;
	uint64_t total;
	const struct vv_search_opts *o;
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
	int ioerr;
	uint32_t ioerr_seg;
};

/* Rows r.. of segment s as floats, their bytes at p (the mapping or a
 * pread buffer; TEXMEX dim words 4 bytes before each row): p itself when the
 * layout allows, else converted into buf.  NULL on a bad TEXMEX dim word. */
static const float *rows_f32(const struct cseg *s, const uint8_t *p, uint64_t r, size_t n,
			     size_t d, float *buf, size_t *xs, uint64_t *bad_row, uint32_t *bad_dim)
{
	const struct vv_segment_info *si = &s->pub.info;

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

/* Read rows r.. (n of them) of a streamed segment into w->io; returns where
 * row r's values start, NULL on error (w->ioerr set). */
static const uint8_t *rows_read(struct worker *w, const struct cseg *s, uint64_t r, size_t n)
{
	const struct vv_segment_info *si = &s->pub.info;
	size_t pre = si->format != VV_SEG_NPY ? 4 : 0, len = n * si->stride, got = 0;
	off_t off = (off_t)(si->data_off + r * si->stride - pre);

	while (got < len) {
		ssize_t k = pread(s->fd, w->io + got, len - got, off + (off_t)got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			w->ioerr = k < 0 ? errno : EIO;
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
	float alpha = j->metric == VV_METRIC_L2 ? -2.0f : -1.0f;

	if (j->metric == VV_METRIC_L2) {
		j->kern->norms(x, xs, n, d, w->norms);
		a = w->norms;
	} else if (j->metric == VV_METRIC_COSINE) {
		j->kern->norms(x, xs, n, d, w->norms);
		for (size_t i = 0; i < n; i++)
			w->inv[i] = w->norms[i] > 0 ? 1.0f / sqrtf(w->norms[i]) : 0.0f;
		b = w->inv;
	}
	for (size_t q0 = 0; q0 < nq; q0 += BLAS_QBLOCK) {
		size_t qb = nq - q0 < BLAS_QBLOCK ? nq - q0 : BLAS_QBLOCK;
		vv_blas_dots(x, xs, n, j->q + q0 * d, qb, d, alpha, w->out, n);
		for (size_t q = 0; q < qb; q++) {
			float c = j->metric == VV_METRIC_L2 ? j->qn[q0 + q] :
				  j->metric == VV_METRIC_COSINE ? 1.0f : 0.0f;
			vv_topk_offer_block(&w->tk[q0 + q], w->out + q * n, a, b, c, n, seg, row);
		}
	}
}

static void scan_unit(struct worker *w, const struct unit *u)
{
	struct job *j = w->j;
	const struct cseg *s = &j->c->segs[u->seg];
	size_t d = j->d, nq = j->nq;
	bool direct = j->metric == VV_METRIC_L2 && nq < 4;

	size_t chunk = s->stream ? w->iorows : w->brows;
	const uint8_t *cp = NULL;

	if (w->ioerr)
		return;
	for (uint64_t r0 = 0; r0 < u->nrows; r0 += w->brows) {
		size_t n = (size_t)(u->nrows - r0 < w->brows ? u->nrows - r0 : w->brows), xs;
		uint64_t row = u->row0 + r0;
		uint64_t brow = 0;
		uint32_t bdim = 0;
		const uint8_t *p;
		const float *x;

		if (!s->stream) {
			p = s->base + s->pub.info.data_off + row * s->pub.info.stride;
		} else {
			/* chunks of iorows (a multiple of brows) rows */
			if (r0 % chunk == 0) {
				size_t cn = (size_t)(u->nrows - r0 < chunk ? u->nrows - r0 : chunk);
				if (!(cp = rows_read(w, s, row, cn))) {
					w->ioerr_seg = u->seg;
					return;
				}
			}
			p = cp + (r0 % chunk) * s->pub.info.stride;
		}
		x = rows_f32(s, p, row, n, d, w->scratch, &xs, &brow, &bdim);

		if (!x) {
			if (!w->bad || u->seg < w->bad_seg || (u->seg == w->bad_seg && brow < w->bad_row)) {
				w->bad = 1;
				w->bad_seg = u->seg;
				w->bad_row = brow;
				w->bad_dim = bdim;
			}
			return;
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
		if (j->metric != VV_METRIC_IP)
			j->kern->norms(x, xs, n, d, w->norms);
		for (size_t q0 = 0; q0 < nq; q0 += QBLOCK) {
			size_t qb = nq - q0 < QBLOCK ? nq - q0 : QBLOCK;
			j->kern->dots(x, xs, n, j->q + q0 * d, qb, d, w->out, qb);
			for (size_t i = 0; i < n; i++) {
				const float *o = w->out + i * qb;
				float xn = w->norms[i], inv = 0;
				if (j->metric == VV_METRIC_COSINE)
					inv = xn > 0 ? 1.0f / sqrtf(xn) : 0;
				for (size_t q = 0; q < qb; q++) {
					struct vv_topk *t = &w->tk[q0 + q];
					float v;
					if (j->metric == VV_METRIC_L2)
						v = xn + j->qn[q0 + q] - 2 * o[q];
					else if (j->metric == VV_METRIC_IP)
						v = -o[q];
					else
						v = 1 - o[q] * inv;
					if (v <= t->thr)
						vv_topk_push(t, v, u->seg, row + i);
				}
			}
		}
	}
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct job *j = w->j;

	for (;;) {
		size_t i = atomic_fetch_add(&j->next, 1);
		uint64_t done;
		if (i >= j->nunits)
			break;
		scan_unit(w, &j->units[i]);
		done = atomic_fetch_add(&j->done, j->units[i].nrows) + j->units[i].nrows;
		if (w->id == 0 && j->o->progress)
			j->o->progress(j->o->progress_ctx, done, j->total);
	}
	return NULL;
}

/* Exact distance in double precision between row (seg, r) and query q. */
static double exact_dist(const struct vv_collection *c, enum vv_metric m, uint32_t seg, uint64_t r,
			 const float *q, size_t d, float *buf)
{
	const struct cseg *s = &c->segs[seg];
	const uint8_t *p = s->base + s->pub.info.data_off + r * s->pub.info.stride;
	double acc = 0, xx = 0, qq = 0;

	vv_convert_row(s->pub.info.dtype, p, d, buf);
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

struct dcand {
	double d;
	uint32_t seg;
	uint64_t row;
};

static int dcand_cmp(const void *a, const void *b)
{
	const struct dcand *x = a, *y = b;

	if (x->d != y->d)
		return x->d < y->d ? -1 : 1;
	if (x->seg != y->seg)
		return x->seg < y->seg ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
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
		}
	free(ws);
	free(j->units);
	j->units = NULL;
}

/* Scan every segment of j->c that is not offloaded, with up to `threads`
 * threads (0 = all CPUs).  On return ws[0 .. *started) hold one heap of the
 * j->kk best candidates per query each; the caller checks job_errors() and
 * frees with job_free(j, *ws, *nws). */
static int job_run(struct job *j, unsigned threads, struct worker **wsp, size_t *nws,
		   size_t *startedp)
{
	struct vv_collection *c = j->c;
	struct worker *ws;
	size_t d = j->d, nq = j->nq, nthreads, nunits = 0, maxstride = 0, started;

	*wsp = NULL;
	*nws = *startedp = 0;
	for (size_t s = 0; s < c->nsegs; s++)
		if (!c->segs[s].offloaded)
			nunits += (size_t)((c->segs[s].pub.info.count + UNIT_ROWS - 1) / UNIT_ROWS);
	if (!(j->units = calloc(nunits ? nunits : 1, sizeof(*j->units))))
		return VV_ENOMEM;
	for (size_t s = 0; s < c->nsegs; s++) {
		uint64_t cnt = c->segs[s].pub.info.count;
		if (c->segs[s].offloaded)
			continue;
		for (uint64_t r0 = 0; r0 < cnt; r0 += UNIT_ROWS) {
			struct unit *u = &j->units[j->nunits++];
			u->seg = (uint32_t)s;
			u->row0 = r0;
			u->nrows = cnt - r0 < UNIT_ROWS ? cnt - r0 : UNIT_ROWS;
			j->total += u->nrows;
		}
		if (c->segs[s].stream && c->segs[s].pub.info.stride > maxstride)
			maxstride = c->segs[s].pub.info.stride;
	}
	nthreads = threads ? threads : (size_t)sysconf(_SC_NPROCESSORS_ONLN);
	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > j->nunits)
		nthreads = j->nunits ? j->nunits : 1;
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
		if (maxstride) {
			size_t m = STREAM_BYTES / (br * maxstride);
			w->iorows = (m ? m : 1) * br;
			w->io = aligned_alloc(64, (w->iorows * maxstride + 63) & ~(size_t)63);
		}
		if (!w->cand || !w->tk || !w->scratch || !w->norms || !w->inv || !w->out ||
		    (maxstride && !w->io))
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
	*startedp = started;
	return 0;
}

/* A read error or a bad TEXMEX row anywhere fails the whole search: results
 * may already hold rows from that segment.  The first by segment wins. */
static int job_errors(const struct job *j, const struct worker *ws, size_t started,
		      char *err, size_t errlen)
{
	const struct worker *bad = NULL, *ioe = NULL;
	const struct vv_collection *c = j->c;

	for (size_t t = 0; t < started; t++) {
		if (ws[t].bad && (!bad || ws[t].bad_seg < bad->bad_seg ||
				  (ws[t].bad_seg == bad->bad_seg && ws[t].bad_row < bad->bad_row)))
			bad = &ws[t];
		if (ws[t].ioerr && (!ioe || ws[t].ioerr_seg < ioe->ioerr_seg))
			ioe = &ws[t];
	}
	if (ioe) {
		seterr(err, errlen, "%s/%s: %s", c->dir, c->segs[ioe->ioerr_seg].name,
		       strerror(ioe->ioerr));
		return vv_err_from_errno(ioe->ioerr);
	}
	if (bad) {
		seterr(err, errlen, "%s/%s: row %llu has dimension word %u, expected %zu",
		       c->dir, c->segs[bad->bad_seg].name, (unsigned long long)bad->bad_row,
		       bad->bad_dim, j->d);
		return VV_ECORRUPT;
	}
	return 0;
}

/* ---- the query offload (knn_ioctl.h) ------------------------------------------ */

static bool offload_allowed(const struct vv_search_opts *o)
{
	const char *e = getenv("VV_KNN_OFFLOAD");

	return !o->no_offload && !(e && !strcmp(e, "0"));
}

/* Ask the daemon behind streamed segment s (a FUSE file we hold open for
 * reading) to scan it: nq raw queries in, the kk best rows per query out as
 * candidates of segment `seg` appended to oc[q * ocap + on[q]].  false (the
 * caller scans the segment itself, and nothing was appended) when the file
 * system does not answer, the request does not fit one ioctl, or the reply
 * is not sane. */
static bool offload_seg(const struct cseg *s, uint32_t seg, enum vv_metric m, const float *queries,
			size_t nq, size_t d, uint32_t kk, unsigned threads, struct vv_knn_ioc *io,
			struct vv_cand *oc, size_t ocap, size_t *on, bool *filling)
{
	if (nq * d > VV_KNN_MAX_FLOATS || nq * kk > VV_KNN_MAX_CANDS)
		return false;
	memset(&io->h, 0, sizeof(io->h));
	io->h.magic = VV_KNN_MAGIC;
	io->h.version = VV_KNN_VERSION;
	io->h.metric = (uint32_t)m;
	io->h.dim = (uint32_t)d;
	io->h.nq = (uint32_t)nq;
	io->h.kk = kk;
	io->h.threads = threads;
	io->h.format = (uint32_t)s->pub.info.format;
	memcpy(io->u.q, queries, nq * d * sizeof(float));
	if (ioctl(s->fd, VV_IOC_KNN, io) < 0) {
		*filling = errno == EAGAIN;
		vv_log(VV_LOG_DEBUG, "knn: %s: no offload: %s", s->name, strerror(errno));
		return false;
	}
	if (io->h.magic != VV_KNN_MAGIC_REPLY || io->h.rows != s->pub.info.count) {
		vv_log(VV_LOG_DEBUG, "knn: %s: no offload: unexpected reply", s->name);
		return false;
	}
	for (size_t i = 0; i < nq * kk; i++)
		if (io->u.c[i].row != VV_KNN_NO_ROW && io->u.c[i].row >= s->pub.info.count) {
			vv_log(VV_LOG_WARN, "knn: %s: offload reply names row %llu of %llu; "
			       "scanning locally", s->name, (unsigned long long)io->u.c[i].row,
			       (unsigned long long)s->pub.info.count);
			return false;
		}
	for (size_t q = 0; q < nq; q++)
		for (size_t i = 0; i < kk; i++) {
			const struct vv_knn_ioc_cand *c = &io->u.c[q * kk + i];
			if (c->row == VV_KNN_NO_ROW)
				continue;
			oc[q * ocap + on[q]++] = (struct vv_cand){ c->d, seg, c->row };
		}
	return true;
}

int vv_collection_search(struct vv_collection *c, const float *queries, size_t nq,
			 const struct vv_search_opts *o, struct vv_hit *hits,
			 char *err, size_t errlen)
{
	struct job j;
	struct worker *ws = NULL;
	float *qp = NULL, *qn = NULL, *rowbuf = NULL;
	struct dcand *dc = NULL;
	struct vv_cand *oc = NULL;
	struct vv_knn_ioc *io = NULL;
	size_t d = c->schema.dim, nws = 0, started = 0, nstream = 0, ocap = 0, *on = NULL;
	uint32_t k = o->k;
	int r = 0;

	memset(&j, 0, sizeof(j));
	if (o->stats)
		memset(o->stats, 0, sizeof(*o->stats));
	for (size_t s = 0; s < c->nsegs; s++)
		c->segs[s].offloaded = false;
	if (k == 0 || k > VV_VEC_MAX_K || d == 0) {
		r = VV_EINVAL;
		if (d == 0)
			seterr(err, errlen, "%s: collection has no segments and no dimension", c->dir);
		else
			seterr(err, errlen, "k must be 1..%u", VV_VEC_MAX_K);
		goto out;
	}
	for (size_t i = 0; i < nq * k; i++)
		hits[i] = (struct vv_hit){ INFINITY, UINT32_MAX, 0, -1 };
	if (nq == 0)
		goto out;
	{
		size_t qr;
		uint32_t qc;
		if (vv_vectors_nonfinite(queries, nq, (uint32_t)d, &qr, &qc)) {
			r = VV_EINVAL;
			seterr(err, errlen, "query row %zu column %u is %s: queries must be finite "
			       "numbers (rows and columns count from 0)", qr, qc,
			       isnan(queries[qr * d + qc]) ? "NaN" : "infinite");
			goto out;
		}
	}
	j.c = c;
	j.o = o;
	j.kern = vv_kernels_get();
	j.metric = o->metric != VV_METRIC_NONE ? o->metric : c->schema.metric;
	j.nq = nq;
	j.d = d;
	j.kk = k + SPARE;
	j.blas = nq >= BLAS_MIN_Q && vv_blas_available();
	if ((r = prep_queries(j.metric, queries, nq, d, &qp, &qn)) < 0 ||
	    !(rowbuf = malloc(d * sizeof(float)))) {
		r = VV_ENOMEM;
		goto out;
	}
	j.q = qp;
	j.qn = qn;

	/* Segments on a vecvault mount: let the daemon scan them. */
	for (size_t s = 0; s < c->nsegs; s++)
		nstream += c->segs[s].stream;
	if (nstream && offload_allowed(o) && nq * d <= VV_KNN_MAX_FLOATS &&
	    nq * j.kk <= VV_KNN_MAX_CANDS) {
		ocap = nstream * j.kk;
		if (!(io = malloc(sizeof(*io))) || !(oc = malloc(nq * ocap * sizeof(*oc))) ||
		    !(on = calloc(nq, sizeof(*on)))) {
			r = VV_ENOMEM;
			goto out;
		}
		for (size_t s = 0; s < c->nsegs; s++) {
			struct cseg *cs = &c->segs[s];
			bool filling = false;
			if (!cs->stream)
				continue;
			if (!offload_seg(cs, (uint32_t)s, j.metric, queries, nq, d, j.kk, o->threads, io,
					 oc, ocap, on, &filling)) {
				if (o->stats)
					o->stats->segs_filling += filling;
				continue;
			}
			cs->offloaded = true;
			if (o->stats) {
				o->stats->segs_offloaded++;
				o->stats->rows_offloaded += cs->pub.info.count;
			}
		}
	}

	if ((r = job_run(&j, o->threads, &ws, &nws, &started)) < 0 ||
	    (r = job_errors(&j, ws, started, err, errlen)) < 0)
		goto out;
	if (!(dc = malloc((started * j.kk + ocap) * sizeof(*dc)))) {
		r = VV_ENOMEM;
		goto out;
	}
	for (size_t q = 0; q < nq; q++) {
		size_t n = 0;
		for (size_t t = 0; t <= started; t++) {
			const struct vv_cand *cd = t < started ? ws[t].tk[q].c : oc ? oc + q * ocap : NULL;
			size_t m = t < started ? ws[t].tk[q].n : on ? on[q] : 0;
			for (size_t i = 0; i < m; i++) {
				dc[n].seg = cd[i].seg;
				dc[n].row = cd[i].row;
				dc[n].d = exact_dist(c, j.metric, cd[i].seg, cd[i].row, queries + q * d, d,
						     rowbuf);
				n++;
			}
		}
		qsort(dc, n, sizeof(*dc), dcand_cmp);
		for (size_t i = 0; i < n && i < k; i++) {
			struct vv_hit *h = &hits[q * k + i];
			const struct cseg *s = &c->segs[dc[i].seg];
			h->dist = dc[i].d;
			h->seg = dc[i].seg;
			h->row = dc[i].row;
			h->id = s->pub.has_ids ? (int64_t)vv_get_le64(s->ids_base + s->ids_off + 8 * dc[i].row)
					       : (int64_t)(s->pub.first_row + dc[i].row);
		}
	}
out:
	job_free(&j, ws, nws);
	free(dc);
	free(qp);
	free(qn);
	free(rowbuf);
	free(io);
	free(oc);
	free(on);
	return r;
}

/* Merge the workers' heaps of one query into its kk best, best first. */
static int cand_cmp(const void *a, const void *b)
{
	const struct vv_cand *x = a, *y = b;

	return vv_cand_less(x, y) ? -1 : vv_cand_less(y, x) ? 1 : 0;
}

int vv_segment_knn(const uint8_t *base, size_t len, const struct vv_segment_info *si,
		   enum vv_metric m, const float *queries, size_t nq, uint32_t kk,
		   unsigned threads, struct vv_knn_ioc_cand *out)
{
	struct cseg seg;
	struct vv_collection c;
	struct vv_search_opts o;
	struct job j;
	struct worker *ws = NULL;
	struct vv_cand *all = NULL;
	float *qp = NULL, *qn = NULL;
	size_t nws = 0, started = 0, d = si->dim;
	int r;

	/* the probe checked si against the file size; check it against len
	 * (TEXMEX: data_off and stride include the next row's dim word) */
	if (!nq || !kk || !d || (m != VV_METRIC_L2 && m != VV_METRIC_IP && m != VV_METRIC_COSINE) ||
	    (si->count && si->data_off + (si->count - 1) * si->stride +
			  (uint64_t)d * vv_dtype_size(si->dtype) > len))
		return VV_EINVAL;
	memset(&seg, 0, sizeof(seg));
	memset(&c, 0, sizeof(c));
	memset(&o, 0, sizeof(o));
	memset(&j, 0, sizeof(j));
	seg.name = (char *)"segment";
	seg.pub.name = seg.name;
	seg.pub.info = *si;
	seg.base = (uint8_t *)base;
	seg.len = len;
	seg.fd = -1;
	c.dir = (char *)"daemon";
	c.segs = &seg;
	c.nsegs = 1;
	c.schema.dim = si->dim;
	c.schema.dtype = si->dtype;
	c.schema.metric = m;
	j.c = &c;
	j.o = &o;
	j.kern = vv_kernels_get();
	j.metric = m;
	j.nq = nq;
	j.d = d;
	j.kk = kk;
	j.blas = nq >= BLAS_MIN_Q && vv_blas_available();
	if ((r = prep_queries(m, queries, nq, d, &qp, &qn)) < 0)
		goto out;
	j.q = qp;
	j.qn = qn;
	if ((r = job_run(&j, threads, &ws, &nws, &started)) < 0 ||
	    (r = job_errors(&j, ws, started, NULL, 0)) < 0)
		goto out;
	if (!(all = malloc(started * kk * sizeof(*all) + 1))) {
		r = VV_ENOMEM;
		goto out;
	}
	for (size_t q = 0; q < nq; q++) {
		size_t n = 0;
		for (size_t t = 0; t < started; t++)
			for (uint32_t i = 0; i < ws[t].tk[q].n; i++)
				all[n++] = ws[t].tk[q].c[i];
		qsort(all, n, sizeof(*all), cand_cmp);
		for (size_t i = 0; i < kk; i++)
			out[q * kk + i] = i < n ? (struct vv_knn_ioc_cand){ all[i].d, 0, all[i].row }
						: (struct vv_knn_ioc_cand){ INFINITY, 0, VV_KNN_NO_ROW };
	}
out:
	job_free(&j, ws, nws);
	free(all);
	free(qp);
	free(qn);
	return r;
}

/* ---- query files ------------------------------------------------------------ */

bool vv_vectors_nonfinite(const float *v, size_t n, uint32_t dim, size_t *row, uint32_t *col)
{
	for (size_t i = 0; i < n; i++)
		for (uint32_t t = 0; t < dim; t++)
			if (!isfinite(v[i * dim + t])) {
				*row = i;
				*col = t;
				return true;
			}
	return false;
}

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
	if ((r = load_file(path, &base, &len, &mapped, NULL, &why)) < 0) {
		seterr(err, errlen, "%s: %s", path, why);
		goto out;
	}
	if ((r = vv_segment_probe(name, base, len < VV_VEC_PROBE_LEN ? len : VV_VEC_PROBE_LEN, len,
				  &si, &why)) < 0) {
		seterr(err, errlen, "%s: %s", path, why);
		goto out;
	}
	if (si.count > SIZE_MAX / 4 / si.dim || !(v = malloc(si.count * si.dim * sizeof(float) + 1))) {
		r = VV_ENOMEM;
		seterr(err, errlen, "%s: out of memory", path);
		goto out;
	}
	for (uint64_t i = 0; i < si.count; i++) {
		const uint8_t *p = base + si.data_off + i * si.stride;
		if (si.format != VV_SEG_NPY && vv_get_le32(p - 4) != si.dim) {
			r = VV_ECORRUPT;
			seterr(err, errlen, "%s: row %llu has dimension word %u, expected %u", path,
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
