/*
 * knn_ioc.c - the one check of a query offload request (knn_ioctl.h).
 *
 * The ioctl buffer comes from any process that can open a segment through
 * the mount for reading, so its header is untrusted: nothing is decrypted,
 * allocated or scanned before it passed here.  Pure functions, no vault
 * state, so the daemon (vault_knn.c) and the fuzzer (tests/fuzz/fuzz_knn.c)
 * run the same code.
 */
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "knn_int.h"
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

static int names_check(const uint8_t *p, uint32_t len, uint32_t nnames);

/* The directory request (knn_ioctl.h "the directory request"): the header's
 * fields, then the sizes both ways inside the payload, then the queries,
 * then the names area, walked once.  Every bound is checked in 64 bits
 * before an offset into io->u is formed, so nothing past VV_KNN_IOC_BYTES
 * is read whatever the header claims. */
int vv_knn_dir_request_check(const struct vv_knn_dir_ioc *io)
{
	const struct vv_knn_dir_hdr *h = &io->h;
	uint64_t qbytes, out;
	size_t row;
	uint32_t col;

	if (h->magic != VV_KNN_DIR_MAGIC || h->version != VV_KNN_DIR_VERSION || h->flags)
		return VV_EINVAL;
	if (h->metric != VV_METRIC_L2 && h->metric != VV_METRIC_IP && h->metric != VV_METRIC_COSINE)
		return VV_EINVAL;
	if (h->format != VV_SEG_FVECS && h->format != VV_SEG_BVECS && h->format != VV_SEG_IVECS &&
	    h->format != VV_SEG_NPY)
		return VV_EINVAL;
	if (h->dtype < VV_DT_F32 || h->dtype > VV_DT_I64)
		return VV_EINVAL;
	if (!h->dim || !h->nq || !h->kk || h->kk > VV_VEC_MAX_K + 1024)
		return VV_EINVAL;
	if (!h->nnames || h->nnames > VV_KNN_DIR_MAX_NAMES)
		return VV_EINVAL;
	qbytes = (uint64_t)h->nq * h->dim * sizeof(float);
	out = (uint64_t)h->nnames * sizeof(struct vv_knn_dir_stat) +
	      (uint64_t)h->nq * h->kk * sizeof(struct vv_knn_dir_cand);
	if (qbytes + h->names_len > VV_KNN_DIR_PAYLOAD || out > VV_KNN_DIR_PAYLOAD)
		return VV_E2BIG;
	if (vv_vectors_nonfinite((const float *)(const void *)io->u, h->nq, h->dim, &row, &col))
		return VV_EINVAL;
	return names_check(io->u + qbytes, h->names_len, h->nnames);
}

/* Exactly nnames names fill exactly len bytes at p: each 1 .. NAME_MAX
 * bytes, no '/', not "." or "..", then its NUL.  The caller checked that
 * the len bytes lie inside its buffer. */
static int names_check(const uint8_t *p, uint32_t len, uint32_t nnames)
{
	const uint8_t *end = p + len;
	uint32_t names = 0;

	while (p < end) {
		const uint8_t *s = p;
		while (p < end && *p && *p != '/')
			p++;
		if (p == end || *p == '/')
			return VV_EINVAL;            /* a '/' or no NUL before the end */
		if (p == s || p - s > (ptrdiff_t)VV_KNN_DIR_NAME_MAX)
			return VV_EINVAL;
		if (s[0] == '.' && (p - s == 1 || (p - s == 2 && s[1] == '.')))
			return VV_EINVAL;
		if (++names > nnames)
			return VV_EINVAL;
		p++;
	}
	return names == nnames ? 0 : VV_EINVAL;
}

/* The bulk read (knn_ioctl.h "the bulk read"): the header's fields, the
 * span of slots in 64 bits, then the names. */
int vv_bulk_request_check(const struct vv_bulk_ioc *io)
{
	const struct vv_bulk_hdr *h = &io->h;

	if (h->magic != VV_BULK_MAGIC || h->version != VV_BULK_VERSION || h->flags || h->pad ||
	    h->memfd < 0)
		return VV_EINVAL;
	if (!h->nnames || h->nnames > VV_BULK_MAX_NAMES || h->slot < VV_BULK_SLOT_MIN ||
	    h->slot > VV_BULK_SLOT_MAX)
		return VV_EINVAL;
	if (h->names_len > VV_BULK_PAYLOAD || (uint64_t)h->nnames * h->slot > VV_BULK_SPAN_MAX ||
	    h->off > UINT64_MAX - (uint64_t)h->nnames * h->slot)
		return VV_E2BIG;
	return names_check(io->u, h->names_len, h->nnames);
}
