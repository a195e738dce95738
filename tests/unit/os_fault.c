/*
 * os_fault.c - the unit tests' OS fault table (os_fault.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "os.h"
#include "os_fault.h"

#define MAXFD 4096
#define MAXLOG 4096

static struct vv_os_ops table;
static struct os_fault faults[OSF_NOPS];
static unsigned long calls[OSF_NOPS];
static char *fd_path[MAXFD];
static int fd_flags[MAXFD];
static struct { char *path; int seq; } fsync_log[MAXLOG];
static int nlog;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

/* -err when a fault of kind op applies to path (and open flags fl), else
 * 0; counts the call.  hit (may be NULL): the fault that applied (it may
 * have cleared itself meanwhile: times). */
static int fault_for(enum os_fault_op op, const char *path, int fl, struct os_fault *hit)
{
	struct os_fault *f;
	int r = 0;

	pthread_mutex_lock(&mu);
	calls[op]++;
	f = &faults[op];
	if (f->err && (!f->path_has || (path && strstr(path, f->path_has))) &&
	    (fl & f->flags_has) == f->flags_has) {
		r = -f->err;
		if (hit)
			*hit = *f;
		if (f->times && --f->times == 0)
			memset(f, 0, sizeof(*f));
	}
	pthread_mutex_unlock(&mu);
	if (r < 0 && hit && hit->hold)
		while (__atomic_load_n(hit->hold, __ATOMIC_ACQUIRE))
			usleep(1000);
	return r;
}

static const char *path_of(int fd)
{
	return fd >= 0 && fd < MAXFD ? fd_path[fd] : NULL;
}

static int flags_of(int fd)
{
	return fd >= 0 && fd < MAXFD ? fd_flags[fd] : 0;
}

static int t_open(const char *p, int fl, mode_t m)
{
	struct os_fault f;
	int fd, r = fault_for(OSF_OPEN, p, fl, &f);

	if (r < 0 && f.after) {
		/* Like the kernel: the file is created, then the open fails. */
		fd = vv_os_real.open(p, fl & ~f.flags_has, m);
		if (fd >= 0)
			vv_os_real.close(fd);
	}
	if (r < 0)
		return r;
	fd = vv_os_real.open(p, fl, m);
	if (fd >= 0 && fd < MAXFD) {
		pthread_mutex_lock(&mu);
		free(fd_path[fd]);
		fd_path[fd] = strdup(p);
		fd_flags[fd] = fl;
		pthread_mutex_unlock(&mu);
	}
	return fd;
}

static ssize_t t_pwrite(int fd, const void *b, size_t n, off_t o)
{
	struct os_fault f;
	int r = fault_for(OSF_PWRITE, path_of(fd), flags_of(fd), &f);

	if (r < 0 && f.partial && n > 1)
		return vv_os_real.pwrite(fd, b, n / 2, o);
	if (r < 0)
		return r;
	return vv_os_real.pwrite(fd, b, n, o);
}

static int t_fsync(int fd)
{
	const char *p = path_of(fd);
	struct os_fault f;
	int r = fault_for(OSF_FSYNC, p, 0, &f);

	if (r < 0 || (r = vv_os_real.fsync(fd)) < 0)
		return r;
	pthread_mutex_lock(&mu);
	if (p && nlog < MAXLOG) {
		fsync_log[nlog].path = strdup(p);
		fsync_log[nlog].seq = nlog + 1;
		nlog++;
	}
	pthread_mutex_unlock(&mu);
	return 0;
}

/* The path fd was opened by, else what /proc/self/fd says (into buf). */
static const char *path_any(int fd, char *buf, size_t cap)
{
	const char *p = path_of(fd);
	char link[64];
	ssize_t n;

	if (p)
		return p;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	if ((n = readlink(link, buf, cap - 1)) < 0)
		return NULL;
	buf[n] = 0;
	return buf;
}

/* Whether a fault of kind op is set for some paths (then fd's path is
 * looked up; not at every call of every test). */
static bool wants_path(enum os_fault_op op)
{
	bool w;

	pthread_mutex_lock(&mu);
	w = faults[op].err && faults[op].path_has;
	pthread_mutex_unlock(&mu);
	return w;
}

static int t_fstat(int fd, struct stat *st)
{
	char buf[4096];
	int r = fault_for(OSF_FSTAT, wants_path(OSF_FSTAT) ? path_any(fd, buf, sizeof(buf)) : NULL, 0, NULL);

	return r < 0 ? r : vv_os_real.fstat(fd, st);
}

static int t_flock(int fd, int op)
{
	char buf[4096];
	int r = fault_for(OSF_FLOCK, wants_path(OSF_FLOCK) ? path_any(fd, buf, sizeof(buf)) : NULL, 0, NULL);

	return r < 0 ? r : vv_os_real.flock(fd, op);
}

static int t_rename(const char *a, const char *b)
{
	int r = fault_for(OSF_RENAME, a, 0, NULL);

	return r < 0 ? r : vv_os_real.rename(a, b);
}

void os_fault_install(void)
{
	pthread_mutex_lock(&mu);
	memset(faults, 0, sizeof(faults));
	memset(calls, 0, sizeof(calls));
	for (int i = 0; i < nlog; i++)
		free(fsync_log[i].path);
	nlog = 0;
	pthread_mutex_unlock(&mu);
	table = vv_os_real;
	table.open = t_open;
	table.pwrite = t_pwrite;
	table.fsync = t_fsync;
	table.rename = t_rename;
	table.fstat = t_fstat;
	table.flock = t_flock;
	vv_os_set(&table);
}

void os_fault_uninstall(void)
{
	vv_os_set(NULL);
}

void os_fault_set(enum os_fault_op op, struct os_fault f)
{
	pthread_mutex_lock(&mu);
	faults[op] = f;
	pthread_mutex_unlock(&mu);
}

void os_fault_clear(enum os_fault_op op)
{
	os_fault_set(op, (struct os_fault){ 0 });
}

unsigned long os_fault_calls(enum os_fault_op op)
{
	unsigned long n;

	pthread_mutex_lock(&mu);
	n = calls[op];
	pthread_mutex_unlock(&mu);
	return n;
}

int os_fault_fsync_count(const char *path)
{
	int n = 0;

	pthread_mutex_lock(&mu);
	for (int i = 0; i < nlog; i++)
		n += strcmp(fsync_log[i].path, path) == 0;
	pthread_mutex_unlock(&mu);
	return n;
}

int os_fault_fsync_seq(const char *path)
{
	int seq = 0;

	pthread_mutex_lock(&mu);
	for (int i = 0; i < nlog && !seq; i++)
		if (strcmp(fsync_log[i].path, path) == 0)
			seq = fsync_log[i].seq;
	pthread_mutex_unlock(&mu);
	return seq;
}

int os_fault_fsyncs(void)
{
	int n;

	pthread_mutex_lock(&mu);
	n = nlog;
	pthread_mutex_unlock(&mu);
	return n;
}
