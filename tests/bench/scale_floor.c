/*
 * scale_floor.c - the kernel's per-file floor under a query over many small
 * segments (scale-bench.sh runs it next to `vecvault query`).
 *
 *   scale_floor DIR THREADS MODE
 *
 * Reads every regular file of DIR with THREADS threads and no arithmetic:
 *   MODE 0: what the query does per small segment today: openat, statx
 *           (type, size), pread of the 4 KiB head, pread of the rest, close;
 *   MODE 1: the least any per-file reader can do: openat, preads of the
 *           whole file in CHUNK pieces into a reused (L2-sized, like the
 *           query's) buffer until a short one, close: one pread per small
 *           file, so it is also the floor of one large file (scale_bench.py
 *           runs it over every layout: the split/unsplit ratio of the
 *           floors is what no reader of these files can beat);
 *   MODE 2: what the query does with io_uring (vector_uring.c): per batch
 *           of 128 files one submission of openat, a statx each, one
 *           submission of the 4 KiB heads, a pread of the rest each, one
 *           submission of closes;
 *   MODE 3: the least io_uring can do: per batch of 128 files, one
 *           submission of openat (direct descriptor), a read of the whole
 *           file and a close linked per file.
 * Modes 2 and 3 need liburing (built with -DHAVE_URING -luring).
 * Prints the wall and the CPU milliseconds (the process's, io_uring's
 * kernel threads included).  If MODE 1 over 10,000 files already costs
 * more than 2x a query over the same bytes as one file, no per-file open and
 * read can meet that goal on this machine; the rest of the query's time
 * over these files is what the tool adds.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#ifdef HAVE_URING
#include <liburing.h>
#endif
#include <unistd.h>

#define BUF (8u << 20)
#define CHUNK (256u << 10)      /* mode 1's read size */

static int dfd, mode;
static char **names;
static size_t nnames;
static atomic_size_t next;
static atomic_int bad;

#define BATCH 128u

#ifdef HAVE_URING
static void reap(struct io_uring *ring, unsigned n, int *res)
{
	struct io_uring_cqe *c;
	unsigned h, got = 0, k;

	while (got < n) {
		if (io_uring_submit_and_wait(ring, 1) < 0) {
			bad = 1;
			return;
		}
		k = 0;
		io_uring_for_each_cqe(ring, h, c) {
			if (c->res < 0)
				bad = 1;
			if (res && c->user_data < BATCH)
				res[c->user_data] = c->res;
			k++;
		}
		io_uring_cq_advance(ring, k);
		got += k;
	}
}

/* modes 2 and 3 over names[i0 .. i0+n) */
static void batch(struct io_uring *ring, char *b, size_t i0, size_t n)
{
	struct io_uring_sqe *s;
	struct statx sx[BATCH];
	int fd[BATCH];

	if (mode == 3) {
		for (size_t k = 0; k < n; k++) {
			s = io_uring_get_sqe(ring);
			io_uring_prep_openat_direct(s, dfd, names[i0 + k], O_RDONLY, 0, (unsigned)k);
			s->flags |= IOSQE_IO_LINK;
			s->user_data = UINT64_MAX;
			/* a short read ends a soft link: hard-link the close */
			s = io_uring_get_sqe(ring);
			io_uring_prep_read(s, (int)k, b + (k % 8) * (BUF / 8), BUF / 8, 0);
			s->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;
			s->user_data = UINT64_MAX;
			s = io_uring_get_sqe(ring);
			io_uring_prep_close_direct(s, (unsigned)k);
			s->user_data = UINT64_MAX;
		}
		reap(ring, 3 * (unsigned)n, NULL);
		return;
	}
	for (size_t k = 0; k < n; k++) {
		s = io_uring_get_sqe(ring);
		io_uring_prep_openat(s, dfd, names[i0 + k], O_RDONLY | O_CLOEXEC, 0);
		s->user_data = k;
	}
	reap(ring, (unsigned)n, fd);
	for (size_t k = 0; k < n; k++) {
		if (statx(fd[k], "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, &sx[k]) < 0)
			bad = 1;
		s = io_uring_get_sqe(ring);
		io_uring_prep_read(s, fd[k], b + k * 4096, 4096, 0);
		s->user_data = UINT64_MAX;
	}
	reap(ring, (unsigned)n, NULL);
	for (size_t k = 0; k < n; k++)
		if (sx[k].stx_size > 4096 && sx[k].stx_size <= BUF &&
		    pread(fd[k], b + BATCH * 4096, sx[k].stx_size - 4096, 4096) < 0)
			bad = 1;
	for (size_t k = 0; k < n; k++) {
		s = io_uring_get_sqe(ring);
		io_uring_prep_close(s, fd[k]);
		s->user_data = UINT64_MAX;
	}
	reap(ring, (unsigned)n, NULL);
}
#endif

static void *run(void *arg)
{
	char *b = aligned_alloc(64, BUF);
	struct statx sx;
	size_t i;

	(void)arg;
	if (!b) {
		bad = 1;
		return NULL;
	}
	if (mode >= 2) {
#ifdef HAVE_URING
		struct io_uring ring;
		if (io_uring_queue_init(4 * BATCH, &ring, 0) < 0 ||
		    (mode == 3 && io_uring_register_files_sparse(&ring, BATCH) < 0)) {
			bad = 1;
			free(b);
			return NULL;
		}
		while ((i = atomic_fetch_add(&next, BATCH)) < nnames)
			batch(&ring, b, i, nnames - i < BATCH ? nnames - i : BATCH);
		io_uring_queue_exit(&ring);
#else
		bad = 1;
#endif
		free(b);
		return NULL;
	}
	while ((i = atomic_fetch_add(&next, 1)) < nnames) {
		int fd = openat(dfd, names[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			bad = 1;
			continue;
		}
		if (mode == 0) {
			if (statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, &sx) < 0 ||
			    pread(fd, b, 4096, 0) < 0 ||
			    (sx.stx_size > 4096 && sx.stx_size <= BUF &&
			     pread(fd, b, sx.stx_size - 4096, 4096) < 0))
				bad = 1;
		} else {
			ssize_t k;
			off_t off = 0;
			while ((k = pread(fd, b, CHUNK, off)) == (ssize_t)CHUNK)
				off += k;
			if (k < 0)
				bad = 1;
		}
		close(fd);
	}
	free(b);
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[64];
	struct timespec a, z;
	struct rusage r0, r1;
	struct dirent *de;
	DIR *d;
	size_t cap = 0;
	long nt;

	if (argc != 4 || !(d = opendir(argv[1])) || (nt = atol(argv[2])) < 1 || nt > 64) {
		fprintf(stderr, "usage: scale_floor DIR THREADS(1-64) MODE(0-3)\n");
		return 2;
	}
	mode = atoi(argv[3]);
	dfd = dirfd(d);
	while ((de = readdir(d))) {
		if (de->d_type != DT_REG)
			continue;
		if (nnames == cap && !(names = realloc(names, (cap = cap ? 2 * cap : 1024) * sizeof(*names))))
			return 1;
		if (!(names[nnames++] = strdup(de->d_name)))
			return 1;
	}
	getrusage(RUSAGE_SELF, &r0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long t = 1; t < nt; t++)
		if (pthread_create(&th[t], NULL, run, NULL) != 0)
			return 1;
	run(NULL);
	for (long t = 1; t < nt; t++)
		pthread_join(th[t], NULL);
	clock_gettime(CLOCK_MONOTONIC, &z);
	getrusage(RUSAGE_SELF, &r1);
	if (bad) {
		fprintf(stderr, "scale_floor: a file could not be read\n");
		return 1;
	}
	printf("%.3f %.3f\n", (double)(z.tv_sec - a.tv_sec) * 1e3 + (double)(z.tv_nsec - a.tv_nsec) / 1e6,
	       (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1e3 +
	       (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e3);
	return 0;
}
