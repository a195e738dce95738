/*
 * scale_floor.c - the kernel's per-file floor under a query over many small
 * segments (scale-bench.sh runs it next to `vecvault query`).
 *
 *   scale_floor DIR THREADS MODE
 *
 * Reads every regular file of DIR with THREADS threads and no arithmetic:
 *   MODE 0: what the query does per small segment today: openat, statx
 *           (type, size), pread of the 4 KiB head, pread of the rest, close;
 *   MODE 1: the least any per-file reader can do: openat, one pread of the
 *           whole file into a reused buffer, close.
 * Prints the wall milliseconds.  If MODE 1 over 10,000 files already costs
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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BUF (8u << 20)

static int dfd, mode;
static char **names;
static size_t nnames;
static atomic_size_t next;
static atomic_int bad;

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
		} else if (pread(fd, b, BUF, 0) < 0) {
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
	struct dirent *de;
	DIR *d;
	size_t cap = 0;
	long nt;

	if (argc != 4 || !(d = opendir(argv[1])) || (nt = atol(argv[2])) < 1 || nt > 64) {
		fprintf(stderr, "usage: scale_floor DIR THREADS(1-64) MODE(0|1)\n");
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
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long t = 1; t < nt; t++)
		if (pthread_create(&th[t], NULL, run, NULL) != 0)
			return 1;
	run(NULL);
	for (long t = 1; t < nt; t++)
		pthread_join(th[t], NULL);
	clock_gettime(CLOCK_MONOTONIC, &z);
	if (bad) {
		fprintf(stderr, "scale_floor: a file could not be read\n");
		return 1;
	}
	printf("%.3f\n", (double)(z.tv_sec - a.tv_sec) * 1e3 + (double)(z.tv_nsec - a.tv_nsec) / 1e6);
	return 0;
}
