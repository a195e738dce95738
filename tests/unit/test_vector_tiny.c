/*
 * test_vector_tiny.c - the deferred open (vv_collection_open_deferred): a
 * plain directory's small segments read whole by the scan threads
 * (vector_tiny.c) give exactly what the plain open gives: the same
 * segments, first rows, hits (id, distance, segment, row) and float64
 * brute-force distances, with io_uring, without it (no_uring) and where
 * io_uring_setup is refused (seccomp); empty segments, fewer rows than k,
 * segments larger than a slot (the one-by-one open and a second pass), a
 * second search of the same collection; and the same errors, word for
 * word, for a bad header among the small ones (and --skip-bad's list), a
 * segment of another dimension, a bad fvecs dimension word, a segment cut
 * or removed between the listing and the read, a symlink to /dev/null, a
 * segment the caller may not read (uid 65534); segments out of the page
 * cache; a low
 * descriptor limit; no descriptor or thread left; a segment replaced (by
 * another file, one of the same size and header, a FIFO) between the open
 * and the scan's reopen or between the scan and the re-ranking's: refused
 * naming it, never its rows, no hang.
 */
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
#include <dirent.h>
#include <unistd.h>

#include "seg_files.h"
#include "tap.h"
#include "buf.h"
#include "vector_int.h"

#define D 16
#define NSEG 400
#define MIDROWS 3000             /* 192 KB: larger than a slot */
#define BIGROWS 90000            /* 5.8 MB: past the small-segment size */
#define NQ 3
#define K 10
#define MAXROWS (NSEG * 12 + MIDROWS + BIGROWS)

#define diagf(...)                                         \
	do {                                               \
		char b_[640];                              \
		snprintf(b_, sizeof(b_), __VA_ARGS__);     \
		tap_diag(b_);                              \
	} while (0)

static char tmpdir[] = "/tmp/vv_test_vtiny.XXXXXX";
static float rows[MAXROWS][D];
static size_t nrows;
static float q[NQ][D];

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
	segf_write(dir, name, p, n);
}

/* rows r0 .. r0+n (of d values: d != D for a foreign segment) as npy or fvecs */
static size_t seg_bytes(uint8_t *buf, size_t r0, size_t n, bool fvecs, int d)
{
	size_t len;

	if (fvecs) {
		for (size_t i = 0; i < n; i++) {
			vv_put_le32(buf + i * (4 + (size_t)d * 4), (uint32_t)d);
			memcpy(buf + i * (4 + (size_t)d * 4) + 4, rows[r0 + i], (size_t)d * 4);
		}
		return n * (4 + (size_t)d * 4);
	}
	char dict[128];
	snprintf(dict, sizeof(dict), "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %d), }", n, d);
	len = segf_npy_head(buf, dict);
	for (size_t i = 0; i < n; i++)
		memcpy(buf + len + i * (size_t)d * 4, rows[r0 + i], (size_t)d * 4);
	return len + n * (size_t)d * 4;
}

static uint8_t segbuf[BIGROWS * (4 + D * 4) + 4096];

static void write_seg(const char *dir, const char *name, size_t r0, size_t n, bool fvecs)
{
	write_file(dir, name, segbuf, seg_bytes(segbuf, r0, n, fvecs, D));
}

static void build(void)
{
	unsigned seed = 7;
	char name[64];

	segf_fill(&rows[0][0], (size_t)MAXROWS * D, &seed);
	segf_fill(&q[0][0], (size_t)NQ * D, &seed);
	/* s0000 (fixes the dimension) .. s0399, a mid one larger than a slot
	 * in the middle, a big one last; empty ones too */
	for (size_t s = 0; s < NSEG; s++) {
		size_t n = s == 0 ? 5 : (s * 5 + 3) % 13;
		bool fv = s % 4 == 1 && n > 0;
		snprintf(name, sizeof(name), "s%04zu.%s", s, fv ? "fvecs" : "npy");
		write_seg(tmpdir, name, nrows, n, fv);
		nrows += n;
		if (s == 200) {
			write_seg(tmpdir, "s0200m.npy", nrows, MIDROWS, false);
			nrows += MIDROWS;
		}
	}
	write_seg(tmpdir, "z-big.npy", nrows, BIGROWS, false);
	nrows += BIGROWS;
	memcpy(q[0], rows[12], sizeof(q[0]));
}

struct outcome {
	int r;
	bool check;
	char err[512];
	size_t nsegs, nbatched, nskipped;
	char skipped[512];
	uint64_t rows, firsts;
	struct vv_hit h[NQ * K];
	struct vv_hit h2[NQ * K];   /* a second search */
};

static void (*between)(void);
static const char *dir_of_run;
/* Called once when the (first) scan of a search has finished, before the
 * re-ranking reads candidate rows again. */
static void (*after_scan)(void);

static void scan_done(void *ctx, uint64_t done, uint64_t total)
{
	(void)ctx;
	if (after_scan && done == total) {
		after_scan();
		after_scan = NULL;
	}
}

/* Open (deferred or not) and search; with twice, search again. */
static void run(bool deferred, bool uring, bool skip_bad, uint32_t k, bool twice, struct outcome *o)
{
	struct vv_collection *c = NULL;
	struct vv_search_opts so = { .k = k, .metric = VV_METRIC_L2, .threads = 2,
				     .progress = after_scan ? scan_done : NULL };
	const char *dir = dir_of_run ? dir_of_run : tmpdir;

	memset(o, 0, sizeof(*o));
	vv_vector_configure(&(struct vv_vector_config){ .no_uring = !uring });
	o->r = (deferred ? vv_collection_open_deferred : vv_collection_open)(dir, NULL, skip_bad, &c,
									     o->err, sizeof(o->err));
	if (o->r == 0) {
		if (between)
			between();
		o->r = vv_collection_search(c, &q[0][0], NQ, &so, o->h, o->err, sizeof(o->err));
		o->check = vv_collection_check_failed(c);
		if (o->r == 0 && twice)
			o->r = vv_collection_search(c, &q[0][0], NQ, &so, o->h2, o->err, sizeof(o->err));
		if (o->r == 0) {
			o->nsegs = vv_collection_nsegs(c);
			o->nbatched = vv_collection_nbatched(c);
			for (size_t i = 0; i < o->nsegs; i++) {
				o->rows += vv_collection_seg(c, i)->info.count;
				o->firsts = o->firsts * 31 + vv_collection_seg(c, i)->first_row;
			}
		}
		o->nskipped = vv_collection_nskipped(c);
		for (size_t i = 0; i < o->nskipped; i++) {
			strncat(o->skipped, vv_collection_skipped(c, i), sizeof(o->skipped) - strlen(o->skipped) - 2);
			strcat(o->skipped, ";");
		}
	}
	vv_collection_free(c);
	vv_vector_configure(NULL);
}

static bool same_hits(const struct vv_hit *a, const struct vv_hit *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i].id != b[i].id || a[i].dist != b[i].dist || a[i].seg != b[i].seg || a[i].row != b[i].row)
			return false;
	return true;
}

static bool same(const struct outcome *a, const struct outcome *b)
{
	return a->r == b->r && !strcmp(a->err, b->err) && a->nsegs == b->nsegs && a->rows == b->rows &&
	       a->firsts == b->firsts && !strcmp(a->skipped, b->skipped) &&
	       same_hits(a->h, b->h, NQ * K);
}

/* Are the hits at the float64 brute-force distances (k best of all rows)? */
static int brute_bad(const struct outcome *o)
{
	int bad = 0;

	for (size_t j = 0; j < NQ; j++) {
		double best[K];
		size_t nb = 0;
		for (size_t i = 0; i < nrows; i++) {
			double d = 0;
			for (int t = 0; t < D; t++)
				d += ((double)rows[i][t] - q[j][t]) * ((double)rows[i][t] - q[j][t]);
			size_t p = nb < K ? nb++ : K;
			if (p == K && d >= best[K - 1])
				continue;
			if (p == K)
				p = K - 1;
			while (p > 0 && best[p - 1] > d) {
				best[p] = best[p - 1];
				p--;
			}
			best[p] = d;
		}
		for (size_t i = 0; i < K; i++)
			if (fabs(o->h[j * K + i].dist - best[i]) > 1e-9 * (1 + best[i]))
				bad++;
	}
	return bad;
}

static const struct outcome *ref;

static int child_seccomp(void *arg)
{
	struct outcome o;

	(void)arg;
	if (segf_deny_uring() < 0)
		return 91;
	run(true, true, false, K, false, &o);
	if (o.r != 0)
		return 1;
	if (o.nbatched != 0)
		return 2;
	return same(&o, ref) ? 0 : 3;
}

/* A descriptor limit of 40: the same answer, none left open. */
static int child_nofile(void *arg)
{
	struct rlimit rl = { 40, 40 };
	struct outcome o;
	int fds;

	(void)arg;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 91;
	fds = segf_proc_count("fd");
	run(true, true, false, K, true, &o);
	if (o.r != 0)
		return 1;
	if (!same(&o, ref) || !same_hits(o.h2, ref->h, NQ * K))
		return 2;
	run(true, false, false, K, false, &o);
	if (o.r != 0 || !same(&o, ref))
		return 3;
	return segf_proc_count("fd") == fds ? 0 : 4;
}

/* As uid 65534: deferred and plain open fail alike on s0100.npy. */
static int child_denied(void *arg)
{
	struct outcome a, b, c;

	(void)arg;
	run(true, true, false, K, false, &a);
	run(true, false, false, K, false, &b);
	run(false, true, false, K, false, &c);
	if (a.r != VV_EACCES || b.r != VV_EACCES || c.r != VV_EACCES || !a.check)
		return 1;
	if (strcmp(a.err, c.err) != 0 || strcmp(b.err, c.err) != 0 || !strstr(a.err, "s0100.npy"))
		return 2;
	return 0;
}

static char path_of[300];
static const char *path(const char *name)
{
	snprintf(path_of, sizeof(path_of), "%s/%s", tmpdir, name);
	return path_of;
}

static uint8_t saved[8192];
static size_t savedlen;

static void save(const char *name)
{
	FILE *f = fopen(path(name), "rb");

	savedlen = f ? fread(saved, 1, sizeof(saved), f) : 0;
	if (f)
		fclose(f);
}

static void restore(const char *name) { write_file(tmpdir, name, saved, savedlen); }

/* The first row of s0390.npy (3 rows), as build() numbered them. */
static size_t s0390_row0(void)
{
	size_t r = 0;

	for (size_t s = 0; s < 390; s++)
		r += (s == 0 ? 5 : (s * 5 + 3) % 13) + (s == 200 ? MIDROWS : 0);
	return r;
}

/* (unlinked first: it may be a FIFO) */
static void restore_s0390(void)
{
	unlink(path("s0390.npy"));
	write_seg(tmpdir, "s0390.npy", s0390_row0(), 3, false);
}

/* s0390.npy becomes another file (5 rows of other values) or a FIFO,
 * renamed over it. */
static void swap_s0390_file(void)
{
	char tmp[sizeof(path_of)];

	write_seg(tmpdir, "s0390.npy.tmp", 100, 5, false);
	snprintf(tmp, sizeof(tmp), "%s", path("s0390.npy.tmp"));
	if (rename(tmp, path("s0390.npy")) < 0)
		tap_diag("rename failed");
}

static void swap_s0390_fifo(void)
{
	char tmp[sizeof(path_of)];

	snprintf(tmp, sizeof(tmp), "%s", path("s0390.npy.tmp"));
	if (mkfifo(tmp, 0644) < 0 || rename(tmp, path("s0390.npy")) < 0)
		tap_diag("mkfifo or rename failed");
}

/* s0390.npy becomes a file of the same size and header (its 3 rows values
 * no segment holds: rows nrows..nrows+2), renamed over it.  The deferred open knows no
 * inode of the file it read, only that nothing changed it since the search
 * began (struct vv_seg_id, vv_seg_since; since_misses below checks that
 * promise itself, which a swap in a test cannot time within a tick). */
static void swap_s0390_same(void)
{
	char tmp[sizeof(path_of)];

	write_seg(tmpdir, "s0390.npy.tmp", nrows, 3, false);
	snprintf(tmp, sizeof(tmp), "%s", path("s0390.npy.tmp"));
	usleep(20000);
	if (rename(tmp, path("s0390.npy")) < 0)
		tap_diag("rename failed");
}

/* vv_seg_since's promise, in this directory's file system: a file renamed
 * over a name right after since gets a later ctime, every time (on ext4 a
 * plain clock_gettime gave a since later than the ctime of every such
 * rename: 200 of 200 misses).  The number of 200 that did not. */
static int since_misses(void)
{
	char tmp[sizeof(path_of)], dst[sizeof(path_of)];
	int miss = 0;

	snprintf(dst, sizeof(dst), "%s", path("since-probe"));
	for (int i = 0; i < 200; i++) {
		struct timespec since;
		struct stat st;

		int fd;

		snprintf(tmp, sizeof(tmp), "%s", path("since-probe.tmp"));
		if ((fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY, 0644)) < 0)
			return -1;
		vv_seg_since(&since);
		if (write(fd, "x", 1) != 1 || close(fd) < 0 || rename(tmp, dst) < 0 || stat(dst, &st) < 0)
			return -1;
		miss += st.st_ctim.tv_sec < since.tv_sec ||
			(st.st_ctim.tv_sec == since.tv_sec && st.st_ctim.tv_nsec <= since.tv_nsec);
	}
	unlink(dst);
	return miss;
}

/* RLIMIT_NOFILE 40 (s0390.npy is past the descriptor budget: opened again
 * by name by the scan and by the re-ranking), the plain open unless
 * deferred, query 0 moved onto row qrow: swap s0390.npy (fn) between the
 * open and the scan (before_scan: the scan's reopen) or once the scan is
 * done (the re-ranking's); the search must fail naming it, none of the
 * swapped-in file's rows returned under its name. */
struct swap {
	void (*fn)(void);
	bool before_scan, deferred;
	size_t qrow;             /* SIZE_MAX: s0390.npy's first row */
};

static int child_swapped(void *arg)
{
	const struct swap *sw = arg;
	struct rlimit rl = { 40, 40 };
	struct outcome o;

	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 91;
	memcpy(q[0], rows[sw->qrow == SIZE_MAX ? s0390_row0() : sw->qrow], sizeof(q[0]));
	if (sw->before_scan)
		between = sw->fn;
	else
		after_scan = sw->fn;
	run(sw->deferred, true, false, K, false, &o);
	between = NULL;
	if (after_scan)
		return 5;                /* never called */
	if (o.r != VV_EIO || !strstr(o.err, "s0390.npy") ||
	    !strstr(o.err, "replaced since the collection was opened (not the same file any more)")) {
		diagf("got %d: %s", o.r, o.err);
		return 1;
	}
	return 0;
}

/* Every segment out of the page cache (its pages clean): the reads wait
 * for the disk (or, on kernels where io_uring's reads of O_NONBLOCK files
 * fail with EAGAIN, are made again with read(2)). */
static void evict_all(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		int fd = e->d_name[0] == 's' ? open(path(e->d_name), O_RDONLY) : -1;
		if (fd >= 0) {
			fdatasync(fd);
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
			close(fd);
		}
	}
	if (d)
		closedir(d);
}

static void cut_s0020(void)
{
	if (truncate(path("s0020.npy"), 100) < 0)
		tap_diag("truncate failed");
}

static void rm_s0399(void)
{
	if (unlink(path("s0399.npy")) < 0)
		tap_diag("unlink failed");
}

int main(void)
{
	struct outcome p, u, s, x, y;
	int fds0, tasks0;

	if (!mkdtemp(tmpdir)) {
		ok(0, "mkdtemp");
		return tap_done();
	}
	chmod(tmpdir, 0755);
	build();

	/* the reference: the plain open */
	run(false, true, false, K, false, &p);
	is_int(p.r, 0, "plain open and search");
	ok(p.nsegs == NSEG + 2 && p.rows == nrows, "plain: every segment and row");
	is_int(brute_bad(&p), 0, "plain: hits at the float64 brute-force distances");
	ref = &p;

	fds0 = segf_proc_count("fd");
	tasks0 = segf_proc_count("task");
	run(true, true, false, K, true, &u);
	is_int(u.r, 0, "deferred, io_uring: search");
	ok(same(&u, &p), "deferred, io_uring: the same segments, first rows and hits as the plain open");
	ok(same_hits(u.h2, p.h, NQ * K), "... and a second search of it the same hits");
	ok(u.nbatched >= NSEG - 1 - NSEG / 20, "... most small segments read through io_uring");
	diagf("deferred with io_uring: %zu of %zu read through the ring", u.nbatched, u.nsegs);
	is_int(brute_bad(&u), 0, "... at the float64 brute-force distances");
	is_int(segf_proc_count("fd"), fds0, "... no descriptor left");
	is_int(segf_proc_count("task"), tasks0, "... no thread left");
	run(true, false, false, K, false, &s);
	ok(s.r == 0 && same(&s, &p) && s.nbatched == 0, "deferred, no io_uring: the same, none through the ring");
	is_int(segf_in_child(-1, child_seccomp, NULL), 0,
	       "deferred where io_uring_setup is refused (seccomp): the same, none through the ring");
	is_int(segf_in_child(-1, child_nofile, NULL), 0,
	       "RLIMIT_NOFILE 40: the same hits both searches, with and without io_uring, no descriptor left");

	between = evict_all;
	run(true, true, false, K, false, &x);
	between = NULL;
	ok(x.r == 0 && same(&x, &p), "segments evicted from the page cache after the open: the same hits");
	diagf("evicted: %zu of %zu read through the ring", x.nbatched, x.nsegs);

	/* fewer rows than k: 3 segments of 1-2 rows */
	{
		char small[sizeof(tmpdir) + 8];
		struct outcome a, b;
		snprintf(small, sizeof(small), "%s/few", tmpdir);
		mkdir(small, 0755);
		write_seg(small, "a.npy", 0, 2, false);
		write_seg(small, "b.fvecs", 2, 1, true);
		write_seg(small, "c.npy", 3, 0, false);
		write_seg(small, "d.npy", 3, 2, false);
		dir_of_run = small;
		run(false, true, false, K, false, &a);
		run(true, true, false, K, false, &b);
		dir_of_run = NULL;
		ok(a.r == 0 && same(&a, &b) && a.rows == 5, "5 rows, k 10: the same hits deferred");
		ok(b.h[4].id >= 0 && b.h[5].id == -1 && isinf(b.h[5].dist), "... 5 hits, the rest empty");
	}

	/* a bad header among the small ones */
	save("s0150.npy");
	write_file(tmpdir, "s0150.npy", "\x93NUMPY\x01\x00garbage", 16);
	run(false, true, false, K, false, &x);
	run(true, true, false, K, false, &y);
	ok(x.r < 0 && y.r == x.r && !strcmp(x.err, y.err) && strstr(y.err, "s0150.npy") && y.check,
	   "a bad header: the same error as the plain open, naming it, a check failure");
	diagf("%s", y.err);
	run(true, false, false, K, false, &y);
	ok(y.r == x.r && !strcmp(x.err, y.err), "... the same without io_uring");
	run(false, true, true, K, false, &x);
	run(true, true, true, K, false, &y);
	ok(x.r == 0 && same(&x, &y) && x.nskipped == 1 && strstr(y.skipped, "s0150.npy"),
	   "... skip_bad: the same skipped list, segments, first rows and hits");
	restore("s0150.npy");

	/* a segment of another dimension */
	save("s0300.npy");
	write_file(tmpdir, "s0300.npy", segbuf, seg_bytes(segbuf, 0, 3, false, 8));
	run(false, true, false, K, false, &x);
	run(true, true, false, K, false, &y);
	ok(x.r == VV_ESCHEMA && y.r == x.r && !strcmp(x.err, y.err) && strstr(y.err, "s0300.npy"),
	   "another dimension: the same error as the plain open");
	diagf("%s", y.err);
	restore("s0300.npy");

	/* a bad fvecs dimension word: the scan's error, the same */
	save("s0009.fvecs");
	{
		uint8_t b[8192];
		memcpy(b, saved, savedlen);
		vv_put_le32(b + 2 * (4 + D * 4), 99);   /* row 2 */
		write_file(tmpdir, "s0009.fvecs", b, savedlen);
	}
	run(false, true, false, K, false, &x);
	run(true, true, false, K, false, &y);
	ok(x.r == VV_ECORRUPT && y.r == x.r && !strcmp(x.err, y.err) && strstr(y.err, "s0009.fvecs") &&
	   strstr(y.err, "row 2") && !y.check, "a bad fvecs dimension word: the same error");
	diagf("%s", y.err);
	restore("s0009.fvecs");

	/* cut or removed between the listing and the read */
	save("s0020.npy");
	between = cut_s0020;
	run(true, true, false, K, false, &y);
	between = NULL;
	run(false, true, false, K, false, &x);      /* the cut file, opened plainly */
	ok(y.r < 0 && y.r == x.r && !strcmp(x.err, y.err) && strstr(y.err, "s0020.npy") && y.check,
	   "cut after the deferred open: the plain open's error for the cut file");
	diagf("%s", y.err);
	restore("s0020.npy");
	save("s0399.npy");
	between = rm_s0399;
	run(true, true, false, K, false, &y);
	between = NULL;
	ok(y.r == VV_ENOENT && strstr(y.err, "s0399.npy") && strstr(y.err, "No such file") && y.check,
	   "removed after the deferred open: ENOENT naming it");
	diagf("%s", y.err);
	restore("s0399.npy");
	run(true, true, false, K, false, &y);
	ok(y.r == 0 && same(&y, &p), "restored: the same hits again");

	/* a symlink to a terminal-like device (read before its type is
	 * known): refused as by the plain open, nothing hangs */
	if (symlink("/dev/null", path("s0250.npy.tmp")) == 0) {
		save("s0250.npy");
		char tmp[sizeof(path_of)];
		snprintf(tmp, sizeof(tmp), "%s", path("s0250.npy.tmp"));
		if (rename(tmp, path("s0250.npy")) < 0)
			tap_diag("rename failed");
		run(false, true, false, K, false, &x);
		run(true, true, false, K, false, &y);
		ok(x.r < 0 && y.r == x.r && !strcmp(x.err, y.err) && strstr(y.err, "not a regular file"),
		   "a symlink to /dev/null: the plain open's error");
		diagf("%s", y.err);
		unlink(path("s0250.npy"));
		restore("s0250.npy");
	}

	/* replaced between the scan and the re-ranking (RLIMIT_NOFILE 40: a
	 * late segment was opened again by name by the scan, and is again by
	 * the re-ranking): an error naming it, never another file's rows under
	 * its name, never a hang (SIGALRM) */
	alarm(120);
	is_int(segf_in_child(-1, child_swapped, &(struct swap){ swap_s0390_file, .qrow = SIZE_MAX }), 0,
	       "replaced by another file after the scan: the re-ranking refuses it, naming it");
	restore_s0390();
	is_int(segf_in_child(-1, child_swapped, &(struct swap){ swap_s0390_fifo, .qrow = SIZE_MAX }), 0,
	       "replaced by a FIFO after the scan: refused too, no hang");
	restore_s0390();
	/* ... by a file of the same size and header: only its identity
	 * (inode, ctime) tells it from the segment opened */
	is_int(segf_in_child(-1, child_swapped, &(struct swap){ swap_s0390_same, .qrow = SIZE_MAX }), 0,
	       "replaced by a file of the same size and header after the scan: the re-ranking refuses it");
	restore_s0390();
	is_int(segf_in_child(-1, child_swapped,
			     &(struct swap){ swap_s0390_same, .before_scan = true, .qrow = nrows }), 0,
	       "... between the open and the scan: the scan's reopen refuses it, its rows never hits");
	restore_s0390();
	is_int(segf_in_child(-1, child_swapped,
			     &(struct swap){ swap_s0390_fifo, .before_scan = true, .qrow = nrows }), 0,
	       "a FIFO between the open and the scan: the scan's reopen refuses it, no hang");
	restore_s0390();
	is_int(segf_in_child(-1, child_swapped,
			     &(struct swap){ swap_s0390_same, .deferred = true, .qrow = SIZE_MAX }), 0,
	       "deferred open: replaced by a file of the same size and header after the scan: refused");
	is_int(since_misses(), 0, "a rename right after vv_seg_since stamps a later ctime (200 of 200)");
	alarm(0);
	unlink(path("s0390.npy"));
	restore_s0390();
	run(true, true, false, K, false, &y);
	ok(y.r == 0 && same(&y, &p), "restored: the same hits again");

	/* a segment the caller may not read */
	chmod(path("s0100.npy"), 0600);
	is_int(segf_in_child(65534, child_denied, NULL), 0,
	       "uid 65534, a segment it may not read: the same error every way, naming it");
	chmod(path("s0100.npy"), 0644);
	is_int(segf_proc_count("fd"), fds0, "no descriptor left after the failed searches");

	{
		char cmd[sizeof(tmpdir) + 16];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
		if (system(cmd) != 0)
			tap_diag("cleanup failed");
	}
	return tap_done();
}
