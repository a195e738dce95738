/*
 * test_net_nodes.c - the node budget of remote sessions (net/nodes.c):
 * entries charged per vault user across sessions and in all, refused past
 * either bound, the refusal reported once per episode, given back by
 * forgets and by a session's end.
 */
#include <string.h>

#include "../../net/net_int.h"
#include "tap.h"
#include "vecvault/error.h"

static int take(struct net_nodes *b, struct net_nodes_user *u, size_t n, bool *reported)
{
	char why[320];
	int r = 0;

	*reported = false;
	for (size_t i = 0; i < n && r == 0; i++) {
		r = net_nodes_take(b, u, why, sizeof(why));
		if (why[0])
			*reported = true;
	}
	return r;
}

int main(void)
{
	struct net_nodes *b;
	struct net_nodes_user *a1, *a2, *bob, *carol;
	size_t user, total;
	char why[320];
	bool rep;

	is_int(net_nodes_new(10, 25, &b), 0, "a budget of 10 per user, 25 in all");
	is_int(net_nodes_join(b, 7, &a1), 0, "alice's first session");
	is_int(net_nodes_join(b, 7, &a2), 0, "alice's second session");
	ok(a1 == a2, "one account for both");
	is_int(take(b, a1, 6, &rep), 0, "6 entries in the first");
	is_int(take(b, a2, 4, &rep), 0, "4 in the second");
	is_int(net_nodes_take(b, a1, why, sizeof(why)), VV_ENOMEM, "the 11th of the user: ENOMEM");
	ok(strstr(why, "this vault user's") != NULL, "reported, naming the user's bound");
	is_int(net_nodes_take(b, a2, why, sizeof(why)), VV_ENOMEM, "from the other session too");
	is_str(why, "", "not reported again in the episode");
	net_nodes_give(b, a1, 1);
	is_int(net_nodes_take(b, a2, why, sizeof(why)), 0, "a forget makes room");
	is_int(net_nodes_take(b, a2, why, sizeof(why)), VV_ENOMEM, "for one");
	is_str(why, "", "still the same episode (9 is above 3/4)");
	net_nodes_give(b, a2, 3);
	is_int(take(b, a2, 3, &rep), 0, "down to 7 (<= 3/4): the episode ended");
	is_int(net_nodes_take(b, a2, why, sizeof(why)), VV_ENOMEM, "refused again ...");
	ok(why[0] != 0, "... and reported: a new episode");

	is_int(net_nodes_join(b, 8, &bob), 0, "bob");
	is_int(net_nodes_join(b, 9, &carol), 0, "carol");
	is_int(take(b, bob, 10, &rep), 0, "bob holds 10 (20 in all)");
	is_int(take(b, carol, 5, &rep), 0, "carol 5 (25 in all) ...");
	is_int(net_nodes_take(b, carol, why, sizeof(why)), VV_ENOMEM, "then the bound in all");
	ok(strstr(why, "all vault users") != NULL, "reported, naming the bound in all");
	net_nodes_count(b, carol, &user, &total);
	is_int((long long)user, 5, "carol's count");
	is_int((long long)total, 25, "the total");

	net_nodes_give(b, a1, 10);       /* alice's sessions end: all hers go back */
	net_nodes_leave(b, a1);
	net_nodes_leave(b, a2);
	net_nodes_count(b, bob, &user, &total);
	is_int((long long)total, 15, "alice's entries given back");
	is_int(net_nodes_join(b, 7, &a1), 0, "alice again");
	net_nodes_count(b, a1, &user, &total);
	is_int((long long)user, 0, "a fresh account");
	is_int(net_nodes_take(b, carol, why, sizeof(why)), 0, "carol has room again");
	net_nodes_give(b, a1, 5);
	net_nodes_count(b, a1, &user, &total);
	is_int((long long)user, 0, "a give never goes below zero");
	net_nodes_leave(b, a1);
	net_nodes_leave(b, bob);
	net_nodes_leave(b, carol);
	net_nodes_free(b);
	net_nodes_free(NULL);
	net_nodes_leave(NULL, NULL);
	return tap_done();
}
