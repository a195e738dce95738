/*
 * test_vector_uring.c - a collection of many small segments opened in
 * io_uring batches (vector_uring.c, vector_search.c) against the same
 * collection opened one system call at a time (vv_vector_config.no_uring):
 * the same segments, rows, ids and results (and a float64 brute force);
 * the same error, naming the same file, for a directory, a truncated file
 * and a file the caller may not read (as uid 65534); the one-by-one path
 * where io_uring_setup is refused (a seccomp filter, as in containers);
 * past the descriptor budget; no descriptor or thread left behind; a
 * segment cut or removed between the open and the scan (the error names it
 * and what happened, the same both ways).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "knn_ref.h"
#include "seg_files.h"
#include "tap.h"
#include "buf.h"
#include "vector_int.h"

#define D 16
#define NSEG 600                 /* several batches of 128 */
#define BIGROWS 90000            /* 5.8 MB: past the small-segment size */
#define NQ 3
#define K 10
#define MAXROWS (NSEG * 12 + BIGROWS)

static char tmpdir[] = "/tmp/vv_test_vuring.XXXXXX";
static float rows[MAXROWS][D];   /* row i of the collection, in id order */
static size_t nrows;
static float q[NQ][D];

static void write_file(const char *name, const void *p, size_t n)
{
	segf_write(tmpdir, name, p, n);
}

/* rows r0 .. r0+n as an npy f32 segment or an fvecs one */
static void write_seg(const char *name, size_t r0, size_t n, bool fvecs)
{
	static uint8_t buf[BIGROWS * (4 + D * 4) + 4096];
	size_t len = 0;

	if (fvecs) {
		for (size_t i = 0; i < n; i++) {
			vv_put_le32(buf + i * (4 + D * 4), D);
			memcpy(buf + i * (4 + D * 4) + 4, rows[r0 + i], D * 4);
		}
		len = n * (4 + D * 4);
	} else {
		char dict[128];
		snprintf(dict, sizeof(dict), "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %d), }",
			 n, D);
		len = segf_npy_head(buf, dict);
		memcpy(buf + len, rows[r0], n * D * 4);
		len += n * D * 4;
	}
	write_file(name, buf, len);
}

/* ids sidecar for a segment of n rows: ids 1e9 + row index */
static void write_ids(const char *name, size_t r0, size_t n)
{
	static uint8_t buf[4096 + 12 * 8];
	char dict[128];
	size_t h;

	snprintf(dict, sizeof(dict), "{'descr': '<i8', 'fortran_order': False, 'shape': (%zu,), }", n);
	h = segf_npy_head(buf, dict);
	for (size_t i = 0; i < n; i++)
		vv_put_le64(buf + h + 8 * i, 1000000000ull + r0 + i);
	write_file(name, buf, h + 8 * n);
}

static void build(void)
{
	unsigned seed = 99;
	char name[64];

	segf_fill(&rows[0][0], (size_t)MAXROWS * D, &seed);
	segf_fill(&q[0][0], (size_t)NQ * D, &seed);
	/* segment names sort as written: s0000 .. s0599, then z-big */
	for (size_t s = 0; s < NSEG; s++) {
		size_t n = (s * 5 + 3) % 13;       /* 0 .. 12 rows, empty ones too */
		bool fv = s % 4 == 1 && n > 0;
		snprintf(name, sizeof(name), "s%04zu.%s", s, fv ? "fvecs" : "npy");
		write_seg(name, nrows, n, fv);
		if (s % 50 == 7) {
			snprintf(name, sizeof(name), "s%04zu.ids.npy", s);
			write_ids(name, nrows, n);
		}
		nrows += n;
	}
	write_seg("z-big.npy", nrows, BIGROWS, false);
	nrows += BIGROWS;
	/* query 0 is a row of the collection: distance 0 ranks first */
	memcpy(q[0], rows[12], sizeof(q[0]));
}

struct outcome {
	int r;
	char err[512];
	size_t nsegs, nbatched, nids;
	uint64_t rows;
	struct vv_hit h[NQ * K];
};

/* Open and search the collection with io_uring allowed or not. */
/* Called between the open and the search of run() when set: a file
 * changing under an open collection. */
static void (*between)(void);

static void run(bool uring, struct outcome *o)
{
	struct vv_collection *c = NULL;
	struct vv_search_opts so = { .k = K, .metric = VV_METRIC_L2, .threads = 2 };

	memset(o, 0, sizeof(*o));
	vv_vector_configure(&(struct vv_vector_config){ .no_uring = !uring });
	o->r = vv_collection_open(tmpdir, NULL, false, &c, o->err, sizeof(o->err));
	if (o->r == 0) {
		o->nsegs = vv_collection_nsegs(c);
		o->nbatched = vv_collection_nbatched(c);
		for (size_t i = 0; i < o->nsegs; i++) {
			o->rows += vv_collection_seg(c, i)->info.count;
			o->nids += vv_collection_seg(c, i)->has_ids;
		}
		if (between)
			between();
		o->r = vv_collection_search(c, &q[0][0], NQ, &so, o->h, o->err, sizeof(o->err));
	}
	vv_collection_free(c);
	vv_vector_configure(NULL);
}

static bool same_hits(const struct outcome *a, const struct outcome *b)
{
	for (size_t i = 0; i < NQ * K; i++)
		if (a->h[i].id != b->h[i].id || a->h[i].dist != b->h[i].dist ||
		    a->h[i].seg != b->h[i].seg || a->h[i].row != b->h[i].row)
			return false;
	return true;
}

static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The hits at the float64 brute-force distances, k-th best included. */
static int brute_bad(const struct outcome *o)
{
	static double dd[MAXROWS];
	int bad = 0;

	for (size_t qi = 0; qi < NQ; qi++) {
		for (size_t i = 0; i < nrows; i++)
			dd[i] = knn_ref_dist(VV_METRIC_L2, rows[i], q[qi], D);
		qsort(dd, nrows, sizeof(double), dcmp);
		for (size_t a = 0; a < K; a++)
			bad += fabs(o->h[qi * K + a].dist - dd[a]) > 1e-9 * (1 + dd[a]);
	}
	return bad;
}

static const struct outcome *ref_outcome;

static int child_seccomp(void *arg)
{
	struct outcome o;

	(void)arg;
	if (segf_deny_uring() < 0)
		return 91;
	run(true, &o);
	if (o.r != 0)
		return 1;
	if (o.nbatched != 0)
		return 2;
	if (!same_hits(&o, ref_outcome) || o.nsegs != ref_outcome->nsegs)
		return 3;
	return 0;
}

/* As uid 65534: both ways fail alike on s0100.npy (mode 0600, root's). */
static int child_denied(void *arg)
{
	struct outcome a, b;

	(void)arg;
	run(true, &a);
	run(false, &b);
	if (a.r != VV_EACCES || b.r != VV_EACCES)
		return 1;
	if (strcmp(a.err, b.err) != 0 || !strstr(a.err, "s0100.npy"))
		return 2;
	return 0;
}

/* The first cap bytes of segment file name (to write it back later). */
static size_t read_seg(const char *name, uint8_t *buf, size_t cap)
{
	char path[300];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	if (!(f = fopen(path, "rb")))
		return 0;
	n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

/* Open, fn() (a change to segment file name), search: with io_uring into
 * a, then without into b; name's bytes buf[0 .. len) written back after
 * each. */
static void both_ways(void (*fn)(void), const char *name, const uint8_t *buf, size_t len,
		      struct outcome *a, struct outcome *b)
{
	between = fn;
	run(true, a);
	write_file(name, buf, len);
	run(false, b);
	write_file(name, buf, len);
	between = NULL;
}

/* s0020.npy (12 rows) cut to its header and 4 rows after the open; the
 * whole file back after the search. */
static uint8_t s20[4096];
static size_t s20len;

static void cut_s0020(void)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/s0020.npy", tmpdir);
	if (truncate(path, (off_t)(s20len - 8 * D * 4)) < 0)
		tap_diag("truncate s0020.npy failed");
}

static void rm_s0599(void)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/s0599.npy", tmpdir);
	if (unlink(path) < 0)
		tap_diag("unlink s0599.npy failed");
}

int main(void)
{
	static struct outcome u, s, x;
	struct vv_uring *probe = NULL;
	bool have = false;
	char path[300];
	int r;

	if (!mkdtemp(tmpdir)) {
		ok(0, "mkdtemp");
		return tap_done();
	}
	chmod(tmpdir, 0755);
	build();
	if (vv_uring_new(8, &probe) == 0) {
		have = true;
		vv_uring_free(probe);
	} else {
		tap_diag("no io_uring here (liburing not built in, or refused): batches not compared");
	}

	run(true, &u);
	run(false, &s);
	is_int(u.r, 0, "open and search, io_uring allowed");
	is_int(s.r, 0, "open and search, one system call at a time");
	ok(u.nsegs == NSEG + 1 && s.nsegs == NSEG + 1 && u.rows == nrows && s.rows == nrows,
	   "both: every segment, every row");
	if (have)
		ok(u.nbatched == NSEG, "io_uring: every small segment batched, the big one one by one");
	is_int(s.nbatched, 0, "no_uring: nothing batched");
	ok(same_hits(&u, &s), "identical hits (id, distance, segment, row) both ways");
	is_int(brute_bad(&u), 0, "hits at the float64 brute-force distances");
	ok(u.nids == NSEG / 50 && s.nids == NSEG / 50, "id sidecars found both ways");
	ok(u.h[0].dist == 0 && u.h[0].id == 12, "query 0 (row 12) finds itself first");

	/* descriptors and threads: none left after open, search and free */
	{
		int fds0 = segf_proc_count("fd"), fds1 = -1;
		for (int i = 0; i < 3; i++) {
			run(true, &x);
			fds1 = segf_proc_count("fd");
		}
		ok(fds0 > 0 && fds1 == fds0, "3 x open, search, free through io_uring: no descriptor left");
		is_int(segf_proc_count("task"), TAP_IDLE_THREADS, "no thread left (no io-wq workers: no async STATX)");
	}

	/* past the descriptor budget (RLIMIT_NOFILE less 96): batched segments
	 * past it are probed, closed and reopened by the scan */
	{
		struct rlimit old, low;
		getrlimit(RLIMIT_NOFILE, &old);
		low = old;
		low.rlim_cur = 96 + 40;
		setrlimit(RLIMIT_NOFILE, &low);
		run(true, &x);
		setrlimit(RLIMIT_NOFILE, &old);
		if (x.r != 0)
			tap_diag(x.err);
		ok(x.r == 0 && same_hits(&x, &s), "io_uring past the descriptor budget: same hits");
		if (have)
			ok(x.nbatched > 0 && x.nbatched <= 40, "only what the budget allows is kept from the batch");
	}

	/* forced mapping: no batches */
	vv_vector_configure(&(struct vv_vector_config){ .scan_io = VV_SCAN_IO_MMAP });
	{
		struct vv_collection *c = NULL;
		char err[256];
		r = vv_collection_open(tmpdir, NULL, false, &c, err, sizeof(err));
		ok(r == 0 && vv_collection_nbatched(c) == 0, "VV_SCAN_IO=mmap: segments mapped, none batched");
		vv_collection_free(c);
	}
	vv_vector_configure(NULL);

	/* io_uring_setup refused by a seccomp filter: one by one, same hits */
	ref_outcome = &s;
	is_int(segf_in_child(-1, child_seccomp, NULL), 0,
	       "io_uring_setup refused (seccomp): opened one by one, same hits");

	/* errors: the same code and message, naming the file, both ways */
	snprintf(path, sizeof(path), "%s/s0100.npy", tmpdir);
	chmod(path, 0600);
	is_int(segf_in_child(65534, child_denied, NULL), 0,
	       "uid 65534, a segment it may not read: both ways EACCES naming it, same message");
	chmod(path, 0644);

	snprintf(path, sizeof(path), "%s/s0300.npy", tmpdir);
	{
		char keep[320];
		snprintf(keep, sizeof(keep), "%s.keep", path);
		rename(path, keep);
	}
	mkdir(path, 0755);
	run(true, &u);
	run(false, &s);
	ok(u.r == VV_EINVAL && s.r == VV_EINVAL && !strcmp(u.err, s.err) && strstr(u.err, "s0300.npy") &&
	   strstr(u.err, "not a regular file"), "a directory named like a segment: same error both ways");
	rmdir(path);
	/* a FIFO named like a segment: its open must not wait for a writer
	 * (SIGALRM ends a hung test) */
	mkfifo(path, 0644);
	alarm(60);
	run(true, &u);
	run(false, &s);
	alarm(0);
	ok(u.r == VV_EINVAL && s.r == VV_EINVAL && !strcmp(u.err, s.err) && strstr(u.err, "s0300.npy") &&
	   strstr(u.err, "not a regular file"), "a FIFO named like a segment: refused both ways, no hang");
	unlink(path);
	{
		char keep[320];
		snprintf(keep, sizeof(keep), "%s.keep", path);
		rename(keep, path);
	}

	/* a truncated npy (header says 12 rows, 5 there) among them */
	{
		static uint8_t buf[4096];
		FILE *f;
		size_t n;
		snprintf(path, sizeof(path), "%s/s0400.npy", tmpdir);
		f = fopen(path, "rb");
		n = f ? fread(buf, 1, sizeof(buf), f) : 0;
		if (f)
			fclose(f);
		write_file("s0400.npy", buf, n > 64 ? n - 64 : n);
		run(true, &u);
		run(false, &s);
		ok(u.r == VV_ECORRUPT && s.r == VV_ECORRUPT && !strcmp(u.err, s.err) &&
		   strstr(u.err, "s0400.npy"), "a truncated segment: same error both ways, naming it");
		if (strcmp(u.err, s.err) != 0) {
			tap_diag(u.err);
			tap_diag(s.err);
		}
		write_file("s0400.npy", buf, n);     /* whole again */
	}

	/* a segment that shrinks between the open and the scan (its rows are
	 * read by the scan, mid-pipeline): the search fails naming it and
	 * saying what happened, the same both ways; the file back, both ways
	 * find the reference hits again */
	{
		s20len = read_seg("s0020.npy", s20, sizeof(s20));
		ok(s20len == 128 + 12 * D * 4, "s0020.npy holds 12 rows");
		run(false, &s);            /* the reference, before any cut */
		both_ways(cut_s0020, "s0020.npy", s20, s20len, &u, &x);
		ok(u.r == VV_EIO && x.r == VV_EIO && !strcmp(u.err, x.err) && strstr(u.err, "s0020.npy") &&
		   strstr(u.err, "shrank since the collection was opened"),
		   "a segment cut after the open: EIO naming it, 'shrank', the same both ways");
		if (strcmp(u.err, x.err) != 0 || !strstr(u.err, "shrank")) {
			tap_diag(u.err);
			tap_diag(x.err);
		}
		run(true, &u);
		ok(u.r == 0 && same_hits(&u, &s), "the segment whole again: the same hits");
	}

	/* past the descriptor budget the scan opens a segment again: one
	 * removed since the open fails the search naming it (ENOENT), with
	 * io_uring and without; nothing read from it reaches the results */
	{
		struct rlimit old, low;
		static uint8_t keep[4096];
		size_t klen;
		int fds0;
		klen = read_seg("s0599.npy", keep, sizeof(keep));
		ok(klen > 128, "s0599.npy read");
		getrlimit(RLIMIT_NOFILE, &old);
		low = old;
		low.rlim_cur = 96 + 40;
		setrlimit(RLIMIT_NOFILE, &low);
		fds0 = segf_proc_count("fd");
		both_ways(rm_s0599, "s0599.npy", keep, klen, &u, &x);
		setrlimit(RLIMIT_NOFILE, &old);
		ok(u.r == VV_ENOENT && x.r == VV_ENOENT && !strcmp(u.err, x.err) &&
		   strstr(u.err, "s0599.npy"),
		   "past the descriptor budget, a segment removed after the open: ENOENT naming it, both ways");
		if (strcmp(u.err, x.err) != 0) {
			tap_diag(u.err);
			tap_diag(x.err);
		}
		is_int(segf_proc_count("fd"), fds0, "no descriptor left after the failed searches");
	}

	{
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", tmpdir);
		if (system(cmd) != 0)
			tap_diag("could not remove the temp dir");
	}
	return tap_done();
}
