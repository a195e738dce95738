/*
 * fairq_int.h - a queue of jobs that is fair between uids, for the query
 * offload's scan pool (vault_knn.c).
 *
 * Why: a scan pool with one queue in arrival order lets one user who sends
 * many requests push everyone else's scan to the back.  Here each uid has
 * its own FIFO and the uids that have work wait in a ring: fairq_pop takes
 * the first job of the uid at the head of the ring and moves that uid to the
 * ring's tail.  A uid that arrives while another has queued a thousand jobs
 * is thus served after at most one job of each other waiting uid (plus the
 * jobs already running), whatever their queue lengths.
 *
 * Bounded: a uid holds at most per_uid jobs queued or running (a "slot" is
 * taken by fairq_push and given back by fairq_done or fairq_remove), so a
 * flood is refused (VV_EBUSY) rather than stored.
 *
 * The queue is intrusive (callers embed struct fairq_item) and does no
 * locking: the caller serialises every call.  It allocates only its small
 * per-uid records, freed when a uid holds no slot any more.
 */
#ifndef VV_FAIRQ_INT_H
#define VV_FAIRQ_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FAIRQ_BUCKETS 64

struct fairq_item {
	struct fairq_item *next;
	struct fairq_user *u;            /* set while the item holds a slot */
};

struct fairq_user {
	struct fairq_user *hnext;        /* hash chain by uid */
	struct fairq_user *rnext;        /* the ring of uids with queued items */
	uint32_t uid;
	unsigned slots;                  /* items queued or running */
	bool in_ring;
	struct fairq_item *head, *tail;  /* queued, oldest first */
};

struct fairq {
	struct fairq_user *hash[FAIRQ_BUCKETS];
	struct fairq_user *rhead, *rtail;
	unsigned per_uid;                /* slots per uid */
	size_t queued;                   /* items queued (not running) */
};

void fairq_init(struct fairq *q, unsigned per_uid);
/* Frees the per-uid records; items still queued are the caller's (it
 * should have taken them out with fairq_pop first). */
void fairq_release(struct fairq *q);
/* Queue it for uid, taking a slot: 0, VV_EBUSY when uid holds per_uid
 * slots already, VV_ENOMEM. */
int fairq_push(struct fairq *q, struct fairq_item *it, uint32_t uid);
/* Queue again an item popped earlier that kept its slot (a job run in
 * pieces): it goes to the tail of its uid's FIFO, never refused. */
void fairq_requeue(struct fairq *q, struct fairq_item *it);
/* The next item in fair order, or NULL.  It keeps its slot until
 * fairq_done(). */
struct fairq_item *fairq_pop(struct fairq *q);
/* A popped item finished: give its slot back. */
void fairq_done(struct fairq *q, struct fairq_item *it);
/* Take a still queued item out and give its slot back: true, or false when
 * it is not queued (popped already, or never pushed). */
bool fairq_remove(struct fairq *q, struct fairq_item *it);
/* Slots uid holds (0 for a uid never seen). */
unsigned fairq_slots(const struct fairq *q, uint32_t uid);

#endif
