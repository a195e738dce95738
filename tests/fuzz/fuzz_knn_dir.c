/*
 * fuzz_knn_dir.c - libFuzzer target for the query offload's directory
 * request (knn_ioctl.h "the directory request"): the check the daemon
 * runs before it looks up a name (engine/knn_ioc.c
 * vv_knn_dir_request_check) and the scan of the names served together
 * (vector_scan.c vv_segments_knn_exact).
 *
 * Untrusted bytes: the VV_IOC_KNN_DIR ioctl buffer, header, query floats
 * and names, from any process that can open a directory through the mount.
 * The input's first VV_KNN_IOC_BYTES are copied over a zeroed struct
 * vv_knn_dir_ioc (run with -max_len=16400 to reach them all and the scan's
 * bytes after them).  Invariants asserted (abort() on violation):
 *   - the check equals an independent model of the documented rules
 *     (fields, then the sizes both ways in 128 bits, then finiteness,
 *     then the names area split with memchr);
 *   - anything accepted has its names inside the area and the area inside
 *     the payload, and the reply it asks for fits;
 *   - the scan of up to 4 small segments built from the bytes after the
 *     buffer yields exactly the kk best rows of all of them by (distance,
 *     segment, row), unused slots last.
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

/* Up to 4 fvecs segments of dim 2 from bytes, small integer values (many
 * ties, and float32 distances as exact as double ones, so the scan's
 * float choice and the exact order agree), scanned together: the reply
 * must be exactly the kk best rows of all of them by (distance, segment,
 * row), unused slots last. */
static void scan_check(const uint8_t *b, size_t n)
{
	uint8_t seg[4][16 * 12];
	struct vv_segment_view sv[4];
	struct vv_knn_dir_cand out[16], all[64];
	float q[2];
	uint32_t kk, ns = 0, dim = 2;
	size_t na = 0, p = 3;

	if (n < 3)
		return;
	kk = (uint32_t)(b[0] % 16) + 1;
	q[0] = (float)(b[1] % 7) - 3;
	q[1] = (float)(b[2] % 7) - 3;
	for (uint32_t s = 0; s < 4 && p < n; s++) {
		uint32_t rows = b[p++] % 16 + 1;
		const char *why;
		for (uint32_t r = 0; r < rows; r++) {
			float x[2] = { (float)((p < n ? b[p] : 0) % 5) - 2,
				       (float)((p + 1 < n ? b[p + 1] : 0) % 5) - 2 };
			p += 2;
			memcpy(seg[ns] + r * 12, &dim, 4);
			memcpy(seg[ns] + r * 12 + 4, x, 8);
			all[na++] = (struct vv_knn_dir_cand){
				((double)x[0] - q[0]) * ((double)x[0] - q[0]) +
				((double)x[1] - q[1]) * ((double)x[1] - q[1]), ns, 0, r };
		}
		if (vv_segment_view_init(&sv[ns], seg[ns], rows * 12, VV_SEG_FVECS, &why) != 0)
			abort();
		ns++;
	}
	if (!ns)
		return;
	if (vv_segments_knn_exact(sv, ns, VV_METRIC_L2, q, 1, kk, out) != 0)
		abort();
	qsort(all, na, sizeof(*all), cand_cmp);
	for (uint32_t i = 0; i < kk; i++) {
		if (i < na) {
			if (out[i].d != all[i].d || out[i].name != all[i].name || out[i].row != all[i].row)
				abort();
		} else if (out[i].row != VV_KNN_NO_ROW || out[i].name != VV_KNN_DIR_NO_NAME) {
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
		scan_check(data + sizeof(io), size - sizeof(io));
	else
		scan_check(data, size < 200 ? size : 200);
	return 0;
}
