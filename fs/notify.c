/*
 * notify.c - kernel-cache invalidation, off the request path.
 *
 * The engine asks (from any thread, maybe holding its own locks) that the
 * kernel drop a cached entry or inode, e.g. after a chmod made a directory
 * no longer searchable by everyone.  The request is only queued here; a
 * dedicated thread sends fuse_lowlevel_notify_inval_*().  Sending from
 * inside a handler could deadlock: the kernel may hold the inode lock the
 * notification needs until that very handler replies.
 *
 * Queued notifications arrive after the reply, so a user racing the chmod
 * that took away his right to search a directory could still walk through
 * a cached dentry just after chmod(2) returned.  To close that window the
 * handler, before it replies, bumps the kernel's dentry epoch
 * (FUSE_NOTIFY_INC_EPOCH, protocol 7.44, Linux 6.16): that takes no inode
 * lock (an atomic increment), so it cannot deadlock, and it makes every
 * cached dentry of this mount revalidate with the daemon on its next use.
 * It is coarse, but only changes that alter cacheability trigger it.  On
 * older kernels only the queued, precise invalidations remain (logged once).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vecvault/error.h"
#include "vecvault/log.h"
#include "fs_int.h"

void fs_notifier_init(struct notifier *n)
{
	memset(n, 0, sizeof(*n));
	atomic_init(&n->queued, 0);
	atomic_init(&n->no_epoch, false);
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cond, NULL);
	pthread_cond_init(&n->done, NULL);
}

void fs_notifier_queue(void *ctx, uint64_t ino, const char *name)
{
	struct notifier *n = ctx;
	struct inval_item *it = calloc(1, sizeof(*it));

	if (!it)
		goto oom;
	it->ino = ino;
	if (name && !(it->name = strdup(name)))
		goto oom;
	pthread_mutex_lock(&n->lock);
	if (n->stop) {
		pthread_mutex_unlock(&n->lock);
		free(it->name);
		free(it);
		return;
	}
	atomic_fetch_add(&n->queued, 1);
	if (n->tail)
		n->tail->next = it;
	else
		n->head = it;
	n->tail = it;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
	return;
oom:
	/* A lost invalidation could let the kernel reuse a stale decision for
	 * up to the attr timeout; say so loudly. */
	vv_log(VV_LOG_ERR, "fs: out of memory queueing invalidation of inode %llu",
	       (unsigned long long)ino);
	if (it)
		free(it);
}

static void send_one(struct fuse_session *se, const struct inval_item *it)
{
	int r;

	if (it->name)
		r = fuse_lowlevel_notify_inval_entry(se, it->ino, it->name,
						     strlen(it->name));
	else
		r = fuse_lowlevel_notify_inval_inode(se, it->ino, 0, 0);
	/* ENOENT: the kernel does not have it cached, nothing to drop. */
	if (r < 0 && r != -ENOENT)
		vv_log(VV_LOG_WARN, "fs: invalidate inode %llu%s%s: %s",
		       (unsigned long long)it->ino, it->name ? " entry " : "",
		       it->name ? it->name : "", strerror(-r));
}

static void *notifier_main(void *arg)
{
	struct notifier *n = arg;
	struct inval_item *it;

	pthread_mutex_lock(&n->lock);
	for (;;) {
		while (!n->head && !n->stop)
			pthread_cond_wait(&n->cond, &n->lock);
		if (n->stop)
			break;
		it = n->head;
		n->head = it->next;
		if (!n->head)
			n->tail = NULL;
		pthread_mutex_unlock(&n->lock);
		send_one(n->se, it);
		free(it->name);
		free(it);
		pthread_mutex_lock(&n->lock);
		n->sent++;
		pthread_cond_broadcast(&n->done);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

int fs_notifier_start(struct notifier *n, struct fuse_session *se)
{
	int r;

	n->se = se;
	r = pthread_create(&n->thread, NULL, notifier_main, n);
	if (r) {
		vv_log(VV_LOG_ERR, "fs: cannot start notifier thread: %s", strerror(r));
		return VV_ESYS;
	}
	n->started = true;
	return 0;
}

void fs_notifier_release(struct notifier *n)
{
	struct inval_item *it;

	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	n->stop = true;
	pthread_cond_signal(&n->cond);
	pthread_cond_broadcast(&n->done);
	pthread_mutex_unlock(&n->lock);
	if (n->started)
		pthread_join(n->thread, NULL);
	n->started = false;
	/* After unmount the kernel has no cache left to invalidate. */
	while ((it = n->head)) {
		n->head = it->next;
		free(it->name);
		free(it);
	}
	n->tail = NULL;
	pthread_cond_destroy(&n->cond);
	pthread_cond_destroy(&n->done);
	pthread_mutex_destroy(&n->lock);
}

void fs_notifier_wait(void *ctx)
{
	struct notifier *n = ctx;
	struct timespec until;
	uint64_t target;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	pthread_mutex_lock(&n->lock);
	target = atomic_load(&n->queued);
	while (n->started && !n->stop && n->sent < target)
		if (pthread_cond_timedwait(&n->done, &n->lock, &until) == ETIMEDOUT) {
			vv_log(VV_LOG_WARN, "fs: invalidations still queued after 5 s: replying anyway");
			break;
		}
	pthread_mutex_unlock(&n->lock);
}

uint64_t fs_notifier_mark(struct notifier *n)
{
	return atomic_load(&n->queued);
}

/* The kernel's notification header (linux/fuse.h struct fuse_out_header);
 * libfuse 3.14 has no call for this notification. */
struct notify_hdr {
	uint32_t len;
	int32_t code;                /* "error" field: the notify code */
	uint64_t unique;             /* 0: a notification, not a reply */
};
#define NOTIFY_INC_EPOCH 8

void fs_notifier_sync(struct notifier *n, uint64_t mark)
{
	struct notify_hdr h = { sizeof(h), NOTIFY_INC_EPOCH, 0 };
	ssize_t w;

	if (atomic_load(&n->queued) == mark || !n->se || atomic_load(&n->no_epoch))
		return;
	do
		w = write(fuse_session_fd(n->se), &h, sizeof(h));
	while (w < 0 && errno == EINTR);
	if (w < 0 && !atomic_exchange(&n->no_epoch, true))
		vv_log(VV_LOG_WARN, "fs: kernel refuses FUSE_NOTIFY_INC_EPOCH (%s): "
		       "invalidations are asynchronous (Linux >= 6.16 closes the window)",
		       strerror(errno));
}
