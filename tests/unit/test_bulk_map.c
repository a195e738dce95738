/*
 * test_bulk_map.c - the daemon's kept mappings of bulk-read buffers
 * (fs/bulk_map.c): the copy's SIGBUS guard, what may be mapped, the
 * bounds, and when a mapping goes.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs_int.h"
#include "vecvault/error.h"
#include "vecvault/knn_ioctl.h"
#include "tap.h"

#define LEN (64u * 4096u)

/* A memfd named name of len bytes, allocated, sealed against shrinking
 * when seal. */
static int buf_new(const char *name, size_t len, bool seal)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0 || ftruncate(fd, (off_t)len) < 0 || fallocate(fd, 0, 0, (off_t)len) < 0)
		return -1;
	if (seal && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		return -1;
	return fd;
}

/* Lines of /proc/self/maps naming memfd "name". */
static int mapped(const char *name)
{
	char line[512], want[128];
	int n = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	snprintf(want, sizeof(want), "/memfd:%s ", name);
	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, want) != NULL;
	if (f)
		fclose(f);
	return n;
}

/* fd opened again through /proc: the same memfd, another description. */
static int open_again(int fd)
{
	char p[64];

	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	return open(p, O_RDWR | O_CLOEXEC);
}

static int self_pidfd(void)
{
	return (int)syscall(SYS_pidfd_open, getpid(), 0);
}

/* After a fault the test makes on purpose: ThreadSanitizer's signal
 * wrapper leaves SIGBUS blocked when the guard siglongjmps out of the
 * handler, SA_NODEFER or not (tap.h TAP_TSAN), and the next fault would
 * end the test; the daemon's own threads are not run under it. */
static void fault_done(void)
{
	sigset_t s;

	if (!TAP_TSAN)
		return;
	sigemptyset(&s);
	sigaddset(&s, SIGBUS);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}

static void test_copy(void)
{
	static uint8_t src[8192];
	int fd = buf_new("t-copy", LEN, false);
	uint8_t *m = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	pid_t kid;
	int st = 0;

	memset(src, 0x5a, sizeof(src));
	is_int(fs_bulk_copy(m + 4096, m, m + LEN, src, sizeof(src)), 0, "copy inside: 0");
	ok(memcmp(m + 4096, src, sizeof(src)) == 0, "copy inside: the bytes");
	is_int(fs_bulk_copy(m + LEN - 4096, m, m + LEN, src, sizeof(src)), VV_ENOSPC,
	       "copy past the end: ENOSPC");
	ok(m[LEN - 1] == 0, "copy past the end: nothing written");
	/* the file cut under the mapping: a write there is SIGBUS (a page
	 * missing: EINVAL; EIO is kept for memory errors) */
	ok(ftruncate(fd, 4096) == 0, "buffer cut to one page");
	is_int(fs_bulk_copy(m + 8192, m, m + LEN, src, sizeof(src)), VV_EINVAL,
	       "copy into the cut pages: EINVAL, not a crash");
	fault_done();
	is_int(fs_bulk_copy(m, m, m + LEN, src, 4096), 0, "the next copy, into the page left: 0");
	is_int(fs_bulk_copy(m + 8192, m, m + LEN, src, 16), VV_EINVAL,
	       "and a second fault: EINVAL again");
	fault_done();
	/* a fault outside a guarded copy keeps the default action */
	fflush(stdout);
	if ((kid = fork()) == 0) {
		m[8192] = 1;
		_exit(0);
	}
	waitpid(kid, &st, 0);
	/* (under TSan the process ends too, but through TSan's own handling
	 * of the signal the guard hands on, not always by SIGBUS) */
	ok(TAP_TSAN ? !WIFEXITED(st) || WEXITSTATUS(st) != 0 : WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS,
	   "a SIGBUS outside a copy still ends the process");
	/* a copy whose range does not hold the fault leaves it alone */
	fflush(stdout);
	if ((kid = fork()) == 0) {
		uint8_t *other = m + 8192;
		(void)!fs_bulk_copy(other, m + 16384, m + LEN, src, 16);
		_exit(0);
	}
	waitpid(kid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a copy refused before touching memory");
	munmap(m, LEN);
	close(fd);
}

/* Bytes of fd's pages (st_blocks). */
static long long blocks_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? (long long)st.st_blocks * 512 : -1;
}

/* Is [off, off + len) of fd a hole (no page)? */
static bool is_hole(int fd, off_t off, off_t len)
{
	off_t d = lseek(fd, off, SEEK_DATA);

	return d < 0 || d >= off + len;
}

/* A hole the caller punches in a buffer the daemon keeps mapped is never
 * filled by the daemon (whose memory cgroup the page would be charged
 * to, for as long as the caller keeps the memfd): the copy faults, the
 * hole stays.  Nor by the populate of a new mapping. */
static void test_hole(void)
{
	static const uint8_t bytes[4096] = { 7 };
	struct bulk_maps m;
	struct bulk_map *e;
	struct stat st;
	int pfd = self_pidfd(), fd = buf_new("t-hole", LEN, true);
	long long full = blocks_of(fd);

	fs_bulk_maps_init(&m);
	fstat(fd, &st);
	e = fs_bulk_map_get(&m, 7, fd, &st, pfd, LEN);
	ok(e != NULL, "hole: mapped");
	ok(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8192, 8192) == 0,
	   "two pages punched out under the mapping");
	is_int(fs_bulk_map_put(e, 8192, bytes, sizeof(bytes)), VV_EINVAL,
	       "a copy into the hole: EINVAL, not a crash");
	fault_done();
	ok(is_hole(fd, 8192, 8192) && blocks_of(fd) == full - 8192,
	   "the hole stays: no page allocated by the copy");
	is_int(fs_bulk_map_put(e, 4096, bytes, sizeof(bytes)), 0, "a copy into a page left: 0");
	is_int(fs_bulk_map_put(e, 12288, bytes, 16), VV_EINVAL, "the other punched page: EINVAL");
	fault_done();
	fs_bulk_map_release(&m, e, true);
	/* a new mapping of a buffer with a hole (punched after bulk.c's
	 * check): its populate allocates nothing either */
	fstat(fd, &st);
	e = fs_bulk_map_get(&m, 7, fd, &st, pfd, LEN);
	ok(e != NULL && is_hole(fd, 8192, 8192) && blocks_of(fd) == full - 8192,
	   "mapped anew over the hole: still a hole");
	if (e)
		is_int(fs_bulk_map_put(e, 8192, bytes, 1), VV_EINVAL, "and a copy there: EINVAL");
	fault_done();
	fs_bulk_map_release(&m, e, true);
	fs_bulk_maps_release(&m);
	close(fd);
	close(pfd);
}

static void *exit_thread(void *arg)
{
	*(int *)arg = (int)syscall(SYS_pidfd_open, (pid_t)syscall(SYS_gettid), O_EXCL);
	return NULL;
}

static void test_maps(void)
{
	struct bulk_maps m;
	struct bulk_map *e, *e2, *many[20];
	struct stat st;
	int pfd = self_pidfd(), fd, fd2, big, more, fds[20], tfd = -1, n = 0;
	uint8_t *view;
	static const uint8_t bytes[100] = { 1, 2, 3 };
	pthread_t t;

	fs_bulk_maps_init(&m);
	fd = buf_new("t-unsealed", LEN, false);
	fstat(fd, &st);
	ok(fs_bulk_map_get(&m, 7, fd, &st, pfd, LEN) == NULL, "not sealed against shrinking: no mapping");
	close(fd);

	fd = buf_new("t-sealed", LEN, true);
	fstat(fd, &st);
	ok(fs_bulk_map_get(&m, 7, fd, &st, pfd, LEN + 1) == NULL, "slots past its end: no mapping");
	e = fs_bulk_map_get(&m, 7, fd, &st, pfd, LEN);
	ok(e != NULL, "sealed: mapped");
	is_int(mapped("t-sealed"), 1, "sealed: one mapping of it");
	is_int(fs_bulk_map_put(e, 4096, bytes, sizeof(bytes)), 0, "written through it");
	view = mmap(NULL, LEN, PROT_READ, MAP_SHARED, fd, 0);
	ok(view != MAP_FAILED && memcmp(view + 4096, bytes, sizeof(bytes)) == 0,
	   "the bytes are in the buffer");
	is_int(fs_bulk_map_put(e, LEN, bytes, 1), VV_ENOSPC, "past the end: ENOSPC");
	is_int(fs_bulk_map_put(e, (uint64_t)1 << 60, bytes, 1), VV_ENOSPC, "far past: ENOSPC");
	fs_bulk_map_release(&m, e, false);
	/* the cheap look before a take (bulk.c): the very file mapped */
	{
		pid_t me = (pid_t)syscall(SYS_gettid);
		int other = buf_new("t-other", LEN, true), again = open_again(fd);

		ok(fs_bulk_map_same(&m, 7, st.st_dev, st.st_ino, me, fd), "same: the file mapped");
		ok(!fs_bulk_map_same(&m, 8, st.st_dev, st.st_ino, me, fd), "same: not for another uid");
		ok(!fs_bulk_map_same(&m, 7, st.st_dev, st.st_ino, me, other), "same: not another memfd");
		ok(again >= 0 && !fs_bulk_map_same(&m, 7, st.st_dev, st.st_ino, me, again),
		   "same: not the memfd opened again (another open file description)");
		ok(!fs_bulk_map_same(&m, 7, st.st_dev, st.st_ino, me, 999), "same: not a closed number");
		close(other);
		if (again >= 0)
			close(again);
	}
	e2 = fs_bulk_map_get(&m, 7, fd, &st, pfd, LEN);
	ok(e2 == e, "the next request of the uid: the same mapping");
	is_int(mapped("t-sealed"), 2, "not mapped again (and the test's own view)");
	fs_bulk_map_release(&m, e2, true);
	e2 = fs_bulk_map_get(&m, 7, fd, &st, pfd, LEN);
	ok(e2 && e2 != e, "after a failed copy: mapped anew");
	fs_bulk_map_release(&m, e2, false);
	e2 = fs_bulk_map_get(&m, 8, fd, &st, pfd, LEN);
	ok(e2 && e2 != e, "another uid: a mapping of its own");
	fs_bulk_map_release(&m, e2, false);

	big = buf_new("t-big", (size_t)VV_BULK_SPAN_MAX + 4096, true);
	fstat(big, &st);
	ok(fs_bulk_map_get(&m, 7, big, &st, pfd, 4096) == NULL, "larger than the span: no mapping");
	close(big);

	for (int i = 0; i < 20; i++) {
		fds[i] = buf_new("t-many", 4096, true);
		fstat(fds[i], &st);
		many[i] = fs_bulk_map_get(&m, 9, fds[i], &st, pfd, 4096);
		n += many[i] != NULL;
	}
	is_int(n, 16, "20 buffers of one uid: 16 mapped");
	for (int i = 0; i < 20; i++) {
		fs_bulk_map_release(&m, many[i], false);
		close(fds[i]);
	}
	/* all 16 unused now: a new buffer of the uid takes the place of the
	 * least recently used one instead of being refused */
	more = buf_new("t-more", 4096, true);
	fstat(more, &st);
	e = fs_bulk_map_get(&m, 9, more, &st, pfd, 4096);
	ok(e != NULL, "at the bound, none in use: a new buffer mapped");
	is_int(mapped("t-many"), 15, "in place of the least recently used");
	fs_bulk_map_release(&m, e, false);
	close(more);
	for (int i = 0; i < 100 && mapped("t-many"); i++)
		usleep(100 * 1000);
	is_int(mapped("t-many") + mapped("t-more"), 0, "unused: gone within 10 s");

	/* a mapping whose thread ended goes (the caller keeps the memfd) */
	pthread_create(&t, NULL, exit_thread, &tfd);
	pthread_join(t, NULL);
	fd2 = buf_new("t-thread", LEN, true);
	fstat(fd2, &st);
	e = tfd >= 0 ? fs_bulk_map_get(&m, 7, fd2, &st, tfd, LEN) : NULL;
	ok(e != NULL, "a buffer of a thread that ended: mapped");
	fs_bulk_map_release(&m, e, false);
	for (int i = 0; i < 100 && mapped("t-thread"); i++)
		usleep(100 * 1000);
	is_int(mapped("t-thread"), 0, "its thread ended: gone");

	e = fs_bulk_map_get(&m, 7, fd2, &st, pfd, LEN);
	ok(e != NULL, "mapped again for a live caller");
	fs_bulk_map_release(&m, e, false);
	fs_bulk_maps_release(&m);
	is_int(mapped("t-thread") + mapped("t-sealed") - 1, 0, "at unmount: every mapping gone");
	munmap(view, LEN);
	close(fd);
	close(fd2);
	if (tfd >= 0)
		close(tfd);
	close(pfd);
}

int main(void)
{
	test_copy();
	test_hole();
	test_maps();
	return tap_done();
}
