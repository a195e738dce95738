/*
 * content_ra.c - read-ahead for the content module: a queue of blocks and
 * a few worker threads that decrypt them into the block cache ahead of the
 * reader (vv_content_prefetch, content_int.h).
 *
 * Decryption then runs on other CPUs while the request thread copies to the
 * kernel, and a many-block read decrypts its blocks in parallel.  What a
 * block is, how it is authenticated and cached belongs to content.c: each
 * queued block is a *load* it hands out (content_ra_int.h), so nothing here
 * can make the cache hold other bytes than a reader's own decrypt would.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "content_ra_int.h"
#include "crypto_int.h"
#include "vecvault/error.h"

/* The collection key of one content_ra_queue call, shared by its jobs: a
 * copy in secure memory, freed with the last job.  The worker takes a
 * pooled GCM context for it when it runs the job (holding one per queued
 * job would create and free a key schedule per block). */
struct pkey {
	uint8_t *key;                            /* VV_KEY_BYTES, vv_secure_alloc */
	int refs;                                /* under mu */
};

struct pjob {
	struct pjob *next;
	struct pkey *pk;
	struct content_load *l;
};

struct content_ra {
	struct vv_content *c;
	pthread_mutex_t mu;                      /* the queue and counters */
	pthread_cond_t work, idle;
	struct pjob *head, *tail;
	/* The key of the latest content_ra_queue call, kept (one reference)
	 * for the next one: a call per read request, each allocating secure
	 * memory (mmap, mprotect, munmap) cost more CPU than a block's
	 * AES-GCM.  Dropped by content_ra_quiesce (which follows a key's
	 * removal, vv_content_cache_drop) and when another key comes. */
	struct pkey *last;
	uint8_t last_kfp[CONTENT_KFP_BYTES];
	uint64_t gen;                            /* content_ra_quiesce calls */
	size_t nqueued, nrunning;
	bool stop;
	pthread_t th[CONTENT_RA_THREADS_MAX];
	int nth;
};

static void pkey_free(struct pkey *pk)
{
	if (pk) {
		vv_secure_free(pk->key);
		free(pk);
	}
}

static void pkey_put(struct content_ra *ra, struct pkey *pk)
{
	bool last;

	if (!pk)
		return;
	pthread_mutex_lock(&ra->mu);
	last = --pk->refs == 0;
	pthread_mutex_unlock(&ra->mu);
	if (last)
		pkey_free(pk);
}

/* The kept key for fingerprint kfp with a reference for the caller, or a
 * new one (kept in its place); NULL when out of memory. */
static struct pkey *pkey_get(struct content_ra *ra, const uint8_t kfp[CONTENT_KFP_BYTES],
			     const uint8_t coll_key[VV_KEY_BYTES])
{
	struct pkey *pk = NULL, *old = NULL;
	uint64_t gen;

	pthread_mutex_lock(&ra->mu);
	if (ra->last && memcmp(ra->last_kfp, kfp, CONTENT_KFP_BYTES) == 0) {
		pk = ra->last;
		pk->refs++;
	}
	gen = ra->gen;
	pthread_mutex_unlock(&ra->mu);
	if (pk)
		return pk;
	if (!(pk = calloc(1, sizeof(*pk))) || !(pk->key = vv_secure_alloc(VV_KEY_BYTES))) {
		free(pk);
		return NULL;
	}
	memcpy(pk->key, coll_key, VV_KEY_BYTES);
	pk->refs = 2;                            /* the caller's and the kept one */
	pthread_mutex_lock(&ra->mu);
	if (ra->stop || ra->gen != gen) {
		pk->refs = 1;                    /* stopped or dropped meanwhile: keep nothing */
	} else {
		if (ra->last && --ra->last->refs == 0)
			old = ra->last;
		ra->last = pk;
		memcpy(ra->last_kfp, kfp, CONTENT_KFP_BYTES);
	}
	pthread_mutex_unlock(&ra->mu);
	pkey_free(old);
	return pk;
}

/* End job j with result r and free it (nothing locked). */
static void job_end(struct content_ra *ra, struct pjob *j, int r)
{
	content_load_end(ra->c, j->l, r);
	pkey_put(ra, j->pk);
	free(j);
}

static void *worker(void *arg)
{
	struct content_ra *ra = arg;
	struct pjob *j;

	pthread_mutex_lock(&ra->mu);
	for (;;) {
		while (!ra->head && !ra->stop)
			pthread_cond_wait(&ra->work, &ra->mu);
		if (!(j = ra->head))
			break;
		if (!(ra->head = j->next))
			ra->tail = NULL;
		ra->nqueued--;
		ra->nrunning++;
		pthread_mutex_unlock(&ra->mu);
		job_end(ra, j, content_load_run(ra->c, j->pk->key, j->l));
		pthread_mutex_lock(&ra->mu);
		if (--ra->nrunning == 0 && !ra->head)
			pthread_cond_broadcast(&ra->idle);
	}
	pthread_mutex_unlock(&ra->mu);
	return NULL;
}

/* Start the workers once (mu held); false if none could be started. */
static bool start(struct content_ra *ra)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int want = ncpu < 1 ? 1 : ncpu > CONTENT_RA_THREADS_MAX ? CONTENT_RA_THREADS_MAX
							      : (int)ncpu;

	while (ra->nth < want && pthread_create(&ra->th[ra->nth], NULL, worker, ra) == 0)
		ra->nth++;
	return ra->nth > 0;
}

struct content_ra *content_ra_new(struct vv_content *c)
{
	struct content_ra *ra = calloc(1, sizeof(*ra));

	if (!ra)
		return NULL;
	ra->c = c;
	pthread_mutex_init(&ra->mu, NULL);
	pthread_cond_init(&ra->work, NULL);
	pthread_cond_init(&ra->idle, NULL);
	return ra;
}

void content_ra_quiesce(struct content_ra *ra, bool stop)
{
	struct pkey *kept = NULL;
	struct pjob *q;

	if (!ra)
		return;
	pthread_mutex_lock(&ra->mu);
	if (ra->last && --ra->last->refs == 0)
		kept = ra->last;
	ra->last = NULL;
	ra->gen++;
	q = ra->head;
	ra->head = ra->tail = NULL;
	ra->nqueued = 0;
	while (ra->nrunning > 0)
		pthread_cond_wait(&ra->idle, &ra->mu);
	if (stop)
		ra->stop = true;
	pthread_cond_broadcast(&ra->work);
	pthread_mutex_unlock(&ra->mu);
	pkey_free(kept);
	while (q) {
		struct pjob *next = q->next;
		job_end(ra, q, VV_ECANCELED);
		q = next;
	}
	if (stop) {
		for (int i = 0; i < ra->nth; i++)
			pthread_join(ra->th[i], NULL);
		ra->nth = 0;
	}
}

void content_ra_free(struct content_ra *ra)
{
	if (!ra)
		return;
	content_ra_quiesce(ra, true);
	pthread_mutex_destroy(&ra->mu);
	pthread_cond_destroy(&ra->work);
	pthread_cond_destroy(&ra->idle);
	free(ra);
}

/* Queue one block.  1 if queued, 0 if it needs no work, < 0 on failure. */
static int queue_one(struct content_ra *ra, struct pkey *pk,
		     const uint8_t kfp[CONTENT_KFP_BYTES], const uint8_t *objid,
		     const struct vv_extent *e)
{
	struct pjob *j = calloc(1, sizeof(*j));
	int r;

	if (!j)
		return VV_ENOMEM;
	if ((r = content_load_begin(ra->c, kfp, objid, e, &j->l)) <= 0) {
		free(j);
		return r;
	}
	pthread_mutex_lock(&ra->mu);
	j->pk = pk;
	pk->refs++;
	if (ra->tail)
		ra->tail->next = j;
	else
		ra->head = j;
	ra->tail = j;
	ra->nqueued++;
	pthread_cond_signal(&ra->work);
	pthread_mutex_unlock(&ra->mu);
	return 1;
}

int content_ra_queue(struct content_ra *ra, const uint8_t coll_key[32],
		     const uint8_t objid[VV_OBJID_BYTES], const struct vv_extent *e, size_t n,
		     size_t *covered)
{
	uint8_t kfp[CONTENT_KFP_BYTES];
	struct pkey *pk = NULL;
	size_t queued = 0, i = 0;
	bool room;
	int r;

	if (covered)
		*covered = 0;
	if (!ra || !coll_key || !objid || (!e && n))
		return VV_EINVAL;
	if (!n)
		return 0;
	if ((r = content_key_fp(kfp, coll_key)) < 0)
		return r;
	if (!(pk = pkey_get(ra, kfp, coll_key)))  /* ours, until the loop ends */
		return VV_ENOMEM;
	r = 0;
	for (; i < n; i++) {
		pthread_mutex_lock(&ra->mu);
		room = !ra->stop && ra->nqueued + ra->nrunning < CONTENT_RA_QUEUE_MAX &&
		       (ra->nth > 0 || start(ra));
		pthread_mutex_unlock(&ra->mu);
		if (!room)
			break;
		if ((r = queue_one(ra, pk, kfp, objid, &e[i])) < 0)
			break;
		queued += (size_t)r;
	}
	pkey_put(ra, pk);
	if (r < 0)
		return r;
	if (covered)
		*covered = i;
	return (int)(queued > INT32_MAX ? INT32_MAX : queued);
}
