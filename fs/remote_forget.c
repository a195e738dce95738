/*
 * remote_forget.c - the vv:// client's FORGETs, queued and sent in the
 * background by one thread (remote_int.h).
 */
#include <string.h>

#include "remote_int.h"
#include "vecvault/log.h"

/*
 * Forgets.  The kernel forgets thousands of inodes at once (memory
 * pressure, drop_caches, an unmount), each a FORGET to the server that
 * nobody waits for.  Sent one round trip at a time from the FUSE thread,
 * as they were, they took a core and the connection for a second after
 * a drop_caches, while the next ls -lR waited behind them.  They are
 * queued instead and sent by one thread, pipelined (vv_net_client_post),
 * once no request for the kernel was sent for FQ_QUIET_NS, or at once
 * when FQ_PUSH are waiting.  Until then the server keeps the nodes
 * loaded (a reference more, which is all a FORGET gives back); an entry
 * of an older connection is dropped, its references went with the
 * session.
 */

void fs_remote_forget_later(struct rfs *f, uint64_t ino, uint64_t n, unsigned epoch)
{
	pthread_mutex_lock(&f->fmu);
	if (f->fq_len == f->fq_cap) {
		size_t cap = f->fq_cap ? f->fq_cap * 2 : 1024;
		struct fgq *q = realloc(f->fq, cap * sizeof(*q));
		if (q) {
			f->fq = q;
			f->fq_cap = cap;
		}
	}
	if (f->fq_len < f->fq_cap) {
		f->fq[f->fq_len++] = (struct fgq){ .ino = ino, .n = n, .epoch = epoch };
		if (f->fq_len == 1 || f->fq_len >= FQ_PUSH)
			pthread_cond_signal(&f->fcond);
	}
	/* else: no memory; the server keeps the node until the session ends */
	pthread_mutex_unlock(&f->fmu);
}

static void *forgetter(void *arg)
{
	struct rfs *f = arg;
	struct vv_rw_msg *rq = calloc(1, sizeof(*rq));

	pthread_mutex_lock(&f->fmu);
	while (rq && !f->fstop) {
		struct fgq *q;
		size_t n;
		int64_t quiet;

		if (!f->fq_len) {
			pthread_cond_wait(&f->fcond, &f->fmu);
			continue;
		}
		quiet = mono_ns() - atomic_load(&f->fg_ns);
		if (quiet < FQ_QUIET_NS && f->fq_len < FQ_PUSH) {
			struct timespec ts;
			int64_t left = FQ_QUIET_NS - quiet;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += (long)left;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&f->fcond, &f->fmu, &ts);
			continue;
		}
		q = f->fq;
		n = f->fq_len;
		f->fq = NULL;
		f->fq_len = f->fq_cap = 0;
		pthread_mutex_unlock(&f->fmu);
		for (size_t i = 0; i < n; i++) {
			if (atomic_load(&f->fstop))
				break;
			if (q[i].epoch != vv_net_client_epoch(f->c))
				continue;
			memset(rq, 0, sizeof(*rq));
			rq->h.op = VV_RW_FORGET;
			rq->u[0] = q[i].ino;
			rq->u[1] = q[i].n;
			rq->nu = 2;
			if (vv_net_client_post(f->c, q[i].epoch, rq, FQ_WINDOW) < 0)
				break;       /* the connection is gone, and the references */
		}
		free(q);
		pthread_mutex_lock(&f->fmu);
	}
	pthread_mutex_unlock(&f->fmu);
	free(rq);
	return NULL;
}

void fs_remote_forget_start(struct rfs *f)
{
	f->fthread = pthread_create(&f->fthr, NULL, forgetter, f) == 0;
	if (!f->fthread)
		vv_log(VV_LOG_WARN, "remote: no forget thread: the server keeps every node "
		       "this mount looked up until it ends");
}

void fs_remote_forget_stop(struct rfs *f)
{
	if (f->fthread) {
		pthread_mutex_lock(&f->fmu);
		atomic_store(&f->fstop, true);
		pthread_cond_signal(&f->fcond);
		pthread_mutex_unlock(&f->fmu);
		pthread_join(f->fthr, NULL);
		f->fthread = false;
	}
	free(f->fq);
	f->fq = NULL;
	f->fq_len = f->fq_cap = 0;
}
