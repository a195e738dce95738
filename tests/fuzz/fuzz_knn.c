/*
 * fuzz_knn.c - libFuzzer target for the query offload's request check
 * (engine/knn_ioc.c: vv_knn_request_check, vv_knn_work_check; the one
 * check vv_vault_knn runs before it reads, allocates or decrypts anything).
 *
 * Untrusted bytes: the VV_IOC_KNN ioctl buffer (knn_ioctl.h), header and
 * query floats, from any process that can open a segment through the
 * mount for reading.  The input is copied over a zeroed struct vv_knn_ioc
 * (at most VV_KNN_IOC_BYTES; run with -max_len=16320 to reach them all).
 * Invariants asserted (abort() on violation):
 *   - the result equals an independent model of the documented rules:
 *     magic, version, metric (L2/IP/COSINE), format (FVECS/BVECS/IVECS/
 *     NPY), 1 <= dim, 1 <= nq, 1 <= kk <= VV_VEC_MAX_K + 1024 (VV_EINVAL),
 *     nq * dim floats and nq * kk candidates inside the payload (VV_E2BIG),
 *     every query float finite (VV_EINVAL);
 *   - so anything accepted has its nq * dim floats inside the buffer, all
 *     finite, and the candidates it asks for fit the reply;
 *   - the work check, for the header's rows field as the segment's row
 *     count, refuses exactly when rows * nq * (dim + 32) > 2^31 (computed
 *     here in 128 bits).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vecvault/error.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/vector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int model(const struct vv_knn_ioc *io)
{
	const struct vv_knn_ioc_hdr *h = &io->h;
	unsigned __int128 floats = (unsigned __int128)h->nq * h->dim;
	unsigned __int128 cands = (unsigned __int128)h->nq * h->kk;

	if (h->magic != VV_KNN_MAGIC || h->version != VV_KNN_VERSION)
		return VV_EINVAL;
	if (h->flags > VV_KNN_F_EXACT || h->pad != 0)
		return VV_EINVAL;
	if (h->metric < 1 || h->metric > 3 || h->format < 1 || h->format > 4)
		return VV_EINVAL;
	if (h->dim == 0 || h->nq == 0 || h->kk == 0 || h->kk > VV_VEC_MAX_K + 1024)
		return VV_EINVAL;
	if (sizeof(struct vv_knn_ioc_hdr) + floats * sizeof(float) > VV_KNN_IOC_BYTES ||
	    sizeof(struct vv_knn_ioc_hdr) + cands * sizeof(struct vv_knn_ioc_cand) > VV_KNN_IOC_BYTES)
		return VV_E2BIG;
	for (size_t i = 0; i < (size_t)floats; i++)
		if (!isfinite(io->u.q[i]))
			return VV_EINVAL;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vv_knn_ioc io;
	int want, r;

	memset(&io, 0, sizeof(io));
	memcpy(&io, data, size < sizeof(io) ? size : sizeof(io));
	want = model(&io);
	r = vv_knn_request_check(&io);
	if (r != want)
		abort();
	if (r == 0) {
		unsigned __int128 work = (unsigned __int128)io.h.rows * io.h.nq *
					 ((uint64_t)io.h.dim + VV_KNN_ROW_COST);
		int w = vv_knn_work_check(&io.h, io.h.rows);

		if ((w == 0) != (work <= VV_KNN_WORK_MAX) || (w != 0 && w != VV_E2BIG))
			abort();
	}
	return 0;
}
