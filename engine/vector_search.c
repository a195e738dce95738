/*
 * vector_search.c - exact k-NN over a collection the tool opened
 * (vector_open.c).
 *
 * Search: large segments on a vecvault mount are offered to the daemon
 * (knn_ioctl.h, vector_offload.c); the rest go to the scan (vector_scan.c), the same one the
 * daemon runs.  Each thread keeps a few spare candidates past k; at the end
 * their distances are recomputed in double precision from the rows and
 * re-sorted by (distance, segment, row), so float rounding can only change
 * which id is reported where distances tie within ~1e-6 relative
 * (docs/query.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "vecvault/log.h"
#include "vector_int.h"

#define SPARE 16u                /* extra candidates kept past k */

/* ---- search --------------------------------------------------------------- */

/* Exact distance in double precision between row (seg, r) and query q into
 * *out (vv_row_dist, the daemon's exact replies use it too).  The row comes
 * from the segment's mapping, or for a segment kept unmapped (small ones)
 * by one pread into raw (d * 4 bytes); buf holds d floats.  0, or a read
 * error's VV_E* code. */
static int exact_dist(const struct vv_collection *c, enum vv_metric m, uint32_t seg, uint64_t r,
		      const float *q, size_t d, uint8_t *raw, float *buf, int *rfd, double *out,
		      const char **why)
{
	const struct vv_cseg *s = &c->segs[seg];
	uint64_t off = s->pub.info.data_off + r * s->pub.info.stride;
	const uint8_t *p = s->base ? s->base + off : raw;
	int e;

	if (!s->base) {
		/* a segment opened without keeping its descriptor (past the
		 * budget, or read whole by the scan) is opened again, once
		 * per search while the budget allows (rfd[seg]) */
		int fd = s->fd >= 0 ? s->fd : rfd[seg];
		/* the name may lead elsewhere now (renamed over, a symlink or
		 * FIFO swapped in): rows of another file would get this
		 * segment's distances; vv_seg_reopen refuses any file but the
		 * one opened first */
		if (fd < 0 && (fd = vv_seg_reopen(c->io->dirfd, s->name, &s->id, why)) < 0)
			return fd;
		if (fd != s->fd && rfd[seg] < 0 && vv_coll_fd_take(c->io))
			rfd[seg] = fd;
		e = vv_coll_pread(fd, raw, d * vv_dtype_size(s->pub.info.dtype), off, why);
		if (fd != s->fd && fd != rfd[seg])
			close(fd);
		if (e < 0)
			return e;
	}
	*out = vv_row_dist(m, s->pub.info.dtype, p, q, d, buf);
	return 0;
}

static int dcand_cmp(const void *a, const void *b)
{
	const struct vv_dcand *x = a, *y = b;

	if (x->d != y->d)
		return x->d < y->d ? -1 : 1;
	if (x->seg != y->seg)
		return x->seg < y->seg ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

int vv_collection_search(struct vv_collection *c, const float *queries, size_t nq,
			 const struct vv_search_opts *o, struct vv_hit *hits,
			 char *err, size_t errlen)
{
	struct vv_scan sc;
	struct vv_scan_seg *ss = NULL;
	enum vv_metric metric;
	float *rowbuf = NULL;
	uint8_t *rowraw = NULL;
	struct vv_dcand *dc = NULL;
	struct vv_offload off = { 0 }, dirs = { 0 };
	int *rfd = NULL;
	size_t nrfd = 0;
	size_t d = c->schema.dim;
	uint32_t k = o->k, kk = k + SPARE;
	int r = 0;

	memset(&sc, 0, sizeof(sc));
	if (o->stats)
		memset(o->stats, 0, sizeof(*o->stats));
	for (size_t s = 0; s < c->nsegs; s++)
		c->segs[s].offloaded = false;
	if (k == 0 || k > VV_VEC_MAX_K || d == 0) {
		r = VV_EINVAL;
		if (d == 0)
			vv_coll_seterr(err, errlen, "%s: collection has no segments and no dimension", c->dir);
		else
			vv_coll_seterr(err, errlen, "k must be 1..%u", VV_VEC_MAX_K);
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
			vv_coll_seterr(err, errlen, "query row %zu column %u is %s: queries must be finite "
			       "numbers (rows and columns count from 0)", qr, qc,
			       isnan(queries[qr * d + qc]) ? "NaN" : "infinite");
			goto out;
		}
	}
	metric = o->metric != VV_METRIC_NONE ? o->metric : c->schema.metric;
	if (!(rowbuf = malloc(d * sizeof(float))) || !(rowraw = malloc(d * sizeof(float))) ||
	    !(ss = malloc((c->nsegs ? c->nsegs : 1) * sizeof(*ss)))) {
		r = VV_ENOMEM;
		goto out;
	}

	c->check_failed = false;
	/* a local mount's deferred segments: the daemon scans what it may
	 * unopened, the rest open now; segments a directory request served
	 * in an earlier search are opened now.  When the daemon may scan
	 * none of them (no offload, or a batch that fits neither request),
	 * they stay deferred: the scan opens them ahead of itself
	 * (vv_coll_pending_scan) */
	if (c->pending && c->dirserve &&
	    !(o->no_offload ||
	      (!vv_coll_dir_batch_fits(c, nq, kk) && !vv_coll_offload_batch_fits(c, nq, kk))))
		r = vv_coll_dir_open(c, queries, nq, metric, kk, o, &dirs, &c->check_failed, err,
				     errlen);
	else if (!c->pending)
		r = vv_coll_open_served(c, err, errlen);
	if (r < 0)
		goto out;
	if ((r = vv_coll_offload(c, queries, nq, metric, kk, o, &off)) < 0)
		goto out;

	for (size_t s = 0; s < c->nsegs; s++) {
		const struct vv_cseg *cs = &c->segs[s];
		ss[s] = (struct vv_scan_seg){ .info = cs->pub.info, .base = cs->base, .stream = cs->stream,
					      .fd = cs->fd, .dirfd = c->io->dirfd, .name = cs->name,
					      .id = &cs->id, .skip = cs->offloaded || cs->dirserved };
	}
	sc = (struct vv_scan){ .segs = ss, .nsegs = c->nsegs, .metric = metric, .queries = queries,
			       .nq = nq, .d = d, .kk = kk, .threads = o->threads,
			       .unit_bytes = o->unit_bytes, .progress = o->progress,
			       .progress_ctx = o->progress_ctx };
	if (c->pending) {
		r = vv_coll_pending_scan(c, &sc, ss, &c->check_failed, err, errlen);
		if (o->stats) {
			o->stats->ahead_opened = (uint32_t)c->nahead;
			o->stats->ahead_scanned = (uint32_t)c->nahead_fed;
			o->stats->bulk_read = (uint32_t)c->nbulk;
			o->stats->bulk_requests = (uint32_t)c->nbulk_req;
		}
	} else {
		r = vv_scan_run(&sc);
	}
	if (r < 0) {
		const char *name = c->nsegs ? c->segs[sc.err_seg].name : "";
		if (c->check_failed)
			goto out;
		if (r == VV_ECORRUPT)
			vv_coll_seterr(err, errlen, "%s/%s: row %llu has dimension word %u, expected %zu",
			       c->dir, name, (unsigned long long)sc.err_row, sc.err_dim, d);
		else if (sc.err_short)
			vv_coll_seterr(err, errlen, "%s/%s: file shrank since the collection was opened "
			       "(%llu bytes then; it ends before its rows)", c->dir, name,
			       (unsigned long long)c->segs[sc.err_seg].pub.file_size);
		else if (sc.err_changed)
			vv_coll_seterr(err, errlen, "%s/%s: %s", c->dir, name, VV_SEG_CHANGED);
		else if (sc.err_errno)
			vv_coll_seterr(err, errlen, "%s/%s: %s", c->dir, name, strerror(sc.err_errno));
		goto out;
	}
	if (!(dc = malloc((sc.ncap + off.ocap + dirs.ocap) * sizeof(*dc) + 1)) ||
	    !(rfd = malloc((c->nsegs ? c->nsegs : 1) * sizeof(*rfd)))) {
		r = VV_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < c->nsegs; i++)
		rfd[i] = -1;
	nrfd = c->nsegs;
	for (size_t q = 0; q < nq; q++) {
		size_t n = 0, nscan, m = off.on ? off.on[q] : 0, md = dirs.on ? dirs.on[q] : 0;
		/* the scan's candidates, then the daemon's (single segments,
		 * then directory requests): re-ranked in double (the daemon's
		 * exact ones came with their distance) */
		for (size_t i = 0; i < sc.ncand[q]; i++) {
			const struct vv_cand *cd = sc.cand + q * sc.ncap + i;
			dc[n] = (struct vv_dcand){ NAN, cd->seg, cd->row };
			n++;
		}
		nscan = n;
		if (m)
			memcpy(dc + n, off.oc + q * off.ocap, m * sizeof(*dc));
		n += m;
		if (md)
			memcpy(dc + n, dirs.oc + q * dirs.ocap, md * sizeof(*dc));
		n += md;
		for (size_t i = 0; i < n; i++) {
			if (!isnan(dc[i].d)) {
				if (o->stats)
					o->stats->cands_exact++;
				continue;
			}
			/* a segment read in bulk: its distance from the scan */
			if (i < nscan && !isnan(dc[i].d = vv_scan_exact(&sc, (uint32_t)q, dc[i].seg,
									 dc[i].row)))
				continue;
			const char *why = NULL;
			if ((r = exact_dist(c, metric, dc[i].seg, dc[i].row, queries + q * d, d,
					    rowraw, rowbuf, rfd, &dc[i].d, &why)) < 0) {
				vv_coll_seterr(err, errlen, "%s/%s: re-ranking row %llu: %s", c->dir,
				       c->segs[dc[i].seg].name, (unsigned long long)dc[i].row,
				       why ? why : vv_strerror(r));
				goto out;
			}
			if (o->stats)
				o->stats->rows_read_back++;
		}
		qsort(dc, n, sizeof(*dc), dcand_cmp);
		for (size_t i = 0; i < n && i < k; i++) {
			struct vv_hit *h = &hits[q * k + i];
			const struct vv_cseg *s = &c->segs[dc[i].seg];
			h->dist = dc[i].d;
			h->seg = dc[i].seg;
			h->row = dc[i].row;
			h->id = s->pub.has_ids ? (int64_t)vv_get_le64(s->ids_base + s->ids_off + 8 * dc[i].row)
					       : (int64_t)(s->pub.first_row + dc[i].row);
		}
	}
out:
	for (size_t i = 0; i < nrfd; i++)
		if (rfd[i] >= 0) {
			close(rfd[i]);
			atomic_fetch_sub(&c->io->fds, 1);
		}
	free(rfd);
	vv_scan_release(&sc);
	free(ss);
	free(dc);
	free(rowbuf);
	free(rowraw);
	vv_offload_release(&off);
	vv_offload_release(&dirs);
	return r;
}

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
