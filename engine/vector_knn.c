/*
 * vector_knn.c - distance kernels (scalar, AVX2+FMA, AVX-512F) and top-k.
 *
 * The batch kernel computes a block of dot products between nx database rows
 * and nq queries with a 3x4 register tile: three rows and four queries give
 * twelve accumulators, so each pair of loads feeds ~1.7 FMAs and the loop is
 * FMA-bound, not load-bound.  The caller blocks rows (L2-sized) and queries
 * (L1-sized) so one pass over the data serves a whole query block; that is
 * what makes large batches compute-bound instead of memory-bound.
 *
 * The SIMD variants are compiled with target attributes so the library runs
 * on any x86-64; one is picked at first use from the CPU's feature bits
 * (AVX-512 only when the CPU has it).  vv_vector_configure() forces one
 * (the CLI's VV_SIMD=scalar|avx2|avx512).
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "vector_int.h"

#ifdef VV_HAVE_OPENBLAS
#include <cblas.h>
#include <dlfcn.h>

#include "vecvault/log.h"
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VV_X86 1
#include <immintrin.h>
#endif

/* ---- scalar ---------------------------------------------------------------- */

static float dot1(const float *a, const float *b, size_t d)
{
	float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	size_t k = 0;

	for (; k + 4 <= d; k += 4) {
		s0 += a[k] * b[k];
		s1 += a[k + 1] * b[k + 1];
		s2 += a[k + 2] * b[k + 2];
		s3 += a[k + 3] * b[k + 3];
	}
	for (; k < d; k++)
		s0 += a[k] * b[k];
	return (s0 + s1) + (s2 + s3);
}

static void dots_scalar(const float *x, size_t xs, size_t nx, const float *q, size_t nq,
			size_t d, float *out, size_t ldo)
{
	for (size_t i = 0; i < nx; i++)
		for (size_t j = 0; j < nq; j++)
			out[i * ldo + j] = dot1(x + i * xs, q + j * d, d);
}

static void l2sq_scalar(const float *x, size_t xs, size_t nx, const float *q, size_t d, float *out)
{
	for (size_t i = 0; i < nx; i++) {
		const float *a = x + i * xs;
		float s = 0;
		for (size_t k = 0; k < d; k++) {
			float t = a[k] - q[k];
			s += t * t;
		}
		out[i] = s;
	}
}

static void norms_scalar(const float *x, size_t xs, size_t nx, size_t d, float *out)
{
	for (size_t i = 0; i < nx; i++)
		out[i] = dot1(x + i * xs, x + i * xs, d);
}

static const struct vv_kernels k_scalar = { "scalar", dots_scalar, l2sq_scalar, norms_scalar };

/* ---- AVX2 + FMA -------------------------------------------------------------- */
#ifdef VV_X86
#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline __m256i tail_mask8(size_t rem)
{
	static const int32_t m[16] = { -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0 };
	return _mm256_loadu_si256((const __m256i *)(m + 8 - rem));
}

AVX2 static inline float hsum8(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* Sums of four accumulators into four floats, one vector. */
AVX2 static inline __m128 hsum4x8(__m256 a, __m256 b, __m256 c, __m256 d)
{
	__m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
	return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

AVX2 static float dot1_avx2(const float *a, const float *b, size_t d, __m256i tm, size_t dm)
{
	__m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
	size_t k = 0;

	for (; k + 16 <= dm; k += 16) {
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), s0);
		s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 8), _mm256_loadu_ps(b + k + 8), s1);
	}
	for (; k < dm; k += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), s0);
	if (dm < d)
		s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + dm, tm), _mm256_maskload_ps(b + dm, tm), s1);
	return hsum8(_mm256_add_ps(s0, s1));
}

/* 3 rows x 4 queries. */
AVX2 static void tile34_avx2(const float *x, size_t xs, const float *q, size_t d,
			     float *out, size_t ldo, __m256i tm, size_t dm)
{
	const float *x0 = x, *x1 = x + xs, *x2 = x + 2 * xs;
	const float *q0 = q, *q1 = q + d, *q2 = q + 2 * d, *q3 = q + 3 * d;
	__m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
	__m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
	__m256 a20 = a00, a21 = a00, a22 = a00, a23 = a00;
	__m256 r0, r1, r2, v;
	size_t k;

#define STEP(LOAD, K) do {                                                    \
		r0 = LOAD(x0 + (K)); r1 = LOAD(x1 + (K)); r2 = LOAD(x2 + (K));      \
		v = LOAD(q0 + (K));                                                  \
		a00 = _mm256_fmadd_ps(r0, v, a00); a10 = _mm256_fmadd_ps(r1, v, a10); \
		a20 = _mm256_fmadd_ps(r2, v, a20);                                   \
		v = LOAD(q1 + (K));                                                  \
		a01 = _mm256_fmadd_ps(r0, v, a01); a11 = _mm256_fmadd_ps(r1, v, a11); \
		a21 = _mm256_fmadd_ps(r2, v, a21);                                   \
		v = LOAD(q2 + (K));                                                  \
		a02 = _mm256_fmadd_ps(r0, v, a02); a12 = _mm256_fmadd_ps(r1, v, a12); \
		a22 = _mm256_fmadd_ps(r2, v, a22);                                   \
		v = LOAD(q3 + (K));                                                  \
		a03 = _mm256_fmadd_ps(r0, v, a03); a13 = _mm256_fmadd_ps(r1, v, a13); \
		a23 = _mm256_fmadd_ps(r2, v, a23);                                   \
	} while (0)
#define LD(p) _mm256_loadu_ps(p)
#define LDM(p) _mm256_maskload_ps((p), tm)
	for (k = 0; k < dm; k += 8)
		STEP(LD, k);
	if (dm < d)
		STEP(LDM, dm);
#undef LD
#undef LDM
#undef STEP
	_mm_storeu_ps(out, hsum4x8(a00, a01, a02, a03));
	_mm_storeu_ps(out + ldo, hsum4x8(a10, a11, a12, a13));
	_mm_storeu_ps(out + 2 * ldo, hsum4x8(a20, a21, a22, a23));
}

AVX2 static void dots_avx2(const float *x, size_t xs, size_t nx, const float *q, size_t nq,
			   size_t d, float *out, size_t ldo)
{
	size_t dm = d & ~(size_t)7, i, j;
	__m256i tm = tail_mask8(d - dm);
	size_t nx3 = nx - nx % 3, nq4 = nq - nq % 4;

	for (j = 0; j < nq4; j += 4)
		for (i = 0; i < nx3; i += 3)
			tile34_avx2(x + i * xs, xs, q + j * d, d, out + i * ldo + j, ldo, tm, dm);
	/* edges: the last rows against all queries, the last queries against
	 * the tiled rows */
	for (i = nx3; i < nx; i++)
		for (j = 0; j < nq; j++)
			out[i * ldo + j] = dot1_avx2(x + i * xs, q + j * d, d, tm, dm);
	for (j = nq4; j < nq; j++)
		for (i = 0; i < nx3; i++)
			out[i * ldo + j] = dot1_avx2(x + i * xs, q + j * d, d, tm, dm);
}

AVX2 static void l2sq_avx2(const float *x, size_t xs, size_t nx, const float *q, size_t d, float *out)
{
	size_t dm = d & ~(size_t)7;
	__m256i tm = tail_mask8(d - dm);

	for (size_t i = 0; i < nx; i++) {
		const float *a = x + i * xs;
		__m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, t;
		size_t k = 0;

		for (; k + 32 <= dm; k += 32) {
			t = _mm256_sub_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(q + k));
			s0 = _mm256_fmadd_ps(t, t, s0);
			t = _mm256_sub_ps(_mm256_loadu_ps(a + k + 8), _mm256_loadu_ps(q + k + 8));
			s1 = _mm256_fmadd_ps(t, t, s1);
			t = _mm256_sub_ps(_mm256_loadu_ps(a + k + 16), _mm256_loadu_ps(q + k + 16));
			s2 = _mm256_fmadd_ps(t, t, s2);
			t = _mm256_sub_ps(_mm256_loadu_ps(a + k + 24), _mm256_loadu_ps(q + k + 24));
			s3 = _mm256_fmadd_ps(t, t, s3);
		}
		for (; k < dm; k += 8) {
			t = _mm256_sub_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(q + k));
			s0 = _mm256_fmadd_ps(t, t, s0);
		}
		if (dm < d) {
			t = _mm256_sub_ps(_mm256_maskload_ps(a + dm, tm), _mm256_maskload_ps(q + dm, tm));
			s1 = _mm256_fmadd_ps(t, t, s1);
		}
		out[i] = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
	}
}

AVX2 static void norms_avx2(const float *x, size_t xs, size_t nx, size_t d, float *out)
{
	size_t dm = d & ~(size_t)7;
	__m256i tm = tail_mask8(d - dm);

	for (size_t i = 0; i < nx; i++)
		out[i] = dot1_avx2(x + i * xs, x + i * xs, d, tm, dm);
}

static const struct vv_kernels k_avx2 = { "avx2", dots_avx2, l2sq_avx2, norms_avx2 };

/* ---- AVX-512F ---------------------------------------------------------------
 * Same shapes as AVX2 with 16 lanes and mask registers for the tail.  This
 * machine class (the CI box) has no AVX-512, so this path is exercised only
 * where the CPU has it; tests compare it with the scalar kernels there. */
#define AVX512 __attribute__((target("avx512f")))

AVX512 static float dot1_avx512(const float *a, const float *b, size_t d)
{
	__m512 s = _mm512_setzero_ps();
	size_t k = 0;

	for (; k + 16 <= d; k += 16)
		s = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k), s);
	if (k < d) {
		__mmask16 m = (__mmask16)((1u << (d - k)) - 1);
		s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + k), _mm512_maskz_loadu_ps(m, b + k), s);
	}
	return _mm512_reduce_add_ps(s);
}

AVX512 static void tile34_avx512(const float *x, size_t xs, const float *q, size_t d,
				 float *out, size_t ldo)
{
	__m512 acc[3][4];
	size_t k = 0;
	__mmask16 m;

	for (int r = 0; r < 3; r++)
		for (int c = 0; c < 4; c++)
			acc[r][c] = _mm512_setzero_ps();
	for (; k + 16 <= d; k += 16) {
		__m512 r0 = _mm512_loadu_ps(x + k), r1 = _mm512_loadu_ps(x + xs + k);
		__m512 r2 = _mm512_loadu_ps(x + 2 * xs + k);
		for (int c = 0; c < 4; c++) {
			__m512 v = _mm512_loadu_ps(q + c * d + k);
			acc[0][c] = _mm512_fmadd_ps(r0, v, acc[0][c]);
			acc[1][c] = _mm512_fmadd_ps(r1, v, acc[1][c]);
			acc[2][c] = _mm512_fmadd_ps(r2, v, acc[2][c]);
		}
	}
	if (k < d) {
		m = (__mmask16)((1u << (d - k)) - 1);
		__m512 r0 = _mm512_maskz_loadu_ps(m, x + k), r1 = _mm512_maskz_loadu_ps(m, x + xs + k);
		__m512 r2 = _mm512_maskz_loadu_ps(m, x + 2 * xs + k);
		for (int c = 0; c < 4; c++) {
			__m512 v = _mm512_maskz_loadu_ps(m, q + c * d + k);
			acc[0][c] = _mm512_fmadd_ps(r0, v, acc[0][c]);
			acc[1][c] = _mm512_fmadd_ps(r1, v, acc[1][c]);
			acc[2][c] = _mm512_fmadd_ps(r2, v, acc[2][c]);
		}
	}
	for (int r = 0; r < 3; r++)
		for (int c = 0; c < 4; c++)
			out[r * ldo + c] = _mm512_reduce_add_ps(acc[r][c]);
}

AVX512 static void dots_avx512(const float *x, size_t xs, size_t nx, const float *q, size_t nq,
			       size_t d, float *out, size_t ldo)
{
	size_t nx3 = nx - nx % 3, nq4 = nq - nq % 4, i, j;

	for (j = 0; j < nq4; j += 4)
		for (i = 0; i < nx3; i += 3)
			tile34_avx512(x + i * xs, xs, q + j * d, d, out + i * ldo + j, ldo);
	for (i = nx3; i < nx; i++)
		for (j = 0; j < nq; j++)
			out[i * ldo + j] = dot1_avx512(x + i * xs, q + j * d, d);
	for (j = nq4; j < nq; j++)
		for (i = 0; i < nx3; i++)
			out[i * ldo + j] = dot1_avx512(x + i * xs, q + j * d, d);
}

AVX512 static void l2sq_avx512(const float *x, size_t xs, size_t nx, const float *q, size_t d, float *out)
{
	for (size_t i = 0; i < nx; i++) {
		const float *a = x + i * xs;
		__m512 s0 = _mm512_setzero_ps(), s1 = s0, t;
		size_t k = 0;

		for (; k + 32 <= d; k += 32) {
			t = _mm512_sub_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(q + k));
			s0 = _mm512_fmadd_ps(t, t, s0);
			t = _mm512_sub_ps(_mm512_loadu_ps(a + k + 16), _mm512_loadu_ps(q + k + 16));
			s1 = _mm512_fmadd_ps(t, t, s1);
		}
		for (; k < d; k += 16) {
			__mmask16 m = d - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (d - k)) - 1);
			t = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + k), _mm512_maskz_loadu_ps(m, q + k));
			s0 = _mm512_fmadd_ps(t, t, s0);
		}
		out[i] = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
	}
}

AVX512 static void norms_avx512(const float *x, size_t xs, size_t nx, size_t d, float *out)
{
	for (size_t i = 0; i < nx; i++)
		out[i] = dot1_avx512(x + i * xs, x + i * xs, d);
}

static const struct vv_kernels k_avx512 = { "avx512", dots_avx512, l2sq_avx512, norms_avx512 };
#endif /* VV_X86 */

/* ---- dispatch ------------------------------------------------------------------ */

const struct vv_kernels *vv_kernels_by_name(const char *name)
{
	if (strcmp(name, "scalar") == 0)
		return &k_scalar;
#ifdef VV_X86
	__builtin_cpu_init();
	if (strcmp(name, "avx2") == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return &k_avx2;
	if (strcmp(name, "avx512") == 0 && __builtin_cpu_supports("avx512f"))
		return &k_avx512;
#endif
	return NULL;
}

/* The host's choice (vv_vector_configure) or, until it makes one, the best
 * this CPU has, picked once. */
static _Atomic(const struct vv_kernels *) chosen;
static pthread_once_t choose_once = PTHREAD_ONCE_INIT;
static atomic_bool blas_off;

static const struct vv_kernels *pick(const char *name)
{
	const struct vv_kernels *k = NULL;

	if (name && *name)
		k = vv_kernels_by_name(name);
	if (!k)
		k = vv_kernels_by_name("avx512");
	if (!k)
		k = vv_kernels_by_name("avx2");
	if (!k)
		k = &k_scalar;
	return k;
}

static void choose(void)
{
	const struct vv_kernels *none = NULL;

	/* configured before the first search: keep the host's choice */
	atomic_compare_exchange_strong(&chosen, &none, pick(NULL));
}

const struct vv_kernels *vv_kernels_get(void)
{
	pthread_once(&choose_once, choose);
	return atomic_load(&chosen);
}

#ifdef VV_HAVE_OPENBLAS
/* OpenBLAS is loaded at the first batch that would use it, not linked:
 * its pthread build starts a pool of ncpu - 1 threads in a constructor
 * and, with libgfortran, costs every process ~27 ms of CPU at start
 * (`vecvault --version` included), though few ever run a batch query.
 * Only three symbols are used; the header still types them. */
#ifndef VV_OPENBLAS_SONAME
#define VV_OPENBLAS_SONAME "libopenblas.so.0"
#endif
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static const char *blas_soname = VV_OPENBLAS_SONAME;
static __typeof__(cblas_sgemm) *blas_sgemm;   /* NULL: not loaded */

/* Our threads split the data; OpenBLAS must not start its own per call.
 * Its pthread build also starts a pool of ncpu - 1 threads when it is
 * loaded, and they spin on sched_yield for ~2^28 cycles waiting for work
 * (the 1,000-2,400 sched_yield that strace counted in every `vecvault
 * query`, whatever the batch): with one thread set, no call ever uses
 * them, so stop them (blas_thread_shutdown_: in its pthread and OpenMP
 * builds, not in its public headers, absent from the serial build). */
static void blas_load(void)
{
	void *h = dlopen(blas_soname, RTLD_NOW | RTLD_LOCAL);
	__typeof__(cblas_sgemm) *sgemm;
	__typeof__(openblas_set_num_threads) *set_threads;
	void (*shutdown)(void);

	if (!h) {
		vv_log(VV_LOG_WARN, "vector: batch queries without BLAS: cannot load %s (%s)",
		       blas_soname, dlerror());
		return;
	}
	*(void **)&sgemm = dlsym(h, "cblas_sgemm");
	*(void **)&set_threads = dlsym(h, "openblas_set_num_threads");
	*(void **)&shutdown = dlsym(h, "blas_thread_shutdown_");
	if (!sgemm || !set_threads) {
		vv_log(VV_LOG_WARN, "vector: batch queries without BLAS: %s has no %s", blas_soname,
		       sgemm ? "openblas_set_num_threads" : "cblas_sgemm");
		dlclose(h);
		return;
	}
	set_threads(1);
	if (shutdown)
		shutdown();
	blas_sgemm = sgemm;   /* h stays open for the process's life */
}

void vv_blas_test_library(const char *soname)
{
	blas_soname = soname;
}
#else
void vv_blas_test_library(const char *soname)
{
	(void)soname;
}
#endif

void vv_kernels_configure(const char *simd, bool no_blas)
{
	atomic_store(&chosen, pick(simd));
	atomic_store(&blas_off, no_blas);
}

const char *vv_knn_kernel_name(void)
{
	return vv_kernels_get()->name;
}

/* ---- element conversion --------------------------------------------------------- */

void vv_convert_row(enum vv_dtype t, const uint8_t *src, size_t n, float *dst)
{
	size_t i;

	switch (t) {
	case VV_DT_F32:
		memcpy(dst, src, n * 4);
		break;
	case VV_DT_F16:
		for (i = 0; i < n; i++)
			dst[i] = vv_f16_to_f32((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
		break;
	case VV_DT_U8:
		for (i = 0; i < n; i++)
			dst[i] = (float)src[i];
		break;
	case VV_DT_I8:
		for (i = 0; i < n; i++)
			dst[i] = (float)(int8_t)src[i];
		break;
	case VV_DT_I32:
		for (i = 0; i < n; i++)
			dst[i] = (float)(int32_t)vv_get_le32(src + 4 * i);
		break;
	default:
		memset(dst, 0, n * sizeof(float));
		break;
	}
}

/* ---- top-k ------------------------------------------------------------------- */

bool vv_cand_less(const struct vv_cand *a, const struct vv_cand *b)
{
	if (a->d != b->d)
		return a->d < b->d;
	if (a->seg != b->seg)
		return a->seg < b->seg;
	return a->row < b->row;
}

void vv_topk_init(struct vv_topk *t, struct vv_cand *storage, uint32_t k)
{
	t->k = k;
	t->n = 0;
	t->thr = INFINITY;
	t->c = storage;
}

static void sift_down(struct vv_cand *h, uint32_t n, uint32_t i)
{
	struct vv_cand x = h[i];

	for (;;) {
		uint32_t l = 2 * i + 1, m;
		if (l >= n)
			break;
		m = l;
		if (l + 1 < n && vv_cand_less(&h[l], &h[l + 1]))
			m = l + 1;
		if (!vv_cand_less(&x, &h[m]))
			break;
		h[i] = h[m];
		i = m;
	}
	h[i] = x;
}

void vv_topk_push(struct vv_topk *t, float d, uint32_t seg, uint64_t row)
{
	struct vv_cand x = { d, seg, row };

	/* Neither NaN nor +-Inf ever enters results: a segment row holding a
	 * NaN or an infinity (or values so large that the float32 distance
	 * overflows) is skipped, the same way in every kernel, in the local
	 * scan and in the daemon's (docs/query.md).  -Inf would otherwise
	 * beat every real row under ip. */
	if (!isfinite(d))
		return;
	if (t->n < t->k) {
		uint32_t i = t->n++;
		while (i > 0) {
			uint32_t p = (i - 1) / 2;
			if (!vv_cand_less(&t->c[p], &x))
				break;
			t->c[i] = t->c[p];
			i = p;
		}
		t->c[i] = x;
		if (t->n == t->k)
			t->thr = t->c[0].d;
		return;
	}
	if (!vv_cand_less(&x, &t->c[0]))
		return;
	t->c[0] = x;
	sift_down(t->c, t->n, 0);
	t->thr = t->c[0].d;
}

/* ---- batch path: BLAS sgemm + filtered top-k -------------------------------- */


bool vv_blas_available(void)
{
#ifdef VV_HAVE_OPENBLAS
	if (atomic_load(&blas_off))
		return false;
	pthread_once(&blas_once, blas_load);
	return blas_sgemm != NULL;
#else
	return false;
#endif
}

bool vv_blas_dots(const float *x, size_t xs, size_t nx, const float *q, size_t nq, size_t d,
		  float alpha, float *out, size_t ldo)
{
#ifdef VV_HAVE_OPENBLAS
	pthread_once(&blas_once, blas_load);
	if (!blas_sgemm)
		return false;
	blas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)nq, (blasint)nx, (blasint)d,
		    alpha, q, (blasint)d, x, (blasint)xs, 0.0f, out, (blasint)ldo);
	return true;
#else
	(void)x; (void)xs; (void)nx; (void)q; (void)nq; (void)d; (void)alpha; (void)out; (void)ldo;
	return false;
#endif
}

static inline float offer_val(const float *o, const float *a, const float *b, float c, size_t i)
{
	return (a ? a[i] : 0.0f) + (b ? b[i] : 1.0f) * o[i] + c;
}

#ifdef VV_X86
__attribute__((target("avx2,fma")))
static size_t offer_avx2(struct vv_topk *t, const float *o, const float *a, const float *b,
			 float c, size_t n, uint32_t seg, uint64_t row0)
{
	size_t i = 0;
	__m256 vc = _mm256_set1_ps(c), one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();

	for (; i + 8 <= n; i += 8) {
		__m256 va = a ? _mm256_loadu_ps(a + i) : zero;
		__m256 vb = b ? _mm256_loadu_ps(b + i) : one;
		__m256 v = _mm256_add_ps(_mm256_fmadd_ps(vb, _mm256_loadu_ps(o + i), va), vc);
		unsigned m = (unsigned)_mm256_movemask_ps(
			_mm256_cmp_ps(v, _mm256_set1_ps(t->thr), _CMP_LE_OQ));
		if (m) {
			float tmp[8];
			_mm256_storeu_ps(tmp, v);
			while (m) {
				unsigned l = (unsigned)__builtin_ctz(m);
				m &= m - 1;
				if (tmp[l] <= t->thr)
					vv_topk_push(t, tmp[l], seg, row0 + i + l);
			}
		}
	}
	return i;
}
#endif

void vv_topk_offer_block(struct vv_topk *t, const float *o, const float *a, const float *b,
			 float c, size_t n, uint32_t seg, uint64_t row0)
{
	size_t i = 0;

#ifdef VV_X86
	if (vv_kernels_get() != &k_scalar)
		i = offer_avx2(t, o, a, b, c, n, seg, row0);
#endif
	for (; i < n; i++) {
		float v = a || b ? offer_val(o, a, b, c, i) : o[i] + c;
		if (v <= t->thr)
			vv_topk_push(t, v, seg, row0 + i);
	}
}

static int cand_cmp(const void *a, const void *b)
{
	const struct vv_cand *x = a, *y = b;
	return vv_cand_less(x, y) ? -1 : vv_cand_less(y, x) ? 1 : 0;
}

void vv_topk_sort(struct vv_topk *t)
{
	qsort(t->c, t->n, sizeof(t->c[0]), cand_cmp);
}

double vv_knn_score(enum vv_metric m, double dist)
{
	return m == VV_METRIC_IP ? -dist : dist;
}
