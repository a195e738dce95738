/*
 * fuzz_knn_dir.c - libFuzzer target for the query offload's directory
 * request (knn_ioctl.h "the directory request"): the check the daemon
 * runs before it looks up a name (engine/knn_ioc.c
 * vv_knn_dir_request_check) and the merge of one file's candidates into
 * the reply (vv_knn_dir_merge).
 *
 * Untrusted bytes: the VV_IOC_KNN_DIR ioctl buffer, header, query floats
 * and names, from any process that can open a directory through the mount.
 * The input's first VV_KNN_IOC_BYTES are copied over a zeroed struct
 * vv_knn_dir_ioc (run with -max_len=16400 to reach them all and the merge
 * bytes after them).  Invariants asserted (abort() on violation):
 *   - the check equals an independent model of the documented rules
 *     (fields, then the sizes both ways in 128 bits, then finiteness,
 *     then the names area split with memchr);
 *   - anything accepted has its names inside the area and the area inside
 *     the payload, and the reply it asks for fits;
 *   - the merge, for two candidate lists built from the bytes after the
 *     buffer (sorted as the scan gives them), yields exactly the kk best of
 *     their union by (distance, name, row), unused slots last.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "knn_int.h"
#include "vecvault/error.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/vector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int model(const struct vv_knn_dir_ioc *io)
{
	const struct vv_knn_dir_hdr *h = &io->h;
	unsigned __int128 in = (unsigned __int128)h->nq * h->dim * 4 + h->names_len;
	unsigned __int128 out = (unsigned __int128)h->nnames * 16 + (unsigned __int128)h->nq * h->kk * 24;
	const uint8_t *p, *end;
	uint32_t n = 0;

	if (h->magic != VV_KNN_DIR_MAGIC || h->version != VV_KNN_DIR_VERSION || h->flags != 0)
		return VV_EINVAL;
	if (h->metric < 1 || h->metric > 3 || h->format < 1 || h->format > 4 || h->dtype < 1 ||
	    h->dtype > 6)
		return VV_EINVAL;
	if (h->dim == 0 || h->nq == 0 || h->kk == 0 || h->kk > VV_VEC_MAX_K + 1024 ||
	    h->nnames == 0 || h->nnames > 256)
		return VV_EINVAL;
	if (in > VV_KNN_DIR_PAYLOAD || out > VV_KNN_DIR_PAYLOAD)
		return VV_E2BIG;
	for (size_t i = 0; i < (size_t)h->nq * h->dim; i++) {
		float f;
		memcpy(&f, io->u + i * 4, 4);
		if (!isfinite(f))
			return VV_EINVAL;
	}
	p = io->u + (size_t)h->nq * h->dim * 4;
	end = p + h->names_len;
	while (p < end) {
		const uint8_t *z = memchr(p, 0, (size_t)(end - p));
		size_t l;
		if (!z)
			return VV_EINVAL;
		l = (size_t)(z - p);
		if (l == 0 || l > 255 || memchr(p, '/', l) || (l == 1 && p[0] == '.') ||
		    (l == 2 && p[0] == '.' && p[1] == '.'))
			return VV_EINVAL;
		n++;
		p = z + 1;
	}
	return n == h->nnames ? 0 : VV_EINVAL;
}

static int cand_cmp(const void *a, const void *b)
{
	const struct vv_knn_dir_cand *x = a, *y = b;
	bool ux = x->row == VV_KNN_NO_ROW, uy = y->row == VV_KNN_NO_ROW;

	if (ux || uy)
		return ux - uy;
	if (x->d != y->d)
		return x->d < y->d ? -1 : 1;
	if (x->name != y->name)
		return x->name < y->name ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

static int xcand_cmp(const void *a, const void *b)
{
	const struct vv_knn_ioc_xcand *x = a, *y = b;
	bool ux = x->row == VV_KNN_NO_ROW, uy = y->row == VV_KNN_NO_ROW;

	if (ux || uy)
		return ux - uy;
	if (x->d != y->d)
		return x->d < y->d ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

/* Two lists of kk (<= 16) from bytes: small distances (many ties), some
 * unused slots; best as names 0..2, one as name 3. */
static void merge_check(const uint8_t *b, size_t n)
{
	struct vv_knn_dir_cand best[16], tmp[16], all[32];
	struct vv_knn_ioc_xcand one[16];
	uint32_t kk;
	size_t na = 0;

	if (n < 1)
		return;
	kk = (uint32_t)(b[0] % 16) + 1;
	b++;
	n--;
	for (uint32_t i = 0; i < kk; i++) {
		uint8_t x = i < n ? b[i] : 0, y = kk + i < n ? b[kk + i] : 0;
		best[i] = (struct vv_knn_dir_cand){ (double)(x % 8), x % 3, 0,
						    x >= 200 ? VV_KNN_NO_ROW : (uint64_t)(x % 5) };
		one[i] = (struct vv_knn_ioc_xcand){ (double)(y % 8), y >= 200 ? VV_KNN_NO_ROW : (uint64_t)(y % 7) };
		if (best[i].row == VV_KNN_NO_ROW)
			best[i].name = VV_KNN_DIR_NO_NAME;
	}
	qsort(best, kk, sizeof(*best), cand_cmp);
	qsort(one, kk, sizeof(*one), xcand_cmp);
	for (uint32_t i = 0; i < kk; i++) {
		if (best[i].row != VV_KNN_NO_ROW)
			all[na++] = best[i];
		if (one[i].row != VV_KNN_NO_ROW)
			all[na++] = (struct vv_knn_dir_cand){ one[i].d, 3, 0, one[i].row };
	}
	qsort(all, na, sizeof(*all), cand_cmp);
	vv_knn_dir_merge(best, one, 3, kk, tmp);
	for (uint32_t i = 0; i < kk; i++) {
		if (i < na) {
			if (best[i].d != all[i].d || best[i].name != all[i].name || best[i].row != all[i].row)
				abort();
		} else if (best[i].row != VV_KNN_NO_ROW || best[i].name != VV_KNN_DIR_NO_NAME) {
			abort();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vv_knn_dir_ioc io;
	int want, r;

	memset(&io, 0, sizeof(io));
	memcpy(&io, data, size < sizeof(io) ? size : sizeof(io));
	want = model(&io);
	r = vv_knn_dir_request_check(&io);
	if (r != want)
		abort();
	if (r == 0 && ((uint64_t)io.h.nq * io.h.dim * 4 + io.h.names_len > VV_KNN_DIR_PAYLOAD ||
		       (uint64_t)io.h.nnames * 16 + (uint64_t)io.h.nq * io.h.kk * 24 > VV_KNN_DIR_PAYLOAD))
		abort();
	if (size > sizeof(io))
		merge_check(data + sizeof(io), size - sizeof(io));
	else
		merge_check(data, size < 64 ? size : 64);
	return 0;
}
