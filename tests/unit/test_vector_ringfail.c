/*
 * test_vector_ringfail.c - an io_uring ring that breaks mid-batch
 * (vv_uring_test_fail: the wait fails after its requests went in) leaves
 * nothing behind: closing a ring does not wait for its requests, so
 * vector_uring.c and vector_tiny.c cancel and reap them first.  Checked:
 * a batch whose open of a FIFO is blocked in the kernel returns, with no
 * descriptor left and no reader left on the FIFO; head reads of files out
 * of the page cache, failed mid-batch, write nothing into the heads after
 * the call returned (poisoned and watched); a failed batch of closes
 * closes every descriptor; and the collection open (io_uring batches) and
 * the deferred open (vector_tiny.c) with a ring failing give the same hits
 * as without io_uring, leaving no descriptor.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "seg_files.h"
#include "tap.h"
#include "vector_int.h"

#define D 8
#define NSEG 300
#define ROWS 40
#define NQ 3
#define K 5

static char tmpdir[] = "/var/tmp/vv_test_ringfail.XXXXXX";
static float q[NQ][D];

/* seg%04u.fvecs, ROWS rows of D floats. */
static void build(void)
{
	static uint8_t buf[ROWS * (4 + 4 * D)];
	unsigned seed = 7;

	for (unsigned s = 0; s < NSEG; s++) {
		char name[32];
		for (unsigned r = 0; r < ROWS; r++) {
			uint8_t *p = buf + r * (4 + 4 * D);
			uint32_t dim = D;
			memcpy(p, &dim, 4);
			for (unsigned j = 0; j < D; j++) {
				float v = (float)(segf_rnd(&seed) % 1000) / 100.0f;
				memcpy(p + 4 + 4 * j, &v, 4);
			}
		}
		snprintf(name, sizeof(name), "seg%04u.fvecs", s);
		segf_write(tmpdir, name, buf, sizeof(buf));
	}
	for (unsigned i = 0; i < NQ; i++)
		for (unsigned j = 0; j < D; j++)
			q[i][j] = (float)(segf_rnd(&seed) % 1000) / 100.0f;
}

/* Drop the segments' pages from the page cache, so that their reads go to
 * the disk and are in flight for a while. */
static void uncache(void)
{
	for (unsigned s = 0; s < NSEG; s++) {
		char path[300];
		int fd;
		snprintf(path, sizeof(path), "%s/seg%04u.fvecs", tmpdir, s);
		if ((fd = open(path, O_RDONLY)) >= 0) {
			fdatasync(fd);
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
			close(fd);
		}
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A batch with a FIFO: its open blocks in the kernel (no writer), the wait
 * fails; the batch must cancel it and close what opened. */
static void fifo_batch(void)
{
	struct vv_uring *u = NULL;
	struct vv_uring_file f[8];
	static uint8_t heads[8][VV_VEC_PROBE_LEN];
	char fifo[300];
	int dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fds0, r, w;
	double t0;

	snprintf(fifo, sizeof(fifo), "%s/fifo.fvecs", tmpdir);
	ok(mkfifo(fifo, 0600) == 0, "a FIFO named like a segment");
	fds0 = segf_proc_count("fd");
	if (vv_uring_new(8, &u) < 0) {
		ok(1, "# SKIP no io_uring here");
		close(dirfd);
		unlink(fifo);
		return;
	}
	for (unsigned i = 0; i < 8; i++) {
		static char names[8][32];
		if (i == 3)
			snprintf(names[i], sizeof(names[i]), "fifo.fvecs");
		else
			snprintf(names[i], sizeof(names[i]), "seg%04u.fvecs", i);
		f[i] = (struct vv_uring_file){ .name = names[i], .head = heads[i],
					       .headcap = VV_VEC_PROBE_LEN, .fd = -1 };
	}
	vv_uring_test_fail(1);
	t0 = now();
	r = vv_uring_open_batch(u, dirfd, f, 8);
	vv_uring_test_fail(0);
	ok(r < 0, "the batch fails with its ring");
	ok(now() - t0 < 5, "and returns: the FIFO's blocked open was cancelled");
	ok(!vv_uring_lost(u), "every request reaped");
	is_int(segf_proc_count("fd"), fds0 + 1, "no descriptor left by the opens that completed "
	       "(the ring's own only)");
	for (unsigned i = 0; i < 8; i++)
		ok(f[i].fd == -1, "no descriptor handed back");
	/* a writer finds no reader: the open was not left waiting */
	w = open(fifo, O_WRONLY | O_NONBLOCK);
	ok(w < 0 && errno == ENXIO, "nothing holds the FIFO open for reading");
	if (w >= 0)
		close(w);
	vv_uring_free(u);
	is_int(segf_proc_count("fd"), fds0, "no descriptor left after the ring is freed");
	unlink(fifo);
	close(dirfd);
}

/* Head reads of files out of the page cache, the ring failing at the read
 * wait: after the call, nothing may write into the heads. */
static void read_batch(unsigned rounds)
{
	enum { N = 64 };
	static uint8_t heads[N][VV_VEC_PROBE_LEN];
	static char names[N][32];
	struct vv_uring_file f[N];
	int dirfd = open(tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fds0 = segf_proc_count("fd");
	unsigned touched = 0, failed = 0, lost = 0;

	for (unsigned round = 0; round < rounds; round++) {
		struct vv_uring *u = NULL;
		if (vv_uring_new(N, &u) < 0) {
			ok(1, "# SKIP no io_uring here");
			close(dirfd);
			return;
		}
		uncache();
		for (unsigned i = 0; i < N; i++) {
			snprintf(names[i], sizeof(names[i]), "seg%04u.fvecs", (round * N + i) % NSEG);
			f[i] = (struct vv_uring_file){ .name = names[i], .head = heads[i],
						       .headcap = VV_VEC_PROBE_LEN, .fd = -1 };
		}
		vv_uring_test_fail(2);   /* the opens reaped, the reads' wait fails */
		failed += vv_uring_open_batch(u, dirfd, f, N) < 0;
		vv_uring_test_fail(0);
		lost += vv_uring_lost(u);
		/* the caller may reuse the heads now: poison them, then watch */
		memset(heads, 0xA5, sizeof(heads));
		usleep(20000);
		for (unsigned i = 0; i < N; i++)
			for (size_t b = 0; b < VV_VEC_PROBE_LEN; b++)
				if (heads[i][b] != 0xA5) {
					touched++;
					break;
				}
		vv_uring_free(u);
	}
	is_int(failed, rounds, "each batch fails at its reads");
	is_int(lost, 0, "every read reaped");
	is_int(touched, 0, "no head written after the call returned");
	is_int(segf_proc_count("fd"), fds0, "no descriptor left");
	close(dirfd);
}

/* A batch of closes whose wait fails: every descriptor ends closed. */
static void close_batch(void)
{
	enum { N = 32 };
	int fds[N], fds0 = segf_proc_count("fd"), r;
	struct vv_uring *u = NULL;

	if (vv_uring_new(N, &u) < 0) {
		ok(1, "# SKIP no io_uring here");
		return;
	}
	for (unsigned i = 0; i < N; i++) {
		char path[300];
		snprintf(path, sizeof(path), "%s/seg%04u.fvecs", tmpdir, i);
		fds[i] = open(path, O_RDONLY | O_CLOEXEC);
	}
	vv_uring_test_fail(1);
	r = vv_uring_close_fds(u, fds, N);
	vv_uring_test_fail(0);
	ok(r < 0, "the closes fail with their ring");
	is_int(segf_proc_count("fd"), fds0 + 1, "every descriptor closed all the same (the ring's "
	       "own left)");
	vv_uring_free(u);
	is_int(segf_proc_count("fd"), fds0, "and the ring's with it");
}

struct outcome {
	int r;
	size_t nsegs;
	struct vv_hit h[NQ * K];
};

/* Open (deferred or not) and search, with io_uring or not, the nth ring
 * wait failing (0: none). */
static void run(bool deferred, bool uring, unsigned fail, struct outcome *o)
{
	struct vv_collection *c = NULL;
	struct vv_search_opts so = { .k = K, .metric = VV_METRIC_L2, .threads = 2 };
	char err[256] = "";

	memset(o, 0, sizeof(*o));
	vv_vector_configure(&(struct vv_vector_config){ .no_uring = !uring });
	vv_uring_test_fail(fail);
	o->r = (deferred ? vv_collection_open_deferred : vv_collection_open)(tmpdir, NULL, false, &c,
									       err, sizeof(err));
	if (o->r == 0) {
		o->r = vv_collection_search(c, &q[0][0], NQ, &so, o->h, err, sizeof(err));
		o->nsegs = vv_collection_nsegs(c);
	}
	vv_uring_test_fail(0);
	if (o->r)
		tap_diag(err);
	vv_collection_free(c);
	vv_vector_configure(NULL);
}

static bool same(const struct outcome *a, const struct outcome *b)
{
	if (a->r || b->r || a->nsegs != b->nsegs)
		return false;
	for (size_t i = 0; i < NQ * K; i++)
		if (a->h[i].id != b->h[i].id || a->h[i].dist != b->h[i].dist ||
		    a->h[i].seg != b->h[i].seg || a->h[i].row != b->h[i].row)
			return false;
	return true;
}

static void collections(void)
{
	struct outcome ref, got;
	int fds0;

	run(false, false, 0, &ref);
	is_int(ref.r, 0, "the collection opens and searches without io_uring");
	is_int((int)ref.nsegs, NSEG, "with every segment");
	fds0 = segf_proc_count("fd");
	for (unsigned fail = 1; fail <= 3; fail++) {
		char msg[96];
		uncache();
		run(false, true, fail, &got);
		snprintf(msg, sizeof(msg), "open in batches, ring wait %u failing: the same hits", fail);
		ok(same(&ref, &got), msg);
		uncache();
		run(true, true, fail, &got);
		snprintf(msg, sizeof(msg), "deferred open, ring wait %u failing: the same hits", fail);
		ok(same(&ref, &got), msg);
	}
	is_int(segf_proc_count("fd"), fds0, "no descriptor left");
}

int main(void)
{
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	build();
	fifo_batch();
	read_batch(20);
	close_batch();
	collections();
	{
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
		if (system(cmd) != 0)
			tap_diag("could not remove the scratch directory");
	}
	return tap_done();
}
