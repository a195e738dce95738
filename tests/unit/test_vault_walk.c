/*
 * test_vault_walk.c - the walk up the tree (vault_up_*, vault_node.c) and
 * the questions asked through it, on a tree deeper than any bound the
 * walks once had (4096 levels): the kernel-cache rule (chain_ok) without
 * recursion, so a thread with a small stack survives it; the rename's loop
 * check exact at that depth (a loop refused EINVAL, a move into the deep
 * end allowed); the trash's read-only rule and a restore into the item's
 * own tree (which would make a cycle) refused at that depth; the walk
 * itself ending on a cycle of a damaged store.
 */
#include <pthread.h>
#include <unistd.h>

#include "vault_int.h"
#include "vault_unit.h"

#define DEPTH 6000                   /* past the old bounds of 512 and 4096 */
#define TDEPTH 1500                  /* deep, with a path the trash can record */
#define SMALL_STACK (96 << 10)

static struct vv_vault *open_v(void)
{
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT,
				   .state_dir = state, .trash_secs = 3600, .knn_off = true };
	struct vv_vault *v = NULL;
	int r = vv_vault_open(store, PASS, strlen(PASS), &o, &v);

	if (r < 0)
		printf("# open: %s\n", vv_strerror(r));
	return v;
}

struct deep_lookup {
	struct vv_vault *v;
	uint64_t dir;
	int r;
};

static void *lookup_thread(void *arg)
{
	struct deep_lookup *l = arg;
	struct vv_attr a;

	l->r = vv_vault_lookup(l->v, &root_c, l->dir, "none", &a);
	return NULL;
}

/* A lookup in dir from a thread with a small stack (a FUSE worker's is
 * 8 MiB: a recursion per level needs only a deeper tree to overflow it). */
static int lookup_small_stack(struct vv_vault *v, uint64_t dir)
{
	struct deep_lookup l = { .v = v, .dir = dir, .r = 1 };
	pthread_attr_t at;
	pthread_t t;

	pthread_attr_init(&at);
	pthread_attr_setstacksize(&at, SMALL_STACK);
	if (pthread_create(&t, &at, lookup_thread, &l) != 0)
		return -1;
	pthread_join(t, NULL);
	pthread_attr_destroy(&at);
	return l.r;
}

static void test_cycle_ends(struct vv_vault *v, uint64_t a, uint64_t b)
{
	struct vault_up w;
	struct node *na, *nb;
	uint64_t pa, pb;
	size_t steps = 0;

	/* a damaged store: a and b each other's parent */
	pthread_mutex_lock(&v->mu);
	vault_node_get(v, a, &na);
	vault_node_get(v, b, &nb);
	pa = na->a.parent;
	pb = nb->a.parent;
	na->a.parent = b;
	nb->a.parent = a;
	for (struct node *n = vault_up_first(v, &w, a); n && steps < 100; n = vault_up_next(v, &w))
		steps++;
	ok(w.end == VAULT_UP_BROKEN && w.err == VV_ELOOP && steps < 10,
	   "a walk round a cycle of a damaged store ends, broken (ELOOP)");
	na->a.parent = pa;
	nb->a.parent = pb;
	vault_node_put(v, na);
	vault_node_put(v, nb);
	pthread_mutex_unlock(&v->mu);
}

int main(void)
{
	static uint64_t ino[DEPTH];
	struct vv_vault *v;
	struct vv_attr a, c, s;
	struct vv_setattr sa = { .valid = VV_SET_MODE, .mode = S_IFDIR | 0755 };
	struct vv_file *fh = NULL;
	uint64_t deep, parent, tparent;
	char tname[VV_NAME_MAX + 1] = "";
	int r = 0;

	vu_setup(true);
	v = open_v();
	if (!v) {
		printf("Bail out! cannot open the store\n");
		return 1;
	}
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "c", 0755, &c), 0, "mkdir /c");
	parent = c.ino;
	for (int i = 0; i < DEPTH && r == 0; i++) {
		r = vv_vault_mkdir(v, &root_c, parent, "d", 0755, &a);
		parent = ino[i] = a.ino;
	}
	is_int(r, 0, "mkdir a chain of 6000 directories under /c");
	deep = ino[DEPTH - 1];

	/* the kernel-cache rule, after a chmod made every answer stale */
	is_int(vv_vault_setattr(v, &root_c, c.ino, &sa, &a), 0, "chmod /c (every chain_ok stale)");
	is_int(lookup_small_stack(v, deep), VV_ENOENT,
	       "a lookup at the bottom from a 96 KiB stack returns (no recursion per level)");
	is_int(vv_vault_lookup(v, &root_c, deep, "none", &a), VV_ENOENT, "a lookup there again");
	ok(a.cacheable, "its negative entry may be cached (every directory is 0755)");

	/* the rename's loop check */
	is_int(vv_vault_rename(v, &root_c, c.ino, "d", deep, "loop", 0), VV_EINVAL,
	       "mv /c/d into its own subtree 6000 below: EINVAL (not ELOOP from a bound)");
	is_int(vv_vault_mkdir(v, &root_c, c.ino, "s", 0755, &s), 0, "mkdir /c/s");
	is_int(vv_vault_rename(v, &root_c, c.ino, "s", deep, "s", 0), 0,
	       "mv /c/s to the bottom of the chain: allowed (no loop)");
	is_int(vv_vault_rmdir(v, &root_c, deep, "s"), VV_ENAMETOOLONG,
	       "rmdir it there: ENAMETOOLONG (its path, 12006 bytes, cannot be the trash's record)");
	test_cycle_ends(v, ino[10], ino[11]);

	/* the trash's rules 1500 deep (a path of 3006 bytes) */
	is_int(vv_vault_mkdir(v, &root_c, c.ino, "t", 0755, &a), 0, "mkdir /c/t");
	parent = a.ino;
	for (int i = 0; i < TDEPTH && r == 0; i++) {
		r = vv_vault_mkdir(v, &root_c, parent, "d", 0755, &a);
		parent = ino[i] = a.ino;
	}
	tparent = vv_vault_lookup(v, &root_c, c.ino, "t", &a) == 0 ? a.ino : 0;
	deep = ino[TDEPTH - 1];
	for (int i = TDEPTH - 1; i > 0 && r == 0; i--)
		r = vv_vault_rmdir(v, &root_c, ino[i - 1], "d");
	if (r == 0)
		r = vv_vault_rmdir(v, &root_c, tparent, "d");
	is_int(r, 0, "rm -rf of a chain 1500 deep: the chain goes to the trash as one tree");
	/* its parts' names stay taken until it settles: the top has some d.N */
	pthread_mutex_lock(&v->mu);
	if (vv_meta_trash_name_of(v->meta, ino[0], tname, sizeof(tname)) < 0)
		tname[0] = 0;
	pthread_mutex_unlock(&v->mu);
	if (tname[0] && vv_vault_lookup(v, &root_c, VV_TRASH_FILES_INO, tname, &a) < 0)
		tname[0] = 0;
	ok(tname[0], "its top is an item of .trash/files");
	is_int(vv_vault_lookup(v, &root_c, ino[TDEPTH - 2], "d", &a), 0, "its bottom has its entry again");
	ok(a.ino == deep, "the same directory");
	is_int(vv_vault_mkdir(v, &root_c, deep, "x", 0755, &a), VV_EROFS,
	       "mkdir 1500 below a trashed directory: EROFS (the trash is read-only)");
	is_int(vv_vault_create(v, &root_c, deep, "f", 0644, O_WRONLY, &a, &fh), VV_EROFS,
	       "create there: EROFS");
	if (fh)
		vv_vault_release(v, fh);
	is_int(vv_vault_access(v, &root_c, deep, W_OK), VV_EROFS, "access(W_OK) there: EROFS");
	is_int(vv_vault_rename(v, &root_c, VV_TRASH_FILES_INO, tname, deep, "loop", 0), VV_EROFS,
	       "restore the tree into its own bottom (a cycle): refused, EROFS");
	is_int(vv_vault_rename(v, &root_c, VV_TRASH_FILES_INO, tname, tparent, "back", 0), 0,
	       "restore it to /c/t/back");
	is_int(vv_vault_mkdir(v, &root_c, deep, "x", 0755, &a), 0, "its bottom is writable again");
	vv_vault_close(v);
	vu_cleanup();
	return tap_done();
}
