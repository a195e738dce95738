/*
 * ident.c - who sends a FUSE request: uid/gid/pid/umask from the request,
 * supplementary groups and process name from /proc, cached per process.
 *
 * fuse_req_getgroups() parses /proc/PID/task/PID/status on every call; doing
 * that per request would dominate small-file workloads, so the result is
 * cached for IDENT_TTL_NS.  Within that window a process that drops a group
 * with setgroups(2) keeps it for our checks: the same window the design
 * accepts ("cached per process with a short lifetime").  The key includes
 * uid and gid, so a setuid()/pid reuse by other credentials is a miss.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs_int.h"

#define IDENT_TTL_NS 1000000000LL
#define GROUPS_GUESS 64

static void entry_put(struct ident_entry *e)
{
	if (e && atomic_fetch_sub(&e->refs, 1) == 1)
		free(e);
}

static int64_t age_ns(const struct timespec *born)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - born->tv_sec) * 1000000000LL +
	       (now.tv_nsec - born->tv_nsec);
}

/* /proc/PID/comm without its newline; "" if the process is gone. */
static void read_comm(uint32_t pid, char *out, size_t outlen)
{
	char path[64];
	ssize_t n = 0;
	int fd;

	out[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%u/comm", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, out, outlen - 1);
	close(fd);
	if (n < 0)
		n = 0;
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
}

/* A fresh entry for the request's process; NULL on allocation failure. */
static struct ident_entry *entry_new(fuse_req_t req, const struct fuse_ctx *fc)
{
	gid_t guess[GROUPS_GUESS];
	gid_t *list = guess;
	struct ident_entry *e = NULL;
	int n;

	n = fuse_req_getgroups(req, GROUPS_GUESS, guess);
	if (n > GROUPS_GUESS) {
		list = calloc((size_t)n, sizeof(*list));
		if (!list)
			goto out;
		n = fuse_req_getgroups(req, n, list);
		if (n < 0)
			n = 0;
	}
	/* A process we cannot inspect (exited, or /proc unavailable) gets no
	 * supplementary groups: fail closed, never open. */
	if (n < 0)
		n = 0;
	e = calloc(1, sizeof(*e) + (size_t)n * sizeof(uint32_t));
	if (!e)
		goto out;
	atomic_init(&e->refs, 1);
	e->pid = (uint32_t)fc->pid;
	e->uid = (uint32_t)fc->uid;
	e->gid = (uint32_t)fc->gid;
	clock_gettime(CLOCK_MONOTONIC, &e->born);
	e->ngroups = (uint32_t)n;
	for (int i = 0; i < n; i++)
		e->groups[i] = (uint32_t)list[i];
	read_comm(e->pid, e->comm, sizeof(e->comm));
out:
	if (list != guess)
		free(list);
	return e;
}

void fs_ident_cache_init(struct ident_cache *ic)
{
	memset(ic, 0, sizeof(*ic));
	pthread_mutex_init(&ic->lock, NULL);
}

void fs_ident_cache_release(struct ident_cache *ic)
{
	if (!ic)
		return;
	for (size_t i = 0; i < IDENT_BUCKETS; i++) {
		entry_put(ic->slot[i]);
		ic->slot[i] = NULL;
	}
	pthread_mutex_destroy(&ic->lock);
}

static bool fresh_match(const struct ident_entry *e, const struct fuse_ctx *fc)
{
	return e && e->pid == (uint32_t)fc->pid && e->uid == (uint32_t)fc->uid &&
	       e->gid == (uint32_t)fc->gid && age_ns(&e->born) < IDENT_TTL_NS;
}

void fs_ident_get(struct ident_cache *ic, fuse_req_t req, struct req_ctx *rc)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);
	size_t b = (size_t)fc->pid % IDENT_BUCKETS;
	struct ident_entry *e, *old = NULL;

	memset(rc, 0, sizeof(*rc));
	rc->c.id.uid = (uint32_t)fc->uid;
	rc->c.id.gid = (uint32_t)fc->gid;
	rc->c.id.pid = (uint32_t)fc->pid;
	rc->c.umask = (uint32_t)fc->umask;
	rc->c.client = "local";

	/* pid 0: the kernel itself (e.g. a forget or writeback), no process. */
	if (fc->pid == 0)
		return;

	pthread_mutex_lock(&ic->lock);
	e = ic->slot[b];
	if (fresh_match(e, fc)) {
		atomic_fetch_add(&e->refs, 1);
		pthread_mutex_unlock(&ic->lock);
		goto found;
	}
	pthread_mutex_unlock(&ic->lock);

	/* Read /proc outside the lock; two threads may both do it, harmless. */
	e = entry_new(req, fc);
	if (!e)
		return;
	atomic_fetch_add(&e->refs, 1);          /* one for the cache */
	pthread_mutex_lock(&ic->lock);
	old = ic->slot[b];
	ic->slot[b] = e;
	pthread_mutex_unlock(&ic->lock);
	entry_put(old);
found:
	rc->ent = e;
	rc->c.id.ngroups = e->ngroups;
	rc->c.id.groups = e->ngroups ? e->groups : NULL;
	rc->c.comm = e->comm[0] ? e->comm : NULL;
}

void fs_ident_put(struct req_ctx *rc)
{
	entry_put(rc->ent);
	rc->ent = NULL;
}
