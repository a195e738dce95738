/*
 * knn_ioc.c - the one check of a query offload request (knn_ioctl.h).
 *
 * The ioctl buffer comes from any process that can open a segment through
 * the mount for reading, so its header is untrusted: nothing is decrypted,
 * allocated or scanned before it passed here.  Pure functions, no vault
 * state, so the daemon (vault_knn.c) and the fuzzer (tests/fuzz/fuzz_knn.c)
 * run the same code.
 */
#include <stddef.h>

#include "vecvault/error.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/vector.h"

/* The fields first, then the queries they announce (nq * dim floats, inside
 * the payload once the header passed): a NaN or infinite query has no
 * nearest neighbours, so it is refused rather than answered with nothing. */
int vv_knn_request_check(const struct vv_knn_ioc *io)
{
	const struct vv_knn_ioc_hdr *h = &io->h;
	size_t row;
	uint32_t col;

	if (h->magic != VV_KNN_MAGIC || h->version != VV_KNN_VERSION)
		return VV_EINVAL;
	/* unknown flags are refused, so a later flag is never silently ignored
	 * by this daemon (version 1 daemons ignored the whole field) */
	if ((h->flags & ~VV_KNN_F_EXACT) || h->pad)
		return VV_EINVAL;
	if (h->metric != VV_METRIC_L2 && h->metric != VV_METRIC_IP && h->metric != VV_METRIC_COSINE)
		return VV_EINVAL;
	if (h->format != VV_SEG_FVECS && h->format != VV_SEG_BVECS && h->format != VV_SEG_IVECS &&
	    h->format != VV_SEG_NPY)
		return VV_EINVAL;
	if (!h->dim || !h->nq || !h->kk || h->kk > VV_VEC_MAX_K + 1024)
		return VV_EINVAL;
	if ((uint64_t)h->nq * h->dim > VV_KNN_MAX_FLOATS || (uint64_t)h->nq * h->kk > VV_KNN_MAX_CANDS)
		return VV_E2BIG;
	if (vv_vectors_nonfinite(io->u.q, h->nq, h->dim, &row, &col))
		return VV_EINVAL;
	return 0;
}

/* The per-row term matters for small dims: 16M rows of dim 4 x 32 queries
 * are only 2^31 multiply-adds but took 4.6 s.  Computed in 64 bits, so no
 * header value wraps it (a checked header keeps nq * dim small anyway). */
int vv_knn_work_check(const struct vv_knn_ioc_hdr *h, uint64_t rows)
{
	uint64_t per_row = (uint64_t)h->nq * ((uint64_t)h->dim + VV_KNN_ROW_COST);

	return rows && per_row > VV_KNN_WORK_MAX / rows ? VV_E2BIG : 0;
}
