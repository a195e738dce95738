/*
 * test_vault_knn.c - the vault's query offload (vv_vault_knn) without FUSE:
 * the background fill, answers against a brute force, the cache dropped on
 * writes and truncation, refusals, and close mid-fill; its scan pool (fair
 * between uids, bounded per uid, cancel, drain), the per-request work
 * budget, per-uid shares and lock budget, sparse fills that cost no
 * memory, and O(1) drops among thousands of entries.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fairq_int.h"
#include "os.h"
#include "os_fault.h"
#include "knn_ref.h"
#include "tap.h"
#include "vault_files.h"
#include "vault_unit.h"
#include "vecvault/error.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/vault.h"
#include "vecvault/vector.h"
#include "snap_int.h"
#include "vault_int.h"

/* --- the query offload ---------------------------------------------------------- */
#define KN 20000
#define KD 16
#define KHDR 128                   /* npy header of the segments below */

static float frand(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

/* An .npy file (format 1.0, '<f4', shape (n, d)) of the floats x; its data
 * starts at KHDR. */
static uint8_t *npy_f32(const float *x, size_t n, unsigned d, size_t *len)
{
	char dict[KHDR];
	int hl = snprintf(dict, sizeof(dict), "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %u), }",
			  n, d);
	size_t h = KHDR - 10;
	uint8_t *b = malloc(KHDR + n * d * 4);

	memcpy(b, "\x93NUMPY\x01\x00", 8);
	b[8] = (uint8_t)h;
	b[9] = (uint8_t)(h >> 8);
	memcpy(b + 10, dict, (size_t)hl);
	memset(b + 10 + hl, ' ', h - (size_t)hl - 1);
	b[KHDR - 1] = '\n';
	memcpy(b + KHDR, x, n * d * 4);
	*len = KHDR + n * d * 4;
	return b;
}

static void knn_req(struct vv_knn_ioc *io, enum vv_metric m, uint32_t dim, uint32_t nq, uint32_t kk,
		    const float *q)
{
	memset(io, 0, sizeof(*io));
	io->h.magic = VV_KNN_MAGIC;
	io->h.version = VV_KNN_VERSION;
	io->h.metric = (uint32_t)m;
	io->h.dim = dim;
	io->h.nq = nq;
	io->h.kk = kk;
	io->h.threads = 2;
	io->h.format = VV_SEG_NPY;
	if (q)
		memcpy(io->u.q, q, (size_t)nq * dim * sizeof(float));
}

/* Ask with req (copied into io each time) until the segment is no longer
 * being filled: the first other answer, polling every 10 ms for ~10 s. */
static int knn_wait(struct vv_vault *v, struct vv_file *fh, const struct vv_knn_ioc *req,
		    struct vv_knn_ioc *io)
{
	int r = VV_EAGAIN;

	for (int i = 0; i < 1000 && r == VV_EAGAIN; i++) {
		*io = *req;
		if ((r = vv_vault_knn(v, &root_c, fh, io)) == VV_EAGAIN)
			usleep(10000);
	}
	return r;
}

static double kdist(enum vv_metric m, const float *x, const float *q)
{
	return knn_ref_dist(m, x, q, KD);
}

/* Problems in a reply's candidates against a double-precision brute force
 * over x (n rows): per query the kk best by (distance, row), where a
 * different row is allowed only if its exact distance ties the true one
 * within 1e-5 (relative, floor 1); sorted; the float distance near the
 * exact one; slots past n empty. */
static int knn_bad(const struct vv_knn_ioc *io, enum vv_metric m, const float *q, uint32_t nq, uint32_t kk,
		   const float *x, size_t n)
{
	double *d = malloc(n * sizeof(double));
	int bad = 0;

	for (uint32_t qi = 0; qi < nq; qi++) {
		const struct vv_knn_ioc_cand *c = io->u.c + (size_t)qi * kk;
		uint64_t prev = VV_KNN_NO_ROW;
		double prevd = -INFINITY;
		for (size_t i = 0; i < n; i++)
			d[i] = kdist(m, x + i * KD, q + (size_t)qi * KD);
		for (uint32_t s = 0; s < kk; s++) {
			/* the true s-th: smallest (d, row) above the previous */
			size_t best = n;
			double dr;
			for (size_t i = 0; i < n; i++)
				if ((d[i] > prevd || (d[i] == prevd && prev != VV_KNN_NO_ROW && i > prev)) &&
				    (best == n || d[i] < d[best]))
					best = i;
			if (best == n) {
				bad += c[s].row != VV_KNN_NO_ROW;
				continue;
			}
			prev = best;
			prevd = d[best];
			if (c[s].row >= n) {
				bad++;
				continue;
			}
			dr = d[c[s].row];
			if (c[s].row != best)
				bad += fabs(dr - d[best]) > 1e-5 * (1 + fabs(d[best]));
			bad += fabs((double)c[s].d - dr) > 1e-4 * (1 + fabs(dr));
			if (s)
				bad += !(c[s - 1].d < c[s].d || (c[s - 1].d == c[s].d && c[s - 1].row < c[s].row));
		}
	}
	free(d);
	return bad;
}

static void test_knn(void)
{
	struct vv_vault *v;
	struct vv_attr a, kc;
	struct vv_file *rfh = NULL, *wfh = NULL;
	struct vv_knn_ioc *req = malloc(sizeof(*req)), *io = malloc(sizeof(*io));
	float *x = malloc((size_t)KN * KD * sizeof(float)), q[2 * KD];
	uint64_t ino, ino2;
	unsigned seed = 2024;
	size_t len;
	uint8_t *seg;
	bool kc_;
	int r, hits;

	for (size_t i = 0; i < (size_t)KN * KD; i++)
		x[i] = frand(&seed);
	for (int t = 0; t < KD; t++) {
		q[t] = x[4321 * KD + t] + 0.01f * frand(&seed);   /* near row 4321 */
		q[KD + t] = frand(&seed);
	}
	seg = npy_f32(x, KN, KD, &len);

	v = open_vault_knn(false, 0);
	ok(v != NULL, "knn: open with the offload on (default cache)");
	if (!v)
		goto out;
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "kc", 0755, &kc), 0, "knn: mkdir a collection");
	is_int(vt_write_file(v, &root_c, kc.ino, "seg.npy", seg, len, 0644, &ino), 0,
	       "knn: write a 20000 x 16 f32 .npy");
	is_int(vv_vault_open_file(v, &root_c, ino, O_RDONLY, &rfh, &kc_), 0, "knn: open it O_RDONLY");

	/* first request: the fill starts in the background */
	knn_req(req, VV_METRIC_L2, KD, 2, 10, q);
	*io = *req;
	is_int(vv_vault_knn(v, &root_c, rfh, io), VV_EAGAIN, "knn: first request starts the fill: EAGAIN");
	is_int(knn_wait(v, rfh, req, io), 0, "knn: answered once the segment is decrypted");
	ok(io->h.magic == VV_KNN_MAGIC_REPLY && io->h.version == VV_KNN_VERSION && io->h.rows == KN &&
	   io->h.dim == KD && io->h.nq == 2 && io->h.kk == 10 && io->h.metric == VV_METRIC_L2 &&
	   io->h.format == VV_SEG_NPY, "knn: reply header (VKNR, rows = count, request echoed)");
	is_int(knn_bad(io, VV_METRIC_L2, q, 2, 10, x, KN), 0, "knn: l2 candidates equal the brute force");
	ok(io->u.c[0].row == 4321, "knn: the row the query was made near is the best");
	*io = *req;
	is_int(vv_vault_knn(v, &root_c, rfh, io), 0, "knn: a second request is answered from the cache at once");
	knn_req(req, VV_METRIC_COSINE, KD, 2, 7, q);
	*io = *req;
	r = vv_vault_knn(v, &root_c, rfh, io);
	ok(r == 0 && knn_bad(io, VV_METRIC_COSINE, q, 2, 7, x, KN) == 0, "knn: cosine, k 7 equal the brute force");
	knn_req(req, VV_METRIC_IP, KD, 1, 1, q + KD);
	*io = *req;
	r = vv_vault_knn(v, &root_c, rfh, io);
	ok(r == 0 && knn_bad(io, VV_METRIC_IP, q + KD, 1, 1, x, KN) == 0, "knn: ip, k 1 equals the brute force");
	/* exact replies (version 2): the same candidates as version 1, each
	 * with its double distance, sorted by (distance, row) */
	for (int mi = 0; mi < 3; mi++) {
		static const enum vv_metric ms[3] = { VV_METRIC_L2, VV_METRIC_IP, VV_METRIC_COSINE };
		struct vv_knn_ioc *xo = malloc(sizeof(*xo));
		int same = 0, near = 0, sorted = 0, r1, r2;
		knn_req(req, ms[mi], KD, 2, 12, q);
		*io = *req;
		r1 = vv_vault_knn(v, &root_c, rfh, io);
		*xo = *req;
		xo->h.flags = VV_KNN_F_EXACT;
		r2 = vv_vault_knn(v, &root_c, rfh, xo);
		for (uint32_t qi = 0; r1 == 0 && r2 == 0 && qi < 2; qi++)
			for (uint32_t s = 0; s < 12; s++) {
				const struct vv_knn_ioc_xcand *c = &xo->u.x[qi * 12 + s];
				double dr = c->row < KN ? kdist(ms[mi], x + c->row * KD, q + qi * KD) : NAN;
				for (uint32_t t = 0; t < 12; t++)
					same += io->u.c[qi * 12 + t].row == c->row;
				near += fabs(c->d - dr) <= 1e-9 * (1 + fabs(dr));
				sorted += !s || c[-1].d < c->d || (c[-1].d == c->d && c[-1].row < c->row);
			}
		ok(r1 == 0 && r2 == 0 && xo->h.magic == VV_KNN_MAGIC_REPLY &&
		   xo->h.version == VV_KNN_VERSION_EXACT && xo->h.flags == VV_KNN_F_EXACT &&
		   io->h.version == VV_KNN_VERSION && io->h.flags == 0 && same == 24 && near == 24 &&
		   sorted == 24, mi == 0 ? "knn: exact reply (l2): version 2, the version 1 candidates, "
		   "double distances equal the brute force's, sorted" : mi == 1 ? "knn: exact reply (ip)"
		   : "knn: exact reply (cosine)");
		free(xo);
	}
	knn_req(io, VV_METRIC_L2, KD, 1, 5, q);
	io->h.flags = 2;
	is_int(vv_vault_knn(v, &root_c, rfh, io), VV_EINVAL, "knn: an unknown flag: EINVAL");
	knn_req(io, VV_METRIC_L2, KD, 1, 5, q);
	io->h.pad = 1;
	is_int(vv_vault_knn(v, &root_c, rfh, io), VV_EINVAL, "knn: pad not 0: EINVAL");
	{
		/* the largest request that fits: nq * dim = VV_KNN_MAX_FLOATS rounded down */
		uint32_t nq = (uint32_t)(VV_KNN_MAX_FLOATS / KD);
		knn_req(req, VV_METRIC_L2, KD, nq, 1, NULL);
		for (uint32_t i = 0; i < nq; i++)
			memcpy(req->u.q + (size_t)i * KD, x + (size_t)(i * 71) * KD, KD * sizeof(float));
		*io = *req;
		r = vv_vault_knn(v, &root_c, rfh, io);
		hits = 0;
		for (uint32_t i = 0; r == 0 && i < nq; i++)
			hits += io->u.c[i].row == (uint64_t)i * 71 && fabsf(io->u.c[i].d) < 1e-4f;
		ok(r == 0 && io->h.nq == nq && hits == (int)nq,
		   "knn: 254 queries (the most that fit: batch path) answered, each by its own row");
	}

	/* a write through another handle drops the entry */
	is_int(vv_vault_open_file(v, &root_c, ino, O_WRONLY, &wfh, &kc_), 0, "knn: open it O_WRONLY too");
	memcpy(x + 17 * KD, q, KD * sizeof(float));
	is_int(vv_vault_write(v, &root_c, wfh, q, KD * sizeof(float), KHDR + 17 * KD * sizeof(float)),
	       KD * sizeof(float), "knn: rewrite row 17 as the first query");
	knn_req(req, VV_METRIC_L2, KD, 2, 10, q);
	*io = *req;
	is_int(vv_vault_knn(v, &root_c, rfh, io), VV_EAGAIN, "knn: after the write: EAGAIN (entry dropped)");
	is_int(knn_wait(v, rfh, req, io), 0, "knn: answered again after the refill");
	ok(io->u.c[0].row == 17 && io->u.c[0].d == 0 && io->u.c[1].row == 4321,
	   "knn: the rewritten row is now the best, the old best second");
	is_int(knn_bad(io, VV_METRIC_L2, q, 2, 10, x, KN), 0, "knn: and all candidates equal the new brute force");

	/* refusals */
	*io = *req;
	is_int(vv_vault_knn(v, &root_c, wfh, io), VV_EBADF, "knn: on a write-only handle: EBADF");
	knn_req(io, VV_METRIC_L2, KD - 1, 1, 5, q);
	is_int(vv_vault_knn(v, &root_c, rfh, io), VV_EINVAL, "knn: dim 15 on a dim 16 segment: EINVAL");
	knn_req(io, VV_METRIC_L2, KD + 1, 1, 5, q);
	is_int(vv_vault_knn(v, &root_c, rfh, io), VV_EINVAL, "knn: dim 17 on a dim 16 segment: EINVAL");
	knn_req(io, VV_METRIC_L2, KD, 1, 5, q);
	io->h.magic = VV_KNN_MAGIC_REPLY;
	is_int(vv_vault_knn(v, &root_c, rfh, io), VV_EINVAL, "knn: bad magic: EINVAL");
	knn_req(io, VV_METRIC_L2, KD, 1, 5, q);
	io->h.version = VV_KNN_VERSION + 1;
	is_int(vv_vault_knn(v, &root_c, rfh, io), VV_EINVAL, "knn: unknown version: EINVAL");
	knn_req(io, VV_METRIC_NONE, KD, 1, 5, q);
	is_int(vv_vault_knn(v, &root_c, rfh, io), VV_EINVAL, "knn: metric NONE: EINVAL");
	knn_req(io, VV_METRIC_L2, KD, 1, 5, q);
	io->h.format = VV_SEG_NONE;
	is_int(vv_vault_knn(v, &root_c, rfh, io), VV_EINVAL, "knn: format NONE: EINVAL");
	knn_req(io, VV_METRIC_L2, KD, 0, 5, q);
	is_int(vv_vault_knn(v, &root_c, rfh, io), VV_EINVAL, "knn: nq 0: EINVAL");
	knn_req(io, VV_METRIC_L2, KD, 1, 0, q);
	is_int(vv_vault_knn(v, &root_c, rfh, io), VV_EINVAL, "knn: kk 0: EINVAL");
	knn_req(io, VV_METRIC_L2, KD, (uint32_t)(VV_KNN_MAX_FLOATS / KD) + 1, 1, NULL);
	is_int(vv_vault_knn(v, &root_c, rfh, io), VV_E2BIG, "knn: nq * dim past the payload: E2BIG");
	knn_req(io, VV_METRIC_L2, KD, 2, (uint32_t)(VV_KNN_MAX_CANDS / 2) + 1, q);
	is_int(vv_vault_knn(v, &root_c, rfh, io), VV_E2BIG, "knn: nq * kk past the payload: E2BIG");
	knn_req(io, VV_METRIC_L2, KD, 1, 5, q);
	io->h.format = VV_SEG_FVECS;
	r = vv_vault_knn(v, &root_c, rfh, io);
	ok(r < 0 && r != VV_EAGAIN && io->h.magic == VV_KNN_MAGIC, "knn: an .npy asked for as fvecs: refused");

	/* truncation drops the entry too: the short file no longer parses,
	 * which the daemon finds from its header before decrypting anything;
	 * extended back (the last row zeros) it is filled and answered again */
	{
		struct vv_setattr sa = { .valid = VV_SET_SIZE, .size = len - KD * sizeof(float) };
		is_int(vv_vault_setattr(v, &root_c, ino, &sa, &a), 0, "knn: truncate one row off");
		*io = *req;
		is_int(vv_vault_knn(v, &root_c, rfh, io), VV_EINVAL,
		       "knn: after the truncate: the npy no longer parses (no stale answer; "
		       "EINVAL: not a segment, not tampering)");
		sa.size = len;
		is_int(vv_vault_setattr(v, &root_c, ino, &sa, &a), 0, "knn: extend it back");
		*io = *req;
		is_int(vv_vault_knn(v, &root_c, rfh, io), VV_EAGAIN, "knn: extended: EAGAIN (refill)");
		is_int(knn_wait(v, rfh, req, io), 0, "knn: extended: answered again");
		ok(io->h.magic == VV_KNN_MAGIC_REPLY && io->h.rows == KN, "knn: extended: all rows scanned");
	}
	vv_vault_release(v, wfh);
	vv_vault_release(v, rfh);

	/* A snapshot's copy in the cache goes when the snapshot is deleted
	 * (the node event 'gone'), not when it ages out. */
	{
		struct vv_attr sd, sdir, sc, sf;
		struct knn_stats st0, st1;
		struct vv_file *sfh = NULL;
		is_int(vault_snap_create(v, "k", 0, 0, NULL), 0, "knn: snapshot the vault");
		is_int(vv_vault_lookup(v, &root_c, VV_ROOT_INO, ".snapshots", &sd), 0, "knn: .snapshots");
		is_int(vv_vault_lookup(v, &root_c, sd.ino, "k", &sdir), 0, "knn: .snapshots/k");
		is_int(vv_vault_lookup(v, &root_c, sdir.ino, "kc", &sc), 0, "knn: .snapshots/k/kc");
		is_int(vv_vault_lookup(v, &root_c, sc.ino, "seg.npy", &sf), 0, "knn: .snapshots/k/kc/seg.npy");
		is_int(vv_vault_open_file(v, &root_c, sf.ino, O_RDONLY, &sfh, &kc_), 0, "knn: open the snapshot's copy");
		knn_req(req, VV_METRIC_L2, KD, 2, 10, q);
		is_int(knn_wait(v, sfh, req, io), 0, "knn: the snapshot's copy is scanned (and cached)");
		vv_vault_release(v, sfh);
		vault_knn_cache_stats(v, &st0);
		is_int(vault_snap_delete(v, "k"), 0, "knn: delete the snapshot");
		vault_knn_cache_stats(v, &st1);
		ok(st0.entries >= 1 && st1.entries == st0.entries - 1, "knn: its cached copy went with it at once");
	}

	/* TEXMEX through the vault: a 3000 x 16 fvecs */
	{
		size_t n = 3000, stride = 4 + KD * 4;
		uint8_t *fv = malloc(n * stride);
		struct vv_file *fh;
		for (size_t i = 0; i < n; i++) {
			fv[i * stride] = KD;
			fv[i * stride + 1] = fv[i * stride + 2] = fv[i * stride + 3] = 0;
			memcpy(fv + i * stride + 4, x + i * KD, KD * 4);
		}
		is_int(vt_write_file(v, &root_c, kc.ino, "seg.fvecs", fv, n * stride, 0644, &ino2), 0,
		       "knn: write a 3000 x 16 fvecs");
		is_int(vv_vault_open_file(v, &root_c, ino2, O_RDONLY, &fh, &kc_), 0, "knn: open it");
		knn_req(req, VV_METRIC_L2, KD, 2, 10, q);
		req->h.format = VV_SEG_FVECS;
		*io = *req;
		is_int(vv_vault_knn(v, &root_c, fh, io), VV_EAGAIN, "knn: fvecs: first request EAGAIN");
		r = knn_wait(v, fh, req, io);
		is_int(r, 0, "knn: fvecs: answered once ready");
		ok(r == 0 && io->h.rows == n && knn_bad(io, VV_METRIC_L2, q, 2, 10, x, n) == 0,
		   "knn: fvecs: rows = 3000, candidates equal the brute force");
		vv_vault_release(v, fh);
		free(fv);
	}
	is_int(vv_vault_close(v), 0, "knn: close");

	/* the cache is bounded: room for one segment, the idle one goes */
	memcpy(x + 17 * KD, x + 18 * KD, KD * sizeof(float));
	memcpy(seg + KHDR, x, (size_t)KN * KD * 4);
	v = open_vault_knn(false, 2u << 20);
	ok(v != NULL, "knn: open with a 2 MiB offload cache");
	if (v) {
		struct vv_file *fa, *fb;
		uint64_t ia, ib;
		vt_write_file(v, &root_c, kc.ino, "a.npy", seg, len, 0644, &ia);
		vt_write_file(v, &root_c, kc.ino, "b.npy", seg, len, 0644, &ib);
		vv_vault_open_file(v, &root_c, ia, O_RDONLY, &fa, &kc_);
		vv_vault_open_file(v, &root_c, ib, O_RDONLY, &fb, &kc_);
		knn_req(req, VV_METRIC_L2, KD, 1, 3, q);
		*io = *req;
		r = vv_vault_knn(v, &root_c, fa, io);
		ok(r == VV_EAGAIN && knn_wait(v, fa, req, io) == 0, "knn: a.npy filled");
		*io = *req;
		r = vv_vault_knn(v, &root_c, fb, io);
		ok(r == VV_EAGAIN && knn_wait(v, fb, req, io) == 0 && io->u.c[0].row == 4321,
		   "knn: b.npy filled too (a.npy evicted to make room)");
		*io = *req;
		is_int(vv_vault_knn(v, &root_c, fb, io), 0, "knn: b.npy stays cached");
		*io = *req;
		is_int(vv_vault_knn(v, &root_c, fa, io), VV_EAGAIN, "knn: a.npy was evicted: EAGAIN");
		vv_vault_release(v, fa);
		vv_vault_release(v, fb);
		/* closing with that fill of a.npy still running, or just done */
		is_int(vv_vault_close(v), 0, "knn: close");
	}

	v = open_vault_knn(true, 0);
	ok(v != NULL, "knn: open with the offload off");
	if (v) {
		vv_vault_open_file(v, &root_c, ino, O_RDONLY, &rfh, &kc_);
		knn_req(io, VV_METRIC_L2, KD, 1, 5, q);
		is_int(vv_vault_knn(v, &root_c, rfh, io), VV_ENOTTY, "knn: offload off: ENOTTY");
		vv_vault_release(v, rfh);
		vv_vault_close(v);
	}
	v = open_vault_knn(false, 64u << 10);
	ok(v != NULL, "knn: open with a 64 KiB offload cache");
	if (v) {
		vv_vault_open_file(v, &root_c, ino, O_RDONLY, &rfh, &kc_);
		knn_req(io, VV_METRIC_L2, KD, 1, 5, q);
		is_int(vv_vault_knn(v, &root_c, rfh, io), VV_EFBIG, "knn: 1.3 MB segment, 64 KiB cache: EFBIG");
		knn_req(io, VV_METRIC_L2, KD, 1, 5, q);
		is_int(vv_vault_knn(v, &root_c, rfh, io), VV_EFBIG, "knn: and again EFBIG (no fill started)");
		vv_vault_release(v, rfh);
		vv_vault_close(v);
	}

	/* close while fills are in flight: a large file, and one unlinked meanwhile */
	{
		size_t big = (size_t)KN * 10;      /* 12.8 MB: two fill pieces */
		float *bx = malloc(big * KD * sizeof(float));
		uint8_t *bseg, *hd = malloc(KHDR);
		size_t blen;
		uint64_t i1, i2;
		struct vv_file *f1, *f2;
		for (size_t i = 0; i < big * KD; i++)
			bx[i] = frand(&seed);
		bseg = npy_f32(bx, big, KD, &blen);
		v = open_vault_knn(false, 0);
		ok(v != NULL, "knn: reopen");
		if (v) {
			is_int(vt_write_file(v, &root_c, kc.ino, "big1.npy", bseg, blen, 0644, &i1), 0,
			       "knn: write a 12.8 MB segment");
			is_int(vt_write_file(v, &root_c, kc.ino, "big2.npy", bseg, blen, 0644, &i2), 0,
			       "knn: and another");
			vv_vault_open_file(v, &root_c, i1, O_RDONLY, &f1, &kc_);
			vv_vault_open_file(v, &root_c, i2, O_RDONLY, &f2, &kc_);
			knn_req(io, VV_METRIC_L2, KD, 1, 5, q);
			is_int(vv_vault_knn(v, &root_c, f1, io), VV_EAGAIN, "knn: fill of big1 started");
			knn_req(io, VV_METRIC_L2, KD, 1, 5, q);
			is_int(vv_vault_knn(v, &root_c, f2, io), VV_EAGAIN, "knn: fill of big2 started");
			is_int(vv_vault_unlink(v, &root_c, kc.ino, "big2.npy"), 0, "knn: unlink big2 meanwhile");
			vv_vault_release(v, f1);
			vv_vault_release(v, f2);
			vv_vault_forget(v, i2, 1);
			is_int(vv_vault_close(v), 0, "knn: close with the fills in flight");
		}
		v = open_vault_knn(false, 0);
		ok(v != NULL, "knn: reopen after that");
		if (v) {
			is_int(vv_vault_lookup(v, &root_c, kc.ino, "big1.npy", &a), 0, "knn: big1 is there");
			ok(read_all(v, a.ino, hd, KHDR) == KHDR && memcmp(hd, bseg, KHDR) == 0, "knn: and reads back");
			is_int(vv_vault_lookup(v, &root_c, kc.ino, "big2.npy", &a), VV_ENOENT, "knn: big2 is gone");
			is_int(vv_vault_close(v), 0, "knn: close");
		}
		free(bx);
		free(bseg);
		free(hd);
	}
out:
	free(seg);
	free(x);
	free(req);
	free(io);
}

/* --- the offload's fair queue and scan pool ------------------------------------ */

static void test_fairq(void)
{
	struct fairq q;
	struct fairq_item a[12], b, c2[2], extra, *it;
	int order[16], n = 0, okay = 1;

	fairq_init(&q, 10);
	for (int i = 0; i < 10; i++)
		is_int(fairq_push(&q, &a[i], 1000), 0, i == 0 ? "fairq: uid 1000 queues 10 jobs" : "fairq: push");
	is_int(fairq_push(&q, &a[10], 1000), VV_EBUSY, "fairq: the 11th of uid 1000 is refused: EBUSY");
	is_int(fairq_push(&q, &b, 0), 0, "fairq: then uid 0 queues one");
	is_int(fairq_push(&q, &c2[0], 7), 0, "fairq: and uid 7 two");
	is_int(fairq_push(&q, &c2[1], 7), 0, "fairq: (second)");
	while ((it = fairq_pop(&q)) && n < 16) {
		order[n++] = it == &b ? 0 : it == &c2[0] || it == &c2[1] ? 7 : 1000;
		fairq_done(&q, it);
	}
	is_int(n, 13, "fairq: all 13 popped");
	/* round robin in order of first arrival: 1000, 0, 7, 1000, 7, 1000... */
	okay = n == 13 && order[0] == 1000 && order[1] == 0 && order[2] == 7 && order[3] == 1000 &&
	       order[4] == 7;
	for (int i = 5; i < n; i++)
		okay &= order[i] == 1000;
	ok(okay, "fairq: uid 0 waits for one job of the flooding uid, not ten");
	is_int(fairq_slots(&q, 1000), 0, "fairq: every slot given back");

	/* a uid's FIFO order, requeue, remove */
	fairq_push(&q, &a[0], 5);
	fairq_push(&q, &a[1], 5);
	fairq_push(&q, &extra, 6);
	it = fairq_pop(&q);
	ok(it == &a[0], "fairq: FIFO within a uid");
	fairq_requeue(&q, it);               /* a fill's next piece */
	is_int(fairq_slots(&q, 5), 2, "fairq: requeue keeps the slot, takes none");
	ok(fairq_pop(&q) == &extra, "fairq: the requeued job waits behind uid 6");
	fairq_done(&q, &extra);
	ok(fairq_remove(&q, &a[1]), "fairq: remove a queued job");
	ok(!fairq_remove(&q, &a[1]), "fairq: not twice");
	is_int(fairq_slots(&q, 5), 1, "fairq: remove gives its slot back");
	it = fairq_pop(&q);
	ok(it == &a[0], "fairq: the requeued job runs");
	ok(!fairq_remove(&q, it), "fairq: a running job cannot be removed");
	fairq_done(&q, it);
	ok(fairq_pop(&q) == NULL && q.queued == 0, "fairq: empty");
	fairq_release(&q);
}

struct done_log {
	pthread_mutex_t mu;
	int n;
	int who[16];                     /* uid of each answer, in order */
	int res[16];
	int calls[16];                   /* done calls per request */
};

struct pooled {
	struct done_log *log;
	int idx;
	uint32_t uid;
	struct vv_knn_ioc io;
};

static void pooled_done(void *arg, int r)
{
	struct pooled *p = arg;
	struct done_log *l = p->log;

	pthread_mutex_lock(&l->mu);
	if (l->n < 16) {
		l->who[l->n] = (int)p->uid;
		l->res[l->n++] = r;
	}
	l->calls[p->idx]++;
	pthread_mutex_unlock(&l->mu);
}

static int log_count(struct done_log *l)
{
	int n;

	pthread_mutex_lock(&l->mu);
	n = l->n;
	pthread_mutex_unlock(&l->mu);
	return n;
}

/* Wait until the pool has no fill left (polls; generous cap, no timing). */
static int wait_fills(struct vv_vault *v)
{
	struct knn_stats st;

	for (int i = 0; i < 200000; i++) {
		vault_knn_cache_stats(v, &st);
		if (!st.fillers)
			return 0;
		usleep(50);
	}
	return -1;
}

/* The offload's mapping of a file of len bytes: whole pages. */
static size_t map_len_test(size_t len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (len + pg - 1) / pg * pg;
}

static long rss_kib(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_knn_pool(void)
{
	struct vv_ctx u1000 = { .id = { .uid = 1000, .gid = 1000 }, .umask = 022, .comm = "test" };
	struct vv_vault *v;
	struct vv_attr a, kc;
	struct vv_file *fh, *fh2;
	struct vv_knn_ioc *req = malloc(sizeof(*req)), *io = malloc(sizeof(*io));
	struct pooled *p = calloc(8, sizeof(*p));
	struct done_log log;
	struct knn_stats st;
	float *x = malloc((size_t)KN * KD * sizeof(float)), q[KD];
	unsigned seed = 77;
	uint64_t ino, sino, bino;
	size_t len;
	uint8_t *seg;
	bool kc_;
	int r;

	memset(&log, 0, sizeof(log));
	pthread_mutex_init(&log.mu, NULL);
	for (size_t i = 0; i < (size_t)KN * KD; i++)
		x[i] = frand(&seed);
	for (int t = 0; t < KD; t++)
		q[t] = x[999 * KD + t];
	seg = npy_f32(x, KN, KD, &len);
	v = open_vault_knn(false, 1u << 30);
	ok(v != NULL, "pool: open with a 1 GiB offload cache");
	if (!v)
		goto out;
	vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "pc", 0755, &kc);
	is_int(vt_write_file(v, &root_c, kc.ino, "p.npy", seg, len, 0644, &ino), 0,
	       "pool: write a 20000 x 16 segment");
	vv_vault_open_file(v, &root_c, ino, O_RDONLY, &fh, &kc_);
	knn_req(req, VV_METRIC_L2, KD, 1, 4, q);
	*io = *req;
	ok(vv_vault_knn(v, &u1000, fh, io) == VV_EAGAIN && knn_wait(v, fh, req, io) == 0,
	   "pool: filled on uid 1000's request");
	vault_knn_cache_stats(v, &st);
	ok(st.threads >= 1 && st.threads <= 2, "pool: one or two scan threads");
	ok(st.locked == map_len_test(len), "pool: uid 1000's 1.3 MB entry is locked (under its 8 MiB)");

	/* fairness: uid 1000 queues four scans, root one; root's is answered
	 * after at most one of uid 1000's per pool thread */
	vault_knn_pool_hold(v, true);
	for (int i = 0; i < 5; i++) {
		p[i].log = &log;
		p[i].idx = i;
		p[i].uid = i < 4 ? 1000 : 0;
		p[i].io = *req;
	}
	for (int i = 0; i < 4; i++)
		is_int(vv_vault_knn_submit(v, &u1000, fh, &p[i].io, pooled_done, &p[i]), 0,
		       i == 0 ? "pool: uid 1000 queues four scans" : "pool: queued");
	p[5] = p[0];
	p[5].idx = 5;
	is_int(vv_vault_knn_submit(v, &u1000, fh, &p[5].io, pooled_done, &p[5]), VV_EBUSY,
	       "pool: a fifth from uid 1000 is refused: EBUSY (the tool scans itself)");
	is_int(vv_vault_knn_submit(v, &root_c, fh, &p[4].io, pooled_done, &p[4]), 0, "pool: root queues one");
	ok(log_count(&log) == 0, "pool: nothing ran while held (the FUSE thread returned at once)");
	vault_knn_pool_hold(v, false);
	for (int i = 0; i < 100000 && log_count(&log) < 5; i++)
		usleep(100);
	is_int(log_count(&log), 5, "pool: all five answered");
	{
		int pos = -1, good = 0;
		for (int i = 0; i < log.n; i++) {
			if (log.who[i] == 0)
				pos = i;
			good += log.res[i] == 0;
		}
		ok(pos >= 0 && pos <= (int)st.threads, "pool: root's scan came after at most one of uid 1000's per thread");
		is_int(good, 5, "pool: each answered ok");
		ok(p[4].io.h.magic == VV_KNN_MAGIC_REPLY && p[4].io.u.c[0].row == 999 && p[0].io.u.c[0].row == 999,
		   "pool: with the right rows");
		for (int i = 0; i < 5; i++)
			good += log.calls[i] == 1;
		is_int(good, 10, "pool: each request got exactly one answer");
	}

	/* cancel: a queued request is taken back, never answered */
	vault_knn_pool_hold(v, true);
	log.n = 0;
	memset(log.calls, 0, sizeof(log.calls));
	p[6] = p[0];
	p[6].idx = 6;
	is_int(vv_vault_knn_submit(v, &u1000, fh, &p[6].io, pooled_done, &p[6]), 0, "pool: queue one more");
	is_int(vv_vault_knn_cancel(v, &p[6]), 0, "pool: cancel it while queued");
	is_int(vv_vault_knn_cancel(v, &p[6]), VV_ENOENT, "pool: cancel again: ENOENT");
	p[7] = p[0];
	p[7].idx = 7;
	is_int(vv_vault_knn_submit(v, &u1000, fh, &p[7].io, pooled_done, &p[7]), 0, "pool: and another");
	vault_knn_pool_hold(v, false);
	for (int i = 0; i < 100000 && log_count(&log) < 1; i++)
		usleep(100);
	ok(log.calls[6] == 0 && log.calls[7] == 1, "pool: the canceled one never answered, the other once");

	/* the work budget: rows x dim x queries above 2^31 is refused before
	 * anything is filled; a sparse segment fills without touching memory
	 * for its holes; an unprivileged uid gets a quarter of the cache */
	{
		uint64_t rows = (1u << 22), big = KHDR + rows * KD * 4;   /* 256 MiB, all holes */
		uint8_t *hdr = npy_f32(x, 1, KD, &len);
		struct vv_setattr sa = { .valid = VV_SET_SIZE, .size = big };
		struct vv_file *wf;
		char dict[KHDR];
		int hl = snprintf(dict, sizeof(dict),
				  "{'descr': '<f4', 'fortran_order': False, 'shape': (%llu, %u), }",
				  (unsigned long long)rows, KD);
		long before, after;
		memcpy(hdr + 10, dict, (size_t)hl);
		vv_vault_create(v, &root_c, kc.ino, "sparse.npy", 0644, O_WRONLY, &a, &wf);
		sino = a.ino;
		vv_vault_write(v, &root_c, wf, hdr, KHDR, 0);
		vv_vault_release(v, wf);
		is_int(vv_vault_setattr(v, &root_c, sino, &sa, &a), 0, "budget: a 256 MiB sparse segment (a hole after its header)");
		vv_vault_open_file(v, &root_c, sino, O_RDONLY, &fh2, &kc_);
		knn_req(io, VV_METRIC_L2, KD, 33, 1, NULL);
		is_int(vv_vault_knn(v, &root_c, fh2, io), VV_E2BIG, "budget: 4M rows x 16 x 33 queries: E2BIG");
		vault_knn_cache_stats(v, &st);
		is_int(st.fillers, 0, "budget: and no fill was started for it");
		knn_req(io, VV_METRIC_L2, KD, 1, 3, q);
		is_int(vv_vault_knn(v, &u1000, fh2, io), VV_EFBIG,
		       "share: 256 MiB for uid 1000 (a quarter of 1 GiB is the limit): EFBIG");
		before = rss_kib();
		knn_req(req, VV_METRIC_L2, KD, 1, 3, q);
		*io = *req;
		r = vv_vault_knn(v, &root_c, fh2, io);
		ok(r == VV_EAGAIN && wait_fills(v) == 0, "sparse: root's request starts the fill");
		after = rss_kib();
		/* the fill writes the header's block only; the scan then reads
		 * the holes (fresh anonymous pages on this kernel: the reason the
		 * whole mapping counts against the uid's share) */
		ok(after - before < 64 * 1024, "sparse: filling it took < 64 MiB of memory (holes not written)");
		if (after - before >= 64 * 1024)
			printf("#   rss grew %ld KiB\n", after - before);
		ok(knn_wait(v, fh2, req, io) == 0, "sparse: and it is answered");
		ok(io->h.rows == rows && io->u.c[0].row == 0 && io->u.c[1].row == 1,
		   "sparse: all 4M zero rows scanned, ties by row");
		vault_knn_cache_stats(v, &st);
		ok(st.locked >= big && st.locked <= st.lock_cap, "lock: root's entry is locked, within the budget");
		vv_vault_release(v, fh2);
		free(hdr);
	}
	/* an unprivileged uid locks at most 8 MiB: a 12.8 MB entry is not */
	{
		size_t bn = (size_t)KN * 10, blen;
		float *bx = malloc(bn * KD * sizeof(float));
		uint8_t *bseg;
		size_t locked0;
		for (size_t i = 0; i < bn; i++)
			memcpy(bx + i * KD, x + (i % KN) * KD, KD * sizeof(float));
		bseg = npy_f32(bx, bn, KD, &blen);
		vt_write_file(v, &root_c, kc.ino, "b.npy", bseg, blen, 0644, &bino);
		vault_knn_cache_stats(v, &st);
		locked0 = st.locked;
		vv_vault_open_file(v, &root_c, bino, O_RDONLY, &fh2, &kc_);
		*io = *req;
		ok(vv_vault_knn(v, &u1000, fh2, io) == VV_EAGAIN && wait_fills(v) == 0,
		   "lock: uid 1000 fills a 12.8 MB segment");
		*io = *req;
		is_int(vv_vault_knn(v, &u1000, fh2, io), 0, "lock: and is answered from it");
		vault_knn_cache_stats(v, &st);
		is_int(st.locked, locked0, "lock: but it is not locked (past uid 1000's 8 MiB)");
		vv_vault_release(v, fh2);
		free(bx);
		free(bseg);
	}

	/* drain: queued requests are answered ECANCELED, once; new ones refused */
	vault_knn_pool_hold(v, true);
	log.n = 0;
	memset(log.calls, 0, sizeof(log.calls));
	for (int i = 0; i < 2; i++) {
		p[i].io = *req;
		is_int(vv_vault_knn_submit(v, &u1000, fh, &p[i].io, pooled_done, &p[i]), 0, "drain: queued");
	}
	vv_vault_knn_drain(v);
	ok(log.n == 2 && log.res[0] == VV_ECANCELED && log.res[1] == VV_ECANCELED &&
	   log.calls[0] == 1 && log.calls[1] == 1, "drain: both answered ECANCELED, once each");
	is_int(vv_vault_knn_submit(v, &u1000, fh, &p[2].io, pooled_done, &p[2]), VV_ECANCELED,
	       "drain: a new request is refused");
	vault_knn_pool_hold(v, false);
	vv_vault_release(v, fh);
	is_int(vv_vault_close(v), 0, "pool: close");
	ok(log.n == 2, "pool: close answered nothing twice");

	/* O(1) drops: thousands of one-row segments cached, then a write
	 * drops exactly its own entry, comparing only a handful */
	{
		const char *env = getenv("VV_TEST_KNN_SEGS");
		int nseg = env ? atoi(env) : 3000, mid = nseg / 2, filled = 0;
		uint64_t *inos = calloc((size_t)nseg, sizeof(*inos));
		uint8_t one[4 + KD * 4];
		char nm[32];
		v = open_vault_knn(false, 1u << 30);
		ok(v != NULL, "drop: reopen");
		if (!v) {
			free(inos);
			goto out;
		}
		vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "many", 0755, &kc);
		knn_req(req, VV_METRIC_L2, KD, 1, 1, q);
		req->h.format = VV_SEG_FVECS;
		one[0] = KD;
		one[1] = one[2] = one[3] = 0;
		for (int i = 0; i < nseg; i++) {
			struct vv_file *f;
			snprintf(nm, sizeof(nm), "s%05d.fvecs", i);
			memcpy(one + 4, x + (size_t)(i % KN) * KD, KD * 4);
			if (vt_write_file(v, &root_c, kc.ino, nm, one, sizeof(one), 0644, &inos[i]) < 0 ||
			    vv_vault_open_file(v, &root_c, inos[i], O_RDONLY, &f, &kc_) < 0)
				break;
			*io = *req;
			r = vv_vault_knn(v, &root_c, f, io);
			if (r == VV_EAGAIN && wait_fills(v) == 0)
				filled++;
			vv_vault_release(v, f);
		}
		is_int(filled, nseg, "drop: every one-row segment was filled");
		vault_knn_cache_stats(v, &st);
		ok(st.entries == (size_t)nseg && st.chains >= (size_t)nseg,
		   "drop: all cached, the table grew with them");
		vv_vault_open_file(v, &root_c, inos[mid], O_RDWR, &fh, &kc_);
		is_int(vv_vault_write(v, &root_c, fh, one, sizeof(one), 0), (long)sizeof(one), "drop: write one of them");
		vault_knn_cache_stats(v, &st);
		ok(st.entries == (size_t)nseg - 1, "drop: exactly one entry dropped");
		ok(st.drop_probes >= 1 && st.drop_probes <= 8, "drop: found comparing a handful of entries, not thousands");
		if (st.drop_probes > 8)
			printf("#   %llu compared\n", (unsigned long long)st.drop_probes);
		*io = *req;
		is_int(vv_vault_knn(v, &root_c, fh, io), VV_EAGAIN, "drop: the written one is refilled");
		vv_vault_release(v, fh);
		r = 0;
		for (int d = -1; d <= 1; d += 2) {
			vv_vault_open_file(v, &root_c, inos[mid + d], O_RDONLY, &fh, &kc_);
			*io = *req;
			r += vv_vault_knn(v, &root_c, fh, io) == 0 && io->u.c[0].row == 0;
			vv_vault_release(v, fh);
		}
		is_int(r, 2, "drop: its neighbours are still answered from the cache");
		is_int(vv_vault_close(v), 0, "drop: close");
		free(inos);
	}
out:
	pthread_mutex_destroy(&log.mu);
	free(seg);
	free(x);
	free(p);
	free(req);
	free(io);
}

int main(void)
{
	vu_setup(true);
	test_knn();
	test_fairq();
	test_knn_pool();
	vu_cleanup();
	return tap_done();
}
