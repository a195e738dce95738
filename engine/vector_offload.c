/*
 * vector_offload.c - the query offload (knn_ioctl.h): large segments of a
 * collection on a vecvault mount are scanned by the daemon that holds them
 * (one ioctl on the open segment per group of queries), which answers with
 * each query's best rows and, since reply version 2, their exact
 * distances.  Every reply is checked before its candidates count: a daemon
 * or vv:// server that answers nonsense gets its reply thrown away and the
 * segment is scanned by the tool (vector_search.c).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vecvault/knn_ioctl.h"
#include "vecvault/log.h"
#include "vector_int.h"

#define OFFLOAD_MIN_BYTES (1u << 20) /* smaller segments are not offloaded */
#define OFFLOAD_MAX_REQS 8u      /* vv://: a batch needing more requests per segment is scanned here */
#define OFFLOAD_CAND_BYTES (64u << 20) /* the daemon's candidates kept at once; more segments
					  than fit are scanned here */

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static bool offload_allowed(const struct vv_search_opts *o)
{
	return !o->no_offload;
}

/* Smallest segment worth an offload request.  Each request is a FUSE round
 * trip in which the daemon starts its scan threads; below this size
 * scanning the page-cache copy here is cheaper (docs/query.md gives the
 * measured crossover).  o->offload_min_bytes overrides it. */
static uint64_t offload_min_bytes(const struct vv_search_opts *o)
{
	return o->offload_min_set ? o->offload_min_bytes : OFFLOAD_MIN_BYTES;
}

/* Is the exact reply io (version 2) for segment s sane?  Per query: rows
 * within the segment, each at most once; finite distances in the metric's
 * range; sorted by (distance, row); unused slots only after the used ones.
 * NULL, or what is wrong.  A daemon or vv:// server that fails this gets
 * its reply thrown away: the segment is scanned here. */
static const char *exact_reply_bad(const struct vv_cseg *s, enum vv_metric m, const struct vv_knn_ioc *io,
				   size_t nq, uint32_t kk, uint64_t *rows)
{
	uint64_t count = s->pub.info.count;

	for (size_t q = 0; q < nq; q++) {
		const struct vv_knn_ioc_xcand *x = io->u.x + q * kk;
		size_t n = 0;
		while (n < kk && x[n].row != VV_KNN_NO_ROW)
			n++;
		for (size_t i = n; i < kk; i++)
			if (x[i].row != VV_KNN_NO_ROW)
				return "a candidate after an unused slot";
		for (size_t i = 0; i < n; i++) {
			double d = x[i].d;
			if (x[i].row >= count)
				return "a row past the segment's end";
			if (!isfinite(d))
				return "a distance that is not a finite number";
			if ((m == VV_METRIC_L2 && d < 0) ||
			    (m == VV_METRIC_COSINE && (d < -1e-6 || d > 2 + 1e-6)))
				return "a distance out of the metric's range";
			if (i && (x[i - 1].d > d || (x[i - 1].d == d && x[i - 1].row >= x[i].row)))
				return "candidates not sorted by (distance, row)";
			rows[i] = x[i].row;
		}
		/* no row twice (sorted by distance, a row could repeat apart) */
		if (n > 1) {
			qsort(rows, n, sizeof(*rows), u64_cmp);
			for (size_t i = 1; i < n; i++)
				if (rows[i] == rows[i - 1])
					return "a row named twice";
		}
	}
	return NULL;
}

/* Ask the daemon behind streamed segment s (a FUSE file we hold open for
 * reading) to scan it for queries q0 .. q0+nq: the kk best rows per query
 * come back as candidates of segment `seg` appended to oc[q * ocap +
 * on[q]], with their exact distance when the daemon computed it (reply
 * version 2), else NAN (re-ranked here from the row).  false (the caller
 * scans the segment itself; what this call appended must be dropped) when
 * the file system does not answer, the request does not fit one ioctl, or
 * the reply is not sane. */
static bool offload_seg(const struct vv_cseg *s, uint32_t seg, enum vv_metric m, const float *queries,
			size_t q0, size_t nq, size_t d, uint32_t kk, unsigned threads,
			struct vv_knn_ioc *io, uint64_t *rows, struct vv_dcand *oc, size_t ocap, size_t *on,
			bool *filling, bool *exact)
{
	const char *bad = NULL;

	*exact = false;
	if (nq * d > VV_KNN_MAX_FLOATS || nq * kk > VV_KNN_MAX_CANDS)
		return false;
	memset(&io->h, 0, sizeof(io->h));
	io->h.magic = VV_KNN_MAGIC;
	io->h.version = VV_KNN_VERSION;
	io->h.flags = VV_KNN_F_EXACT;
	io->h.metric = (uint32_t)m;
	io->h.dim = (uint32_t)d;
	io->h.nq = (uint32_t)nq;
	io->h.kk = kk;
	io->h.threads = threads;
	io->h.format = (uint32_t)s->pub.info.format;
	memcpy(io->u.q, queries + q0 * d, nq * d * sizeof(float));
	if (ioctl(s->fd, VV_IOC_KNN, io) < 0) {
		*filling = errno == EAGAIN;
		vv_log(VV_LOG_DEBUG, "knn: %s: no offload: %s", s->name, strerror(errno));
		return false;
	}
	if (io->h.magic != VV_KNN_MAGIC_REPLY || io->h.rows != s->pub.info.count) {
		vv_log(VV_LOG_DEBUG, "knn: %s: no offload: unexpected reply", s->name);
		return false;
	}
	/* version 2 (exact) only as asked; version 1: a daemon that predates
	 * exact replies ignored the flag, and we re-rank from the rows */
	*exact = io->h.version == VV_KNN_VERSION_EXACT;
	if (*exact ? io->h.flags != VV_KNN_F_EXACT || io->h.nq != nq || io->h.kk != kk
		   : io->h.version != VV_KNN_VERSION)
		bad = "a reply header that does not match the request";
	else if (*exact)
		bad = exact_reply_bad(s, m, io, nq, kk, rows);
	else
		for (size_t i = 0; i < nq * kk && !bad; i++)
			if (io->u.c[i].row != VV_KNN_NO_ROW && io->u.c[i].row >= s->pub.info.count)
				bad = "a row past the segment's end";
	if (bad) {
		vv_log(VV_LOG_WARN, "knn: %s: the daemon's offload reply has %s; scanning it here "
		       "instead", s->name, bad);
		return false;
	}
	for (size_t q = 0; q < nq; q++)
		for (size_t i = 0; i < kk; i++) {
			struct vv_dcand *o = &oc[(q0 + q) * ocap + on[q0 + q]];
			if (*exact) {
				const struct vv_knn_ioc_xcand *x = &io->u.x[q * kk + i];
				if (x->row == VV_KNN_NO_ROW)
					break;
				*o = (struct vv_dcand){ x->d, seg, x->row };
			} else {
				const struct vv_knn_ioc_cand *c = &io->u.c[q * kk + i];
				if (c->row == VV_KNN_NO_ROW)
					continue;
				*o = (struct vv_dcand){ NAN, seg, c->row };
			}
			on[q0 + q]++;
		}
	return true;
}

/* Queries per offload request for segment s, 0 when none fits: the
 * request's floats, the reply's candidates and the daemon's work budget
 * (knn_ioctl.h) bound it.  On a vv:// mount (remote) a batch is split into
 * requests of about equal size, at most OFFLOAD_MAX_REQS of them per
 * segment: a local scan would pull every byte over the network.  On a
 * local mount a batch that does not fit one request is scanned here: the
 * daemon's single-threaded passes (one per request) cost more than the
 * tool's own threads and BLAS over the page cache (docs/query.md). */
static size_t offload_group(const struct vv_cseg *s, size_t nq, size_t d, uint32_t kk, bool remote)
{
	uint64_t rows = s->pub.info.count, g = VV_KNN_MAX_FLOATS / d, nreq;

	if (VV_KNN_MAX_CANDS / kk < g)
		g = VV_KNN_MAX_CANDS / kk;
	if (rows && VV_KNN_WORK_MAX / (rows * (d + VV_KNN_ROW_COST)) < g)
		g = VV_KNN_WORK_MAX / (rows * (d + VV_KNN_ROW_COST));
	if (g == 0)
		return 0;
	nreq = (nq + g - 1) / g;
	if (nreq > (remote ? OFFLOAD_MAX_REQS : 1))
		return 0;
	return (size_t)((nq + nreq - 1) / nreq);
}

/* vector_int.h */
bool vv_coll_offload_batch_fits(const struct vv_collection *c, size_t nq, uint32_t kk)
{
	size_t d = c->schema.dim;

	return d && kk &&
	       nq <= (c->io->dir_remote ? OFFLOAD_MAX_REQS : 1) *
			     (VV_KNN_MAX_FLOATS / d < VV_KNN_MAX_CANDS / kk ? VV_KNN_MAX_FLOATS / d
									  : VV_KNN_MAX_CANDS / kk);
}

/* vector_int.h.  Segments on a vecvault mount: the daemon scans the large
 * ones, a batch in as many requests as it takes (offload_group). */
int vv_coll_offload(struct vv_collection *c, const float *queries, size_t nq, enum vv_metric m,
		    uint32_t kk, const struct vv_search_opts *o, struct vv_offload *out)
{
	struct vv_knn_ioc *io = NULL;
	uint64_t *xrows = NULL;
	size_t d = c->schema.dim, nstream = 0, omax = 0, noff = 0, *on = NULL, *on0 = NULL, ocap;
	uint64_t omin = offload_min_bytes(o);
	int r = 0;

	memset(out, 0, sizeof(*out));
	for (size_t s = 0; s < c->nsegs; s++)
		nstream += c->segs[s].stream && c->segs[s].fuse && c->segs[s].len >= omin;
	/* a batch beyond what the requests of one segment may carry, or
	 * candidates beyond OFFLOAD_CAND_BYTES, are not (all) offloaded */
	if (!nstream || !offload_allowed(o) || !vv_coll_offload_batch_fits(c, nq, kk) ||
	    (omax = OFFLOAD_CAND_BYTES / (nq * kk * sizeof(*out->oc))) == 0)
		return 0;
	if (omax > nstream)
		omax = nstream;
	ocap = omax * kk;
	if (!(io = malloc(sizeof(*io))) || !(out->oc = malloc(nq * ocap * sizeof(*out->oc))) ||
	    !(on = out->on = calloc(nq, sizeof(*on))) || !(on0 = malloc(nq * sizeof(*on0))) ||
	    !(xrows = malloc(kk * sizeof(*xrows)))) {
		r = VV_ENOMEM;
		goto out;
	}
	out->ocap = ocap;
	for (size_t s = 0; s < c->nsegs; s++) {
		struct vv_cseg *cs = &c->segs[s];
		bool filling = false, exact = false, ok = true;
		size_t g, q0, nreq = 0;
		if (noff == omax)
			break;           /* the rest are scanned here */
		if (!cs->stream || !cs->fuse || cs->len < omin ||
		    !(g = offload_group(cs, nq, d, kk, c->io->dir_remote)))
			continue;
		memcpy(on0, on, nq * sizeof(*on));
		for (q0 = 0; ok && q0 < nq; q0 += g, nreq++) {
			size_t gn = nq - q0 < g ? nq - q0 : g;
			ok = offload_seg(cs, (uint32_t)s, m, queries, q0, gn, d, kk, o->threads, io, xrows,
					 out->oc, ocap, on, &filling, &exact);
		}
		if (!ok) {
			/* scanned here for all its queries: drop what came */
			memcpy(on, on0, nq * sizeof(*on));
			if (o->stats)
				o->stats->segs_filling += filling;
			continue;
		}
		cs->offloaded = true;
		noff++;
		if (o->stats) {
			o->stats->segs_offloaded++;
			o->stats->rows_offloaded += cs->pub.info.count;
			o->stats->offload_requests += (uint32_t)nreq;
		}
	}
out:
	if (r < 0)
		vv_offload_release(out);
	free(io);
	free(on0);
	free(xrows);
	return r;
}

void vv_offload_release(struct vv_offload *out)
{
	free(out->oc);
	free(out->on);
	memset(out, 0, sizeof(*out));
}
