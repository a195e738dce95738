/*
 * test_readdir.c - listing a large directory in small pieces.
 *
 * The kernel lists a directory in replies of a few KiB and resumes each at
 * the cookie of the last entry it got, while other processes create and
 * remove entries.  Here 20000 entries are listed through vv_vault_readdir
 * (plain and plus) a few entries per call, with entries created and removed
 * between calls: every entry present throughout must come back exactly
 * once, nothing twice, nothing that never existed.
 *
 * Entries listed by readdirplus carry whether they have xattrs, so that the
 * getxattr calls of `ls -l` need no query: answers and access decisions
 * stay the same.  security.selinux, which `ls -l` asks of every file, is
 * not supported (EOPNOTSUPP, so that ls stops asking): nothing can set it,
 * and a value an older version stored is still read and removed by root,
 * withheld from anyone else with the same answer.
 *
 * Entries handed out by readdirplus are cached by the kernel for an hour
 * when every user may search their whole ancestry (docs/design.md, "Node
 * cache and kernel caches"): a chmod or an ACL that takes search away from
 * anyone above them must ask the kernel to drop each of those names, and
 * from then on listings, lookups (also negative ones) and getattrs say
 * "not cacheable"; widening permissions again asks for nothing.
 *
 * Then the cost: at meta level, listing a directory by cookie must do the
 * same SQLite work per entry whether the directory holds 500 entries or
 * 20000, without sorting (resuming by key through an index, not re-reading
 * and sorting the whole directory for every piece).  Counted in virtual
 * machine steps (vv_meta_work), never in time.
 */
#include <fcntl.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "meta_int.h"
#include "meta_sql_int.h"
#include "tap.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/vault.h"

#define PASS "readdir unit test"
#define N 20000                     /* entries present at the start */
#define NEW_MAX 4096                /* entries created during a listing */

static char state[600];             /* the rollback anchor's directory */

static struct vv_ctx root_c = { .id = { .uid = 0, .gid = 0 }, .umask = 022, .comm = "test" };

/* What one listing saw. */
struct seen {
	int per_call;                  /* accept this many entries per call */
	int taken;                     /* in the current call */
	uint64_t next;                 /* resume offset */
	int orig[N];                   /* times each original entry came back */
	int fresh[NEW_MAX];            /* times each new entry came back */
	int other;                     /* names that never existed, dots aside */
	int dots;
};

static int fill(void *ctx, const struct vv_dirent *e, const struct vv_attr *a)
{
	struct seen *s = ctx;
	int i;

	(void)a;
	if (s->taken == s->per_call)
		return 1;                  /* the reply buffer is full */
	s->taken++;
	s->next = e->next;
	if (strcmp(e->name, ".") == 0 || strcmp(e->name, "..") == 0)
		s->dots++;
	else if (sscanf(e->name, "f%d", &i) == 1 && i >= 0 && i < N)
		s->orig[i]++;
	else if (sscanf(e->name, "new%d", &i) == 1 && i >= 0 && i < NEW_MAX)
		s->fresh[i]++;
	else
		s->other++;
	return 0;
}

static int mkfile(struct vv_vault *v, uint64_t dir, const char *name)
{
	struct vv_attr a;

	return vv_vault_mknod(v, &root_c, dir, name, S_IFREG | 0644, 0, &a);
}

/* List dir a few entries per call; between calls create two entries and
 * remove one original (ahead of the cursor and behind it, alternately).
 * removed[i] is set for originals removed during this listing. */
static void list_while_changing(struct vv_vault *v, uint64_t dir, bool plus, int per_call,
				const char *what, bool *removed, int *nnew)
{
	struct seen *s = calloc(1, sizeof(*s));
	struct vv_dir *dh = NULL;
	int calls = 0, r = 0, dup = 0, missing = 0, rm_next = 1;
	char nm[32], msg[160];

	s->per_call = per_call;
	if (vv_vault_opendir(v, &root_c, dir, &dh) < 0) {
		ok(0, "opendir");
		free(s);
		return;
	}
	for (;;) {
		s->taken = 0;
		r = vv_vault_readdir(v, dh, s->next, plus, fill, s);
		calls++;
		if (r < 0 || s->taken == 0)
			break;
		if (*nnew + 2 <= NEW_MAX) {
			for (int k = 0; k < 2; k++) {
				snprintf(nm, sizeof(nm), "new%d", (*nnew)++);
				if ((r = mkfile(v, dir, nm)) < 0)
					break;
			}
		}
		/* Remove one original: alternately far ahead of where the
		 * listing is and one it has probably passed. */
		rm_next = (rm_next * 7919 + 13) % N;
		if (!removed[rm_next]) {
			snprintf(nm, sizeof(nm), "f%d", rm_next);
			if (vv_vault_unlink(v, &root_c, dir, nm) == 0)
				removed[rm_next] = true;
		}
	}
	vv_vault_releasedir(v, dh);
	snprintf(msg, sizeof(msg), "%s: listing ends without error (%d calls)", what, calls);
	is_int(r, 0, msg);
	for (int i = 0; i < N; i++) {
		if (s->orig[i] > 1)
			dup++;
		if (!removed[i] && s->orig[i] != 1)
			missing++;
	}
	for (int i = 0; i < NEW_MAX; i++)
		if (s->fresh[i] > 1)
			dup++;
	snprintf(msg, sizeof(msg), "%s: every entry present throughout listed exactly once", what);
	is_int(missing, 0, msg);
	snprintf(msg, sizeof(msg), "%s: no entry listed twice", what);
	is_int(dup, 0, msg);
	snprintf(msg, sizeof(msg), "%s: no name that never existed; . and .. once each", what);
	ok(s->other == 0 && s->dots == 2, msg);
	free(s);
}

static int count_plus(void *ctx, const struct vv_dirent *e, const struct vv_attr *a)
{
	(void)e, (void)a;
	(*(int *)ctx)++;
	return 0;
}

/* readdirplus tells the node table which entries have no xattrs, so the
 * getxattr calls of `ls -l` are answered from memory: answers and access
 * decisions must stay those of meta.db, also after later changes.  The
 * vault is closed and reopened (cold, as after a mount) in between. */
/* security.selinux: refused to everyone; a value stored by an older
 * version (written here below the API) stays root's to read and remove. */
static void selinux_legacy(struct vv_vault *v, uint64_t ino)
{
	static const struct vv_ctx nobody = { .id = { .uid = 65534, .gid = 65534 }, .umask = 022,
					      .comm = "test" };
	static const char label[] = "system_u:object_r:etc_t:s0";
	char buf[64];
	int r;

	is_int(vv_vault_setxattr(v, &root_c, ino, "security.selinux", label, sizeof(label), 0),
	       VV_ENOTSUP, "selinux: root cannot set a label");
	is_int(vv_vault_removexattr(v, &root_c, ino, "security.selinux"), VV_ENOTSUP,
	       "selinux: nor remove one that is not there");
	pthread_mutex_lock(&v->mu);
	r = vault_txn(v);
	if (r == 0)
		r = vv_meta_xattr_set(v->meta, ino, "security.selinux", label, sizeof(label));
	pthread_mutex_unlock(&v->mu);
	is_int(r, 0, "selinux: a label stored by an older version");
	is_int(vv_vault_sync(v), 0, "selinux: committed");
	is_int(vv_vault_getxattr(v, &root_c, ino, "security.selinux", buf, sizeof(buf)),
	       (int)sizeof(label), "selinux: root reads the stored label");
	is_int(vv_vault_getxattr(v, &nobody, ino, "security.selinux", buf, sizeof(buf)), VV_ENOTSUP,
	       "selinux: another uid gets the same answer as for no label");
	is_int(vv_vault_removexattr(v, &nobody, ino, "security.selinux"), VV_EPERM,
	       "selinux: another uid cannot remove it");
	is_int(vv_vault_removexattr(v, &root_c, ino, "security.selinux"), 0, "selinux: root removes it");
	is_int(vv_vault_getxattr(v, &root_c, ino, "security.selinux", buf, sizeof(buf)), VV_ENOTSUP,
	       "selinux: gone");
	is_int(vv_vault_getxattr(v, &root_c, ino, "user.k", buf, sizeof(buf)), 1,
	       "selinux: the file's other xattrs stay");
}

static struct vv_vault *xattrs_after_plus(struct vv_vault *v, const char *store, uint64_t coll)
{
	/* u::rw- u:1000:r-- g::r-- m::r-- o::--- (kernel xattr ACL blob) */
	static const uint8_t acl[] = { 2, 0, 0, 0,  1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
				       2, 0, 4, 0, 0xe8, 3, 0, 0,  4, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
				       0x10, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
				       0x20, 0, 0, 0, 0xff, 0xff, 0xff, 0xff };
	struct vv_ctx nobody = { .id = { .uid = 65534, .gid = 65534 }, .umask = 022, .comm = "test" };
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT,
				   .state_dir = state };
	struct vv_attr d, a1, a2, a3;
	struct vv_dir *dh = NULL;
	char buf[64];
	int n = 0;

	is_int(vv_vault_mkdir(v, &root_c, coll, "x", 0755, &d), 0, "xattrs: a directory");
	vv_vault_mknod(v, &root_c, d.ino, "plain", S_IFREG | 0644, 0, &a1);
	vv_vault_mknod(v, &root_c, d.ino, "user", S_IFREG | 0644, 0, &a2);
	vv_vault_mknod(v, &root_c, d.ino, "acl", S_IFREG | 0644, 0, &a3);
	is_int(vv_vault_setxattr(v, &root_c, a2.ino, "user.k", "v", 1, 0), 0, "xattrs: set user.k");
	is_int(vv_vault_setxattr(v, &root_c, a3.ino, "system.posix_acl_access", acl, sizeof(acl), 0), 0,
	       "xattrs: set an ACL that denies others");
	vv_vault_close(v);
	v = NULL;
	is_int(vv_vault_open(store, PASS, strlen(PASS), &o, &v), 0, "xattrs: reopen (cold)");
	if (!v)
		return NULL;
	is_int(vv_vault_opendir(v, &root_c, d.ino, &dh), 0, "xattrs: opendir");
	is_int(vv_vault_readdir(v, dh, 0, true, count_plus, &n), 0, "xattrs: readdirplus");
	is_int(n, 5, "xattrs: ., .. and three files");
	vv_vault_releasedir(v, dh);

	is_int(vv_vault_getxattr(v, &root_c, a1.ino, "security.selinux", buf, sizeof(buf)), VV_ENOTSUP,
	       "xattrs: security.selinux not supported (file without xattrs)");
	is_int(vv_vault_getxattr(v, &root_c, a2.ino, "security.selinux", buf, sizeof(buf)), VV_ENOTSUP,
	       "xattrs: ... nor on a file with user.* xattrs");
	is_int(vv_vault_getxattr(v, &nobody, a3.ino, "security.selinux", NULL, 0), VV_ENOTSUP,
	       "xattrs: ... nor for another uid");
	is_int(vv_vault_getxattr(v, &root_c, a1.ino, "security.other", buf, sizeof(buf)), VV_ENODATA,
	       "xattrs: another security.* name is a plain ENODATA");
	is_int(vv_vault_getxattr(v, &root_c, a1.ino, "system.posix_acl_access", buf, sizeof(buf)),
	       VV_ENODATA, "xattrs: no ACL on it");
	is_int(vv_vault_access(v, &nobody, a1.ino, R_OK), 0, "xattrs: others may read it (mode 0644)");
	is_int(vv_vault_getxattr(v, &root_c, a2.ino, "user.k", buf, sizeof(buf)), 1,
	       "xattrs: user.k read back after readdirplus");
	is_int(vv_vault_getxattr(v, &root_c, a3.ino, "system.posix_acl_access", buf, sizeof(buf)),
	       (int)sizeof(acl), "xattrs: the ACL read back after readdirplus");
	is_int(vv_vault_access(v, &nobody, a3.ino, R_OK), VV_EACCES, "xattrs: and it still denies others");

	/* Changes after the listing are seen. */
	is_int(vv_vault_setxattr(v, &root_c, a1.ino, "user.k", "w", 1, 0), 0, "xattrs: set user.k later");
	is_int(vv_vault_getxattr(v, &root_c, a1.ino, "user.k", buf, sizeof(buf)), 1, "xattrs: read back");
	is_int(vv_vault_setxattr(v, &root_c, a1.ino, "system.posix_acl_access", acl, sizeof(acl), 0), 0,
	       "xattrs: an ACL set later");
	is_int(vv_vault_access(v, &nobody, a1.ino, R_OK), VV_EACCES, "xattrs: denies others at once");
	selinux_legacy(v, a2.ino);
	return v;
}

/* Listing cost at meta level. */
struct cursor {
	uint64_t last;
	int k;
};

static int cur_one(void *ctx, uint64_t cookie, const char *name, uint64_t ino, uint32_t mode)
{
	struct cursor *c = ctx;

	(void)name, (void)ino, (void)mode;
	c->last = cookie;
	c->k++;
	return 0;
}

static int cur_plus(void *ctx, uint64_t cookie, const char *name, const struct vv_inode_row *r,
		    bool xattrs)
{
	(void)xattrs;
	return cur_one(ctx, cookie, name, r->ino, r->mode);
}

/* List parent in pieces of 8 (as the kernel's small replies do); return
 * the entries listed, and the VM steps and sorts it took. */
static int meta_list(struct vv_meta *m, uint64_t parent, bool plus, uint64_t *steps,
		     uint64_t *sorts)
{
	struct cursor c = { 0, 0 };
	uint64_t s0, t0;
	int listed = 0, r;

	vv_meta_work(m, &s0, &t0);         /* restart the counters */
	do {
		c.k = 0;
		r = plus ? vv_meta_dirent_list_plus(m, parent, c.last, 8, cur_plus, &c)
			 : vv_meta_dirent_list(m, parent, c.last, 8, cur_one, &c);
		listed += c.k;
	} while (r == 0 && c.k == 8);
	vv_meta_work(m, steps, sorts);
	return r < 0 ? r : listed;
}

/* statfs's inode count (vv_meta_counts) is kept by triggers, not counted
 * over the table at every statfs: exact after inserts, upserts of existing
 * rows, deletes and a rolled-back transaction, and rebuilt by the upgrade
 * of a store that has no kept count. */
static void meta_count(struct vv_meta *m)
{
	struct vv_inode_row ir;
	uint64_t n = 0;
	int r;

	is_int(vv_meta_counts(m, &n), 0, "count: read");
	is_int((int)n, 20000, "count: 20000 inodes put");
	memset(&ir, 0, sizeof(ir));
	ir.mode = S_IFREG | 0644;
	ir.nlink = 2;
	r = vv_meta_begin(m);
	for (int i = 0; r == 0 && i < 300; i++)
		r = vv_meta_inode_del(m, 100 + (uint64_t)i * 7);
	for (int i = 0; r == 0 && i < 50; i++) {
		ir.ino = 20000 + (uint64_t)i;        /* rows that exist: updates */
		r = vv_meta_inode_put(m, &ir);
	}
	if (r == 0)
		r = vv_meta_commit(m);
	is_int(r == 0 && vv_meta_counts(m, &n) == 0 ? (int)n : -1, 19700,
	       "count: 300 deleted, 50 existing rows put again");
	r = vv_meta_begin(m);
	for (int i = 0; r == 0 && i < 40; i++) {
		ir.ino = 90000 + (uint64_t)i;
		r = vv_meta_inode_put(m, &ir);
	}
	if (r == 0)
		r = vv_meta_rollback(m);
	is_int(r == 0 && vv_meta_counts(m, &n) == 0 ? (int)n : -1, 19700,
	       "count: 40 inserts rolled back");
	/* a store from before the kept count: the table and triggers gone */
	r = vv_meta_begin(m);
	if (r == 0)
		r = meta_exec(m, "DROP TRIGGER inode_count_add; DROP TRIGGER inode_count_del;"
			      " DROP TABLE inode_count");
	if (r == 0)
		r = vv_meta_commit(m);
	is_int(r, 0, "count: the kept count dropped (an older store)");
	is_int(vv_meta_upgrade(m), 0, "count: upgrade");
	ir.ino = 95000;
	r = vv_meta_begin(m);
	if (r == 0 && (r = vv_meta_inode_put(m, &ir)) == 0)
		r = vv_meta_commit(m);
	is_int(r == 0 && vv_meta_counts(m, &n) == 0 ? (int)n : -1, 19701,
	       "count: rebuilt by the upgrade and kept again");
}

/* vv_meta_dirent_get_many (the directory request's lookups): the answers
 * of vv_meta_dirent_get for every name, in any order, duplicates and
 * missing names included; names in order cost a step each, not a seek
 * each; names far apart do not walk the entries between them. */
static void meta_get_many(struct vv_meta *m)
{
	static const char *const odd[] = {
		"seg-000000600.npy", "a", "seg-000000599.npy", "zzz", "seg-000000600.npy",
		"seg-000000700.npy0", "seg-000000700.np", "seg-000000100.npy", "seg-000000701.npy",
		"seg-000019999.npy", "seg-000020000.npy", "seg-000000700.npy", "a",
	};
	const char *names[32];
	char buf[32][32];
	uint64_t ino[32], one, s0, t0, many_steps, get_steps;
	int err[32], bad = 0;
	size_t n = sizeof(odd) / sizeof(odd[0]);

	is_int(vv_meta_dirent_get_many(m, 11, (const char *const *)odd, n, ino, err, NULL, NULL), 0,
	       "get_many: names out of order, missing, repeated");
	for (size_t i = 0; i < n; i++) {
		int r = vv_meta_dirent_get(m, 11, odd[i], &one);
		if (r != err[i] || (r == 0 && one != ino[i])) {
			printf("# %s: get_many %d/%llu, get %d/%llu\n", odd[i], err[i],
			       (unsigned long long)ino[i], r, (unsigned long long)one);
			bad++;
		}
	}
	is_int(bad, 0, "get_many: each answer is vv_meta_dirent_get's");
	is_int(err[0] == 0 && err[4] == 0 && ino[0] == ino[4] && err[1] == VV_ENOENT &&
	       err[7] == VV_ENOENT && err[9] == 0 ? 0 : -1, 0,
	       "get_many: found, repeated, missing, in another directory");

	/* with the inode rows and whether each has xattrs, in the same pass */
	{
		struct vv_inode_row rows[16], one_row;
		bool xa[16];
		uint64_t ino2[16];
		int err2[16], r = vv_meta_begin(m);

		if (r == 0)
			r = vv_meta_xattr_set(m, 700, "user.k", "v", 1);   /* seg-000000600.npy */
		if (r == 0)
			r = vv_meta_commit(m);
		is_int(r, 0, "get_many: an xattr on seg-000000600.npy");
		is_int(vv_meta_dirent_get_many(m, 11, (const char *const *)odd, n, ino2, err2, rows, xa),
		       0, "get_many: with rows");
		bad = 0;
		for (size_t i = 0; i < n; i++) {
			if (err2[i] != err[i] || (err[i] == 0 && ino2[i] != ino[i])) {
				bad++;
				continue;
			}
			if (err[i] != 0)
				continue;
			bad += vv_meta_inode_get(m, ino[i], &one_row) != 0 || rows[i].ino != ino[i] ||
			       rows[i].parent != one_row.parent || rows[i].mode != one_row.mode ||
			       rows[i].nlink != one_row.nlink || rows[i].gen != one_row.gen ||
			       xa[i] != (ino[i] == 700);
		}
		is_int(bad, 0, "get_many: the same answers, each found name's row as "
			       "vv_meta_inode_get reads it, its xattrs flag set only where it has one");
	}

	/* 32 names in a row, as the tool sends them */
	for (int i = 0; i < 32; i++) {
		snprintf(buf[i], sizeof(buf[i]), "seg-%09d.npy", 5000 + i);
		names[i] = buf[i];
	}
	vv_meta_work(m, &s0, &t0);
	is_int(vv_meta_dirent_get_many(m, 11, names, 32, ino, err, NULL, NULL), 0, "get_many: 32 names in order");
	vv_meta_work(m, &many_steps, &t0);
	for (int i = 0; i < 32; i++)
		bad += vv_meta_dirent_get(m, 11, names[i], &one) != 0 || err[i] != 0 || one != ino[i];
	vv_meta_work(m, &get_steps, &t0);
	printf("# get_many: %.1f VM steps per name in order, %.1f by vv_meta_dirent_get\n",
	       many_steps / 32.0, get_steps / 32.0);
	is_int(bad, 0, "get_many: 32 names in order found, as vv_meta_dirent_get finds them");
	ok(many_steps * 2 <= get_steps, "get_many: names in order cost at most half of one lookup each");

	/* 16 names 1000 entries apart: a seek each, not 1000 steps */
	for (int i = 0; i < 16; i++)
		snprintf(buf[i], sizeof(buf[i]), "seg-%09d.npy", 1000 + 1000 * i);
	vv_meta_work(m, &s0, &t0);
	is_int(vv_meta_dirent_get_many(m, 11, names, 16, ino, err, NULL, NULL), 0, "get_many: 16 names far apart");
	vv_meta_work(m, &many_steps, &t0);
	for (int i = 0; i < 16; i++)
		bad += vv_meta_dirent_get(m, 11, names[i], &one) != 0 || err[i] != 0 || one != ino[i];
	vv_meta_work(m, &get_steps, &t0);
	printf("# get_many: %.1f VM steps per name far apart, %.1f by vv_meta_dirent_get\n",
	       many_steps / 16.0, get_steps / 16.0);
	is_int(bad, 0, "get_many: names far apart found");
	/* up to DE_SKIP_MAX steps and a seek: ~4.5 lookups in VM steps (a
	 * walk would be ~400) */
	ok(many_steps <= get_steps * 6, "get_many: names far apart cost a few lookups each, no walk");
}

/* Directories of 500 and 20000 entries (interleaved with a third, so the
 * entries of one directory are not alone in the table): listing either
 * must take about the same work per entry, and no sort. */
static void meta_cost(const char *top)
{
	static const uint8_t key[32] = { 1, 2, 3 };
	struct vv_meta *m = NULL;
	struct vv_inode_row ir;
	char path[400], nm[32];
	int r = 0;

	snprintf(path, sizeof(path), "%s/cost.db", top);
	is_int(vv_meta_open(path, key, 4096, true, &m), 0, "meta: open a fresh meta.db");
	if (!m)
		return;
	memset(&ir, 0, sizeof(ir));
	ir.mode = S_IFREG | 0644;
	ir.nlink = 1;
	r = vv_meta_begin(m);
	for (int i = 0; r == 0 && i < 20000; i++) {
		ir.ino = 100 + (uint64_t)i;
		ir.parent = i < 500 ? 10 : 11;
		snprintf(nm, sizeof(nm), "seg-%09d.npy", i);
		if ((r = vv_meta_inode_put(m, &ir)) == 0 &&
		    (r = vv_meta_dirent_add(m, i < 500 ? 10 : 11, nm, ir.ino, ir.mode)) == 0 && i >= 500)
			r = vv_meta_dirent_add(m, 12, nm, ir.ino, ir.mode);
	}
	if (r == 0)
		r = vv_meta_commit(m);
	is_int(r, 0, "meta: 500 entries in one directory, 19500 in two others");
	for (int plus = 0; plus < 2; plus++) {
		uint64_t st_small, so_small, st_big, so_big;
		int n_small = meta_list(m, 10, plus, &st_small, &so_small);
		int n_big = meta_list(m, 11, plus, &st_big, &so_big);
		double per_small = n_small > 0 ? (double)st_small / n_small : 0;
		double per_big = n_big > 0 ? (double)st_big / n_big : 0;
		char msg[160];

		printf("# %s: %.1f VM steps per entry at 500, %.1f at 19500; sorts %llu, %llu\n",
		       plus ? "list_plus" : "list", per_small, per_big,
		       (unsigned long long)so_small, (unsigned long long)so_big);
		snprintf(msg, sizeof(msg), "meta %s: every entry listed in pieces of 8",
			 plus ? "list_plus" : "list");
		ok(n_small == 500 && n_big == 19500, msg);
		snprintf(msg, sizeof(msg), "meta %s: resumes by key, no sort", plus ? "list_plus" : "list");
		ok(so_small == 0 && so_big == 0, msg);
		snprintf(msg, sizeof(msg), "meta %s: work per entry independent of the directory's size",
			 plus ? "list_plus" : "list");
		ok(per_big <= per_small * 1.2 + 2, msg);
	}
	meta_get_many(m);
	meta_count(m);
	vv_meta_close(m);
}

/* ---- kernel-cache rule after readdirplus ----------------------------------- */

#define INV_MAX 64

/* The invalidations the vault asked for (vv_vault_set_inval). */
struct invals {
	int n;
	uint64_t id[INV_MAX];           /* parent (entry) or inode (attributes) */
	char name[INV_MAX][16];         /* "" for an inode */
};

static void record_inval(void *ctx, uint64_t parent_or_ino, const char *name)
{
	struct invals *iv = ctx;

	if (iv->n == INV_MAX)
		return;
	iv->id[iv->n] = parent_or_ino;
	snprintf(iv->name[iv->n], sizeof(iv->name[0]), "%s", name ? name : "");
	iv->n++;
}

static bool has_inval(const struct invals *iv, uint64_t id, const char *name)
{
	for (int i = 0; i < iv->n; i++)
		if (iv->id[i] == id && strcmp(iv->name[i], name) == 0)
			return true;
	return false;
}

/* What one readdirplus listing said of the files f*: how many, and how
 * many of them with attributes the kernel may cache. */
struct plus_seen {
	int files, cacheable;
	uint64_t ino[4];
};

static int fill_plus(void *ctx, const struct vv_dirent *e, const struct vv_attr *a)
{
	struct plus_seen *s = ctx;

	if (e->name[0] != 'f' || !a)
		return 0;
	if (s->files < 4)
		s->ino[s->files] = a->ino;
	s->files++;
	if (a->cacheable)
		s->cacheable++;
	return 0;
}

/* readdirplus of dir as root; the entries' lookup references are given
 * back at once (the kernel's FORGET), as the caller does not keep them. */
static struct plus_seen list_plus(struct vv_vault *v, uint64_t dir)
{
	struct plus_seen s = { 0 };
	struct vv_dir *dh = NULL;

	if (vv_vault_opendir(v, &root_c, dir, &dh) == 0) {
		vv_vault_readdir(v, dh, 0, true, fill_plus, &s);
		vv_vault_releasedir(v, dh);
	}
	return s;
}

static bool negative_cacheable(struct vv_vault *v, uint64_t dir)
{
	struct vv_attr a;

	return vv_vault_lookup(v, &root_c, dir, "missing", &a) == VV_ENOENT && a.cacheable;
}

static bool attr_cacheable(struct vv_vault *v, uint64_t ino)
{
	struct vv_attr a;

	return vv_vault_getattr(v, &root_c, ino, &a) == 0 && a.cacheable;
}

static void cache_rule_after_plus(struct vv_vault *v, uint64_t coll)
{
	/* u::rwx u:1000:rw- g::r-x m::rwx o::r-x: user 1000 may not search */
	static const uint8_t acl[] = { 2, 0, 0, 0,  1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff,
				       2, 0, 6, 0, 0xe8, 3, 0, 0,  4, 0, 5, 0, 0xff, 0xff, 0xff, 0xff,
				       0x10, 0, 7, 0, 0xff, 0xff, 0xff, 0xff,
				       0x20, 0, 5, 0, 0xff, 0xff, 0xff, 0xff };
	struct vv_setattr narrow = { .valid = VV_SET_MODE, .mode = S_IFDIR | 0700 };
	struct vv_setattr widen = { .valid = VV_SET_MODE, .mode = S_IFDIR | 0755 };
	struct invals iv = { 0 };
	struct vv_attr k, s, a;
	struct plus_seen p;

	is_int(vv_vault_mkdir(v, &root_c, coll, "k", 0755, &k), 0, "cache: a directory k");
	is_int(vv_vault_mkdir(v, &root_c, k.ino, "s", 0755, &s), 0, "cache: k/s");
	vv_vault_mknod(v, &root_c, s.ino, "f1", S_IFREG | 0644, 0, &a);
	vv_vault_mknod(v, &root_c, s.ino, "f2", S_IFREG | 0644, 0, &a);
	vv_vault_set_inval(v, record_inval, &iv);

	p = list_plus(v, s.ino);
	ok(p.files == 2 && p.cacheable == 2, "cache: readdirplus under 0755 dirs hands out cacheable entries");
	ok(negative_cacheable(v, s.ino), "cache: and a missing name may be cached");

	iv.n = 0;
	is_int(vv_vault_setattr(v, &root_c, k.ino, &narrow, &a), 0, "cache: chmod 0700 k");
	ok(has_inval(&iv, s.ino, "f1") && has_inval(&iv, s.ino, "f2"),
	   "cache: the names readdirplus handed out below k are dropped");
	ok(has_inval(&iv, p.ino[0], "") && has_inval(&iv, p.ino[1], ""),
	   "cache: and their attributes");
	ok(has_inval(&iv, k.ino, "s"), "cache: and k/s itself");
	p = list_plus(v, s.ino);
	ok(p.files == 2 && p.cacheable == 0, "cache: a new listing hands out nothing cacheable");
	ok(!negative_cacheable(v, s.ino), "cache: nor a negative entry");
	ok(!attr_cacheable(v, p.ino[0]), "cache: nor attributes");

	iv.n = 0;
	is_int(vv_vault_setattr(v, &root_c, k.ino, &widen, &a), 0, "cache: chmod 0755 k again");
	is_int(iv.n, 0, "cache: widening asks for no invalidation");
	p = list_plus(v, s.ino);
	ok(p.cacheable == 2 && negative_cacheable(v, s.ino) && attr_cacheable(v, p.ino[0]),
	   "cache: and everything is cacheable again");

	iv.n = 0;
	is_int(vv_vault_setxattr(v, &root_c, k.ino, "system.posix_acl_access", acl, sizeof(acl), 0), 0,
	       "cache: an ACL on k without search for user 1000");
	ok(has_inval(&iv, s.ino, "f1") && has_inval(&iv, s.ino, "f2"),
	   "cache: drops the entries below k (mode 0775 alone would allow it)");
	p = list_plus(v, s.ino);
	ok(p.cacheable == 0 && !negative_cacheable(v, s.ino), "cache: nothing below k cacheable");
	is_int(vv_vault_removexattr(v, &root_c, k.ino, "system.posix_acl_access"), 0, "cache: remove the ACL");
	p = list_plus(v, s.ino);
	ok(p.cacheable == 2 && negative_cacheable(v, s.ino), "cache: cacheable again");

	/* Give back the lookup references of the five listings. */
	vv_vault_forget(v, p.ino[0], 5);
	vv_vault_forget(v, p.ino[1], 5);
	vv_vault_set_inval(v, NULL, NULL);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char top[256], store[300], cmd[600];
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT,
				   .state_dir = state };
	struct vv_vault *v = NULL;
	struct vv_attr c1;
	bool *removed = calloc(N, sizeof(bool));
	int nnew = 0, made = 0;
	char nm[32];

	snprintf(top, sizeof(top), "%s/vv-readdir-XXXXXX", tmp);
	if (!mkdtemp(top))
		tap_skip_all("cannot make a temp dir");
	snprintf(store, sizeof(store), "%s/store", top);
	snprintf(state, sizeof(state), "%s/state", top);

	is_int(vv_vault_create_store(store, PASS, strlen(PASS), VV_KDF_PROFILE_TEST,
				     VV_VAULT_ALLOW_TEST_KDF, 0, 0, state), 0, "create a store");
	is_int(vv_vault_open(store, PASS, strlen(PASS), &o, &v), 0, "open it");
	if (!v)
		return tap_done();
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "c", 0755, &c1), 0, "mkdir a collection");
	for (int i = 0; i < N; i++) {
		snprintf(nm, sizeof(nm), "f%d", i);
		if (mkfile(v, c1.ino, nm) == 0)
			made++;
	}
	is_int(made, N, "20000 files");
	is_int(vv_vault_sync(v), 0, "commit them");

	list_while_changing(v, c1.ino, false, 7, "readdir, 7 per call", removed, &nnew);
	list_while_changing(v, c1.ino, true, 5, "readdirplus, 5 per call", removed, &nnew);
	v = xattrs_after_plus(v, store, c1.ino);
	if (v)
		cache_rule_after_plus(v, c1.ino);

	vv_vault_close(v);
	meta_cost(top);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (system(cmd) != 0)
		tap_diag("could not remove the temp dir");
	free(removed);
	return tap_done();
}
