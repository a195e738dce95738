/*
 * nodes.c - the node budget of remote sessions (docs/remote.md "Nodes a
 * session holds").
 *
 * A session may name only the inodes it was handed and holds a lookup
 * reference on each (serve_ops.c): one entry of its table, and a node of
 * the vault's in memory (about 0.9 KB with the table's share) until
 * the peer forgets it or the session ends.  The kernel of an honest
 * client forgets nodes under memory pressure; a hostile peer never
 * forgets.  Each session used to be bounded alone (2^20 entries), so one
 * vault user with 64 sessions, or many keys, could make the daemon hold
 * tens of GB.  Here every entry is charged to the session's vault user
 * (across all their sessions) and to the listener in all; past either
 * bound a new entry is refused, and the refusal is reported once per
 * episode: from the first refusal until the count fell to 3/4 of the
 * bound again.
 *
 * Lock: b->mu, a leaf (taken under a session's lock, itself taken under
 * the vault's during a READDIRPLUS).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "net_int.h"
#include "vecvault/error.h"

struct net_nodes_user {
	struct net_nodes_user *next;
	int64_t user_id;
	unsigned sessions;
	size_t held;
	bool refusing;               /* refused since held was last <= 3/4 of the bound */
};

struct net_nodes {
	pthread_mutex_t mu;
	size_t user_max, total_max, total;
	bool refusing;               /* the same, for the total */
	struct net_nodes_user *users;
};

int net_nodes_new(size_t user_max, size_t total_max, struct net_nodes **out)
{
	struct net_nodes *b = calloc(1, sizeof(*b));

	*out = NULL;
	if (!b)
		return VV_ENOMEM;
	pthread_mutex_init(&b->mu, NULL);
	b->user_max = user_max;
	b->total_max = total_max;
	*out = b;
	return 0;
}

void net_nodes_free(struct net_nodes *b)
{
	if (!b)
		return;
	while (b->users) {
		struct net_nodes_user *u = b->users;
		b->users = u->next;
		free(u);
	}
	pthread_mutex_destroy(&b->mu);
	free(b);
}

int net_nodes_join(struct net_nodes *b, int64_t user_id, struct net_nodes_user **out)
{
	struct net_nodes_user *u;
	int r = 0;

	pthread_mutex_lock(&b->mu);
	for (u = b->users; u && u->user_id != user_id; u = u->next)
		;
	if (!u && (u = calloc(1, sizeof(*u)))) {
		u->user_id = user_id;
		u->next = b->users;
		b->users = u;
	}
	if (u)
		u->sessions++;
	else
		r = VV_ENOMEM;
	pthread_mutex_unlock(&b->mu);
	*out = u;
	return r;
}

void net_nodes_leave(struct net_nodes *b, struct net_nodes_user *u)
{
	if (!b || !u)
		return;
	pthread_mutex_lock(&b->mu);
	if (--u->sessions == 0) {
		for (struct net_nodes_user **p = &b->users; *p; p = &(*p)->next)
			if (*p == u) {
				*p = u->next;
				break;
			}
		free(u);
	}
	pthread_mutex_unlock(&b->mu);
}

int net_nodes_take(struct net_nodes *b, struct net_nodes_user *u, char *why, size_t whylen)
{
	int r = 0;

	why[0] = 0;
	pthread_mutex_lock(&b->mu);
	if (u->held >= b->user_max) {
		r = VV_ENOMEM;
		if (!u->refusing)
			snprintf(why, whylen, "node budget: this vault user's remote sessions hold "
				 "%zu nodes (--remote-nodes %zu); new names are refused until "
				 "its clients forget some (audited once until they hold 3/4 of it)",
				 u->held, b->user_max);
		u->refusing = true;
	} else if (b->total >= b->total_max) {
		r = VV_ENOMEM;
		if (!b->refusing)
			snprintf(why, whylen, "node budget: the remote sessions of all vault users "
				 "hold %zu nodes (the listener's bound); new names are refused until "
				 "clients forget some (audited once until they hold 3/4 of it)",
				 b->total);
		b->refusing = true;
	} else {
		u->held++;
		b->total++;
	}
	pthread_mutex_unlock(&b->mu);
	return r;
}

void net_nodes_give(struct net_nodes *b, struct net_nodes_user *u, size_t n)
{
	if (!b || !u || !n)
		return;
	pthread_mutex_lock(&b->mu);
	u->held -= n < u->held ? n : u->held;
	b->total -= n < b->total ? n : b->total;
	if (u->held <= b->user_max - b->user_max / 4)
		u->refusing = false;
	if (b->total <= b->total_max - b->total_max / 4)
		b->refusing = false;
	pthread_mutex_unlock(&b->mu);
}

void net_nodes_count(struct net_nodes *b, struct net_nodes_user *u, size_t *user, size_t *total)
{
	pthread_mutex_lock(&b->mu);
	*user = u ? u->held : 0;
	*total = b->total;
	pthread_mutex_unlock(&b->mu);
}
