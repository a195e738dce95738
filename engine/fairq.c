/*
 * fairq.c - the per-uid round-robin job queue (fairq_int.h).
 */
#include <stdlib.h>

#include "fairq_int.h"
#include "vecvault/error.h"

static unsigned bucket(uint32_t uid)
{
	return (uid * 2654435761u) >> 26;    /* top 6 bits: FAIRQ_BUCKETS */
}

void fairq_init(struct fairq *q, unsigned per_uid)
{
	*q = (struct fairq){ .per_uid = per_uid ? per_uid : 1 };
}

void fairq_release(struct fairq *q)
{
	for (unsigned b = 0; b < FAIRQ_BUCKETS; b++)
		while (q->hash[b]) {
			struct fairq_user *u = q->hash[b];
			q->hash[b] = u->hnext;
			free(u);
		}
	q->rhead = q->rtail = NULL;
	q->queued = 0;
}

static struct fairq_user *find_user(const struct fairq *q, uint32_t uid)
{
	struct fairq_user *u = q->hash[bucket(uid)];

	while (u && u->uid != uid)
		u = u->hnext;
	return u;
}

/* Free u once it holds nothing (its record is only bookkeeping). */
static void user_maybe_free(struct fairq *q, struct fairq_user *u)
{
	struct fairq_user **pp = &q->hash[bucket(u->uid)];

	if (u->slots || u->in_ring)
		return;
	while (*pp != u)
		pp = &(*pp)->hnext;
	*pp = u->hnext;
	free(u);
}

static void ring_append(struct fairq *q, struct fairq_user *u)
{
	u->rnext = NULL;
	if (q->rtail)
		q->rtail->rnext = u;
	else
		q->rhead = u;
	q->rtail = u;
	u->in_ring = true;
}

/* Append it to u's FIFO; u joins the ring if it was not waiting. */
static void enqueue(struct fairq *q, struct fairq_user *u, struct fairq_item *it)
{
	it->next = NULL;
	if (u->tail)
		u->tail->next = it;
	else
		u->head = it;
	u->tail = it;
	q->queued++;
	if (!u->in_ring)
		ring_append(q, u);
}

int fairq_push(struct fairq *q, struct fairq_item *it, uint32_t uid)
{
	struct fairq_user *u = find_user(q, uid);

	if (!u) {
		if (!(u = calloc(1, sizeof(*u))))
			return VV_ENOMEM;
		u->uid = uid;
		u->hnext = q->hash[bucket(uid)];
		q->hash[bucket(uid)] = u;
	}
	if (u->slots >= q->per_uid)
		return VV_EBUSY;
	u->slots++;
	it->u = u;
	enqueue(q, u, it);
	return 0;
}

void fairq_requeue(struct fairq *q, struct fairq_item *it)
{
	enqueue(q, it->u, it);
}

struct fairq_item *fairq_pop(struct fairq *q)
{
	struct fairq_user *u = q->rhead;
	struct fairq_item *it;

	if (!u)
		return NULL;
	/* u leaves the head of the ring; it goes to the tail if it has more */
	q->rhead = u->rnext;
	if (!q->rhead)
		q->rtail = NULL;
	u->in_ring = false;
	it = u->head;
	u->head = it->next;
	if (!u->head)
		u->tail = NULL;
	else
		ring_append(q, u);
	it->next = NULL;
	q->queued--;
	return it;
}

void fairq_done(struct fairq *q, struct fairq_item *it)
{
	struct fairq_user *u = it->u;

	it->u = NULL;
	u->slots--;
	user_maybe_free(q, u);
}

bool fairq_remove(struct fairq *q, struct fairq_item *it)
{
	struct fairq_user *u = it->u;
	struct fairq_item **pp;

	if (!u)
		return false;
	for (pp = &u->head; *pp && *pp != it; pp = &(*pp)->next)
		;
	if (!*pp)
		return false;                /* running: popped, slot still held */
	*pp = it->next;
	if (u->tail == it) {
		u->tail = NULL;
		for (struct fairq_item *p = u->head; p; p = p->next)
			u->tail = p;
	}
	q->queued--;
	if (!u->head && u->in_ring) {
		struct fairq_user **rp = &q->rhead, *prev = NULL;
		while (*rp != u) {
			prev = *rp;
			rp = &(*rp)->rnext;
		}
		*rp = u->rnext;
		if (q->rtail == u)
			q->rtail = prev;
		u->in_ring = false;
	}
	it->next = NULL;
	fairq_done(q, it);
	return true;
}

unsigned fairq_slots(const struct fairq *q, uint32_t uid)
{
	const struct fairq_user *u = find_user(q, uid);

	return u ? u->slots : 0;
}
