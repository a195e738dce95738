/*
 * test_vector.c - segment parsers (good and hostile input), schema xattrs,
 * SIMD kernels against the scalar ones, top-k ordering, collection
 * search against a double-precision brute force on files in a temp dir,
 * the query offload's in-memory scan (vv_segment_knn) against the same, and
 * the scan both share (vv_scan_run) over each way of reading a segment.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "knn_ref.h"
#include "seg_files.h"
#include "tap.h"
#include "buf.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/log.h"
#include "vector_int.h"

/* ---- helpers building files ----------------------------------------------- */

static size_t npy_make(uint8_t *buf, int major, const char *dict, const void *data, size_t dlen)
{
	size_t hl = strlen(dict), pre = major == 1 ? 10 : 12, total = pre + hl + 1;
	size_t pad = (64 - total % 64) % 64, h = hl + 1 + pad, o = 0;

	memcpy(buf, "\x93NUMPY", 6);
	buf[6] = (uint8_t)major;
	buf[7] = 0;
	if (major == 1) {
		buf[8] = (uint8_t)h;
		buf[9] = (uint8_t)(h >> 8);
	} else {
		buf[8] = (uint8_t)h; buf[9] = (uint8_t)(h >> 8); buf[10] = 0; buf[11] = 0;
	}
	o = pre;
	memcpy(buf + o, dict, hl);
	o += hl;
	memset(buf + o, ' ', pad);
	o += pad;
	buf[o++] = '\n';
	if (data)
		memcpy(buf + o, data, dlen);
	return o + dlen;
}

static int probe_npy(const char *dict, int major, size_t dlen, long adjust, struct vv_segment_info *si,
		     const char **why)
{
	static uint8_t buf[1 << 16];
	static uint8_t zero[1 << 15];
	size_t n = npy_make(buf, major, dict, zero, dlen);
	return vv_segment_probe(VV_SEG_NPY, buf, n, (uint64_t)((long)n + adjust), si, why);
}

static void test_names(void)
{
	ok(vv_segment_name_is_segment("a.fvecs"), "fvecs is a segment");
	ok(vv_segment_name_is_segment("base.npy"), "npy is a segment");
	ok(vv_segment_name_is_segment("x.bvecs") && vv_segment_name_is_segment("x.ivecs"), "bvecs/ivecs");
	ok(!vv_segment_name_is_segment(".a.fvecs.Xy12Zq"), "rsync temp ignored");
	ok(!vv_segment_name_is_segment(".hidden.npy"), "hidden ignored");
	ok(!vv_segment_name_is_segment("a.ids.npy"), "sidecar is not a segment");
	ok(vv_segment_name_is_ids("a.ids.npy"), "sidecar recognised");
	ok(!vv_segment_name_is_segment("notes.txt") && !vv_segment_name_is_segment("a.npy~"), "others ignored");
	ok(!vv_segment_name_is_segment("npy") && !vv_segment_name_is_segment(""), "no extension");
}

static void test_texmex(void)
{
	uint8_t b[4 + 3 * 4 + 4 + 3 * 4];
	struct vv_segment_info si;
	const char *why;

	vv_put_le32(b, 3);
	vv_put_le32(b + 16, 3);
	is_int(vv_segment_probe(VV_SEG_FVECS, b, sizeof(b), sizeof(b), &si, &why), 0, "fvecs good");
	ok(si.dim == 3 && si.count == 2 && si.stride == 16 && si.data_off == 4 && si.dtype == VV_DT_F32,
	   "fvecs fields");
	is_int(vv_segment_probe(VV_SEG_FVECS, b, sizeof(b), sizeof(b) - 1, &si, &why), VV_ECORRUPT, "fvecs truncated");
	ok(why && strstr(why, "truncated"), "reason says truncated");
	is_int(vv_segment_probe(VV_SEG_FVECS, b, 0, 0, &si, &why), VV_ECORRUPT, "empty fvecs");
	is_int(vv_segment_probe(VV_SEG_FVECS, b, 2, 2, &si, &why), VV_ECORRUPT, "2-byte fvecs");
	vv_put_le32(b, 0);
	is_int(vv_segment_probe(VV_SEG_FVECS, b, sizeof(b), sizeof(b), &si, &why), VV_ECORRUPT, "dim 0");
	vv_put_le32(b, 0xffffffffu);
	is_int(vv_segment_probe(VV_SEG_FVECS, b, sizeof(b), sizeof(b), &si, &why), VV_ECORRUPT, "dim -1");
	vv_put_le32(b, 12);
	is_int(vv_segment_probe(VV_SEG_BVECS, b, sizeof(b), 32, &si, &why), 0, "bvecs dim 12 = 2 rows of 16");
	ok(si.count == 2 && si.dtype == VV_DT_U8, "bvecs fields");
	vv_put_le32(b, 3);
	is_int(vv_segment_probe(VV_SEG_IVECS, b, 16, 16, &si, &why), 0, "ivecs");
	ok(si.dtype == VV_DT_I32, "ivecs is i32");
	is_int(vv_segment_probe(vv_segment_format_from_name("a.txt"), b, 16, 16, &si, &why), VV_EINVAL,
	       "unknown extension: no format");
	is_int(vv_segment_probe((enum vv_seg_format)99, b, 16, 16, &si, &why), VV_EINVAL,
	       "unknown format number: EINVAL");
}

static void test_npy(void)
{
	struct vv_segment_info si;
	const char *why;

	is_int(probe_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), }", 1, 60, 0, &si, &why),
	       0, "npy 1.0 f32");
	ok(si.dim == 5 && si.count == 3 && si.dtype == VV_DT_F32 && si.data_off % 64 == 0, "npy fields");
	is_int(probe_npy("{'descr': '<f2', 'fortran_order': False, 'shape': (3, 5), }", 2, 30, 0, &si, &why),
	       0, "npy 2.0 f16");
	ok(si.dtype == VV_DT_F16 && si.stride == 10, "f16 stride");
	is_int(probe_npy("{\"descr\": \"|u1\", \"fortran_order\": False, \"shape\": (4, 2)}", 3, 8, 0, &si, &why),
	       0, "npy 3.0 u1 double quotes");
	is_int(probe_npy("{'shape': (4, 2), 'fortran_order': False, 'descr': '|i1'}", 1, 8, 0, &si, &why), 0,
	       "keys in any order, i1");
	ok(si.dtype == VV_DT_I8, "i8");
	is_int(probe_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }", 1, 0, 0, &si, &why), 0,
	       "empty 2-D array");
	is_int(probe_npy("{'descr': '<f4', 'fortran_order': True, 'shape': (3, 5), }", 1, 60, 0, &si, &why),
	       VV_ENOTSUP, "Fortran order refused");
	ok(why && strstr(why, "Fortran"), "reason names Fortran");
	is_int(probe_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (3, 5), }", 1, 60, 0, &si, &why),
	       VV_ENOTSUP, "big-endian refused");
	is_int(probe_npy("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 5), }", 1, 120, 0, &si, &why),
	       VV_ENOTSUP, "f8 refused");
	is_int(probe_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), }", 1, 60, -1, &si, &why),
	       VV_ECORRUPT, "truncated data");
	is_int(probe_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), }", 1, 60, 4, &si, &why),
	       VV_ECORRUPT, "trailing bytes");
	is_int(probe_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5, 2), }", 1, 120, 0, &si, &why),
	       VV_ENOTSUP, "3-D refused");
	is_int(probe_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 1, 12, 0, &si, &why),
	       VV_ENOTSUP, "1-D segment refused");
	is_int(probe_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 0), }", 1, 0, 0, &si, &why),
	       VV_ECORRUPT, "zero dim refused");
	is_int(probe_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999, 5), }", 1, 0, 0,
			 &si, &why), VV_ECORRUPT, "huge shape refused");
	is_int(probe_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), 'x': 1}", 1, 60, 0, &si, &why),
	       VV_ECORRUPT, "unknown key");
	is_int(probe_npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3, 5)}", 1, 60, 0,
			 &si, &why), VV_ECORRUPT, "repeated key");
	is_int(probe_npy("{'descr': '<f4', 'fortran_order': False}", 1, 0, 0, &si, &why), VV_ECORRUPT,
	       "missing shape");
	is_int(probe_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), } x", 1, 60, 0, &si, &why),
	       VV_ECORRUPT, "junk after dict");
	{
		uint8_t b[16] = "\x93NUMPX\x01\x00";
		is_int(vv_segment_probe(VV_SEG_NPY, b, 16, 16, &si, &why), VV_ECORRUPT, "bad magic");
		memcpy(b, "\x93NUMPY\x04\x00", 8);
		is_int(vv_segment_probe(VV_SEG_NPY, b, 16, 16, &si, &why), VV_ENOTSUP, "version 4 refused");
		memcpy(b, "\x93NUMPY\x01\x00\xff\x00", 10);
		is_int(vv_segment_probe(VV_SEG_NPY, b, 16, 16, &si, &why), VV_ECORRUPT, "header past the end");
		memcpy(b, "\x93NUMPY\x02\x00\xff\xff\xff\xff", 12);
		is_int(vv_segment_probe(VV_SEG_NPY, b, 16, 1u << 30, &si, &why), VV_ECORRUPT, "4 GiB header");
	}
	{
		static uint8_t buf[4096];
		size_t n = npy_make(buf, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", NULL, 16);
		is_int(vv_segment_probe_ids(buf, n, n, &si, &why), 0, "ids sidecar (N,)");
		ok(si.count == 2, "ids count");
		is_int(vv_segment_probe(VV_SEG_NPY, buf, n, n, &si, &why), VV_ENOTSUP, "ids are not a segment");
		n = npy_make(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }", NULL, 8);
		is_int(vv_segment_probe_ids(buf, n, n, &si, &why), VV_ENOTSUP, "f4 sidecar refused");
	}
	{
		/* the format is the caller's word, not the bytes' or a name's:
		 * the same npy bytes as each format */
		static uint8_t buf[4096];
		struct vv_segment_view sv;
		size_t n = npy_make(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 5), }",
				    NULL, 60);
		is_int(vv_segment_view_init(&sv, buf, n, VV_SEG_NPY, &why), 0, "view of an npy as npy");
		ok(sv.base == buf && sv.len == n && sv.info.format == VV_SEG_NPY && sv.info.count == 3 &&
		   sv.info.dim == 5, "view fields");
		is_int(vv_segment_view_init(&sv, buf, n, VV_SEG_FVECS, &why), VV_ECORRUPT,
		       "the same bytes as fvecs: refused by the fvecs parser");
		ok(why && strstr(why, "dimension word"), "reason from the fvecs parser");
		is_int(vv_segment_view_init(&sv, buf, n, VV_SEG_NONE, &why), VV_EINVAL, "no format: EINVAL");
		ok(sv.base == NULL, "failed view is empty");
		is_int(vv_segment_format_from_name("a.npy"), VV_SEG_NPY, "name map: .npy");
		is_int(vv_segment_format_from_name("a.bvecs"), VV_SEG_BVECS, "name map: .bvecs");
		is_int(vv_segment_format_from_name("npy"), VV_SEG_NONE, "name map: no extension");
	}
}

static void test_schema(void)
{
	char c[16];
	struct vv_schema s = { 0 };
	struct vv_segment_info si = { .dim = 128, .dtype = VV_DT_F32, .count = 7, .format = VV_SEG_NPY };
	const char *why;

	is_int(vv_schema_check_xattr("user.vecvault.dim", "128", 3, c, sizeof(c)), 0, "dim 128");
	is_str(c, "128", "dim canonical");
	is_int(vv_schema_check_xattr("user.vecvault.dim", "0128\n", 5, c, sizeof(c)), 0, "dim with newline");
	is_str(c, "128", "leading zero canonicalised");
	is_int(vv_schema_check_xattr("user.vecvault.dim", "12x", 3, c, sizeof(c)), VV_EINVAL, "dim junk");
	is_int(vv_schema_check_xattr("user.vecvault.dim", "0", 1, c, sizeof(c)), VV_EINVAL, "dim 0");
	is_int(vv_schema_check_xattr("user.vecvault.dim", "70000", 5, c, sizeof(c)), VV_EINVAL, "dim too big");
	is_int(vv_schema_check_xattr("user.vecvault.dim", "99999999999999999999", 20, c, sizeof(c)), VV_EINVAL,
	       "dim overflow");
	is_int(vv_schema_check_xattr("user.vecvault.dim", "1\0002", 3, c, sizeof(c)), VV_EINVAL, "embedded NUL");
	is_int(vv_schema_check_xattr("user.vecvault.metric", "COSINE", 6, c, sizeof(c)), 0, "metric");
	is_str(c, "cosine", "metric canonical");
	is_int(vv_schema_check_xattr("user.vecvault.metric", "hamming", 7, c, sizeof(c)), VV_EINVAL, "bad metric");
	is_int(vv_schema_check_xattr("user.vecvault.dtype", "float16", 7, c, sizeof(c)), 0, "dtype");
	is_str(c, "f16", "dtype canonical");
	is_int(vv_schema_check_xattr("user.vecvault.nope", "1", 1, c, sizeof(c)), VV_ENODATA, "unknown name");
	is_int(vv_schema_check_xattr("user.vecvault.metric", "cosine", 6, c, 3), VV_ERANGE, "small canon");
	vv_schema_set_xattr(&s, "user.vecvault.dim", "128", 3);
	is_int(vv_schema_match(&s, &si, &why), 0, "schema matches");
	s.dim = 64;
	is_int(vv_schema_match(&s, &si, &why), VV_ESCHEMA, "dim mismatch");
	s.dim = 128;
	s.dtype = VV_DT_U8;
	is_int(vv_schema_match(&s, &si, &why), VV_ESCHEMA, "dtype mismatch");
	is_int(vv_segment_xattr(&si, "user.vecvault.count", c, sizeof(c)), 1, "count xattr length");
	is_str(c, "7", "count xattr");
	vv_segment_xattr(&si, "user.vecvault.dim", c, sizeof(c));
	is_str(c, "128", "dim xattr");
	is_int(vv_segment_xattr(&si, "user.vecvault.dim", c, 3), VV_ERANGE, "xattr buffer too small");
	is_int(vv_segment_xattr(&si, "user.other", c, sizeof(c)), VV_ENODATA, "unknown segment xattr");
}

static void test_f16(void)
{
	ok(vv_f16_to_f32(0x3c00) == 1.0f, "f16 1.0");
	ok(vv_f16_to_f32(0xc000) == -2.0f, "f16 -2");
	ok(vv_f16_to_f32(0x0001) == 5.9604644775390625e-08f, "f16 smallest subnormal");
	ok(vv_f16_to_f32(0x7bff) == 65504.0f, "f16 max");
	ok(isinf(vv_f16_to_f32(0x7c00)) && isnan(vv_f16_to_f32(0x7e00)), "f16 inf/nan");
}

static float frand(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void test_kernels(void)
{
	const struct vv_kernels *ref = vv_kernels_by_name("scalar");
	const char *names[] = { "avx2", "avx512" };
	unsigned seed = 7;

	for (int ki = 0; ki < 2; ki++) {
		const struct vv_kernels *k = vv_kernels_by_name(names[ki]);
		int bad = 0;
		char msg[64];
		if (!k) {
			snprintf(msg, sizeof(msg), "# no %s on this CPU", names[ki]);
			tap_diag(msg);
			continue;
		}
		for (size_t d = 1; d <= 70; d += (d < 20 ? 1 : 7)) {
			size_t nx = 10, nq = 7, xs = d + 3;
			float *x = malloc(nx * xs * 4), *q = malloc(nq * d * 4);
			float o1[10 * 7], o2[10 * 7], n1[10], n2[10];
			for (size_t i = 0; i < nx * xs; i++)
				x[i] = frand(&seed);
			for (size_t i = 0; i < nq * d; i++)
				q[i] = frand(&seed);
			ref->dots(x, xs, nx, q, nq, d, o1, nq);
			k->dots(x, xs, nx, q, nq, d, o2, nq);
			for (size_t i = 0; i < nx * nq; i++)
				bad += fabsf(o1[i] - o2[i]) > 1e-4f * (1 + fabsf(o1[i]));
			ref->l2sq(x, xs, nx, q, d, n1);
			k->l2sq(x, xs, nx, q, d, n2);
			for (size_t i = 0; i < nx; i++)
				bad += fabsf(n1[i] - n2[i]) > 1e-4f * (1 + n1[i]);
			ref->norms(x, xs, nx, d, n1);
			k->norms(x, xs, nx, d, n2);
			for (size_t i = 0; i < nx; i++)
				bad += fabsf(n1[i] - n2[i]) > 1e-4f * (1 + n1[i]);
			free(x);
			free(q);
		}
		snprintf(msg, sizeof(msg), "%s kernels match scalar for d = 1..70", names[ki]);
		is_int(bad, 0, msg);
	}
}

static void test_topk(void)
{
	struct vv_cand st[3];
	struct vv_topk t;

	vv_topk_init(&t, st, 3);
	vv_topk_push(&t, 5, 0, 0);
	vv_topk_push(&t, 1, 2, 9);
	vv_topk_push(&t, 1, 1, 4);
	vv_topk_push(&t, NAN, 0, 1);
	vv_topk_push(&t, 1, 1, 3);
	vv_topk_push(&t, 1, 3, 0);
	vv_topk_sort(&t);
	ok(t.n == 3 && st[0].seg == 1 && st[0].row == 3 && st[1].seg == 1 && st[1].row == 4 &&
	   st[2].seg == 2, "ties broken by (segment, row), NaN dropped");

	/* Non-finite distances (a row with NaN or Inf) never enter, even with
	 * room to spare: -Inf would otherwise win under ip. */
	vv_topk_init(&t, st, 3);
	vv_topk_push(&t, -INFINITY, 0, 1);
	vv_topk_push(&t, INFINITY, 0, 2);
	vv_topk_push(&t, NAN, 0, 3);
	vv_topk_push(&t, 2, 0, 4);
	vv_topk_sort(&t);
	ok(t.n == 1 && st[0].row == 4, "-Inf, +Inf and NaN distances dropped, finite kept");
	{
		float v[6] = { 1, 2, 3, 4, NAN, 6 };
		size_t row = 9;
		uint32_t col = 9;
		ok(!vv_vectors_nonfinite(v, 2, 2, &row, &col), "finite rows: none found");
		ok(vv_vectors_nonfinite(v, 3, 2, &row, &col) && row == 2 && col == 0,
		   "NaN found at row 2 column 0");
		v[4] = 5;
		v[3] = -INFINITY;
		ok(vv_vectors_nonfinite(v, 3, 2, &row, &col) && row == 1 && col == 1,
		   "-Inf found at row 1 column 1");
	}
}

/* the batch path's filtered offer: the same kept set as pushing every value */
static void test_offer_block(void)
{
	unsigned seed = 7;
	enum { N = 1003, KK = 13 };
	static float o[N], a[N], b[N];
	int bad = 0;

	for (int i = 0; i < N; i++) {
		o[i] = frand(&seed) * 10;
		a[i] = frand(&seed) * 3;
		b[i] = frand(&seed) + 1.5f;
	}
	o[500] = NAN;
	for (int mode = 0; mode < 4; mode++) {
		const float *pa = mode & 1 ? a : NULL, *pb = mode & 2 ? b : NULL;
		struct vv_cand s1[KK], s2[KK];
		struct vv_topk t1, t2;
		vv_topk_init(&t1, s1, KK);
		vv_topk_init(&t2, s2, KK);
		/* in 3 chunks with odd sizes: SIMD body and scalar tails */
		vv_topk_offer_block(&t1, o, pa, pb, 0.25f, 11, 1, 0);
		vv_topk_offer_block(&t1, o + 11, pa ? pa + 11 : NULL, pb ? pb + 11 : NULL, 0.25f, 600, 1, 11);
		vv_topk_offer_block(&t1, o + 611, pa ? pa + 611 : NULL, pb ? pb + 611 : NULL, 0.25f, N - 611,
				    1, 611);
		for (int i = 0; i < N; i++) {
			float v = (pa ? pa[i] : 0.0f) + (pb ? pb[i] : 1.0f) * o[i] + 0.25f;
			vv_topk_push(&t2, v, 1, (uint64_t)i);
		}
		vv_topk_sort(&t1);
		vv_topk_sort(&t2);
		bad += t1.n != KK || t2.n != KK;
		for (int i = 0; i < KK && i < (int)t1.n; i++)
			bad += s1[i].row != s2[i].row || fabsf(s1[i].d - s2[i].d) > 1e-5f * (1 + fabsf(s2[i].d));
	}
	ok(bad == 0, "vv_topk_offer_block keeps the same k best as pushing every value (NaN dropped)");
	/* whether BLAS loads is said in test_search: nothing loads it before */
}

/* ---- collection search vs brute force ------------------------------------- */

static char tmpdir[] = "/tmp/vv_test_vector.XXXXXX";
/* made: mkdtemp's six random characters may end in 'X' themselves, so the
 * name cannot tell */
static bool tmpdir_made;

static void write_file(const char *name, const void *p, size_t n)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "wb");
	fwrite(p, 1, n, f);
	fclose(f);
}

#define D 19
#define NA 700
#define NB 500

static float data[NA + NB][D];

static void write_segments(void)
{
	static uint8_t buf[NA * D * 4 + 4096];
	static uint8_t fv[NB * (4 + D * 4)];
	int64_t ids[NA];
	size_t n;

	n = npy_make(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (700, 19), }", data, NA * D * 4);
	write_file("a.npy", buf, n);
	for (int i = 0; i < NA; i++)
		ids[i] = 5000000000LL + i;
	n = npy_make(buf, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (700,), }", ids, sizeof(ids));
	write_file("a.ids.npy", buf, n);
	for (int i = 0; i < NB; i++) {
		vv_put_le32(fv + i * (4 + D * 4), D);
		memcpy(fv + i * (4 + D * 4) + 4, data[NA + i], D * 4);
	}
	write_file("b.fvecs", fv, sizeof(fv));
	write_file(".b.fvecs.Xk3j9q", "junk", 4);   /* rsync temp: ignored */
	write_file("README.txt", "hello", 5);
}

static double bf(enum vv_metric m, const float *x, const float *q)
{
	return knn_ref_dist(m, x, q, D);
}

static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* ---- BLAS missing at run time ------------------------------------------------
 * libopenblas is dlopened at the first batch that would use it; a process
 * where it cannot be loaded (forced here: the loader is pointed at a soname
 * that does not exist, before anything loaded it) runs its batches on the
 * SIMD kernel and says so once in the log.  The child searches and sends
 * its hits back; the parent compares them with its own, by BLAS and SIMD. */
static int blas_logged;

static void blas_sink(void *ctx, enum vv_log_level lvl, const char *msg)
{
	(void)ctx;
	blas_logged += lvl <= VV_LOG_WARN && strstr(msg, "without BLAS") && strstr(msg, "libvv-no-such-blas");
}

struct blas_child {
	pid_t pid;
	int fd;
};

static struct blas_child blas_missing_start(struct vv_collection *c, const float *q, size_t nq,
					    const struct vv_search_opts *o, size_t nh)
{
	struct blas_child ch = { -1, -1 };
	int p[2];

	if (pipe(p) < 0)
		return ch;
	ch.pid = fork();
	if (ch.pid == 0) {
		struct vv_hit *h = calloc(nh, sizeof(*h));
		char err[256];
		int32_t st[3];
		float one = 1, out = 0;
		size_t w = 0;

		close(p[0]);
		vv_log_set_sink(blas_sink, NULL, VV_LOG_DEBUG);
		vv_blas_test_library("libvv-no-such-blas.so.0");
		vv_vector_configure(NULL);   /* defaults: BLAS for large batches */
		st[0] = h ? vv_collection_search(c, q, nq, o, h, err, sizeof(err)) : -1;
		st[1] = vv_blas_available() || vv_blas_dots(&one, 1, 1, &one, 1, 1, 1, &out, 1);
		st[2] = blas_logged;
		if (write(p[1], st, sizeof(st)) != (ssize_t)sizeof(st))
			_exit(2);
		while (h && w < nh * sizeof(*h)) {
			ssize_t n = write(p[1], (char *)h + w, nh * sizeof(*h) - w);
			if (n <= 0)
				_exit(2);
			w += (size_t)n;
		}
		_exit(0);
	}
	close(p[1]);
	if (ch.pid < 0)
		close(p[0]);
	else
		ch.fd = p[0];
	return ch;
}

static void blas_missing_check(struct blas_child ch, const struct vv_hit *simd, const struct vv_hit *blas,
			       size_t nh)
{
	struct vv_hit *h = calloc(nh, sizeof(*h));
	int32_t st[3] = { -1, -1, -1 };
	size_t got = 0;
	int wst = -1, same_simd = 1, same_blas = 1;

	if (ch.pid < 0 || !h) {
		ok(0, "fork a process without BLAS");
		free(h);
		return;
	}
	if (read(ch.fd, st, sizeof(st)) == (ssize_t)sizeof(st))
		while (got < nh * sizeof(*h)) {
			ssize_t n = read(ch.fd, (char *)h + got, nh * sizeof(*h) - got);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
	close(ch.fd);
	waitpid(ch.pid, &wst, 0);
	ok(WIFEXITED(wst) && WEXITSTATUS(wst) == 0 && st[0] == 0 && got == nh * sizeof(*h),
	   "libopenblas missing at run time: the batch query still succeeds");
	ok(st[1] == 0, "libopenblas missing: vv_blas_available() and vv_blas_dots() say no");
	ok(st[2] == 1, "libopenblas missing: one log line naming the library");
	for (size_t i = 0; i < nh && got == nh * sizeof(*h); i++) {
		same_simd &= h[i].id == simd[i].id && h[i].seg == simd[i].seg && h[i].row == simd[i].row &&
			     h[i].dist == simd[i].dist;
		same_blas &= h[i].id == blas[i].id && h[i].seg == blas[i].seg && h[i].row == blas[i].row &&
			     h[i].dist == blas[i].dist;
	}
	ok(got == nh * sizeof(*h) && same_simd, "libopenblas missing: same ids and distances as VV_BLAS=0");
	ok(got == nh * sizeof(*h) && same_blas, "libopenblas missing: same ids and distances as with BLAS");
	free(h);
}

static void test_search(void)
{
	struct vv_collection *c = NULL;
	char err[512];
	unsigned seed = 42;
	enum { NQ = 37, K = 10 };
	static float q[NQ][D];
	static struct vv_hit h[NQ * K];
	int r;

	if (!mkdtemp(tmpdir)) {
		ok(0, "mkdtemp");
		return;
	}
	tmpdir_made = true;
	for (int i = 0; i < NA + NB; i++)
		for (int t = 0; t < D; t++)
			data[i][t] = frand(&seed);
	memcpy(data[NA + 5], data[3], sizeof(data[3]));   /* exact duplicate: a tie */
	for (int i = 0; i < NQ; i++)
		for (int t = 0; t < D; t++)
			q[i][t] = frand(&seed);
	memcpy(q[0], data[3], sizeof(q[0]));
	write_segments();

	r = vv_collection_open(tmpdir, NULL, false, &c, err, sizeof(err));
	is_int(r, 0, "open collection");
	if (r < 0) {
		tap_diag(err);
		return;
	}
	is_int(vv_collection_nsegs(c), 2, "two segments, temp and txt ignored");
	ok(vv_collection_seg(c, 0)->has_ids && !vv_collection_seg(c, 1)->has_ids, "sidecar found");
	is_int(vv_collection_schema(c)->dim, D, "dim inferred");
	/* before anything loads BLAS: a process that cannot load it */
	struct vv_search_opts bo = { .k = K, .metric = VV_METRIC_L2, .threads = 3 };
	struct blas_child bch = blas_missing_start(c, &q[0][0], NQ, &bo, NQ * K);
	/* both batch paths: BLAS sgemm (when built with it) and the SIMD kernel */
	for (int blas = 1; blas >= 0; blas--) {
	vv_vector_configure(&(struct vv_vector_config){ .no_blas = !blas });
	for (int m = VV_METRIC_L2; m <= VV_METRIC_COSINE; m++) {
		for (unsigned th = 1; th <= 3; th += 2) {
			for (size_t nq = 1; nq <= NQ; nq += NQ - 1) {
				struct vv_search_opts o = { .k = K, .metric = (enum vv_metric)m, .threads = th };
				int bad = 0;
				char msg[128];
				r = vv_collection_search(c, &q[0][0], nq, &o, h, err, sizeof(err));
				for (size_t qi = 0; qi < nq; qi++) {
					/* brute force: the k-th best distance, and each
					 * hit's distance must be exact and within it */
					double dd[NA + NB], kth;
					for (int i = 0; i < NA + NB; i++)
						dd[i] = bf((enum vv_metric)m, data[i], q[qi]);
					qsort(dd, NA + NB, sizeof(double), dcmp);
					kth = dd[K - 1];
					for (int a = 0; a < K; a++) {
						struct vv_hit *x = &h[qi * K + a];
						int gi = x->seg == 0 ? (int)x->row : NA + (int)x->row;
						double exact = bf((enum vv_metric)m, data[gi], q[qi]);
						bad += fabs(exact - x->dist) > 1e-9 * (1 + fabs(exact));
						bad += x->dist > kth + 1e-6 * (1 + fabs(kth));
						if (a)
							bad += h[qi * K + a - 1].dist > x->dist;
						bad += x->seg == 0 ? x->id != 5000000000LL + (int64_t)x->row
								   : x->id != NA + (int64_t)x->row;
					}
				}
				snprintf(msg, sizeof(msg), "%s threads=%u nq=%zu%s matches brute force",
					 vv_metric_name((enum vv_metric)m), th, nq,
					 nq > 1 ? (blas && vv_blas_available() ? " (BLAS)" : " (SIMD)") : "");
				ok(r == 0 && bad == 0, msg);
			}
		}
	}
	}
	{
		static struct vv_hit hs[NQ * K], hb[NQ * K];
		vv_vector_configure(&(struct vv_vector_config){ .no_blas = true });
		r = vv_collection_search(c, &q[0][0], NQ, &bo, hs, err, sizeof(err));
		vv_vector_configure(NULL);
		r |= vv_collection_search(c, &q[0][0], NQ, &bo, hb, err, sizeof(err));
		ok(r == 0, "batch query by SIMD and by BLAS (if present)");
		tap_diag(vv_blas_available() ? "BLAS batch path: libopenblas loaded" : "BLAS batch path: not built or not loaded");
		blas_missing_check(bch, hs, hb, NQ * K);
	}
	vv_vector_configure(NULL);   /* back to the defaults */
	{
		struct vv_search_opts o = { .k = 2, .metric = VV_METRIC_L2, .threads = 2 };
		vv_collection_search(c, &q[0][0], 1, &o, h, err, sizeof(err));
		ok(h[0].dist == 0 && h[1].dist == 0 && h[0].seg == 0 && h[0].row == 3 && h[1].seg == 1 &&
		   h[1].row == 5, "exact tie ordered by (segment, row)");
	}
	{
		struct vv_search_opts o = { .k = NA + NB + 5, .metric = VV_METRIC_L2, .threads = 2 };
		struct vv_hit *hh = calloc(NA + NB + 5, sizeof(*hh));
		vv_collection_search(c, &q[1][0], 1, &o, hh, err, sizeof(err));
		ok(hh[NA + NB - 1].seg != UINT32_MAX && hh[NA + NB].seg == UINT32_MAX && hh[NA + NB].id == -1,
		   "k beyond the row count pads with empty hits");
		free(hh);
	}
	vv_collection_free(c);

	/* a bad dim word in row 77 of the fvecs: found by the scan */
	{
		static uint8_t fv[NB * (4 + D * 4)];
		struct vv_search_opts o = { .k = 3, .threads = 2 };
		for (int i = 0; i < NB; i++)
			vv_put_le32(fv + i * (4 + D * 4), i == 77 ? 18 : D);
		write_file("b.fvecs", fv, sizeof(fv));
		is_int(vv_collection_open(tmpdir, NULL, false, &c, err, sizeof(err)), 0, "open (row 0 fine)");
		r = vv_collection_search(c, &q[0][0], 1, &o, h, err, sizeof(err));
		is_int(r, VV_ECORRUPT, "bad dim word fails the search");
		ok(strstr(err, "b.fvecs") && strstr(err, "row 77"), "message names file and row");
		vv_collection_free(c);
	}
	/* schema mismatch: a segment of another dimension */
	{
		static uint8_t buf[4096];
		size_t n = npy_make(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }", NULL, 32);
		struct vv_schema ov = { .dim = D };
		write_file("c.npy", buf, n);
		r = vv_collection_open(tmpdir, &ov, false, &c, err, sizeof(err));
		is_int(r, VV_ESCHEMA, "mismatching segment refused");
		ok(strstr(err, "c.npy") && strstr(err, "dimension"), "message names file and problem");
		r = vv_collection_open(tmpdir, &ov, true, &c, err, sizeof(err));
		is_int(r, 0, "--skip-bad opens");
		ok(r == 0 && vv_collection_nskipped(c) == 1 && strstr(vv_collection_skipped(c, 0), "c.npy"),
		   "skipped segment listed");
		vv_collection_free(c);
		write_file("c.npy", buf, n - 1);
		r = vv_collection_open(tmpdir, &ov, false, &c, err, sizeof(err));
		is_int(r, VV_ECORRUPT, "truncated npy refused");
	}
}

/* ---- work plan: units packed by bytes across segments ----------------------- */

/* Every row of every non-skipped segment in exactly one piece, pieces in
 * (segment, row) order, units contiguous over the pieces, each unit but the
 * last at least target bytes and less than target plus one row. */
static int plan_check(const struct vv_plan_seg *segs, size_t n, const struct vv_plan *p)
{
	size_t pi = 0;
	uint64_t rows = 0;
	int bad = 0;

	for (size_t s = 0; s < n; s++) {
		uint64_t next = 0;
		if (segs[s].skip || !segs[s].rows)
			continue;
		for (; pi < p->npieces && p->pieces[pi].seg == s; pi++) {
			bad += p->pieces[pi].row0 != next || !p->pieces[pi].nrows;
			next = p->pieces[pi].row0 + p->pieces[pi].nrows;
		}
		bad += next != segs[s].rows;
		rows += next;
	}
	bad += pi != p->npieces || rows != p->rows;
	for (size_t u = 0; u < p->nunits; u++) {
		const struct vv_unit *x = &p->units[u];
		uint64_t b = 0, r = 0, maxst = 0;
		bad += x->p0 != (u ? p->units[u - 1].p1 : 0) || x->p1 <= x->p0;
		for (size_t i = x->p0; i < x->p1 && i < p->npieces; i++) {
			uint64_t st = segs[p->pieces[i].seg].stride;
			b += p->pieces[i].nrows * st;
			r += p->pieces[i].nrows;
			maxst = st > maxst ? st : maxst;
		}
		bad += b != x->bytes || r != x->rows;
		if (u + 1 < p->nunits)
			bad += b < p->unit_bytes || b >= p->unit_bytes + maxst;
	}
	bad += p->nunits && p->units[p->nunits - 1].p1 != p->npieces;
	return bad;
}

static void test_plan(void)
{
	static struct vv_plan_seg segs[2000];
	struct vv_plan p;
	size_t n = 0, multi = 0, split = 0;
	int r, bad = 0;

	/* 1000 segments of 10 rows of 512 bytes: a 64 KiB unit holds 12.8 */
	for (size_t i = 0; i < 1000; i++)
		segs[i] = (struct vv_plan_seg){ 10, 512, false };
	r = vv_plan_build(segs, 1000, 2, 64 << 10, &p);
	ok(r == 0 && plan_check(segs, 1000, &p) == 0, "many small segments: every row once, in order");
	for (size_t u = 0; u < p.nunits; u++)
		multi += p.units[u].p1 - p.units[u].p0 > 1;
	ok(p.nunits == (1000 * 10 * 512 + (64 << 10) - 1) / (64 << 10) && multi == p.nunits,
	   "small segments are packed: each unit spans several segments, units by bytes");
	for (size_t i = 1; i < p.npieces; i++)
		split += p.pieces[i].seg == p.pieces[i - 1].seg;
	ok(split > 0, "a small segment may continue in the next unit (split at the unit's size)");
	vv_plan_release(&p);

	/* mixed: empty and skipped (offloaded) segments, one large segment
	 * split over many units, tiny ones between */
	segs[n++] = (struct vv_plan_seg){ 0, 512, false };
	segs[n++] = (struct vv_plan_seg){ 3, 512, false };
	segs[n++] = (struct vv_plan_seg){ 100000, 512, false };
	segs[n++] = (struct vv_plan_seg){ 5000, 512, true };
	segs[n++] = (struct vv_plan_seg){ 1, 68, false };
	segs[n++] = (struct vv_plan_seg){ 0, 68, false };
	segs[n++] = (struct vv_plan_seg){ 7, 68, false };
	r = vv_plan_build(segs, n, 2, 1 << 20, &p);
	ok(r == 0 && plan_check(segs, n, &p) == 0, "mixed sizes: every row once, in order");
	split = 0;
	for (size_t i = 0; i < p.npieces; i++) {
		bad += p.pieces[i].seg == 0 || p.pieces[i].seg == 3 || p.pieces[i].seg == 5;
		split += p.pieces[i].seg == 2;
	}
	ok(bad == 0, "no piece for an empty or a skipped (offloaded) segment");
	ok(split >= 48 && p.pieces[0].seg == 1 && p.pieces[1].seg == 2 &&
	   p.units[0].p1 == 2 && p.pieces[1].row0 == 0 && p.pieces[1].nrows == (1u << 20) / 512 - 3,
	   "the large segment fills the rest of the first unit, then spans units");
	vv_plan_release(&p);

	/* default size: about 8 units per thread, within 256 KiB .. 4 MiB */
	for (size_t i = 0; i < 2000; i++)
		segs[i] = (struct vv_plan_seg){ 100, 512, false };
	r = vv_plan_build(segs, 800, 2, 0, &p);
	ok(r == 0 && plan_check(segs, 800, &p) == 0 && p.unit_bytes == 800 * 100 * 512 / 16,
	   "default unit size: total / (8 x threads)");
	vv_plan_release(&p);
	r = vv_plan_build(segs, 2000, 2, 0, &p);
	ok(r == 0 && plan_check(segs, 2000, &p) == 0 && p.unit_bytes == 4 << 20,
	   "large collections: units of 4 MiB");
	vv_plan_release(&p);
	r = vv_plan_build(segs, 3, 2, 0, &p);
	ok(r == 0 && p.unit_bytes == 256 << 10 && p.nunits == 1, "small collections: one unit of 256 KiB");
	vv_plan_release(&p);
	r = vv_plan_build(segs, 0, 2, 0, &p);
	ok(r == 0 && p.nunits == 0 && p.npieces == 0, "no segments: no units");
	vv_plan_release(&p);
}

/* ---- the same rows split in different ways give the same results ------------ */

#define LD 8
#define LN 3000
#define LK 10
#define LNQ 20

static float ldata[LN][LD];

/* Write rows [r0, r0 + n) as segment NAME (npy, or fvecs when fv) in DIR. */
static void lwrite(const char *dir, const char *name, size_t r0, size_t n, bool fv)
{
	static uint8_t buf[LN * (4 + LD * 4) + 4096];
	char path[128], dict[128];
	size_t len;

	if (fv) {
		for (size_t i = 0; i < n; i++) {
			vv_put_le32(buf + i * (4 + LD * 4), LD);
			memcpy(buf + i * (4 + LD * 4) + 4, ldata[r0 + i], LD * 4);
		}
		len = n * (4 + LD * 4);
	} else {
		snprintf(dict, sizeof(dict), "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %d), }",
			 n, LD);
		len = npy_make(buf, 1, dict, n ? ldata[r0] : NULL, n * LD * 4);
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	write_file(path, buf, len);
}

static void test_layouts(void)
{
	static const uint64_t dup[] = { 0, 7, 99, 100, 101, 1499, 1500, 2047, 2048, 2500, 2998, 2999 };
	static float q[LNQ][LD];
	static struct vv_hit ref[LNQ * LK], h[LNQ * LK];
	static const char *const lay[] = { "l1", "l30", "ltiny" };
	static const uint64_t ubytes[] = { 0, 1, 200, 4096 };
	struct vv_collection *c = NULL;
	char err[512], dir[256], name[64];
	unsigned seed = 7;
	size_t ntiny = 0, under_k = 0, empty = 0;
	int r, bad;

	for (size_t i = 0; i < LN; i++)
		for (size_t t = 0; t < LD; t++)
			ldata[i][t] = frand(&seed);
	/* exact duplicates of row 0 across segment and unit boundaries: twelve
	 * rows at distance 0 from query 0, reported in (segment, row) order */
	for (size_t i = 1; i < sizeof(dup) / sizeof(dup[0]); i++)
		memcpy(ldata[dup[i]], ldata[0], sizeof(ldata[0]));
	for (size_t i = 0; i < LNQ; i++)
		for (size_t t = 0; t < LD; t++)
			q[i][t] = frand(&seed);
	memcpy(q[0], ldata[0], sizeof(q[0]));
	for (size_t l = 0; l < 3; l++) {
		snprintf(name, sizeof(name), "%s/%s", tmpdir, lay[l]);
		mkdir(name, 0755);
	}
	lwrite("l1", "all.npy", 0, LN, false);
	for (size_t s = 0; s < 30; s++) {
		snprintf(name, sizeof(name), "s%03zu.npy", s);
		lwrite("l30", name, s * 100, 100, false);
	}
	/* tiny: 0 to 12 rows each (empty ones, most fewer than k), mixed formats */
	for (size_t r0 = 0, s = 0; r0 < LN; s++) {
		size_t n = (s * 7 + 3) % 13;
		bool fv = s % 3 == 1 && n > 0;
		n = n > LN - r0 ? LN - r0 : n;
		snprintf(name, sizeof(name), "t%04zu.%s", s, fv ? "fvecs" : "npy");
		lwrite("ltiny", name, r0, n, fv);
		r0 += n;
		ntiny++;
		under_k += n < LK;
		empty += n == 0;
	}
	ok(ntiny > 400 && empty > 20 && under_k > 300, "tiny layout: hundreds of segments, empty ones, most under k");

	for (int m = VV_METRIC_L2; m <= VV_METRIC_COSINE; m++) {
		for (size_t nq = 1; nq <= LNQ; nq = nq == 1 ? 3 : nq == 3 ? LNQ : LNQ + 1) {
			bool have_ref = false;
			char msg[160];
			bad = 0;
			for (size_t l = 0; l < 3; l++) {
				snprintf(dir, sizeof(dir), "%s/%s", tmpdir, lay[l]);
				if ((r = vv_collection_open(dir, NULL, false, &c, err, sizeof(err))) < 0) {
					tap_diag(err);
					bad++;
					continue;
				}
				for (unsigned th = 1; th <= 3; th++)
					for (size_t u = 0; u < sizeof(ubytes) / sizeof(ubytes[0]); u++) {
						struct vv_search_opts o = { .k = LK, .metric = (enum vv_metric)m,
									    .threads = th, .unit_bytes = ubytes[u] };
						struct vv_hit *out = have_ref ? h : ref;
						if (vv_collection_search(c, &q[0][0], nq, &o, out, err, sizeof(err)) < 0) {
							tap_diag(err);
							bad++;
							continue;
						}
						if (!have_ref) {
							have_ref = true;
							continue;
						}
						/* same rows, same order, same double distances */
						for (size_t i = 0; i < nq * LK; i++)
							bad += h[i].id != ref[i].id || h[i].dist != ref[i].dist;
					}
				vv_collection_free(c);
				c = NULL;
			}
			snprintf(msg, sizeof(msg), "%s nq=%zu: 1, 30 and %zu tiny segments, threads 1-3, "
				 "4 unit sizes: identical results", vv_metric_name((enum vv_metric)m), nq, ntiny);
			ok(bad == 0, msg);
			/* and the reference run matches a float64 brute force */
			bad = 0;
			for (size_t qi = 0; qi < nq; qi++) {
				static double dd[LN];
				double kth;
				for (size_t i = 0; i < LN; i++)
					dd[i] = knn_ref_dist((enum vv_metric)m, ldata[i], q[qi], LD);
				qsort(dd, LN, sizeof(double), dcmp);
				kth = dd[LK - 1];
				for (size_t a = 0; a < LK; a++) {
					const struct vv_hit *x = &ref[qi * LK + a];
					double e = x->id >= 0 && x->id < LN ?
						   knn_ref_dist((enum vv_metric)m, ldata[x->id], q[qi], LD) : NAN;
					bad += !(fabs(e - x->dist) <= 1e-9 * (1 + fabs(e)));
					bad += x->dist > kth + 1e-6 * (1 + fabs(kth));
					if (a)
						bad += ref[qi * LK + a - 1].dist > x->dist;
				}
			}
			snprintf(msg, sizeof(msg), "%s nq=%zu: results match a float64 brute force",
				 vv_metric_name((enum vv_metric)m), nq);
			ok(bad == 0, msg);
			if (m == VV_METRIC_L2) {
				bad = 0;
				for (size_t a = 0; a < LK; a++)
					bad += ref[a].dist != 0 || ref[a].id != (int64_t)dup[a];
				snprintf(msg, sizeof(msg), "l2 nq=%zu: exact ties across segments and units "
					 "in (segment, row) order", nq);
				ok(bad == 0, msg);
			}
		}
	}

	/* past the descriptor budget (RLIMIT_NOFILE less a reserve of 96),
	 * small segments are probed, closed, and opened again by the scan and
	 * the re-ranking: same results */
	{
		struct rlimit old, low;
		struct vv_search_opts o = { .k = LK, .metric = VV_METRIC_L2, .threads = 2 };
		bad = 0;
		getrlimit(RLIMIT_NOFILE, &old);
		low = old;
		low.rlim_cur = 96 + 40;
		for (int m = VV_METRIC_L2; m <= VV_METRIC_IP; m++) {
			snprintf(dir, sizeof(dir), "%s/l1", tmpdir);
			o.metric = (enum vv_metric)m;
			r = vv_collection_open(dir, NULL, false, &c, err, sizeof(err));
			bad += r < 0 || vv_collection_search(c, &q[0][0], LNQ, &o, ref, err, sizeof(err)) < 0;
			vv_collection_free(c);
			c = NULL;
			snprintf(dir, sizeof(dir), "%s/ltiny", tmpdir);
			setrlimit(RLIMIT_NOFILE, &low);
			r = vv_collection_open(dir, NULL, false, &c, err, sizeof(err));
			bad += r < 0 || vv_collection_search(c, &q[0][0], LNQ, &o, h, err, sizeof(err)) < 0;
			vv_collection_free(c);
			c = NULL;
			setrlimit(RLIMIT_NOFILE, &old);
			for (size_t i = 0; i < LNQ * LK; i++)
				bad += h[i].id != ref[i].id || h[i].dist != ref[i].dist;
		}
		ok(bad == 0, "tiny segments past the descriptor budget (reopened to scan): same results");
	}
}

/* ---- vv_segment_knn: one segment in memory (the query offload) ------------ */

#define KD 24
#define KN 17000                 /* several work units: threads split */
#define KQ 3

enum { KF_NPY_F32, KF_FVECS, KF_BVECS, KF_NPY_F16, KF_N };
static const char *const kf_name[KF_N] = { "npy f32", "fvecs", "bvecs u8", "npy f16" };

static float kvals[KN][KD];      /* the rows as the engine converts them */
static uint8_t kseg[KN * (4 + KD * 4) + 4096];

struct bfent {
	double d;
	uint64_t row;
};

static int bfent_cmp(const void *a, const void *b)
{
	const struct bfent *x = a, *y = b;

	if (x->d != y->d)
		return x->d < y->d ? -1 : 1;
	return x->row < y->row ? -1 : x->row > y->row;
}

static double kbf(enum vv_metric m, const float *x, const float *q)
{
	return knn_ref_dist(m, x, q, KD);
}

/* Build segment f of n rows in kseg (values in kvals, as floats); rows 100,
 * 8200 and 16900 are the same vector (a three-way tie across work units).
 * Returns the file length. */
static size_t kseg_make(int f, size_t n, unsigned seed)
{
	static uint8_t raw[KN * KD * 4];
	char dict[128];
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		for (int t = 0; t < KD; t++) {
			uint8_t *p = raw + (i * KD + (size_t)t) * (f == KF_BVECS ? 1 : f == KF_NPY_F16 ? 2 : 4);
			frand(&seed);
			if (f == KF_BVECS) {
				*p = (uint8_t)(seed >> 16);
				kvals[i][t] = (float)*p;
			} else if (f == KF_NPY_F16) {
				/* sign, exponent 2^-5 .. 2^1, random mantissa */
				uint16_t h = (uint16_t)(((seed >> 9) & 1) << 15 | (10 + (seed >> 10) % 7) << 10 |
							((seed >> 16) & 0x3ff));
				p[0] = (uint8_t)h;
				p[1] = (uint8_t)(h >> 8);
				kvals[i][t] = vv_f16_to_f32(h);
			} else {
				kvals[i][t] = frand(&seed);
				memcpy(p, &kvals[i][t], 4);
			}
		}
	if (n > 16900) {
		size_t w = f == KF_BVECS ? 1 : f == KF_NPY_F16 ? 2 : 4;
		memcpy(raw + 8200 * KD * w, raw + 100 * KD * w, KD * w);
		memcpy(raw + 16900 * KD * w, raw + 100 * KD * w, KD * w);
		memcpy(kvals[8200], kvals[100], sizeof(kvals[0]));
		memcpy(kvals[16900], kvals[100], sizeof(kvals[0]));
	}
	if (f == KF_NPY_F32 || f == KF_NPY_F16) {
		snprintf(dict, sizeof(dict), "{'descr': '%s', 'fortran_order': False, 'shape': (%zu, %d), }",
			 f == KF_NPY_F32 ? "<f4" : "<f2", n, KD);
		len = npy_make(kseg, 1, dict, raw, n * KD * (f == KF_NPY_F32 ? 4 : 2));
	} else {
		size_t w = f == KF_BVECS ? 1 : 4, stride = 4 + KD * w;
		for (size_t i = 0; i < n; i++) {
			vv_put_le32(kseg + i * stride, KD);
			memcpy(kseg + i * stride + 4, raw + i * KD * w, KD * w);
		}
		len = n * stride;
	}
	return len;
}

/* Problems in one query's kk candidates against the sorted brute force bfr
 * of n rows: each slot holds the true row of its rank, or one whose exact
 * distance ties the true one within 1e-5 (relative, floor 1); no row twice;
 * the float distance close to the exact one; sorted by (distance, row);
 * slots past n empty. */
static int knn_check(const struct vv_knn_ioc_cand *c, uint32_t kk, const struct bfent *bfr, size_t n,
		     enum vv_metric m, const float *q)
{
	int bad = 0;

	for (uint32_t i = 0; i < kk; i++) {
		double dr;
		if (i >= n) {
			bad += c[i].row != VV_KNN_NO_ROW;
			continue;
		}
		if (c[i].row >= n) {
			bad++;
			continue;
		}
		dr = kbf(m, kvals[c[i].row], q);
		if (c[i].row != bfr[i].row)
			bad += fabs(dr - bfr[i].d) > 1e-5 * (1 + fabs(bfr[i].d));
		bad += fabs((double)c[i].d - dr) > 1e-4 * (1 + fabs(dr));
		for (uint32_t a = 0; a < i; a++)
			bad += c[a].row == c[i].row;
		if (i)
			bad += !(c[i - 1].d < c[i].d || (c[i - 1].d == c[i].d && c[i - 1].row < c[i].row));
	}
	return bad;
}

/* The shared kseg buffer (len bytes) as a segment view with header si. */
static const struct vv_segment_view *kv(size_t len, const struct vv_segment_info *si)
{
	static struct vv_segment_view v;

	v = (struct vv_segment_view){ kseg, len, *si };
	return &v;
}

/* Opening and freeing a collection of hundreds of segments (released in
 * parallel) leaves no descriptor behind, and the process runs no thread
 * but its own between searches: not the scan's, not the loader's, not
 * OpenBLAS's idle pool (stopped when the kernels are configured; it spun
 * on sched_yield beside every query). */
/* The process's threads, not counting io_uring's kernel workers
 * (iou-wrk-*, iou-sqp-*): they are listed under /proc/self/task too, and
 * a closed ring's workers exit when the kernel's teardown gets to them,
 * which may be after the ring's close returned (seen when other processes
 * dropped the page cache meanwhile). */
static int user_threads(void)
{
	char path[300], comm[32];
	struct dirent *de;
	DIR *d = opendir("/proc/self/task");
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		FILE *f;
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", de->d_name);
		comm[0] = 0;
		if ((f = fopen(path, "r"))) {
			if (!fgets(comm, sizeof(comm), f))
				comm[0] = 0;
			fclose(f);
		}
		n += strncmp(comm, "iou-", 4) != 0;
	}
	closedir(d);
	return n;
}

static void test_release(void)
{
	struct vv_collection *c = NULL;
	char err[512], dir[256];
	int fds0, fds1 = -2, tasks;

	vv_vector_configure(NULL);
	snprintf(dir, sizeof(dir), "%s/ltiny", tmpdir);
	fds0 = segf_proc_count("fd");
	for (int i = 0; i < 3; i++) {
		if (vv_collection_open(dir, NULL, false, &c, err, sizeof(err)) < 0) {
			tap_diag(err);
			break;
		}
		vv_collection_free(c);
		c = NULL;
		fds1 = segf_proc_count("fd");
	}
	ok(fds0 > 0 && fds1 == fds0, "open and free of hundreds of segments, 3 times: no descriptor left");
	tasks = user_threads();
	if (tasks != TAP_IDLE_THREADS)
		tap_diag("threads running between searches: more than the test's own");
	ok(tasks == TAP_IDLE_THREADS, "no thread left running between searches (OpenBLAS's idle pool stopped)");
}

static void test_segment_knn(void)
{
	static struct bfent bfr[KQ][KN];
	float q[KQ][KD];
	struct vv_knn_ioc_cand out[KQ * 10 + 1];
	struct vv_segment_info si;
	const char *why = NULL;
	char msg[160];

	for (int f = 0; f < KF_N; f++) {
		size_t len = kseg_make(f, KN, 1000u + (unsigned)f);
		const char *fname = f == KF_FVECS ? "k.fvecs" : f == KF_BVECS ? "k.bvecs" : "k.npy";
		unsigned seed = 99;
		int r;

		r = vv_segment_probe(vv_segment_format_from_name(fname), kseg, VV_VEC_PROBE_LEN, len, &si, &why);
		if (r < 0 || si.count != KN || si.dim != KD) {
			snprintf(msg, sizeof(msg), "%s: probe the in-memory segment", kf_name[f]);
			ok(0, msg);
			continue;
		}
		/* a row itself (ties rows 100, 8200, 16900), one near row 5000,
		 * a mixture of two rows */
		for (int t = 0; t < KD; t++) {
			q[0][t] = kvals[100][t];
			q[1][t] = kvals[5000][t] + frand(&seed) * 0.05f * (fabsf(kvals[5000][t]) + 1);
			q[2][t] = 0.5f * kvals[7][t] + 0.5f * kvals[12345][t];
		}
		for (int m = VV_METRIC_L2; m <= VV_METRIC_COSINE; m++) {
			for (int qi = 0; qi < KQ; qi++) {
				for (size_t i = 0; i < KN; i++)
					bfr[qi][i] = (struct bfent){ kbf((enum vv_metric)m, kvals[i], q[qi]), i };
				qsort(bfr[qi], KN, sizeof(bfr[qi][0]), bfent_cmp);
			}
			for (unsigned th = 1; th <= 2; th++) {
				int bad = 0, rbad = 0;
				for (size_t nq = 1; nq <= KQ; nq += KQ - 1)
					for (uint32_t kk = 1; kk <= 10; kk += 9) {
						out[nq * kk].row = 12345678;       /* must stay */
						r = vv_segment_knn(kv(len, &si), (enum vv_metric)m, &q[0][0], nq,
								   kk, th, out);
						rbad += r != 0 || out[nq * kk].row != 12345678;
						for (size_t qi = 0; r == 0 && qi < nq; qi++)
							bad += knn_check(out + qi * kk, kk, bfr[qi], KN,
									 (enum vv_metric)m, q[qi]);
					}
				snprintf(msg, sizeof(msg), "%s %s threads=%u: nq 1,3 x k 1,10 match brute force",
					 kf_name[f], vv_metric_name((enum vv_metric)m), th);
				if (!ok(r == 0 && rbad == 0 && bad == 0, msg))
					printf("#   last r=%d (%s), %d bad returns, %d bad slots\n", r, vv_strerror(r),
					       rbad, bad);
			}
		}
		/* the exact three-way tie (distance 0) comes back in row order */
		r = vv_segment_knn(kv(len, &si), VV_METRIC_L2, &q[0][0], 1, 4, 2, out);
		snprintf(msg, sizeof(msg), "%s: exact tie across work units ordered by row", kf_name[f]);
		ok(r == 0 && out[0].d == 0 && out[1].d == 0 && out[2].d == 0 && out[3].d > 0 &&
		   out[0].row == 100 && out[1].row == 8200 && out[2].row == 16900, msg);
	}

	/* fewer rows than kk: the rest of the slots are empty */
	{
		size_t len = kseg_make(KF_NPY_F32, 7, 5);
		float qq[KD];
		int bad = 0, r = 0;
		unsigned seed = 3;
		for (int t = 0; t < KD; t++)
			qq[t] = frand(&seed);
		is_int(vv_segment_probe(VV_SEG_NPY, kseg, len, len, &si, &why), 0, "probe a 7-row segment");
		for (int m = VV_METRIC_L2; m <= VV_METRIC_COSINE; m++) {
			for (size_t i = 0; i < 7; i++)
				bfr[0][i] = (struct bfent){ kbf((enum vv_metric)m, kvals[i], qq), i };
			qsort(bfr[0], 7, sizeof(bfr[0][0]), bfent_cmp);
			memset(out, 0, sizeof(out));
			r |= vv_segment_knn(kv(len, &si), (enum vv_metric)m, qq, 1, 10, 2, out);
			bad += knn_check(out, 10, bfr[0], 7, (enum vv_metric)m, qq);
			bad += out[9].row != VV_KNN_NO_ROW;
		}
		ok(r == 0 && bad == 0, "k 10 over 7 rows: 7 best then VV_KNN_NO_ROW slots");
	}

	/* a TEXMEX row with a wrong dim word fails the scan */
	for (int f = KF_FVECS; f <= KF_BVECS; f++) {
		size_t len = kseg_make(f, KN, 77);
		float qq[KD];
		int r;
		memcpy(qq, kvals[3], sizeof(qq));
		vv_segment_probe(f == KF_FVECS ? VV_SEG_FVECS : VV_SEG_BVECS, kseg, VV_VEC_PROBE_LEN, len, &si, &why);
		r = vv_segment_knn(kv(len, &si), VV_METRIC_L2, qq, 1, 5, 2, out);
		snprintf(msg, sizeof(msg), "%s: intact segment scans (row 3 first)", kf_name[f]);
		ok(r == 0 && out[0].row == 3 && out[0].d == 0, msg);
		vv_put_le32(kseg + 9000 * si.stride, KD + 1);
		r = vv_segment_knn(kv(len, &si), VV_METRIC_L2, qq, 1, 5, 2, out);
		snprintf(msg, sizeof(msg), "%s: dim word of row 9000 wrong: VV_ECORRUPT", kf_name[f]);
		is_int(r, VV_ECORRUPT, msg);
	}

	/* bad arguments */
	{
		size_t len = kseg_make(KF_NPY_F32, 100, 11);
		float qq[2 * KD] = { 0 };
		struct vv_segment_info s2;
		vv_segment_probe(VV_SEG_NPY, kseg, len, len, &si, &why);
		is_int(vv_segment_knn(kv(len, &si), VV_METRIC_L2, qq, 1, 1, 1, out), 0, "good arguments: 0");
		is_int(vv_segment_knn(kv(len, &si), VV_METRIC_L2, qq, 0, 1, 1, out), VV_EINVAL, "nq 0: EINVAL");
		is_int(vv_segment_knn(kv(len, &si), VV_METRIC_L2, qq, 1, 0, 1, out), VV_EINVAL, "kk 0: EINVAL");
		is_int(vv_segment_knn(kv(len, &si), VV_METRIC_NONE, qq, 1, 1, 1, out), VV_EINVAL,
		       "metric NONE: EINVAL");
		is_int(vv_segment_knn(kv(len, &si), (enum vv_metric)7, qq, 1, 1, 1, out), VV_EINVAL,
		       "unknown metric: EINVAL");
		is_int(vv_segment_knn(kv(len - 1, &si), VV_METRIC_L2, qq, 1, 1, 1, out), VV_EINVAL,
		       "segment longer than the buffer: EINVAL");
		s2 = si;
		s2.dim = 0;
		is_int(vv_segment_knn(kv(len, &s2), VV_METRIC_L2, qq, 1, 1, 1, out), VV_EINVAL, "dim 0: EINVAL");
	}
}

static int cand_order(const void *a, const void *b)
{
	const struct vv_cand *x = a, *y = b;

	return vv_cand_less(x, y) ? -1 : vv_cand_less(y, x) ? 1 : 0;
}

/* The one scan (vv_scan_run) behind the tool's search and the daemon's
 * offload reads a segment in memory, streamed from a descriptor and
 * reopened by name alike: the same bytes three ways give each best row
 * three times, in segment order, with the distances vv_segment_knn gives.
 * A reopen that finds the file changed since (struct vv_seg_id) fails. */
static void test_scan_sources(void)
{
	size_t len = kseg_make(KF_FVECS, KN, 4242);
	struct vv_segment_view sv;
	struct vv_scan_seg segs[3];
	struct vv_seg_id id;
	struct stat st;
	struct vv_knn_ioc_cand out[4];
	struct vv_scan s;
	const char *why = NULL;
	char path[256];
	float q[KD];
	unsigned seed = 5;
	int fd, dfd, r, bad = 0;

	if (!tmpdir_made && !(tmpdir_made = mkdtemp(tmpdir) != NULL)) {
		ok(0, "scan sources: temporary directory");
		return;
	}
	snprintf(path, sizeof(path), "%s/scan.fvecs", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	dfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || dfd < 0 || write(fd, kseg, len) != (ssize_t)len ||
	    vv_segment_view_init(&sv, kseg, len, VV_SEG_FVECS, &why) < 0) {
		ok(0, "scan sources: write and probe the segment");
		goto out;
	}
	for (int t = 0; t < KD; t++)
		q[t] = kvals[5000][t] + frand(&seed) * 0.05f;
	segs[0] = (struct vv_scan_seg){ .info = sv.info, .base = kseg, .fd = -1, .dirfd = -1 };
	segs[1] = (struct vv_scan_seg){ .info = sv.info, .stream = true, .fd = fd, .dirfd = -1 };
	if (fstat(fd, &st) < 0) {
		ok(0, "scan sources: fstat");
		goto out;
	}
	id = (struct vv_seg_id){ st.st_dev, st.st_ino, len, st.st_ctim };
	segs[2] = (struct vv_scan_seg){ .info = sv.info, .stream = true, .fd = -1, .dirfd = dfd,
					.name = "scan.fvecs", .id = &id };
	s = (struct vv_scan){ .segs = segs, .nsegs = 3, .metric = VV_METRIC_L2, .queries = q, .nq = 1,
			      .d = KD, .kk = 12, .threads = 2, .unit_bytes = 64u << 10 };
	r = vv_scan_run(&s);
	is_int(vv_segment_knn(&sv, VV_METRIC_L2, q, 1, 4, 2, out), 0, "scan sources: offload scan");
	if (!ok(r == 0 && s.ncand[0] >= 12, "scan sources: 3 segments scanned, 12+ candidates")) {
		vv_scan_release(&s);
		goto out;
	}
	ok(s.rows == 3 * (uint64_t)KN, "scan sources: every row of the three scanned");
	qsort(s.cand, s.ncand[0], sizeof(*s.cand), cand_order);
	for (uint32_t i = 0; i < 12; i++) {
		const struct vv_cand *c = &s.cand[i];
		const struct vv_knn_ioc_cand *o = &out[i / 3];
		bad += c->seg != i % 3 || c->row != o->row || c->d != o->d;
	}
	ok(bad == 0, "scan sources: in memory, streamed and reopened give the offload's rows and distances");
	vv_scan_release(&s);

	/* a segment that cannot be read fails the scan, naming it */
	segs[2].name = "missing.fvecs";
	r = vv_scan_run(&s);
	ok(r == VV_ENOENT && s.err_seg == 2 && s.err_errno == ENOENT && !s.cand,
	   "scan sources: unreadable segment 2 fails the scan with its index and errno");
	/* a bad TEXMEX row in the streamed copy only */
	segs[2].name = "scan.fvecs";
	{
		uint8_t w[4];
		vv_put_le32(w, KD + 1);
		bad = pwrite(fd, w, 4, (off_t)(9000 * sv.info.stride)) != 4;
	}
	/* written since its identity was taken: the reopen by name refuses
	 * it (same size, same header; its ctime moved) */
	r = vv_scan_run(&s);
	ok(!bad && r == VV_EIO && s.err_seg == 2 && s.err_changed && !s.cand,
	   "scan sources: segment 2 changed since it was opened: its reopen refused (EIO, changed)");
	bad |= fstat(fd, &st) < 0;
	id = (struct vv_seg_id){ st.st_dev, st.st_ino, len, st.st_ctim };
	r = vv_scan_run(&s);
	ok(!bad && r == VV_ECORRUPT && s.err_seg == 1 && s.err_row == 9000 && s.err_dim == KD + 1,
	   "scan sources: wrong dim word in the streamed segment: VV_ECORRUPT, segment 1, row 9000");
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	unlink(path);
}

static void cleanup(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (tmpdir_made)
		(void)!system(cmd);
}

/* A large segment (past the 4 MiB below which segments are never mapped)
 * on a plain directory is scanned by pread, not through its mapping: a file
 * cut short under an open collection fails the search with an I/O error
 * naming it.  Scanned through the mapping, the same search died of SIGBUS. */
static void test_big_shrink(void)
{
	enum { BR = 9000, BD = 128 };
	static float rows[BR][BD];
	struct vv_collection *c = NULL;
	struct vv_hit h[5];
	char err[512] = "", dir[256], path[300];
	uint8_t *buf = malloc(sizeof(rows) + 256);
	float q[BD];
	size_t n;
	int r = -1;

	vv_vector_configure(NULL);
	for (size_t i = 0; i < BR; i++)
		for (size_t t = 0; t < BD; t++)
			rows[i][t] = (float)((i * 31 + t * 7) % 97);
	for (size_t t = 0; t < BD; t++)
		q[t] = 96.0f;
	snprintf(dir, sizeof(dir), "%s/lbig", tmpdir);
	mkdir(dir, 0755);
	n = buf ? npy_make(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (9000, 128), }",
			   rows, sizeof(rows)) : 0;
	ok(n > (4u << 20), "segment larger than 4 MiB");
	write_file("lbig/big.npy", buf, n);
	free(buf);
	snprintf(path, sizeof(path), "%s/big.npy", dir);
	if (vv_collection_open(dir, NULL, false, &c, err, sizeof(err)) == 0) {
		struct vv_search_opts o = { .k = 5, .metric = VV_METRIC_L2, .threads = 2 };
		r = vv_collection_search(c, q, 1, &o, h, err, sizeof(err));
		ok(r == 0 && h[0].seg == 0, "large segment searched");
		if (truncate(path, 1u << 20) == 0)
			r = vv_collection_search(c, q, 1, &o, h, err, sizeof(err));
		vv_collection_free(c);
	} else {
		tap_diag(err);
		ok(0, "large segment searched");
	}
	is_int(r, VV_EIO, "segment cut short under an open collection: I/O error, no SIGBUS");
	ok(strstr(err, "big.npy") != NULL, "the error names the file");
}

int main(void)
{
	printf("# kernel in use: %s\n", vv_knn_kernel_name());
	test_names();
	test_texmex();
	test_npy();
	test_schema();
	test_f16();
	test_kernels();
	test_topk();
	test_offer_block();
	test_search();
	test_plan();
	test_layouts();
	test_release();
	test_segment_knn();
	test_scan_sources();
	test_big_shrink();
	cleanup();
	return tap_done();
}
