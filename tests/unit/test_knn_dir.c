/*
 * test_knn_dir.c - the query offload's directory request (knn_ioctl.h "the
 * directory request"): the pure check of a request (knn_ioc.c), the scan
 * of the names served together (vv_segments_knn_exact), and
 * vv_vault_knn_dir on a vault: each name decided as the caller's lookup and read-only open would
 * (other users' files, FIFOs, directories, symlinks, a directory without
 * search right, a purged file), answers against the per-file request, the
 * work budget, the bound on fills one request starts, a write dropping the
 * cached copy, and small entries that take no mapping each.  Through the
 * pool (vv_vault_knn_dir_submit, the pool held between the two steps): a
 * revoke, a purge and a data change between prepare and scan not served,
 * the uid's fifth request refused before any name is looked at, cancel and
 * drain letting go of every pin and cache reference, audit records after
 * the scan only.
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

#include "tap.h"
#include "knn_int.h"
#include "vault_files.h"
#include "vault_int.h"
#include "meta_int.h"
#include "snap_int.h"
#include "vecvault/access.h"
#include "vecvault/error.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/vault.h"
#include "vecvault/vector.h"

#define PASS "knn dir unit test"
#define D 4

static char top[256], store[300], state[300], alog[300];
static struct vv_ctx root_c = { .id = { .uid = 0, .gid = 0 }, .umask = 022, .comm = "test" };
static struct vv_ctx u1000_c = { .id = { .uid = 1000, .gid = 1000 }, .umask = 022, .comm = "test" };
static struct vv_ctx nobody_c = { .id = { .uid = 65534, .gid = 65534 }, .umask = 022, .comm = "test" };

/* A request of nq queries (q) of dim d for names (NULL-terminated). */
static void dir_req(struct vv_knn_dir_ioc *io, uint32_t d, uint32_t nq, uint32_t kk,
		    const float *q, const char *const *names)
{
	uint8_t *p = io->u + (size_t)nq * d * sizeof(float);
	uint32_t n = 0;

	memset(io, 0, sizeof(*io));
	io->h.magic = VV_KNN_DIR_MAGIC;
	io->h.version = VV_KNN_DIR_VERSION;
	io->h.metric = VV_METRIC_L2;
	io->h.dim = d;
	io->h.dtype = VV_DT_F32;
	io->h.format = VV_SEG_FVECS;
	io->h.nq = nq;
	io->h.kk = kk;
	memcpy(io->u, q, (size_t)nq * d * sizeof(float));
	for (; names && names[n]; n++) {
		size_t l = strlen(names[n]) + 1;
		memcpy(p, names[n], l);
		p += l;
	}
	io->h.nnames = n;
	io->h.names_len = (uint32_t)(p - (io->u + (size_t)nq * d * sizeof(float)));
}

/* ---- the check ---------------------------------------------------------------- */
static void test_check(void)
{
	static const char *const two[] = { "a.fvecs", "b", NULL };
	struct vv_knn_dir_ioc *io = malloc(sizeof(*io)), *ok_io = malloc(sizeof(*ok_io));
	float q[D] = { 1, 2, 3, 4 };
	char name[300];
	const char *one[2] = { name, NULL };
	uint8_t *names;

	dir_req(ok_io, D, 1, 3, q, two);
	is_int(vv_knn_dir_request_check(ok_io), 0, "check: a good request passes");
#define BAD(field, val, want, msg) do { *io = *ok_io; io->h.field = (val); \
		is_int(vv_knn_dir_request_check(io), want, msg); } while (0)
	BAD(magic, VV_KNN_MAGIC, VV_EINVAL, "check: the file request's magic");
	BAD(version, 2, VV_EINVAL, "check: version 2");
	BAD(flags, 1, VV_EINVAL, "check: a flag");
	BAD(metric, 0, VV_EINVAL, "check: metric NONE");
	BAD(metric, 4, VV_EINVAL, "check: metric 4");
	BAD(format, 0, VV_EINVAL, "check: format NONE");
	BAD(format, 5, VV_EINVAL, "check: format 5");
	BAD(dtype, VV_DT_ANY, VV_EINVAL, "check: dtype ANY");
	BAD(dtype, 7, VV_EINVAL, "check: dtype 7");
	BAD(dim, 0, VV_EINVAL, "check: dim 0");
	BAD(nq, 0, VV_EINVAL, "check: nq 0");
	BAD(kk, 0, VV_EINVAL, "check: kk 0");
	BAD(kk, VV_VEC_MAX_K + 1025, VV_EINVAL, "check: kk over the bound");
	BAD(nnames, 0, VV_EINVAL, "check: no names");
	BAD(nnames, VV_KNN_DIR_MAX_NAMES + 1, VV_EINVAL, "check: too many names");
	BAD(nnames, 1, VV_EINVAL, "check: nnames 1, two names in the area");
	BAD(nnames, 3, VV_EINVAL, "check: nnames 3, two names in the area");
	BAD(names_len, ok_io->h.names_len - 1, VV_EINVAL, "check: the last name's NUL outside the area");
	BAD(names_len, ok_io->h.names_len + 1, VV_EINVAL, "check: a byte after the last name");
	BAD(names_len, UINT32_MAX, VV_E2BIG, "check: names_len 2^32-1: E2BIG, nothing read past");
	BAD(names_len, (uint32_t)(VV_KNN_DIR_PAYLOAD - D * 4 + 1), VV_E2BIG, "check: one byte past the payload");
	BAD(nq, 1u << 30, VV_E2BIG, "check: nq 2^30 (nq * dim * 4 wraps 32 bits)");
	BAD(dim, 1u << 31, VV_E2BIG, "check: dim 2^31");
	/* output too large: 2 * 16 + nq * kk * 24 over the payload */
	BAD(kk, (uint32_t)(VV_KNN_DIR_PAYLOAD / 24), VV_E2BIG, "check: the reply would not fit");
	*io = *ok_io;
	io->h.kk = (uint32_t)((VV_KNN_DIR_PAYLOAD - 2 * sizeof(struct vv_knn_dir_stat)) / 24);
	is_int(vv_knn_dir_request_check(io), 0, "check: the largest reply that fits");
	*io = *ok_io;
	((float *)(void *)io->u)[2] = NAN;
	is_int(vv_knn_dir_request_check(io), VV_EINVAL, "check: a NaN query");
	((float *)(void *)io->u)[2] = INFINITY;
	is_int(vv_knn_dir_request_check(io), VV_EINVAL, "check: an infinite query");

	/* names */
	names = NULL;
#define NAME(s, want, msg) do { snprintf(name, sizeof(name), "%s", s); dir_req(io, D, 1, 1, q, one); \
		is_int(vv_knn_dir_request_check(io), want, msg); } while (0)
	NAME("a/b", VV_EINVAL, "check: a name with '/'");
	NAME("/", VV_EINVAL, "check: the name '/'");
	NAME(".", VV_EINVAL, "check: the name '.'");
	NAME("..", VV_EINVAL, "check: the name '..'");
	NAME("...", 0, "check: the name '...' is a name");
	NAME(".a", 0, "check: a hidden name is a name");
	memset(name, 'x', 255);
	name[255] = 0;
	dir_req(io, D, 1, 1, q, one);
	is_int(vv_knn_dir_request_check(io), 0, "check: a name of 255 bytes");
	memset(name, 'x', 256);
	name[256] = 0;
	dir_req(io, D, 1, 1, q, one);
	is_int(vv_knn_dir_request_check(io), VV_EINVAL, "check: a name of 256 bytes");
	dir_req(io, D, 1, 1, q, two);
	names = io->u + D * 4;
	names[7] = 0;                      /* "a.fvecs\0\0b\0": an empty name between */
	names[8] = 0;
	io->h.nnames = 3;
	is_int(vv_knn_dir_request_check(io), VV_EINVAL, "check: an empty name");
	/* an area filling the payload to its last byte, no NUL at all */
	dir_req(io, D, 1, 1, q, two);
	io->h.names_len = (uint32_t)(VV_KNN_DIR_PAYLOAD - D * 4);
	memset(io->u + D * 4, 'y', io->h.names_len);
	io->h.nnames = 1;
	is_int(vv_knn_dir_request_check(io), VV_EINVAL, "check: a payload of name bytes without a NUL");
	/* 256 names of one byte each */
	{
		char *many[VV_KNN_DIR_MAX_NAMES + 2];
		char bufs[VV_KNN_DIR_MAX_NAMES + 1][4];
		for (unsigned i = 0; i <= VV_KNN_DIR_MAX_NAMES; i++) {
			snprintf(bufs[i], sizeof(bufs[i]), "%c", 'A' + i % 26);
			many[i] = bufs[i];
		}
		many[VV_KNN_DIR_MAX_NAMES] = NULL;
		dir_req(io, D, 1, 1, q, (const char *const *)many);
		is_int(vv_knn_dir_request_check(io), 0, "check: 256 names");
		many[VV_KNN_DIR_MAX_NAMES] = bufs[VV_KNN_DIR_MAX_NAMES];
		many[VV_KNN_DIR_MAX_NAMES + 1] = NULL;
		dir_req(io, D, 1, 1, q, (const char *const *)many);
		is_int(vv_knn_dir_request_check(io), VV_EINVAL, "check: 257 names");
	}
	free(io);
	free(ok_io);
}

/* ---- the scan of the names served together ------------------------------------ */
/* Three fvecs views of dim 2, rows with ties within and across them: the
 * kk best of all, by (distance, segment, row), exact distances, unused
 * slots last. */
static void test_scan_many(void)
{
	uint32_t dim = 2;
	float rows[3][3][2] = { { { 1, 0 }, { 3, 0 }, { 2, 0 } },
				{ { 0.5f, 0 }, { 2, 0 }, { 1, 0 } },
				{ { 2, 0 }, { 0, 0 }, { 0, 0 } } };
	uint32_t nrows[3] = { 3, 3, 1 };
	uint8_t seg[3][3 * 12];
	struct vv_segment_view sv[3];
	struct vv_knn_dir_cand out[8];
	float q[2] = { 0, 0 };
	const char *why;

	for (int s = 0; s < 3; s++) {
		for (uint32_t r = 0; r < nrows[s]; r++) {
			memcpy(seg[s] + r * 12, &dim, 4);
			memcpy(seg[s] + r * 12 + 4, rows[s][r], 8);
		}
		ok(vv_segment_view_init(&sv[s], seg[s], nrows[s] * 12, VV_SEG_FVECS, &why) == 0,
		   "scan: a view of each segment");
	}
	is_int(vv_segments_knn_exact(sv, 3, VV_METRIC_L2, q, 1, 8, out), 0, "scan: 3 views");
	/* (0.25,1,0) (1,0,0) (1,1,2) (4,0,2) (4,1,1) (4,2,0) (9,0,1), then unused */
	ok(out[0].d == 0.25 && out[0].name == 1 && out[0].row == 0 && out[1].d == 1 &&
	   out[1].name == 0 && out[1].row == 0 && out[2].name == 1 && out[2].row == 2,
	   "scan: best first, ties to the earlier segment");
	ok(out[3].d == 4 && out[3].name == 0 && out[3].row == 2 && out[4].name == 1 &&
	   out[4].row == 1 && out[5].name == 2 && out[5].row == 0 && out[6].d == 9,
	   "scan: a three-way tie by (segment, row)");
	ok(out[7].row == VV_KNN_NO_ROW && out[7].name == VV_KNN_DIR_NO_NAME && isinf(out[7].d),
	   "scan: fewer rows than kk: the unused slot last");
	is_int(vv_segments_knn_exact(sv, 3, VV_METRIC_L2, q, 1, 1, out), 0, "scan: k 1");
	ok(out[0].name == 1 && out[0].row == 0, "scan: k 1 is the best of all views");
	is_int(vv_segments_knn_exact(sv, 0, VV_METRIC_L2, q, 1, 1, out), VV_EINVAL, "scan: no view");
	{
		struct vv_segment_view odd[2] = { sv[0], sv[1] };
		odd[1].info.dim = 3;
		is_int(vv_segments_knn_exact(odd, 2, VV_METRIC_L2, q, 1, 1, out), VV_EINVAL,
		       "scan: views of two dims refused");
		odd[1] = sv[1];
		odd[1].len = 20;
		is_int(vv_segments_knn_exact(odd, 2, VV_METRIC_L2, q, 1, 1, out), VV_EINVAL,
		       "scan: a view shorter than its rows refused");
	}
}

/* ---- on a vault ------------------------------------------------------------------ */
/* An .fvecs of n rows of dim d: row i = (i + seed, 0, ...). */
static uint8_t *fvecs(uint32_t n, uint32_t d, float seed, size_t *len)
{
	size_t rl = 4 + (size_t)d * 4;
	uint8_t *b = calloc(n ? n : 1, rl);

	for (uint32_t i = 0; i < n; i++) {
		float x = (float)i + seed;
		memcpy(b + i * rl, &d, 4);
		memcpy(b + i * rl + 4, &x, 4);
	}
	*len = n * rl;
	return b;
}

static int put(struct vv_vault *v, const struct vv_ctx *c, uint64_t dir, const char *name,
	       uint32_t n, uint32_t d, float seed, uint32_t mode)
{
	size_t len;
	uint8_t *b = fvecs(n, d, seed, &len);
	uint64_t ino;
	int r = vt_write_file(v, c, dir, name, b, len, mode, &ino);

	free(b);
	return r;
}

static int ask(struct vv_vault *v, const struct vv_ctx *c, uint64_t dir, struct vv_knn_dir_ioc *io,
	       uint32_t d, uint32_t nq, uint32_t kk, const float *q, const char *const *names)
{
	struct vv_dir *dh;
	int r = vv_vault_opendir(v, &root_c, dir, &dh);

	if (r < 0)
		return r;
	dir_req(io, d, nq, kk, q, names);
	r = vv_vault_knn_dir(v, c, dh, io);
	vv_vault_releasedir(v, dh);
	return r;
}

static const struct vv_knn_dir_stat *stats(const struct vv_knn_dir_ioc *io)
{
	return (const struct vv_knn_dir_stat *)(const void *)io->u;
}

static const struct vv_knn_dir_cand *cands(const struct vv_knn_dir_ioc *io)
{
	return (const struct vv_knn_dir_cand *)(const void *)(io->u + io->h.nnames *
							     sizeof(struct vv_knn_dir_stat));
}

static int map_count(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, ch;

	while (f && (ch = fgetc(f)) != EOF)
		n += ch == '\n';
	if (f)
		fclose(f);
	return n;
}

static void test_vault(void)
{
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT,
				   .knn_cache_bytes = 256u << 20, .state_dir = state };
	struct vv_knn_dir_ioc *io = malloc(sizeof(*io));
	struct vv_vault *v = NULL;
	struct vv_attr c, sub, a;
	struct vv_setattr sa = { .valid = VV_SET_MODE };
	struct knn_stats st;
	float q[D] = { 5, 0, 0, 0 };
	int r, m0, m1;

	is_int(vv_vault_open(store, PASS, strlen(PASS), &o, &v), 0, "vault: open, offload on");
	if (!v)
		return;
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "c", 0755, &c), 0, "vault: mkdir c");
	is_int(put(v, &root_c, c.ino, "a.fvecs", 10, D, 0, 0644), 0, "vault: a.fvecs rows 0..9");
	is_int(put(v, &root_c, c.ino, "b.fvecs", 10, D, 0, 0644), 0, "vault: b.fvecs, the same rows");
	is_int(put(v, &root_c, c.ino, "secret.fvecs", 10, D, 0.25, 0600), 0, "vault: secret.fvecs 0600");
	is_int(put(v, &root_c, c.ino, "d8.fvecs", 10, 8, 0, 0644), 0, "vault: d8.fvecs of dim 8");
	is_int(vv_vault_mkdir(v, &root_c, c.ino, "sub", 0755, &sub), 0, "vault: a directory");
	is_int(vv_vault_symlink(v, &root_c, c.ino, "link", "a.fvecs", &a), 0, "vault: a symlink to a.fvecs");
	is_int(vv_vault_mknod(v, &root_c, c.ino, "fifo", S_IFIFO | 0644, 0, &a), 0, "vault: a FIFO");
	{
		static const char *const names[] = { "a.fvecs", "secret.fvecs", "b.fvecs", "sub", "link",
						     "fifo", "missing", "d8.fvecs", NULL };
		static const int want_root[] = { 0, 0, 0, -22, -22, -22, -2, -22 };
		static const int want_nobody[] = { 0, -13, 0, -22, -22, -13, -2, -22 };
		const struct vv_knn_dir_cand *k;
		bool good = true;

		r = ask(v, &root_c, c.ino, io, D, 1, 3, q, names);
		for (int i = 0; r == 0 && i < 8; i++)
			good &= stats(io)[i].err == want_root[i];
		k = cands(io);
		/* row 5 of a and of b at 0, then secret's row 5 (5.25: 0.0625) */
		ok(r == 0 && good && io->h.served == 3 && io->h.rows == 30 && io->h.magic ==
		   VV_KNN_DIR_MAGIC_REPLY && k[0].name == 0 && k[0].row == 5 && k[0].d == 0 &&
		   k[1].name == 2 && k[1].row == 5 && k[2].name == 1 && k[2].row == 5 &&
		   k[2].d == 0.0625, "root: a, secret, b served; the rest refused per name; merged "
		   "by (distance, name index, row)");
		r = ask(v, &nobody_c, c.ino, io, D, 1, 3, q, names);
		good = true;
		for (int i = 0; r == 0 && i < 8; i++)
			good &= stats(io)[i].err == want_nobody[i];
		k = cands(io);
		ok(r == 0 && good && io->h.served == 2 && io->h.rows == 20 && stats(io)[1].rows == 0,
		   "nobody: secret.fvecs (0600) and the FIFO (no rw) -EACCES, as lookup and open");
		good = true;
		for (int i = 0; i < 3; i++)
			good &= k[i].name != 1;
		ok(r == 0 && good && k[0].name == 0 && k[1].name == 2 && k[2].row == 4,
		   "nobody: no candidate of the file it may not read");

		/* the directory loses search right for nobody: every name refused */
		sa.mode = 0750;
		is_int(vv_vault_setattr(v, &root_c, c.ino, &sa, &a), 0, "chmod c 0750");
		r = ask(v, &nobody_c, c.ino, io, D, 1, 3, q, names);
		good = r == 0 && io->h.served == 0;
		for (int i = 0; good && i < 8; i++)
			good &= stats(io)[i].err == -13 && stats(io)[i].rows == 0;
		for (int i = 0; good && i < 3; i++)
			good &= cands(io)[i].row == VV_KNN_NO_ROW && cands(io)[i].name == VV_KNN_DIR_NO_NAME;
		ok(good, "nobody, directory 0750 (handle opened by root): every name -EACCES, no candidate");
		sa.mode = 0755;
		is_int(vv_vault_setattr(v, &root_c, c.ino, &sa, &a), 0, "chmod c 0755");
	}
	/* a write drops the cached copy: the next answer is the new bytes */
	{
		static const char *const names[] = { "a.fvecs", NULL };
		is_int(put(v, &root_c, c.ino, "a2.fvecs", 1, D, 0, 0644), 0, "vault: a2.fvecs");
		r = ask(v, &root_c, c.ino, io, D, 1, 1, q, names);
		ok(r == 0 && cands(io)[0].row == 5, "a.fvecs: row 5 nearest");
		is_int(vv_vault_unlink(v, &root_c, c.ino, "a.fvecs"), 0, "unlink a.fvecs");
		is_int(put(v, &root_c, c.ino, "a.fvecs", 10, D, 100, 0644), 0, "a new a.fvecs, rows 100..109");
		r = ask(v, &root_c, c.ino, io, D, 1, 1, q, names);
		ok(r == 0 && cands(io)[0].row == 0 && cands(io)[0].d == 95.0 * 95.0,
		   "the new file's bytes answer (row 0, distance 95^2)");
	}
	/* the parse kept with a cached copy is the format asked's: the same
	 * bytes asked as ivecs (int32, the same layout) are no float32
	 * segment, then as fvecs again they are */
	{
		static const char *const names[] = { "a.fvecs", NULL };
		r = ask(v, &root_c, c.ino, io, D, 1, 1, q, names);
		ok(r == 0 && stats(io)[0].err == 0, "view: a.fvecs as fvecs (parsed, kept)");
		dir_req(io, D, 1, 1, q, names);
		io->h.format = VV_SEG_IVECS;
		{
			struct vv_dir *dh2;
			vv_vault_opendir(v, &root_c, c.ino, &dh2);
			r = vv_vault_knn_dir(v, &root_c, dh2, io);
			vv_vault_releasedir(v, dh2);
		}
		ok(r == 0 && stats(io)[0].err == -EINVAL && io->h.served == 0,
		   "view: the same copy asked as ivecs: -EINVAL (int32, not the fvecs parse)");
		r = ask(v, &root_c, c.ino, io, D, 1, 1, q, names);
		ok(r == 0 && stats(io)[0].err == 0 && cands(io)[0].row == 0,
		   "view: as fvecs again: served");
	}
	/* a file whose third row has a wrong dim word passes the probe and
	 * fails the scan: every name of that request is unserved (the tool
	 * reads them and names the bad one), and a request without it is
	 * served */
	{
		static const char *const both[] = { "g0", "bad", NULL }, *const good[] = { "g0", NULL };
		size_t len;
		uint8_t *b = fvecs(5, D, 0, &len);
		uint32_t wrong = D + 1;
		uint64_t ino;
		float q0[D] = { 0 };

		memcpy(b + 2 * (4 + (size_t)D * 4), &wrong, 4);
		is_int(vt_write_file(v, &root_c, c.ino, "bad", b, len, 0644, &ino), 0, "vault: bad");
		free(b);
		is_int(put(v, &root_c, c.ino, "g0", 4, D, 0, 0644), 0, "vault: g0");
		r = ask(v, &root_c, c.ino, io, D, 1, 3, q0, both);
		ok(r == 0 && stats(io)[0].err != 0 && stats(io)[1].err != 0 && io->h.served == 0 &&
		   cands(io)[0].row == VV_KNN_NO_ROW,
		   "a bad row in one file: no name of the request served, no candidate");
		r = ask(v, &root_c, c.ino, io, D, 1, 3, q0, good);
		ok(r == 0 && stats(io)[0].err == 0 && io->h.served == 1 && cands(io)[0].row == 0,
		   "the good file alone is served");
	}
	/* a file over the heap's size but within the inline one (600 KB):
	 * decrypted in the request's own turn, so served at once */
	{
		static const char *const mid[] = { "m0", NULL };
		float q0 = 0;
		is_int(put(v, &root_c, c.ino, "m0", 75000, 1, 0, 0644), 0, "vault: a 600 KB m0");
		r = ask(v, &root_c, c.ino, io, 1, 1, 1, &q0, mid);
		ok(r == 0 && stats(io)[0].err == 0 && stats(io)[0].rows == 75000 &&
		   cands(io)[0].name == 0 && cands(io)[0].row == 0,
		   "a 600 KB file served by the first request (decrypted inline)");
	}
	/* the work budget: 140,000 rows of dim 1 x 300 queries x 33 is over half
	 * of 2^31, so the second such file is -E2BIG; files over the inline
	 * size (1 MiB) are filled by jobs, at most 2 per request (pool held) */
	{
		static const char *const big[] = { "w0", "w1", "w2", NULL };
		float *qq = calloc(300, sizeof(float));
		vault_knn_pool_hold(v, true);
		for (int i = 0; i < 3; i++)
			put(v, &root_c, c.ino, big[i], 140000, 1, (float)i, 0644);
		r = ask(v, &root_c, c.ino, io, 1, 300, 1, qq, big);
		vault_knn_cache_stats(v, &st);
		ok(r == 0 && stats(io)[0].err == -11 && stats(io)[1].err == -11 && stats(io)[2].err == -11 &&
		   st.fillers == 2, "large files: -EAGAIN, 2 fill jobs started (not 3)");
		vault_knn_pool_hold(v, false);
		for (int t = 0; t < 500; t++) {
			r = ask(v, &root_c, c.ino, io, 1, 300, 1, qq, big);
			if (r || (stats(io)[0].err != -11 && stats(io)[1].err != -11))
				break;
			usleep(10000);
		}
		ok(r == 0 && stats(io)[0].err == 0 && stats(io)[1].err == -E2BIG,
		   "the work budget: the first file served, the second -E2BIG");
		free(qq);
	}
	/* 3000 small files: cached on the heap, not one mapping each */
	{
		char (*nm)[16] = calloc(256, sizeof(*nm));
		const char *names[257];
		size_t e0;
		bool good = true;

		for (int i = 0; i < 3000; i++) {
			snprintf(nm[0], sizeof(nm[0]), "t%04d", i);
			put(v, &root_c, sub.ino, nm[0], 3, D, (float)i, 0644);
		}
		vault_knn_cache_stats(v, &st);
		e0 = st.entries;
		m0 = map_count();
		for (int base = 0; base < 3000; base += 250) {
			int n = 0;
			for (int i = base; i < base + 250 && i < 3000; i++, n++) {
				snprintf(nm[n], sizeof(nm[n]), "t%04d", i);
				names[n] = nm[n];
			}
			names[n] = NULL;
			r = ask(v, &root_c, sub.ino, io, D, 1, 2, q, names);
			good &= r == 0 && io->h.served == (uint32_t)n;
		}
		m1 = map_count();
		vault_knn_cache_stats(v, &st);
		ok(good, "3000 small files served in 12 requests, none -EAGAIN");
		ok(st.entries == e0 + 3000, "3000 more cache entries");
		ok(m1 < m0 + 100, "and not a mapping each");
		printf("# maps %d -> %d, entries %zu, bytes %zu\n", m0, m1, st.entries, st.bytes);
		free(nm);
	}
	/* names whose nodes are not in memory (the kernel forgot them, or
	 * never looked them up: the tool names files it does not open) are
	 * built from rows read with their entries, not from a query each for
	 * the inode and one for its ACL; the same decisions: a 0600 file, one
	 * whose ACL grants u1000 read, one whose ACL denies it */
	{
		enum { NN = 64 };
		char (*nm)[16] = calloc(NN, sizeof(*nm));
		const char *names[NN + 1];
		uint8_t *grant = NULL, *deny = NULL;
		size_t glen = 0, dlen = 0;
		struct vv_attr co, fa;
		uint64_t runs, warm;
		bool good = true;

		is_int(vv_vault_mkdir(v, &root_c, sub.ino, "cold", 0755, &co), 0, "mkdir cold");
		good &= vv_acl_from_text("u::rw-,u:1000:r--,g::---,m::r--,o::---", &grant, &glen) == 0 &&
			vv_acl_from_text("u::rw-,u:1000:---,g::r--,m::r--,o::r--", &deny, &dlen) == 0;
		for (int i = 0; i < NN; i++) {
			snprintf(nm[i], sizeof(nm[i]), "k%02d", i);
			names[i] = nm[i];
			good &= put(v, &root_c, co.ino, nm[i], 3, D, (float)i, i == 5 || i == 7 ? 0600 : 0644) == 0 &&
				vv_vault_lookup(v, &root_c, co.ino, nm[i], &fa) == 0;
			if (i == 7)
				good &= vv_vault_setxattr(v, &root_c, fa.ino, "system.posix_acl_access", grant,
							  glen, 0) == 0;
			if (i == 9)
				good &= vv_vault_setxattr(v, &root_c, fa.ino, "system.posix_acl_access", deny,
							  dlen, 0) == 0;
			vv_vault_forget(v, fa.ino, 2);        /* the create's lookup and this one */
		}
		names[NN] = NULL;
		ok(good, "64 files, their nodes forgotten");
		r = ask(v, &u1000_c, co.ino, io, D, 1, 2, q, names);      /* fills the cache */
		pthread_mutex_lock(&v->mu);
		good = vault_node_find(v, fa.ino) && vault_node_find(v, fa.ino)->idle &&
		       vault_node_find(v, fa.ino)->pins == 0;
		pthread_mutex_unlock(&v->mu);
		ok(r == 0 && good, "asked as u1000 once: the nodes stay idle after the scan");
		(void)vv_meta_runs(v->meta);
		r = ask(v, &u1000_c, co.ino, io, D, 1, 2, q, names);
		warm = vv_meta_runs(v->meta);
		ok(r == 0 && io->h.served == NN - 2, "asked again, nodes idle: the same served");
		/* now as after a remount: every node built from its row */
		pthread_mutex_lock(&v->mu);
		vault_node_idle_drop(v);
		good = vault_node_find(v, fa.ino) == NULL;
		pthread_mutex_unlock(&v->mu);
		ok(good, "idle nodes dropped");
		r = ask(v, &u1000_c, co.ino, io, D, 1, 2, q, names);
		runs = vv_meta_runs(v->meta);
		good = r == 0 && io->h.served == NN - 2;
		for (int i = 0; i < NN; i++)
			good &= stats(io)[i].err == (i == 5 || i == 9 ? -EACCES : 0);
		ok(good, "asked again: served but the 0600 file and the file whose ACL denies u1000");
		printf("# %llu queries of meta.db for %d names whose nodes were not in memory\n",
		       (unsigned long long)runs, NN);
		ok(runs <= NN / 8, "one pass over the entries and their rows per 32 names, not a "
				   "query per name for the inode and its ACL");
		printf("# %llu with the nodes idle\n", (unsigned long long)warm);
		ok(warm < runs, "idle nodes spare the query of the rows");
		free(grant);
		free(deny);
		free(nm);
	}
	/* 1000 files of 25 KB fill 13 chunks of the small entries' arena;
	 * truncating all but every 50th leaves a live entry or two per chunk:
	 * the cache moves them to the heap (slab_compact), the arena gives its
	 * chunks back, and the kept files answer as before, from their moved
	 * copies */
	{
		enum { NF = 1000, EVERY = 50, ROWS = 1280 };
		char (*nm)[16] = calloc(NF, sizeof(*nm));
		const char *names[257], *kept[NF / EVERY + 1];
		struct vv_knn_dir_cand before[NF / EVERY * 2];
		size_t held0, nk = 0;
		bool good = true, same;
		uint32_t kk = NF / EVERY * 2;
		struct vv_attr fr;

		is_int(vv_vault_mkdir(v, &root_c, sub.ino, "frag", 0755, &fr), 0, "mkdir frag");
		for (int i = 0; i < NF; i++) {
			snprintf(nm[i], sizeof(nm[i]), "f%04d", i);
			good &= put(v, &root_c, fr.ino, nm[i], ROWS, D, (float)i, 0644) == 0;
		}
		for (int b = 0; b < NF; b += 250) {
			for (int i = 0; i < 250; i++)
				names[i] = nm[b + i];
			names[250] = NULL;
			r = ask(v, &root_c, fr.ino, io, D, 1, 2, q, names);
			good &= r == 0 && io->h.served == 250;
		}
		vault_knn_cache_stats(v, &st);
		held0 = st.slab_held;
		ok(good && held0 >= 12 * (2u << 20), "1000 files of 25 KB cached in the arena");
		for (int i = 0; i < NF; i += EVERY)
			kept[nk++] = nm[i];
		kept[nk] = NULL;
		r = ask(v, &root_c, fr.ino, io, D, 1, kk, q, kept);
		ok(r == 0 && io->h.served == nk, "every 50th file answers");
		memcpy(before, cands(io), sizeof(before));
		/* truncated: each write drops its file's entry (an unlink would
		 * only move the file to the trash) */
		for (int i = 0; i < NF; i++) {
			struct vv_setattr tr = { .valid = VV_SET_SIZE, .size = 0 };
			struct vv_attr fa;
			if (i % EVERY == 0)
				continue;
			good &= vv_vault_lookup(v, &root_c, fr.ino, nm[i], &fa) == 0 &&
				vv_vault_setattr(v, &root_c, fa.ino, &tr, &fa) == 0;
		}
		vault_knn_cache_stats(v, &st);
		ok(good && st.slab_held <= 2 * (st.slab_live + st.slab_outside) + (8u << 20) &&
		   st.slab_held <= held0 / 2,
		   "the others truncated: the arena within 2 x its live bytes + 8 MiB again");
		printf("# arena held %zu -> %zu, live %zu, outside %zu\n", held0, st.slab_held,
		       st.slab_live, st.slab_outside);
		r = ask(v, &root_c, fr.ino, io, D, 1, kk, q, kept);
		same = r == 0 && io->h.served == nk && memcmp(before, cands(io), sizeof(before)) == 0;
		for (size_t i = 0; i < nk; i++)
			same &= stats(io)[i].err == 0;
		ok(same, "the kept files answer from their moved copies as before, none refilled");
		free(nm);
	}
	/* a virtual directory: ENOTTY */
	{
		struct vv_dir *dh;
		static const char *const names[] = { "x", NULL };
		is_int(vv_vault_opendir(v, &root_c, VV_TRASH_INO, &dh), 0, "opendir .trash");
		dir_req(io, D, 1, 1, q, names);
		is_int(vv_vault_knn_dir(v, &root_c, dh, io), VV_ENOTTY, ".trash: ENOTTY");
		vv_vault_releasedir(v, dh);
	}
	vv_vault_close(v);
	free(io);
}

/* ---- the two steps through the pool ----------------------------------------------- */
struct pdone {
	int calls, r;
	struct vv_knn_dir_ioc io;
};

static void pdone_fn(void *arg, int r)
{
	struct pdone *p = arg;

	__atomic_store_n(&p->r, r, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&p->calls, 1, __ATOMIC_SEQ_CST);
}

static bool wait_done(struct pdone *p)
{
	for (int i = 0; i < 20000 && !__atomic_load_n(&p->calls, __ATOMIC_SEQ_CST); i++)
		usleep(500);
	return __atomic_load_n(&p->calls, __ATOMIC_SEQ_CST) == 1;
}

/* Pins on inode ino's node (0 when it is not in memory). */
static uint32_t pins_of(struct vv_vault *v, uint64_t ino)
{
	struct node *n;
	uint32_t k;

	pthread_mutex_lock(&v->mu);
	n = vault_node_find(v, ino);
	k = n ? n->pins : 0;
	pthread_mutex_unlock(&v->mu);
	return k;
}

static size_t held(struct vv_vault *v)
{
	struct knn_stats st;

	vault_knn_cache_stats(v, &st);
	return st.held;
}

static int first_name(void *ctx, const struct vv_dirent *e, const struct vv_attr *attr)
{
	(void)attr;
	if (strcmp(e->name, ".") && strcmp(e->name, "..") && !*(char *)ctx)
		snprintf(ctx, 256, "%s", e->name);
	return 0;
}

/* "scan" records of .../name in the audit log with result res (NULL: any). */
static int scans_of(const char *name, const char *res)
{
	struct vv_audit_iter *it;
	struct vv_audit_entry e;
	size_t nl = strlen(name);
	int k = 0, r;

	if (vv_audit_iter_open(alog, &it) < 0)
		return -1;
	while ((r = vv_audit_iter_next(it, &e)) != 0) {
		size_t pl;
		if (r < 0 || !e.op || strcmp(e.op, "scan") || !e.path)
			continue;
		pl = strlen(e.path);
		if (pl > nl && e.path[pl - nl - 1] == '/' && !strcmp(e.path + pl - nl, name) &&
		    (!res || (e.result && !strcmp(e.result, res))))
			k++;
	}
	vv_audit_iter_free(it);
	return k;
}

static void test_pipe(void)
{
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF, .audit_log = alog,
				   .knn_cache_bytes = 256u << 20, .state_dir = state,
				   .trash_secs = 3600 };
	static const char *const names[] = { "f0", "f1", "f2", "f3", NULL };
	static const char *const two[] = { "f0", "h0", NULL };
	struct pdone *p = calloc(12, sizeof(*p));
	struct vv_vault *v = NULL;
	struct vv_attr pd;
	struct vv_dir *dh = NULL, *th = NULL;
	uint64_t ino[4], h0;
	float q[D] = { 5, 0, 0, 0 };
	char tname[256] = "";
	size_t len;
	uint8_t *b;
	struct vv_file *wf;
	bool kc, good;
	uint32_t pin0;
	struct knn_stats st;

	is_int(vv_vault_open(store, PASS, strlen(PASS), &o, &v), 0, "pipe: open, audit on, trash on");
	if (!v)
		goto out;
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "pp", 0755, &pd), 0, "pipe: mkdir pp");
	for (int i = 0; i < 4; i++) {
		char nm[8];
		snprintf(nm, sizeof(nm), "f%d", i);
		b = fvecs(10, D, (float)(1000 * i), &len);
		vt_write_file(v, &root_c, pd.ino, nm, b, len, 0644, &ino[i]);
		free(b);
	}
	b = fvecs(10, D, 7, &len);
	vt_write_file(v, &root_c, pd.ino, "h0", b, len, 0644, &h0);
	free(b);
	is_int(vv_vault_opendir(v, &root_c, pd.ino, &dh), 0, "pipe: opendir pp");
	pin0 = pins_of(v, ino[0]);

	/* a revoke (f1), a purge (f2: rm, then purged from the trash) and a
	 * data change (f3) while the prepared request waits: none served,
	 * f0 is */
	vault_knn_pool_hold(v, true);
	dir_req(&p[0].io, D, 1, 40, q, names);
	is_int(vv_vault_knn_dir_submit(v, &u1000_c, dh, &p[0].io, pdone_fn, &p[0]), 0,
	       "pipe: queued (pool held)");
	vault_knn_cache_stats(v, &st);
	ok(pins_of(v, ino[0]) == pin0 + 1 && st.held == 4 && st.entries == 4,
	   "pipe: prepared at submit: names pinned, 4 copies made and referenced, pool held");
	pthread_mutex_lock(&v->mu);
	vault_node_revoke(v, vault_node_find(v, ino[1]));
	pthread_mutex_unlock(&v->mu);
	is_int(vv_vault_unlink(v, &root_c, pd.ino, "f2"), 0, "pipe: rm f2 (to the trash)");
	is_int(vv_vault_opendir(v, &root_c, VV_TRASH_FILES_INO, &th), 0, "pipe: opendir .trash/files");
	if (th) {
		vv_vault_readdir(v, th, 0, false, first_name, tname);
		vv_vault_releasedir(v, th);
	}
	is_int(vv_vault_unlink(v, &root_c, VV_TRASH_FILES_INO, tname), 0, "pipe: purge f2 from the trash");
	is_int(vv_vault_open_file(v, &root_c, ino[3], O_WRONLY, &wf, &kc), 0, "pipe: open f3 to write");
	b = fvecs(10, D, 5000, &len);
	ok(vv_vault_write(v, &root_c, wf, b, len, 0) == (ssize_t)len, "pipe: f3 rewritten (rows 5000..)");
	free(b);
	vv_vault_release(v, wf);
	ok(p[0].calls == 0, "pipe: nothing answered while held");
	vault_knn_pool_hold(v, false);
	good = wait_done(&p[0]) && p[0].r == 0;
	{
		const struct vv_knn_dir_stat *s = stats(&p[0].io);
		const struct vv_knn_dir_cand *k = cands(&p[0].io);
		bool only0 = true;
		for (int i = 0; i < 40; i++)
			only0 &= k[i].name == 0 || k[i].name == VV_KNN_DIR_NO_NAME;
		ok(good && s[0].err == 0 && s[0].rows == 10 && p[0].io.h.served == 1 && only0,
		   "pipe: f0 served, alone: no candidate of the others");
		is_int(s[1].err, -ENOENT, "pipe: revoked meanwhile: -ENOENT (as its lookup now)");
		is_int(s[2].err, -ENOENT, "pipe: purged meanwhile: -ENOENT");
		is_int(s[3].err, -EAGAIN, "pipe: rewritten meanwhile: -EAGAIN (the caller reads the new bytes)");
	}
	ok(pins_of(v, ino[0]) == pin0 && held(v) == 0, "pipe: answered: no pin, no cache reference left");

	/* cancel of a prepared request lets go of what it holds; never answered */
	vault_knn_pool_hold(v, true);
	dir_req(&p[1].io, D, 1, 3, q, two);
	is_int(vv_vault_knn_dir_submit(v, &u1000_c, dh, &p[1].io, pdone_fn, &p[1]), 0, "cancel: queued");
	ok(pins_of(v, ino[0]) == pin0 + 1 && pins_of(v, h0) >= 1 && held(v) == 2,
	   "cancel: prepared: two pins, two references");
	is_int(vv_vault_knn_cancel(v, &p[1]), 0, "cancel: taken back");
	ok(pins_of(v, ino[0]) == pin0 && pins_of(v, h0) == 0 && held(v) == 0,
	   "cancel: no pin, no cache reference left");

	/* a request stopped while being prepared (its cancel or a drain came
	 * meanwhile) looks at no further name */
	{
		struct knn_dir_req *dr = NULL;
		bool stop = true;
		dir_req(&p[10].io, D, 1, 3, q, two);
		is_int(vault_knn_dir_prepare(v, &u1000_c, dh, &p[10].io, &stop, &dr), 0, "stop: prepared");
		ok(dr && pins_of(v, ino[0]) == pin0 && pins_of(v, h0) == 0 && held(v) == 0,
		   "stop: no name looked at once stopped");
		vault_knn_dir_discard(v, dr);
	}

	/* the uid's fifth request: EBUSY before any name is looked at */
	for (int i = 2; i < 6; i++) {
		dir_req(&p[i].io, D, 1, 3, q, names);
		is_int(vv_vault_knn_dir_submit(v, &u1000_c, dh, &p[i].io, pdone_fn, &p[i]), 0,
		       i == 2 ? "busy: uid 1000 queues four" : "busy: queued");
	}
	vault_knn_cache_stats(v, &st);
	dir_req(&p[6].io, D, 1, 3, q, two);
	is_int(vv_vault_knn_dir_submit(v, &u1000_c, dh, &p[6].io, pdone_fn, &p[6]), VV_EBUSY,
	       "busy: the fifth: EBUSY");
	{
		struct knn_stats st2;
		vault_knn_cache_stats(v, &st2);
		ok(pins_of(v, ino[0]) == pin0 + 4 && pins_of(v, h0) == 0 && st2.held == st.held &&
		   st2.entries == st.entries, "busy: nothing looked at: h0 not pinned nor decrypted");
	}
	dir_req(&p[7].io, D, 1, 3, q, two);
	is_int(vv_vault_knn_dir_submit(v, &root_c, dh, &p[7].io, pdone_fn, &p[7]), 0,
	       "busy: root still queues one");
	/* drain: the queued prepared requests answered ECANCELED, released */
	vv_vault_knn_drain(v);
	good = true;
	for (int i = 2; i < 8; i++)
		good &= p[i].calls == (i == 6 ? 0 : 1) && (i == 6 || p[i].r == VV_ECANCELED);
	ok(good, "drain: each queued request answered ECANCELED once");
	ok(pins_of(v, ino[0]) == pin0 && pins_of(v, h0) == 0 && held(v) == 0,
	   "drain: no pin, no cache reference left");
	vault_knn_pool_hold(v, false);
	vv_vault_releasedir(v, dh);
	vv_vault_close(v);
	v = NULL;

	/* a close with prepared requests queued answers them (ECANCELED) */
	is_int(vv_vault_open(store, PASS, strlen(PASS), &o, &v), 0, "close: open again");
	if (!v)
		goto out;
	vault_knn_pool_hold(v, true);
	is_int(vv_vault_opendir(v, &root_c, pd.ino, &dh), 0, "close: opendir pp");
	for (int i = 8; i < 10; i++) {
		dir_req(&p[i].io, D, 1, 3, q, two);
		is_int(vv_vault_knn_dir_submit(v, &u1000_c, dh, &p[i].io, pdone_fn, &p[i]), 0,
		       "close: queued");
	}
	vv_vault_close(v);
	ok(p[8].calls == 1 && p[9].calls == 1 && p[8].r == VV_ECANCELED && p[9].r == VV_ECANCELED,
	   "close: both answered ECANCELED once");
	free((void *)dh->id.groups);    /* the vault is gone: the handle's memory only */
	free(dh);
	v = NULL;

	/* records after the scan only: f0 once (the one request scanned), f1
	 * ENOENT (revoked: its name is there), f2 and f3 none, h0 none */
	is_int(scans_of("f0", "ok"), 1, "audit: f0 scanned once (canceled, drained: no record)");
	is_int(scans_of("f1", "ENOENT"), 1, "audit: f1 refused once, ENOENT");
	is_int(scans_of("f2", NULL), 0, "audit: f2 (purged) no record");
	is_int(scans_of("f3", NULL), 0, "audit: f3 (EAGAIN) no record");
	is_int(scans_of("h0", NULL), 0, "audit: h0 (canceled, busy, drained) no record");
out:
	if (v)
		vv_vault_close(v);
	free(p);
}

/* ---- idle nodes (vault_node.c) ------------------------------------------------- */

/* Idle nodes in the table, and whether ino's node is one of them. */
static size_t idle_of(struct vv_vault *v, uint64_t ino, bool *is_idle)
{
	struct node *n;
	size_t k;

	pthread_mutex_lock(&v->mu);
	n = vault_node_find(v, ino);
	if (is_idle)
		*is_idle = n && n->idle && !n->pins && !n->nlookup && !n->nopen;
	k = v->nodes.nidle;
	pthread_mutex_unlock(&v->mu);
	return k;
}

/* Nodes of snapshot sid in the table. */
static size_t snap_nodes(struct vv_vault *v, uint32_t sid)
{
	size_t k = 0;

	pthread_mutex_lock(&v->mu);
	for (size_t i = 0; i < v->nodes.hsize; i++)
		for (struct node *n = v->nodes.htab[i]; n; n = n->hnext)
			k += vv_snap_ino(n->ino) && vv_snap_sid(n->ino) == sid;
	pthread_mutex_unlock(&v->mu);
	return k;
}

/* Nodes nothing refers to stay idle up to the bounds (count and bytes);
 * a file with no links is deleted at its last reference, never idle; a
 * snapshot's delete takes its idle nodes with it. */
static void test_idle(void)
{
	enum { NI = 16 };
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT,
				   .state_dir = state, .trash_secs = 3600 };
	struct vv_knn_dir_ioc *io = malloc(sizeof(*io));
	struct vv_vault *v = NULL;
	struct vv_snap_row sr;
	struct vv_inode_row row;
	struct vv_attr dir, fa, sd, sc;
	struct vv_dir *th = NULL;
	char nm[NI][8], tname[256] = "";
	const char *names[NI + 1];
	uint64_t ino[NI];
	float q[D] = { 1, 0, 0, 0 };
	bool good = true, idle;
	int r;

	is_int(vv_vault_open(store, PASS, strlen(PASS), &o, &v), 0, "idle: open");
	if (!v || !io)
		goto out;
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "idle", 0755, &dir), 0, "idle: mkdir /idle");
	for (int i = 0; i < NI; i++) {
		snprintf(nm[i], sizeof(nm[i]), "i%02d", i);
		names[i] = nm[i];
		good &= put(v, &root_c, dir.ino, nm[i], 2, D, (float)i, 0644) == 0 &&
			vv_vault_lookup(v, &root_c, dir.ino, nm[i], &fa) == 0;
		ino[i] = fa.ino;
		vv_vault_forget(v, fa.ino, 2);
	}
	names[NI] = NULL;
	ok(good, "idle: 16 files, their lookups forgotten");
	pthread_mutex_lock(&v->mu);
	vault_node_idle_drop(v);
	v->nodes.idle_max = 4;
	pthread_mutex_unlock(&v->mu);
	r = ask(v, &root_c, dir.ino, io, D, 1, 2, q, names);
	ok(r == 0 && io->h.served == NI, "idle: 16 names served");
	is_int((int)idle_of(v, ino[0], NULL), 4, "idle: at most idle_max nodes kept (count bound)");
	pthread_mutex_lock(&v->mu);
	v->nodes.idle_max = VAULT_IDLE_NODES;
	v->nodes.idle_max_bytes = 1;
	pthread_mutex_unlock(&v->mu);
	r = ask(v, &root_c, dir.ino, io, D, 1, 2, q, names);
	is_int((int)idle_of(v, ino[0], NULL), 0, "idle: none kept past the bytes bound");
	pthread_mutex_lock(&v->mu);
	v->nodes.idle_max_bytes = VAULT_IDLE_BYTES;
	pthread_mutex_unlock(&v->mu);
	r = ask(v, &root_c, dir.ino, io, D, 1, 2, q, names);
	ok(r == 0 && idle_of(v, ino[0], &idle) >= NI && idle, "idle: all 16 kept within the bounds");

	/* rm to the trash keeps a link (the trash's); the purge takes the last */
	is_int(vv_vault_unlink(v, &root_c, dir.ino, "i00"), 0, "idle: rm i00 (to the trash)");
	is_int(vv_vault_opendir(v, &root_c, VV_TRASH_FILES_INO, &th), 0, "idle: opendir .trash/files");
	if (th) {
		vv_vault_readdir(v, th, 0, false, first_name, tname);
		vv_vault_releasedir(v, th);
	}
	is_int(vv_vault_unlink(v, &root_c, VV_TRASH_FILES_INO, tname), 0, "idle: purge i00");
	idle_of(v, ino[0], &idle);
	pthread_mutex_lock(&v->mu);
	r = vv_meta_inode_get(v->meta, ino[0], &row);
	good = vault_node_find(v, ino[0]) == NULL;
	pthread_mutex_unlock(&v->mu);
	ok(good && r == VV_ENOENT, "idle: purged i00: no node and no row (deleted, not kept idle)");

	/* a snapshot's nodes, idle after a scan of it, go with the snapshot */
	is_int(vault_snap_create(v, "idle-s", 0, 0, &sr), 0, "idle: snapshot idle-s");
	good = vv_vault_lookup(v, &root_c, VV_ROOT_INO, ".snapshots", &sd) == 0 &&
	       vv_vault_lookup(v, &root_c, sd.ino, "idle-s", &sd) == 0 &&
	       vv_vault_lookup(v, &root_c, sd.ino, "idle", &sc) == 0;
	r = good ? ask(v, &root_c, sc.ino, io, D, 1, 2, q, names + 1) : -1;
	ok(r == 0 && io->h.served == NI - 1 && snap_nodes(v, sr.id) >= NI - 1,
	   "idle: a scan of the snapshot's directory leaves its files' nodes idle");
	vv_vault_forget(v, sc.ino, 1);
	vv_vault_forget(v, sd.ino, 1);
	is_int(vault_snap_delete(v, "idle-s"), 0, "idle: snapshot deleted");
	is_int((int)snap_nodes(v, sr.id), 0, "idle: none of its nodes left in the table");
out:
	free(io);
	vv_vault_close(v);
}

/* ---- the bulk read (knn_ioctl.h "the bulk read", vault_bulk.c) ---------- */

static void bulk_req(struct vv_bulk_ioc *io, uint64_t slot, const char *const *names, size_t n)
{
	size_t len = 0;

	memset(io, 0, sizeof(*io));
	io->h.magic = VV_BULK_MAGIC;
	io->h.version = VV_BULK_VERSION;
	io->h.memfd = 3;
	io->h.slot = slot;
	for (size_t i = 0; i < n; i++) {
		memcpy(io->u + len, names[i], strlen(names[i]) + 1);
		len += strlen(names[i]) + 1;
	}
	io->h.nnames = (uint32_t)n;
	io->h.names_len = (uint32_t)len;
}

static void test_bulk_check(void)
{
	static const char *const two[] = { "a", "b" };
	struct vv_bulk_ioc *io = malloc(sizeof(*io));

#define BC(field, val, want, msg) do { bulk_req(io, 4096, two, 2); io->h.field = (val); \
		is_int(vv_bulk_request_check(io), want, msg); } while (0)
	bulk_req(io, 4096, two, 2);
	is_int(vv_bulk_request_check(io), 0, "bulk check: a good request passes");
	BC(magic, VV_KNN_DIR_MAGIC, VV_EINVAL, "bulk check: another magic");
	BC(version, 2, VV_EINVAL, "bulk check: another version");
	BC(flags, 1, VV_EINVAL, "bulk check: a flag");
	BC(pad, 1, VV_EINVAL, "bulk check: pad not 0");
	BC(memfd, -1, VV_EINVAL, "bulk check: a negative descriptor");
	BC(nnames, 0, VV_EINVAL, "bulk check: no names");
	BC(nnames, VV_BULK_MAX_NAMES + 1, VV_EINVAL, "bulk check: 257 names");
	BC(nnames, 3, VV_EINVAL, "bulk check: more names announced than given");
	BC(nnames, 1, VV_EINVAL, "bulk check: fewer names announced than given");
	BC(slot, VV_BULK_SLOT_MIN - 1, VV_EINVAL, "bulk check: a slot under 4 KiB");
	BC(slot, (uint64_t)VV_BULK_SLOT_MAX + 1, VV_EINVAL, "bulk check: a slot over the max");
	BC(slot, UINT64_MAX, VV_EINVAL, "bulk check: a slot of 2^64 - 1");
	BC(names_len, VV_BULK_PAYLOAD + 1, VV_E2BIG, "bulk check: names past the payload");
	BC(names_len, UINT32_MAX, VV_E2BIG, "bulk check: names_len 2^32 - 1");
	BC(off, UINT64_MAX - 4096, VV_E2BIG, "bulk check: slots wrapping past 2^64");
	bulk_req(io, VV_BULK_SLOT_MAX, two, 2);
	is_int(vv_bulk_request_check(io), 0, "bulk check: two slots of the max");
	io->h.nnames = 17;      /* 17 x 4 MiB > 64 MiB, before the names */
	is_int(vv_bulk_request_check(io), VV_E2BIG, "bulk check: a span over 64 MiB");
	bulk_req(io, 4096, (const char *const[]){ "a/b" }, 1);
	is_int(vv_bulk_request_check(io), VV_EINVAL, "bulk check: a name with '/'");
	bulk_req(io, 4096, (const char *const[]){ ".." }, 1);
	is_int(vv_bulk_request_check(io), VV_EINVAL, "bulk check: ..");
#undef BC
	free(io);
}

/* A sink into memory: what the daemon's would write into a memfd. */
struct msink {
	uint8_t *mem;
	size_t len;
	int opened, puts, fail_after;   /* fail_after: the puts that succeed, -1 all */
	int open_err;
};

static int msink_open(void *arg, const struct vv_bulk_hdr *h)
{
	struct msink *m = arg;

	(void)h;
	m->opened++;
	return m->open_err;
}

static int msink_put(void *arg, uint64_t off, const void *p, size_t len)
{
	struct msink *m = arg;

	if (m->fail_after >= 0 && m->puts >= m->fail_after)
		return VV_EPERM;
	if (off + len > m->len)
		return VV_ENOSPC;
	memcpy(m->mem + off, p, len);
	m->puts++;
	return 0;
}

static void test_bulk_vault(void)
{
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT,
				   .knn_cache_bytes = 64u << 20, .state_dir = state };
	static const char *const names[] = { "b0", "b1", "secret", "nope", "big", "sub" };
	const size_t slot = 8192;
	struct vv_bulk_ioc *io = malloc(sizeof(*io));
	struct msink m = { .len = 6 * slot, .fail_after = -1 };
	struct vv_bulk_sink sk = { msink_open, msink_put, &m };
	const struct vv_bulk_stat *st = (const struct vv_bulk_stat *)(const void *)io->u;
	struct vv_vault *v = NULL;
	struct vv_dir *dh = NULL;
	struct vv_attr c, sub;
	struct kjob *h[4];
	size_t len;
	uint8_t *want;
	int r;

	m.mem = calloc(1, m.len);
	is_int(vv_vault_open(store, PASS, strlen(PASS), &o, &v), 0, "bulk: open the vault");
	if (!v)
		return;
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "bk", 0755, &c), 0, "bulk: mkdir bk");
	is_int(put(v, &root_c, c.ino, "b0", 10, 4, 0, 0644), 0, "bulk: b0");
	is_int(put(v, &root_c, c.ino, "b1", 20, 4, 100, 0644), 0, "bulk: b1");
	is_int(put(v, &root_c, c.ino, "secret", 5, 4, 0, 0600), 0, "bulk: secret, 0600");
	is_int(put(v, &root_c, c.ino, "big", 500, 4, 0, 0644), 0, "bulk: big (10 KB)");
	is_int(vv_vault_mkdir(v, &root_c, c.ino, "sub", 0755, &sub), 0, "bulk: mkdir sub");
	is_int(vv_vault_opendir(v, &root_c, c.ino, &dh), 0, "bulk: opendir bk (root's handle)");

	bulk_req(io, slot, names, 6);
	r = vv_vault_bulk_read(v, &u1000_c, dh, io, &sk);
	is_int(r, 0, "bulk: u1000's request through root's handle");
	is_int((int)io->h.magic, (int)VV_BULK_MAGIC_REPLY, "bulk: reply magic");
	is_int((int)io->h.served, 2, "bulk: b0 and b1 served");
	is_int(st[0].err, 0, "bulk: b0 0");
	want = fvecs(10, 4, 0, &len);
	ok(st[0].size == len && memcmp(m.mem, want, len) == 0, "bulk: b0's bytes in slot 0");
	free(want);
	want = fvecs(20, 4, 100, &len);
	ok(st[1].size == len && memcmp(m.mem + slot, want, len) == 0, "bulk: b1's bytes in slot 1");
	free(want);
	is_int(st[2].err, -EACCES, "bulk: secret refused to u1000, though root opened the handle");
	is_int(st[3].err, -ENOENT, "bulk: nope ENOENT");
	is_int(st[4].err, -EFBIG, "bulk: big is larger than the slot");
	is_int(st[5].err, -EINVAL, "bulk: a directory EINVAL");
	ok(st[2].size == 0 && st[4].size == 0, "bulk: no size for refused names");
	is_int(m.puts, 2, "bulk: nothing but b0 and b1 written");

	/* the sink failing: the request fails whole before any name, or
	 * stops at the failed write */
	m.open_err = VV_EBADF;
	bulk_req(io, slot, names, 2);
	is_int(vv_vault_bulk_read(v, &root_c, dh, io, &sk), VV_EBADF, "bulk: the buffer refused");
	m.open_err = 0;
	m.puts = 0;
	m.fail_after = 1;
	bulk_req(io, slot, names, 2);
	is_int(vv_vault_bulk_read(v, &root_c, dh, io, &sk), 0, "bulk: a write failing midway");
	ok(st[0].err == 0 && st[1].err == -EPERM, "bulk: the first served, the next the write's error");
	m.fail_after = -1;

	/* the uid's slots: four held, the fifth request EBUSY; released, served */
	for (int i = 0; i < 4; i++)
		is_int(vault_knn_hold(v, &u1000_c, &h[i]), 0, "bulk: hold one of u1000's slots");
	bulk_req(io, slot, names, 2);
	is_int(vv_vault_bulk_read(v, &u1000_c, dh, io, &sk), VV_EBUSY,
	       "bulk: EBUSY with u1000's four slots taken");
	bulk_req(io, slot, names, 2);
	is_int(vv_vault_bulk_read(v, &root_c, dh, io, &sk), 0, "bulk: root's own slots are free");
	for (int i = 0; i < 4; i++)
		vault_knn_unhold(v, h[i]);
	bulk_req(io, slot, names, 2);
	is_int(vv_vault_bulk_read(v, &u1000_c, dh, io, &sk), 0, "bulk: served once they are free");

	/* revocation: a chmod refuses the next request's name */
	{
		struct vv_setattr sa = { .valid = VV_SET_MODE, .mode = 0600 };
		struct vv_attr a;
		uint64_t ino;
		is_int(vv_meta_dirent_get(v->meta, c.ino, "b0", &ino), 0, "bulk: b0's inode");
		is_int(vv_vault_setattr(v, &root_c, ino, &sa, &a), 0, "bulk: chmod 600 b0");
	}
	bulk_req(io, slot, names, 2);
	is_int(vv_vault_bulk_read(v, &u1000_c, dh, io, &sk), 0, "bulk: after the chmod");
	is_int(st[0].err, -EACCES, "bulk: b0 now refused to u1000");
	vv_vault_releasedir(v, dh);
	/* a hold left behind would make the close's drain wait for ever */
	is_int(vv_vault_close(v), 0, "bulk: the vault closes (no hold left)");
	free(m.mem);
	free(io);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char cmd[600];

	test_check();
	test_bulk_check();
	test_scan_many();
	snprintf(top, sizeof(top), "%s/vv-knndir-XXXXXX", tmp);
	if (!mkdtemp(top))
		tap_skip_all("cannot make a temp dir");
	snprintf(store, sizeof(store), "%s/store", top);
	snprintf(state, sizeof(state), "%s/state", top);
	snprintf(alog, sizeof(alog), "%s/audit.log", top);
	is_int(vv_vault_create_store(store, PASS, strlen(PASS), VV_KDF_PROFILE_TEST,
				     VV_VAULT_ALLOW_TEST_KDF, 0, 0, state), 0, "create a store");
	test_vault();
	test_pipe();
	test_idle();
	test_bulk_vault();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (system(cmd) != 0)
		printf("# cannot remove %s\n", top);
	return tap_done();
}
