/*
 * bulk_map.c - the daemon's mappings of callers' bulk-read buffers, kept
 * from one request to the next (bulk.c; docs/design.md "The bulk read").
 *
 * Why: pwrite(2) into the caller's memfd goes through shmem's per-page
 * write path, ~160 ms per 512 MiB here, the largest single cost of a query
 * over 10,000 small segments; memcpy into a mapping of it costs ~55 ms,
 * but mapping it for each request costs as much as pwrite (each page
 * faulted into the daemon's page tables again).  A query's scan threads
 * each reuse one memfd for all their requests, so it is mapped here once
 * and kept while the thread that sent it lives.
 *
 * What is mapped: only a buffer bulk.c took from the caller's thread and
 * checked for this very request (its memfd, no write seal, no hole, open
 * for writing, slots inside it) that is also sealed against shrinking
 * (F_SEAL_SHRINK; seals are never removed): a shared mapping faults with
 * SIGBUS past the end of its file, and this file cannot get shorter.
 * Every request still takes and checks the descriptor; the mapping is
 * found by (uid, device, inode) of the descriptor taken, which the
 * mapping's own reference keeps from being reused.  A hole the caller
 * punches meanwhile is never filled here: a fault there would allocate
 * the page in the daemon, charged to the daemon's memory cgroup for as
 * long as the caller keeps the memfd (a caller punching as the copies ran
 * moved any amount of its memory there: t1050).  So every mapping is
 * registered with a userfaultfd for missing pages with
 * UFFD_FEATURE_SIGBUS: a fault on a hole raises SIGBUS, allocating
 * nothing, and MADV_POPULATE_WRITE skips it.  The copying thread leaves
 * the signal handler for the copy's error (fs_bulk_copy: EINVAL for a
 * missing page, EIO for a memory error): that request fails, nothing
 * else; any other SIGBUS kills the daemon as before.  No userfaultfd, no
 * mapping (EBUSY: the tool opens the files itself).
 *
 * Bounds: at most MAPS_PER_UID mappings per uid and MAPS_MAX in all, each
 * of at most MAP_LEN_MAX bytes.  At a bound the least recently used
 * mapping no request is copying through makes room (make_room); only when
 * every one is in use is a request refused EBUSY (the tool opens those
 * files itself).
 * A mapping goes once the thread that sent it has exited (its pidfd polls
 * readable), after MAP_IDLE_S seconds unused, or at unmount, whichever is
 * first; a reaper thread (started with the first mapping) polls.  Until
 * then the daemon's reference keeps the memfd's pages, which stay charged
 * to the caller that allocated them.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "vecvault/error.h"
#include "vecvault/knn_ioctl.h"
#include "vecvault/log.h"
#include "fs_int.h"

#define MAPS_PER_UID 16u         /* a tool sends from 2 threads per CPU */
#define MAPS_MAX 64u
#define MAP_LEN_MAX ((size_t)VV_BULK_SPAN_MAX)
#define MAP_IDLE_S 2

struct bulk_map {
	struct bulk_map *next;
	uint32_t uid;
	uint64_t dev, ino;
	int fd;                  /* the memfd: the mapping's reference to it */
	int pidfd;               /* the thread that sent it: its exit ends it */
	uint8_t *mem;
	size_t len;
	unsigned refs;           /* requests copying through it now */
	int64_t used;            /* CLOCK_MONOTONIC ms */
	bool dead;               /* a copy failed: never used again */
};

/* ---- the copy, guarded against SIGBUS -------------------------------- */

/* volatile: the handler reads them, so no store may be left out or moved
 * past the copy */
static __thread sigjmp_buf *volatile bus_env;
static __thread const uint8_t *volatile bus_lo, *volatile bus_hi;
static __thread volatile int bus_code;   /* the caught fault's si_code */
static struct sigaction bus_prev;
static pthread_once_t bus_once = PTHREAD_ONCE_INIT;
static bool bus_ok;

/* A fault inside the copying thread's destination leaves to its error;
 * any other goes to the handler there was before (by default the fault
 * happens again with the default action: a crash with a core). */
static void on_bus(int sig, siginfo_t *si, void *uc)
{
	const uint8_t *a = si->si_addr;

	if (bus_env && a >= bus_lo && a < bus_hi) {
		bus_code = si->si_code;
		siglongjmp(*bus_env, 1);
	}
	if ((bus_prev.sa_flags & SA_SIGINFO) && bus_prev.sa_sigaction) {
		bus_prev.sa_sigaction(sig, si, uc);
		return;
	}
	if (bus_prev.sa_handler != SIG_DFL && bus_prev.sa_handler != SIG_IGN) {
		bus_prev.sa_handler(sig);
		return;
	}
	sigaction(SIGBUS, &bus_prev, NULL);   /* returns into the fault again */
}

static void bus_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_bus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	bus_ok = sigaction(SIGBUS, &sa, &bus_prev) == 0;
}

int fs_bulk_copy(uint8_t *dst, const uint8_t *lo, const uint8_t *hi, const void *src, size_t len)
{
	sigjmp_buf env;
	volatile int r = 0;

	pthread_once(&bus_once, bus_install);
	if (!bus_ok)
		return VV_ENOTSUP;
	if (dst < lo || dst > hi || len > (size_t)(hi - dst))
		return VV_ENOSPC;
	bus_lo = lo;
	bus_hi = hi;
	/* no mask to save: SA_NODEFER leaves SIGBUS unblocked in the handler,
	 * and a mask saved and restored per copy was 2% of the daemon */
	if (sigsetjmp(env, 0) == 0) {
		bus_env = &env;
		memcpy(dst, src, len);
	} else if (bus_code == BUS_MCEERR_AR || bus_code == BUS_MCEERR_AO) {
		r = VV_EIO;              /* a memory error in the destination */
	} else {
		r = VV_EINVAL;           /* the destination lost pages: a hole, a cut */
	}
	bus_env = NULL;
	return r;
}

/* ---- the mappings ------------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void map_free(struct bulk_map *e)
{
	munmap(e->mem, e->len);
	close(e->fd);
	close(e->pidfd);
	free(e);
}

static bool exited(int pidfd)
{
	struct pollfd p = { .fd = pidfd, .events = POLLIN };

	return poll(&p, 1, 0) != 0;   /* readable (ended), or an error */
}

/* Under m->mu: unlinks and frees the unused mappings whose thread ended or
 * that idled too long (all unused ones with all). */
static void sweep(struct bulk_maps *m, bool all)
{
	int64_t t = now_ms();

	for (struct bulk_map **pp = &m->head; *pp;) {
		struct bulk_map *e = *pp;
		if (e->refs == 0 &&
		    (all || e->dead || t - e->used >= MAP_IDLE_S * 1000 || exited(e->pidfd))) {
			*pp = e->next;
			m->n--;
			map_free(e);
		} else {
			pp = &e->next;
		}
	}
}

static void *reaper(void *arg)
{
	struct bulk_maps *m = arg;
	struct pollfd p[1 + MAPS_MAX];

	pthread_mutex_lock(&m->mu);
	while (!m->stop) {
		nfds_t n = 1;
		uint64_t x;

		p[0] = (struct pollfd){ .fd = m->wake, .events = POLLIN };
		for (struct bulk_map *e = m->head; e && n < 1 + MAPS_MAX; e = e->next)
			p[n++] = (struct pollfd){ .fd = e->pidfd, .events = POLLIN };
		pthread_mutex_unlock(&m->mu);
		/* a pidfd freed meanwhile is at most a wake-up too early */
		poll(p, n, 1000);
		if (read(m->wake, &x, sizeof(x)) < 0)
			x = 0;
		pthread_mutex_lock(&m->mu);
		sweep(m, false);
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

void fs_bulk_maps_init(struct bulk_maps *m)
{
	memset(m, 0, sizeof(*m));
	pthread_mutex_init(&m->mu, NULL);
	m->wake = -1;
	m->uffd = -1;
}

void fs_bulk_maps_release(struct bulk_maps *m)
{
	pthread_mutex_lock(&m->mu);
	m->stop = true;
	pthread_mutex_unlock(&m->mu);
	if (m->running) {
		uint64_t one = 1;

		if (write(m->wake, &one, sizeof(one)) < 0)
			vv_log(VV_LOG_WARN, "fs: bulk read: cannot wake the reaper: %s",
			       strerror(errno));
		pthread_join(m->thr, NULL);
	}
	pthread_mutex_lock(&m->mu);
	sweep(m, true);                  /* no request runs any more */
	pthread_mutex_unlock(&m->mu);
	if (m->wake >= 0)
		close(m->wake);
	if (m->uffd >= 0)
		close(m->uffd);          /* after the last munmap */
	pthread_mutex_destroy(&m->mu);
}

/* Under m->mu: the reaper, started with the first mapping.  False when it
 * cannot run (then nothing may be kept). */
static bool reaper_up(struct bulk_maps *m)
{
	if (m->running)
		return true;
	if (m->stop || m->failed)
		return false;
	if ((m->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
	    pthread_create(&m->thr, NULL, reaper, m) != 0) {
		vv_log(VV_LOG_WARN, "fs: bulk read: no reaper thread; refusing bulk reads (EBUSY)");
		m->failed = true;
		return false;
	}
	m->running = true;
	return true;
}

/* Under m->mu: the userfaultfd every mapping is registered with (missing
 * pages, UFFD_FEATURE_SIGBUS: a fault on a hole raises SIGBUS instead of
 * allocating the page), opened with the first mapping.  False when there
 * is none (then nothing may be mapped: a copy could allocate). */
static bool uffd_up(struct bulk_maps *m)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_SIGBUS };
	int fd;

	if (m->uffd >= 0)
		return true;
	if (m->failed)
		return false;
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || ioctl(fd, UFFDIO_API, &api) < 0 || !(api.features & UFFD_FEATURE_SIGBUS)) {
		vv_log(VV_LOG_WARN, "fs: bulk read: no userfaultfd with UFFD_FEATURE_SIGBUS (%s); "
		       "refusing bulk reads (EBUSY)", fd < 0 ? strerror(errno) : "not supported");
		if (fd >= 0)
			close(fd);
		m->failed = true;
		return false;
	}
	m->uffd = fd;
	return true;
}

/* Under m->mu: the mapping of len bytes of fd, registered with m->uffd
 * (whole pages: the mapping's), or MAP_FAILED. */
static uint8_t *map_guarded(struct bulk_maps *m, int fd, size_t len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	void *p = mmap(NULL, len, PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return MAP_FAILED;
	reg.range.start = (uintptr_t)p;
	reg.range.len = (len + pg - 1) / pg * pg;
	if (ioctl(m->uffd, UFFDIO_REGISTER, &reg) < 0) {
		vv_log(VV_LOG_WARN, "fs: bulk read: cannot register a mapping with userfaultfd: %s",
		       strerror(errno));
		munmap(p, len);
		return MAP_FAILED;
	}
	return p;
}

/* Under m->mu: room for one more mapping of uid, made by dropping the
 * mappings whose thread ended or that idled, then the least recently used
 * unused one (uid's own when uid is at its bound; anyone's at the overall
 * bound).  A mapping is a cache: its owner's next request maps again.
 * False only when every mapping in the way is copying now. */
static bool make_room(struct bulk_maps *m, uint32_t uid)
{
	sweep(m, false);
	for (;;) {
		struct bulk_map **victim = NULL, *e;
		unsigned mine = 0;
		bool own;

		for (e = m->head; e; e = e->next)
			mine += e->uid == uid;
		own = mine >= MAPS_PER_UID;
		if (!own && m->n < MAPS_MAX)
			return true;
		for (struct bulk_map **pp = &m->head; *pp; pp = &(*pp)->next)
			if ((*pp)->refs == 0 && (!own || (*pp)->uid == uid) &&
			    (!victim || (*pp)->used < (*victim)->used))
				victim = pp;
		if (!victim)
			return false;
		e = *victim;
		*victim = e->next;
		m->n--;
		map_free(e);
	}
}

struct bulk_map *fs_bulk_map_get(struct bulk_maps *m, uint32_t uid, int fd, const struct stat *st,
				 int pidfd, uint64_t end)
{
	struct bulk_map *e, *found = NULL;
	unsigned mine = 0;
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0 || !(seals & F_SEAL_SHRINK) || (uint64_t)st->st_size > MAP_LEN_MAX ||
	    end > (uint64_t)st->st_size)
		return NULL;                 /* may shrink, or too large: EBUSY */
	pthread_mutex_lock(&m->mu);
	for (e = m->head; e; e = e->next) {
		mine += e->uid == uid;
		if (!e->dead && e->uid == uid && e->dev == (uint64_t)st->st_dev &&
		    e->ino == (uint64_t)st->st_ino && end <= e->len)
			found = e;
	}
	if (found) {
		found->refs++;
		found->used = now_ms();
		pthread_mutex_unlock(&m->mu);
		return found;
	}
	if (((mine >= MAPS_PER_UID || m->n >= MAPS_MAX) && !make_room(m, uid)) || !uffd_up(m) ||
	    !reaper_up(m) || !(e = calloc(1, sizeof(*e)))) {
		pthread_mutex_unlock(&m->mu);
		return NULL;
	}
	e->len = (size_t)st->st_size;
	e->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	e->pidfd = fcntl(pidfd, F_DUPFD_CLOEXEC, 3);
	e->mem = e->fd < 0 || e->pidfd < 0 ? MAP_FAILED : map_guarded(m, e->fd, e->len);
	if (e->mem == MAP_FAILED) {
		if (e->fd >= 0)
			close(e->fd);
		if (e->pidfd >= 0)
			close(e->pidfd);
		free(e);
		pthread_mutex_unlock(&m->mu);
		return NULL;
	}
	/* the slots' page tables at once (one call, where a fault per page
	 * traps to the hypervisor here).  The file had no hole (bulk.c); one
	 * punched since stays one (the userfaultfd: EFAULT here, SIGBUS in
	 * the copy), so this allocates nothing */
	madvise(e->mem, (size_t)end < e->len ? (size_t)end : e->len, MADV_POPULATE_WRITE);
	e->uid = uid;
	e->dev = (uint64_t)st->st_dev;
	e->ino = (uint64_t)st->st_ino;
	e->refs = 1;
	e->used = now_ms();
	e->next = m->head;
	m->head = e;
	m->n++;
	pthread_mutex_unlock(&m->mu);
	return e;
}

bool fs_bulk_map_same(struct bulk_maps *m, uint32_t uid, uint64_t dev, uint64_t ino, pid_t tid,
		      int fd)
{
	bool same = false;

	pthread_mutex_lock(&m->mu);
	for (struct bulk_map *e = m->head; e && !same; e = e->next)
		same = !e->dead && e->uid == uid && e->dev == dev && e->ino == ino &&
		       syscall(SYS_kcmp, getpid(), tid, KCMP_FILE, e->fd, fd) == 0;
	pthread_mutex_unlock(&m->mu);
	return same;
}

int fs_bulk_map_put(struct bulk_map *e, uint64_t off, const void *p, size_t len)
{
	if (off > e->len)
		return VV_ENOSPC;
	return fs_bulk_copy(e->mem + off, e->mem, e->mem + e->len, p, len);
}

void fs_bulk_map_release(struct bulk_maps *m, struct bulk_map *e, bool failed)
{
	if (!e)
		return;
	pthread_mutex_lock(&m->mu);
	e->refs--;
	e->dead |= failed;               /* the next sweep drops it */
	pthread_mutex_unlock(&m->mu);
}
