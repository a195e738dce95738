/*
 * test_trash.c - the recycle bin (vault_trash*.c) on the engine, no FUSE:
 * unlink and rmdir move to .trash with the FreeDesktop view, names that
 * collide get a suffix, rm -rf becomes one tree restored whole (same
 * inodes, modes, xattrs), visibility and the rules of restore and purge
 * for other uids, the read-only trash, EXDEV across collections, the
 * reserved names, retention at open, purge freeing chunks, the collection
 * key kept until the purge, and the control-plane verbs; which listings
 * the kernel may keep (never .trash, a removed tree) and the inode
 * invalidation a control-plane restore asks for its directory.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "admin_int.h"
#include "meta_int.h"
#include "meta_sql_int.h"
#include "tap.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/vault.h"

#define PASS "trash unit test"

static char top[256], store[300], state[300];
static struct vv_ctx root_c = { .id = { .uid = 0, .gid = 0 }, .umask = 0, .comm = "test" };
static struct vv_ctx u1000 = { .id = { .uid = 1000, .gid = 1000 }, .umask = 022, .comm = "test" };
static struct vv_ctx u1001 = { .id = { .uid = 1001, .gid = 1001 }, .umask = 022, .comm = "test" };

static struct vv_vault *open_flags(int64_t secs, unsigned flags)
{
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT | flags,
				   .state_dir = state, .trash_secs = secs, .knn_off = true };
	struct vv_vault *v = NULL;
	int r = vv_vault_open(store, PASS, strlen(PASS), &o, &v);

	if (r < 0)
		printf("# open: %s\n", vv_strerror(r));
	return v;
}

static struct vv_vault *open_v(int64_t secs)
{
	return open_flags(secs, 0);
}

/* The bytes of STORE/meta.db and its WAL, to compare. */
static char *store_bytes(size_t *n)
{
	char cmd[700];
	FILE *f;
	char *buf = NULL;
	size_t cap = 0;

	snprintf(cmd, sizeof(cmd), "cat '%s/meta.db' '%s/meta.db-wal' 2>/dev/null", store, store);
	*n = 0;
	if (!(f = popen(cmd, "r")))
		return NULL;
	for (;;) {
		if (*n == cap) {
			char *nb = realloc(buf, cap = cap ? cap * 2 : 1 << 20);
			if (!nb)
				break;
			buf = nb;
		}
		size_t got = fread(buf + *n, 1, cap - *n, f);
		if (got == 0)
			break;
		*n += got;
	}
	pclose(f);
	return buf;
}

static int put(struct vv_vault *v, const struct vv_ctx *c, uint64_t dir, const char *name,
	       const char *data, size_t n, uint32_t mode, uint64_t *ino)
{
	struct vv_attr a;
	struct vv_file *fh;
	int r = vv_vault_create(v, c, dir, name, mode, O_WRONLY, &a, &fh);

	if (r < 0)
		return r;
	if (n && vv_vault_write(v, c, fh, data, n, 0) != (ssize_t)n)
		r = VV_EIO;
	vv_vault_release(v, fh);
	vv_vault_forget(v, a.ino, 1);
	if (ino)
		*ino = a.ino;
	return r;
}

static int get(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino, char *buf, size_t cap)
{
	struct vv_file *fh;
	bool keep;
	ssize_t n;
	int r = vv_vault_open_file(v, c, ino, O_RDONLY, &fh, &keep);

	if (r < 0)
		return r;
	n = vv_vault_read(v, fh, buf, cap - 1, 0);
	vv_vault_release(v, fh);
	if (n < 0)
		return (int)n;
	buf[n] = 0;
	return (int)n;
}

static int lk(struct vv_vault *v, const struct vv_ctx *c, uint64_t dir, const char *name, uint64_t *ino)
{
	struct vv_attr a;
	int r = vv_vault_lookup(v, c, dir, name, &a);

	if (r == 0) {
		if (ino)
			*ino = a.ino;
		if (!trash_virt(a.ino))
			vv_vault_forget(v, a.ino, 1);
	}
	return r;
}

struct names {
	char buf[8192];
	int n;
};

static int collect(void *ctx, const struct vv_dirent *e, const struct vv_attr *a)
{
	struct names *s = ctx;

	(void)a;
	if (strcmp(e->name, ".") && strcmp(e->name, "..")) {
		size_t l = strlen(s->buf);
		snprintf(s->buf + l, sizeof(s->buf) - l, "%s%s", l ? " " : "", e->name);
		s->n++;
	}
	return 0;
}

static int list(struct vv_vault *v, const struct vv_ctx *c, uint64_t dir, struct names *s)
{
	struct vv_dir *dh;
	int r;

	memset(s, 0, sizeof(*s));
	if ((r = vv_vault_opendir(v, c, dir, &dh)) < 0)
		return r;
	r = vv_vault_readdir(v, dh, 0, false, collect, s);
	vv_vault_releasedir(v, dh);
	return r;
}

/* Whether the kernel may keep dir's listing (vv_vault_dir_cacheable):
 * 1 or 0, or the opendir's error. */
static int kept(struct vv_vault *v, uint64_t dir)
{
	struct vv_dir *dh = NULL;
	int r = vv_vault_opendir(v, &root_c, dir, &dh);

	if (r < 0)
		return r;
	r = vv_vault_dir_cacheable(dh) ? 1 : 0;
	vv_vault_releasedir(v, dh);
	return r;
}

/* The invalidations the vault asked for (vv_inval_fn), inode-only ones. */
static uint64_t inval_ino[4096];
static size_t ninval;

static void record_inval(void *ctx, uint64_t ino, const char *name)
{
	(void)ctx;
	if (!name && ninval < sizeof(inval_ino) / sizeof(inval_ino[0]))
		inval_ino[ninval++] = ino;
}

static bool invalidated(uint64_t ino)
{
	for (size_t i = 0; i < ninval; i++)
		if (inval_ino[i] == ino)
			return true;
	return false;
}

static int verb(struct vv_vault *v, uint32_t uid, const char *name, const struct vv_admin_arg *args,
		size_t nargs, struct vv_admin_reply *rep)
{
	struct vv_admin_req rq = { .peer = { .uid = uid, .gid = uid, .pid = 1 }, .client = "local",
				   .verb = name, .nargs = nargs, .args = args };

	return vv_admin_call(v, &rq, rep);
}

static size_t chunk_files(void)
{
	char cmd[600];
	FILE *p;
	size_t n = 0;

	snprintf(cmd, sizeof(cmd), "find '%s/chunks' -type f ! -name '.tmp-*' | wc -l", store);
	if ((p = popen(cmd, "r"))) {
		if (fscanf(p, "%zu", &n) != 1)
			n = 0;
		pclose(p);
	}
	return n;
}

/* Whether SQLite finds a trash row by inode through the trash_ino index
 * (the query of vv_meta_trash_get_ino and _name_of). */
static bool trash_by_ino_indexed(sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	bool yes = false;

	if (sqlite3_prepare_v2(db, "EXPLAIN QUERY PLAN SELECT name FROM trash WHERE ino=?1"
			       " ORDER BY id DESC LIMIT 1", -1, &s, NULL) != SQLITE_OK)
		return false;
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(s, 3);
		yes |= d && strstr(d, "INDEX trash_ino") != NULL;
	}
	sqlite3_finalize(s);
	return yes;
}

int main(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	struct vv_admin_reply rep;
	struct vv_vault *v;
	struct vv_attr a, prod, other;
	struct names s;
	uint64_t f1, f2, tino, iino, sub, deep, x;
	char buf[4096], cmd[600];
	uint8_t big[200000];

	snprintf(top, sizeof(top), "%s/vv-trash-XXXXXX", tmp);
	if (!mkdtemp(top))
		tap_skip_all("cannot make a temp dir");
	snprintf(store, sizeof(store), "%s/store", top);
	snprintf(state, sizeof(state), "%s/state", top);
	is_int(vv_vault_create_store(store, PASS, strlen(PASS), VV_KDF_PROFILE_TEST,
				     VV_VAULT_ALLOW_TEST_KDF, 0, 0, state), 0, "create a store");
	v = open_v(30 * 86400);
	ok(v != NULL, "open with a 30-day trash");
	if (!v)
		return tap_done();
	vv_admin_reply_init(&rep);

	/* --- rm goes to the trash, in the FreeDesktop shape ---------------- */
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "products", 0777, &prod), 0, "mkdir /products");
	vv_vault_forget(v, prod.ino, 1);
	is_int(put(v, &u1000, prod.ino, "part-3.npy", "secret-3", 8, 0600, &f1), 0, "1000 writes part-3.npy (0600)");
	is_int(vv_vault_unlink(v, &u1000, prod.ino, "part-3.npy"), 0, "1000 removes it");
	is_int(lk(v, &root_c, prod.ino, "part-3.npy", NULL), VV_ENOENT, "gone from /products");
	is_int(lk(v, &root_c, VV_ROOT_INO, ".trash", &tino), 0, "lookup /.trash");
	ok(tino == VV_TRASH_INO, "a virtual inode at 2^60");
	is_int(list(v, &root_c, VV_ROOT_INO, &s), 0, "readdir /");
	ok(strstr(s.buf, ".trash") == NULL, "the root's listing does not show .trash");
	is_int(list(v, &root_c, VV_TRASH_INO, &s), 0, "readdir /.trash");
	is_str(s.buf, "files info", "files and info");
	is_int(list(v, &root_c, VV_TRASH_FILES_INO, &s), 0, "readdir /.trash/files");
	is_str(s.buf, "part-3.npy", "the item, under its name");
	is_int(lk(v, &root_c, VV_TRASH_FILES_INO, "part-3.npy", &x), 0, "lookup it");
	ok(x == f1, "with its own inode number");
	is_int(get(v, &root_c, f1, buf, sizeof(buf)), 8, "root reads it");
	is_str(buf, "secret-3", "the same bytes");
	is_int(lk(v, &root_c, VV_TRASH_INFO_INO, "part-3.npy.trashinfo", &iino), 0, "lookup its .trashinfo");
	ok(iino >= VV_TRASH_INFO_FIRST && iino < VV_TRASH_INO_END, "a virtual inode too");
	ok(get(v, &root_c, iino, buf, sizeof(buf)) > 0, "read the .trashinfo");
	ok(strstr(buf, "[Trash Info]\nPath=/products/part-3.npy\nDeletionDate=") == buf, "Path= and DeletionDate=");

	/* --- visibility and the read-only trash ----------------------------- */
	is_int(list(v, &u1001, VV_TRASH_FILES_INO, &s), 0, "1001 lists .trash/files");
	is_int(s.n, 0, "and sees nothing of 1000's 0600 file");
	is_int(lk(v, &u1001, VV_TRASH_FILES_INO, "part-3.npy", NULL), VV_ENOENT, "1001: lookup by name ENOENT");
	is_int(lk(v, &u1001, VV_TRASH_INFO_INO, "part-3.npy.trashinfo", NULL), VV_ENOENT, "1001: no .trashinfo");
	is_int(vv_vault_getattr(v, &u1001, iino, &a), VV_ENOENT, "1001: getattr of the info inode ENOENT");
	is_int(get(v, &u1001, f1, buf, sizeof(buf)), VV_EACCES, "1001: open by inode EACCES (0600)");
	is_int(vv_vault_rename(v, &u1001, VV_TRASH_FILES_INO, "part-3.npy", prod.ino, "mine", 0), VV_ENOENT,
	       "1001: cannot restore what it cannot see");
	is_int(vv_vault_unlink(v, &u1001, VV_TRASH_FILES_INO, "part-3.npy"), VV_ENOENT, "1001: cannot purge it");
	is_int(list(v, &u1000, VV_TRASH_FILES_INO, &s), 0, "1000 lists");
	is_str(s.buf, "part-3.npy", "1000 sees its own");
	is_int(put(v, &root_c, VV_TRASH_FILES_INO, "new", "x", 1, 0644, NULL), VV_EROFS, "create in .trash/files: EROFS");
	is_int(vv_vault_mkdir(v, &root_c, VV_TRASH_INO, "d", 0755, &a), VV_EROFS, "mkdir in .trash: EROFS");
	{
		struct vv_setattr sa = { .valid = VV_SET_MODE, .mode = 0644 };
		is_int(vv_vault_setattr(v, &u1000, f1, &sa, &a), VV_EROFS, "chmod of a trashed file: EROFS");
		sa.valid = VV_SET_SIZE;
		sa.size = 0;
		is_int(vv_vault_setattr(v, &u1000, f1, &sa, &a), VV_EROFS, "truncate: EROFS");
	}
	{
		struct vv_file *fh;
		bool keep;
		is_int(vv_vault_open_file(v, &u1000, f1, O_WRONLY, &fh, &keep), VV_EROFS, "open for write: EROFS");
		is_int(vv_vault_open_file(v, &root_c, iino, O_RDWR, &fh, &keep), VV_EROFS, ".trashinfo for write: EROFS");
	}
	is_int(vv_vault_setxattr(v, &u1000, f1, "user.x", "1", 1, 0), VV_EROFS, "setxattr: EROFS");
	is_int(vv_vault_link(v, &u1000, f1, prod.ino, "hard", &a), VV_EPERM, "link out of the trash: EPERM");
	is_int(put(v, &u1000, prod.ino, "p2", "p2", 2, 0644, &f2), 0, "a live file");
	is_int(vv_vault_link(v, &u1000, f2, VV_TRASH_FILES_INO, "hard", &a), VV_EROFS, "link into the trash: EROFS");
	is_int(vv_vault_rename(v, &u1000, prod.ino, "p2", VV_TRASH_FILES_INO, "p2", 0), VV_EROFS,
	       "rename into the trash: EROFS");
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, ".trash", 0755, &a), VV_EEXIST, "mkdir /.trash: EEXIST");
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, ".snapshots", 0755, &a), VV_EEXIST, "mkdir /.snapshots: EEXIST");
	is_int(vv_vault_rename(v, &root_c, prod.ino, "p2", VV_ROOT_INO, ".trash", 0), VV_EPERM,
	       "rename onto /.trash: EPERM");
	is_int(vv_vault_rmdir(v, &root_c, VV_ROOT_INO, ".trash"), VV_EPERM, "rmdir /.trash: EPERM");

	/* --- restore by mv, collisions -------------------------------------- */
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "other", 0777, &other), 0, "mkdir /other");
	vv_vault_forget(v, other.ino, 1);
	is_int(vv_vault_rename(v, &u1000, VV_TRASH_FILES_INO, "part-3.npy", other.ino, "part-3.npy", 0), VV_EXDEV,
	       "restore into another collection: EXDEV");
	is_int(vv_vault_rename(v, &u1000, VV_TRASH_FILES_INO, "part-3.npy", prod.ino, "part-3.npy", 0), 0,
	       "mv back into /products");
	is_int(lk(v, &root_c, prod.ino, "part-3.npy", &x), 0, "it is back");
	ok(x == f1, "same inode");
	is_int(list(v, &root_c, VV_TRASH_FILES_INO, &s), 0, "list the trash");
	is_int(s.n, 0, "empty again");
	is_int(vv_vault_unlink(v, &u1000, prod.ino, "part-3.npy"), 0, "remove it again");
	is_int(put(v, &u1000, prod.ino, "part-3.npy", "second", 6, 0644, NULL), 0, "a new part-3.npy");
	is_int(vv_vault_unlink(v, &u1000, prod.ino, "part-3.npy"), 0, "remove that too");
	is_int(list(v, &root_c, VV_TRASH_FILES_INO, &s), 0, "list");
	is_str(s.buf, "part-3.npy part-3.2.npy", "the second is part-3.2.npy");

	/* --- a rename over a file does not trash it -------------------------- */
	is_int(put(v, &root_c, prod.ino, "a", "a", 1, 0644, NULL), 0, "file a");
	is_int(put(v, &root_c, prod.ino, "b", "b", 1, 0644, NULL), 0, "file b");
	is_int(vv_vault_rename(v, &root_c, prod.ino, "a", prod.ino, "b", 0), 0, "mv a b");
	is_int(list(v, &root_c, VV_TRASH_FILES_INO, &s), 0, "list");
	is_int(s.n, 2, "the replaced b is not in the trash");

	/* --- rm -rf: one tree, restored whole -------------------------------- */
	is_int(vv_vault_mkdir(v, &u1000, prod.ino, "sub", 0750, &a), 0, "mkdir sub");
	sub = a.ino;
	vv_vault_forget(v, sub, 1);
	is_int(vv_vault_mkdir(v, &u1000, sub, "deep", 0700, &a), 0, "mkdir sub/deep");
	deep = a.ino;
	vv_vault_forget(v, deep, 1);
	is_int(put(v, &u1000, deep, "f", "deep-f", 6, 0640, &x), 0, "sub/deep/f");
	is_int(vv_vault_setxattr(v, &u1000, x, "user.tag", "blue", 4, 0), 0, "with an xattr");
	memset(big, 7, sizeof(big));
	{
		struct vv_attr ba;
		struct vv_file *fh;
		is_int(vv_vault_create(v, &u1000, sub, "big", 0644, O_WRONLY, &ba, &fh), 0, "sub/big");
		is_int((int)vv_vault_write(v, &u1000, fh, big, sizeof(big), 0), (int)sizeof(big), "200 kB");
		vv_vault_release(v, fh);
		vv_vault_forget(v, ba.ino, 1);
	}
	is_int(vv_vault_sync(v), 0, "sync");
	{
		size_t before = chunk_files();
		ok(before > 0, "the big file has chunks");
		/* bottom up, as rm -rf does */
		is_int(vv_vault_unlink(v, &u1000, deep, "f"), 0, "rm sub/deep/f");
		is_int(vv_vault_rmdir(v, &u1000, sub, "deep"), 0, "rmdir sub/deep");
		is_int(vv_vault_unlink(v, &u1000, sub, "big"), 0, "rm sub/big");
		is_int(vv_vault_rmdir(v, &u1000, prod.ino, "sub"), 0, "rmdir sub");
		is_int(vv_vault_sync(v), 0, "sync");
		is_int((int)chunk_files(), (int)before, "trashing frees no chunk");
	}
	is_int(list(v, &root_c, VV_TRASH_FILES_INO, &s), 0, "list");
	ok(strstr(s.buf, "sub") && !strstr(s.buf, "big") && !strstr(s.buf, " f"), "one item: sub, the tree");
	is_int(vv_vault_rename(v, &u1000, prod.ino, "p2", deep, "f", VV_RENAME_EXCHANGE), VV_EROFS,
	       "exchange into a trashed tree: EROFS");
	is_int(vv_vault_rename(v, &u1000, deep, "f", prod.ino, "p2", VV_RENAME_EXCHANGE), VV_EROFS,
	       "exchange out of a trashed tree: EROFS");
	/* The listings the kernel may keep (FOPEN_CACHE_DIR): the live tree's
	 * only; never the per-caller views or a removed tree. */
	is_int(kept(v, VV_ROOT_INO), 1, "kept listing: the root");
	is_int(kept(v, prod.ino), 1, "kept listing: /products");
	is_int(kept(v, VV_TRASH_INO), 0, "kept listing: never /.trash");
	is_int(kept(v, VV_TRASH_FILES_INO), 0, "kept listing: never /.trash/files");
	is_int(kept(v, VV_TRASH_INFO_INO), 0, "kept listing: never /.trash/info");
	is_int(kept(v, sub), 0, "kept listing: never a removed directory");
	is_int(kept(v, deep), 0, "kept listing: never a directory inside a removed tree");
	is_int(lk(v, &u1000, VV_TRASH_FILES_INO, "sub", NULL), 0, "1000 finds sub");
	is_int(lk(v, &u1000, sub, "deep", NULL), 0, "and sub/deep inside");
	is_int(vv_vault_unlink(v, &u1001, VV_TRASH_FILES_INO, "sub"), VV_ENOENT, "1001 cannot see sub (0750)");
	{
		struct vv_admin_arg args[] = { { "path", "/products/sub" } };
		is_int(verb(v, 1001, "trash.restore", args, 1, &rep), VV_ENOENT, "trash.restore by 1001: refused");
		is_int(verb(v, 1000, "trash.restore", args, 1, &rep), 0, "trash.restore /products/sub by 1000");
		ok(rep.body && strstr(rep.body, "restored /products/sub"), "says so");
	}
	is_int(lk(v, &root_c, prod.ino, "sub", &x), 0, "sub is back");
	is_int(kept(v, sub), 1, "kept listing: sub again, restored");
	is_int(kept(v, deep), 1, "kept listing: sub/deep again, restored");
	/* A file restored by the control plane: the kernel made no entry,
	 * so the directory's kept listing must be dropped (inode-only). */
	is_int(put(v, &u1000, prod.ino, "solo", "solo", 4, 0644, NULL), 0, "1000 writes solo");
	is_int(vv_vault_unlink(v, &u1000, prod.ino, "solo"), 0, "and removes it");
	vv_vault_set_inval(v, record_inval, NULL);
	ninval = 0;
	is_int(verb(v, 1000, "trash.restore", (struct vv_admin_arg[]){ { "path", "/products/solo" } }, 1,
		    &rep), 0, "trash.restore /products/solo");
	vv_vault_set_inval(v, NULL, NULL);
	ok(invalidated(prod.ino), "asks the kernel to drop /products' inode (its listing)");
	ok(x == sub, "same inode");
	is_int(lk(v, &root_c, sub, "deep", &x), 0, "deep is back");
	ok(x == deep, "same inode");
	is_int(lk(v, &root_c, deep, "f", &x), 0, "f is back");
	is_int(get(v, &root_c, x, buf, sizeof(buf)), 6, "f reads");
	is_str(buf, "deep-f", "its bytes");
	is_int((int)vv_vault_getxattr(v, &root_c, x, "user.tag", buf, sizeof(buf)), 4, "its xattr");
	is_int(vv_vault_getattr(v, &root_c, sub, &a), 0, "getattr sub");
	is_int((int)(a.mode & 07777), 0750, "its mode");
	is_int((int)a.uid, 1000, "its owner");
	is_int((int)a.nlink, 3, "nlink 3 (deep is back)");

	/* --- purge frees chunks; verbs --------------------------------------- */
	{
		size_t before;
		is_int(vv_vault_unlink(v, &u1000, sub, "big"), 0, "rm sub/big again");
		is_int(vv_vault_sync(v), 0, "sync");
		before = chunk_files();
		is_int(verb(v, 0, "trash.list", NULL, 0, &rep), 0, "trash.list as root");
		ok(rep.body && strstr(rep.body, "/products/sub/big") && strstr(rep.body, "/products/part-3.npy"),
		   "lists the original paths");
		is_int(verb(v, 1001, "trash.list", (struct vv_admin_arg[]){ { "json", "1" } }, 1, &rep), 0,
		       "trash.list as 1001, json");
		ok(rep.body && strstr(rep.body, "\"/products/part-3.npy\"") && !strstr(rep.body, "big"),
		   "1001 sees the 0644 part-3 but not the 0644 big under 0750 sub");
		is_int(verb(v, 1001, "trash.purge", (struct vv_admin_arg[]){ { "all", "1" } }, 1, &rep), 0,
		       "trash.purge all as 1001");
		/* /products is 0777 without the sticky bit: 1001 could have
		 * removed the 0644 one it sees, not the 0600 one or sub/big. */
		ok(strstr(rep.msg, "1 item(s) purged") && rep.body && !strstr(rep.body, "big"),
		   "purges what 1001 could have removed, nothing else");
		is_int(verb(v, 1000, "trash.purge", (struct vv_admin_arg[]){ { "path", "/products/sub/big" } }, 1,
			    &rep), 0, "1000 purges /products/sub/big");
		is_int(vv_vault_sync(v), 0, "sync");
		ok(chunk_files() < before, "its chunks are gone");
	}

	/* --- a collection's key waits for the purge -------------------------- */
	{
		uint64_t cf;
		is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "coll2", 0755, &a), 0, "mkdir /coll2");
		vv_vault_forget(v, a.ino, 1);
		is_int(put(v, &root_c, a.ino, "seg", "coll2-data", 10, 0644, &cf), 0, "a file in it");
		is_int(vv_vault_unlink(v, &root_c, a.ino, "seg"), 0, "rm -rf /coll2: the file");
		is_int(vv_vault_rmdir(v, &root_c, VV_ROOT_INO, "coll2"), 0, "and the collection");
		is_int(vv_vault_close(v), 0, "close");
		v = open_v(30 * 86400);
		ok(v != NULL, "reopen");
		is_int(verb(v, 0, "trash.restore", (struct vv_admin_arg[]){ { "path", "/coll2" } }, 1, &rep), 0,
		       "restore /coll2 after a reopen");
		is_int(lk(v, &root_c, VV_ROOT_INO, "coll2", &x), 0, "it is back");
		is_int(lk(v, &root_c, x, "seg", &x), 0, "with its file");
		is_int(get(v, &root_c, x, buf, sizeof(buf)), 10, "which still decrypts (key kept)");
	}

	/* --- rm -rf marks the parts of a tree; they settle when looked at ----- */
	{
		uint64_t rr, dd, e, g, y;
		is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "rr", 0777, &a), 0, "mkdir /rr");
		rr = a.ino;
		vv_vault_forget(v, rr, 1);
		is_int(vv_vault_mkdir(v, &root_c, rr, "dd", 0777, &a), 0, "mkdir /rr/dd (0777)");
		dd = a.ino;
		vv_vault_forget(v, dd, 1);
		is_int(put(v, &u1000, dd, "a", "aa", 2, 0644, NULL), 0, "dd/a");
		is_int(put(v, &u1000, dd, "b", "bb", 2, 0644, NULL), 0, "dd/b");
		is_int(put(v, &u1001, dd, "c", "cc", 2, 0644, NULL), 0, "1001: dd/c");
		is_int(vv_vault_unlink(v, &u1000, dd, "a"), 0, "1000 removes dd/a");
		is_int(vv_vault_unlink(v, &u1001, dd, "c"), 0, "1001 removes dd/c in between");
		is_int(vv_vault_unlink(v, &u1000, dd, "b"), 0, "1000 removes dd/b");
		is_int(vv_vault_rmdir(v, &u1000, rr, "dd"), 0, "1000 removes dd (rm -rf)");
		is_int(lk(v, &root_c, VV_TRASH_FILES_INO, "a", NULL), VV_ENOENT, "a part of the tree is no item");
		is_int(lk(v, &root_c, VV_TRASH_INFO_INO, "b.trashinfo", NULL), VV_ENOENT, "and has no .trashinfo");
		is_int(list(v, &root_c, VV_TRASH_FILES_INO, &s), 0, "list .trash/files");
		ok(strstr(s.buf, "dd") && strstr(s.buf, "c") && !strstr(s.buf, " a") && !strstr(s.buf, " b"),
		   "dd, and 1001's c (not swallowed by 1000's rm -rf); not a or b");
		is_int(verb(v, 0, "trash.list", NULL, 0, &rep), 0, "trash.list");
		ok(rep.body && strstr(rep.body, "/rr/dd/c") && !strstr(rep.body, "/rr/dd/a") &&
		   !strstr(rep.body, "/rr/dd/b"), "lists /rr/dd and /rr/dd/c, not the parts");
		is_int(vv_vault_getattr(v, &root_c, dd, &a), 0, "getattr dd");
		is_int((int)a.nlink, 2, "nlink 2");
		is_int(lk(v, &u1000, dd, "a", &y), 0, "lookup dd/a in the trashed tree (settles it)");
		is_int(get(v, &u1000, y, buf, sizeof(buf)), 2, "reads");
		is_str(buf, "aa", "its bytes");
		is_int(list(v, &u1000, dd, &s), 0, "list the trashed dd");
		is_str(s.buf, "a b", "a and b");
		is_int(verb(v, 1000, "trash.restore", (struct vv_admin_arg[]){ { "path", "/rr/dd" } }, 1, &rep), 0,
		       "restore /rr/dd");
		is_int(lk(v, &root_c, dd, "b", NULL), 0, "dd/b is back");

		/* a part restored alone before the rmdir; the directory renamed
		 * after its file was removed */
		is_int(vv_vault_mkdir(v, &u1000, rr, "e", 0755, &a), 0, "mkdir /rr/e");
		e = a.ino;
		vv_vault_forget(v, e, 1);
		is_int(put(v, &u1000, e, "f", "ff", 2, 0644, NULL), 0, "e/f");
		is_int(vv_vault_unlink(v, &u1000, e, "f"), 0, "rm e/f");
		is_int(vv_vault_rename(v, &u1000, VV_TRASH_FILES_INO, "f", e, "f", 0), 0, "mv it back alone");
		is_int(vv_vault_unlink(v, &u1000, e, "f"), 0, "rm e/f again");
		is_int(vv_vault_rename(v, &u1000, rr, "e", rr, "e2", 0), 0, "mv e e2");
		is_int(vv_vault_rmdir(v, &u1000, rr, "e2"), 0, "rmdir e2");
		is_int(verb(v, 0, "trash.list", NULL, 0, &rep), 0, "trash.list");
		ok(rep.body && strstr(rep.body, "/rr/e2") && !strstr(rep.body, "/rr/e/f"), "one item: /rr/e2");
		is_int(verb(v, 1000, "trash.restore", (struct vv_admin_arg[]){ { "path", "/rr/e2" } }, 1, &rep), 0,
		       "restore /rr/e2");
		is_int(lk(v, &root_c, e, "f", &y), 0, "e2/f is back");
		is_int(get(v, &root_c, y, buf, sizeof(buf)), 2, "and reads");

		/* parts left at close are settled by then: their names in
		 * .trash/files are free again */
		is_int(vv_vault_mkdir(v, &u1000, rr, "g", 0755, &a), 0, "mkdir /rr/g");
		g = a.ino;
		vv_vault_forget(v, g, 1);
		is_int(put(v, &u1000, g, "h", "hh", 2, 0644, NULL), 0, "g/h");
		is_int(vv_vault_unlink(v, &u1000, g, "h"), 0, "rm g/h");
		is_int(vv_vault_rmdir(v, &u1000, rr, "g"), 0, "rmdir g");
		is_int(vv_vault_close(v), 0, "close with a tree's part unsettled");
		v = open_v(30 * 86400);
		ok(v != NULL, "reopen");
		is_int(put(v, &u1000, rr, "h", "h2", 2, 0644, NULL), 0, "a new /rr/h");
		is_int(vv_vault_unlink(v, &u1000, rr, "h"), 0, "rm /rr/h");
		is_int(lk(v, &root_c, VV_TRASH_FILES_INO, "h", &y), 0, "it is .trash/files/h (g's part left it free)");
		is_int(get(v, &root_c, y, buf, sizeof(buf)), 2, "reads");
		is_str(buf, "h2", "the new one");
		is_int(lk(v, &root_c, g, "h", &y), 0, "g/h is inside the trashed g");
		is_int(get(v, &root_c, y, buf, sizeof(buf)), 2, "reads");
		is_str(buf, "hh", "the old one");
		/* two items once named alike make the rmdir move its chain
		 * item by item: a subdirectory with parts of its own settles
		 * then, so restoring the top brings them back too */
		{
			uint64_t p, sd;
			is_int(vv_vault_mkdir(v, &u1000, rr, "p", 0755, &a), 0, "mkdir /rr/p");
			p = a.ino;
			vv_vault_forget(v, p, 1);
			is_int(vv_vault_mkdir(v, &u1000, p, "s", 0755, &a), 0, "mkdir p/s");
			sd = a.ino;
			vv_vault_forget(v, sd, 1);
			is_int(put(v, &u1000, sd, "k", "kk", 2, 0644, NULL), 0, "p/s/k");
			is_int(vv_vault_unlink(v, &u1000, sd, "k"), 0, "rm p/s/k");
			is_int(vv_vault_rmdir(v, &u1000, p, "s"), 0, "rmdir p/s (k is its part)");
			is_int(put(v, &u1000, p, "x", "x1", 2, 0644, NULL), 0, "p/x");
			is_int(vv_vault_unlink(v, &u1000, p, "x"), 0, "rm p/x");
			is_int(put(v, &u1000, p, "x", "x2", 2, 0644, NULL), 0, "p/x again");
			is_int(vv_vault_unlink(v, &u1000, p, "x"), 0, "rm p/x again");
			is_int(vv_vault_rmdir(v, &u1000, rr, "p"), 0, "rmdir p");
			is_int(verb(v, 1000, "trash.restore", (struct vv_admin_arg[]){ { "path", "/rr/p" } }, 1,
				    &rep), 0, "restore /rr/p");
			is_int(lk(v, &root_c, sd, "k", &y), 0, "p/s/k is back");
			is_int(get(v, &root_c, y, buf, sizeof(buf)), 2, "reads");
			is_int(lk(v, &root_c, p, "x", &y), 0, "p/x is back");
			is_int(get(v, &root_c, y, buf, sizeof(buf)), 2, "reads");
			is_str(buf, "x2", "the newer x joined");
			is_int(verb(v, 0, "trash.list", NULL, 0, &rep), 0, "trash.list");
			ok(rep.body && strstr(rep.body, "/rr/p/x"), "the older x stays an item of its own");
		}
		{
			char out[64];
			int r = vv_vault_fsck(v, false, NULL, NULL, &(struct vv_fsck_report){ 0 });
			snprintf(out, sizeof(out), "fsck clean with trees in the trash (%s)", vv_strerror(r));
			is_int(r, 0, out);
		}
	}

	/* --- trash.restore picks among the caller's candidates only: items
	 * hidden from it (another user's 0600 file) and items it could not
	 * have removed (another user's, in a sticky directory) are never
	 * taken in place of its own, and a refusal reads the same whether a
	 * hidden item exists or nothing does. */
	{
		uint64_t sh, y;
		char miss[256];
		is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "sh", 01777, &a), 0, "mkdir /sh (1777)");
		sh = a.ino;
		vv_vault_forget(v, sh, 1);
		is_int(put(v, &u1000, sh, "sx", "mine", 4, 0644, NULL), 0, "1000 writes /sh/sx");
		is_int(vv_vault_unlink(v, &u1000, sh, "sx"), 0, "1000 removes it");
		is_int(put(v, &u1001, sh, "sx", "open", 4, 0644, NULL), 0, "1001 writes /sh/sx (0644)");
		is_int(vv_vault_unlink(v, &u1001, sh, "sx"), 0, "1001 removes it (1000 sees it, could not remove it)");
		is_int(put(v, &u1001, sh, "sx", "hide", 4, 0600, NULL), 0, "1001 writes /sh/sx (0600)");
		is_int(vv_vault_unlink(v, &u1001, sh, "sx"), 0, "1001 removes it (hidden from 1000)");
		is_int(verb(v, 1000, "trash.restore", (struct vv_admin_arg[]){ { "path", "/sh/sx" } }, 1, &rep), 0,
		       "1000: trash.restore /sh/sx (two newer items of 1001's)");
		is_int(lk(v, &root_c, sh, "sx", &y), 0, "/sh/sx is back");
		is_int(get(v, &root_c, y, buf, sizeof(buf)), 4, "reads");
		is_str(buf, "mine", "1000's own");
		is_int(verb(v, 1000, "trash.restore", (struct vv_admin_arg[]){ { "path", "/sh/sx" } }, 1, &rep),
		       VV_EPERM, "1000: trash.restore /sh/sx again: only 1001's visible item is left");
		ok(strstr(rep.msg, "/sh/sx: you could not have removed it") != NULL, "refused naming that one");
		/* by name: the hidden item's name is refused as a name nothing has */
		is_int(lk(v, &u1001, VV_TRASH_FILES_INO, "sx.3", &y), 0, "1001's hidden item is .trash/files/sx.3");
		is_int(verb(v, 1000, "trash.restore", (struct vv_admin_arg[]){ { "name", "sx.9" } }, 1, &rep),
		       VV_ENOENT, "1000: trash.restore name=sx.9 (none): ENOENT");
		snprintf(miss, sizeof(miss), "%s", rep.msg);
		is_int(verb(v, 1000, "trash.restore", (struct vv_admin_arg[]){ { "name", "sx.3" } }, 1, &rep),
		       VV_ENOENT, "1000: trash.restore name=sx.3 (hidden): ENOENT");
		ok(strstr(miss, "sx.9 is not in the trash") && strstr(rep.msg, "sx.3 is not in the trash") &&
		   strcmp(strstr(miss, " is not"), strstr(rep.msg, " is not")) == 0, "in the same words");
		is_int(put(v, &u1001, sh, "z", "zz", 2, 0600, NULL), 0, "1001 writes /sh/z (0600)");
		is_int(vv_vault_unlink(v, &u1001, sh, "z"), 0, "1001 removes it");
		is_int(verb(v, 1000, "trash.restore", (struct vv_admin_arg[]){ { "path", "/sh/w" } }, 1, &rep),
		       VV_ENOENT, "1000: trash.restore /sh/w (none): ENOENT");
		snprintf(miss, sizeof(miss), "%s", rep.msg);
		is_int(verb(v, 1000, "trash.restore", (struct vv_admin_arg[]){ { "path", "/sh/z" } }, 1, &rep),
		       VV_ENOENT, "1000: trash.restore /sh/z (hidden): ENOENT");
		ok(strcmp(strstr(miss, " is not"), strstr(rep.msg, " is not")) == 0 && (!rep.body || !rep.body[0]),
		   "in the same words, no body");
		is_int(vv_vault_unlink(v, &u1000, sh, "sx"), 0, "1000 removes /sh/sx again (newest, 1001 sees it)");
		is_int(verb(v, 1001, "trash.restore", (struct vv_admin_arg[]){ { "path", "/sh/sx" } }, 1, &rep), 0,
		       "1001: trash.restore /sh/sx (a newer item of 1000's)");
		is_int(lk(v, &root_c, sh, "sx", &y), 0, "/sh/sx is back");
		is_int(get(v, &root_c, y, buf, sizeof(buf)), 4, "reads");
		is_str(buf, "hide", "1001's newest");
	}

	/* --- retention at open ------------------------------------------------ */
	is_int(vv_vault_close(v), 0, "close");
	sleep(2);
	v = open_v(1);
	ok(v != NULL, "reopen with a 1 s retention");
	is_int(list(v, &root_c, VV_TRASH_FILES_INO, &s), 0, "list");
	is_int(s.n, 0, "everything expired was purged at open");
	{
		char out[64];
		int r = vv_vault_fsck(v, false, NULL, NULL, &(struct vv_fsck_report){ 0 });
		snprintf(out, sizeof(out), "fsck clean after purges (%s)", vv_strerror(r));
		is_int(r, 0, out);
	}

	/* --- a trash item by inode: an index probe, not a scan -------------- */
	{
		sqlite3 *db = meta_db(v->meta);

		ok(trash_by_ino_indexed(db), "a trash row by inode is found through trash_ino");
		ok(sqlite3_exec(db, "DROP INDEX trash_ino", NULL, NULL, NULL) == SQLITE_OK,
		   "a store made before the index (dropped)");
		ok(!trash_by_ino_indexed(db), "  then the row is found by a scan");
		is_int(vv_meta_upgrade(v->meta), 0, "the writable open's upgrade");
		ok(trash_by_ino_indexed(db), "  adds the index back");
	}

	/* --- trash off: final -------------------------------------------------- */
	is_int(vv_vault_close(v), 0, "close");
	v = open_v(0);
	is_int(put(v, &root_c, prod.ino, "gone", "g", 1, 0644, NULL), 0, "a file");
	is_int(vv_vault_unlink(v, &root_c, prod.ino, "gone"), 0, "rm with the trash off");
	is_int(list(v, &root_c, VV_TRASH_FILES_INO, &s), 0, "list");
	is_int(s.n, 0, "nothing in the trash");
	vv_admin_reply_release(&rep);
	is_int(vv_vault_close(v), 0, "close");

	/* --- a store in the older layout (main before the trash rows became
	 * the names: entries in .trash/files, parts in trash_kids, three
	 * indexes): a read-only open reads it as it is (the stand-in for
	 * trash_parts cannot be added to the store), a read-write open
	 * migrates it in one transaction, nothing lost. */
	v = open_v(30 * 86400);
	is_int(put(v, &root_c, prod.ino, "old", "o", 1, 0644, NULL), 0, "a file");
	is_int(vv_vault_unlink(v, &root_c, prod.ino, "old"), 0, "rm: an item");
	{
		struct vv_attr da;
		is_int(vv_vault_mkdir(v, &root_c, prod.ino, "olddir", 0755, &da), 0, "mkdir olddir");
		vv_vault_forget(v, da.ino, 1);
		is_int(put(v, &root_c, da.ino, "k", "kk", 2, 0644, NULL), 0, "olddir/k");
		is_int(vv_vault_unlink(v, &root_c, da.ino, "k"), 0, "rm olddir/k");
		is_int(vv_vault_rmdir(v, &root_c, prod.ino, "olddir"), 0, "rmdir olddir: k is a part");
	}
	is_int(vault_txn(v), 0, "a transaction");
	is_int(meta_exec(v->meta,
			 "CREATE TABLE trash_kids(id INTEGER PRIMARY KEY);"
			 "INSERT INTO trash_kids SELECT id FROM trash_parts;"
			 "DROP TABLE trash_parts;"
			 "DROP INDEX trash_name;"
			 "CREATE INDEX trash_oparent ON trash(oparent);"
			 "CREATE INDEX trash_deleted ON trash(deleted);"
			 "DROP INDEX trash_ino;"                  /* made again as it was */
			 "CREATE INDEX trash_ino ON trash(ino);"
			 "INSERT INTO dirents(parent, name, ino, mode) SELECT 1152921504606846977, t.name,"
			 " t.ino, i.mode FROM trash t JOIN inodes i ON i.ino=t.ino;"), 0,
	       "rewrite the trash in the older layout");
	is_int(vv_vault_close(v), 0, "close");
	{
		size_t n0, n1;
		char *b0 = store_bytes(&n0), *b1;
		v = open_flags(30 * 86400, VV_VAULT_READONLY);
		ok(v != NULL, "open read-only");
		if (v) {
			is_int(list(v, &root_c, VV_TRASH_FILES_INO, &s), 0, "list .trash/files");
			ok(strstr(s.buf, "old") && strstr(s.buf, "olddir") && !strstr(s.buf, "k"),
			   "the items show, not the part");
			is_int(lk(v, &root_c, VV_TRASH_INFO_INO, "old.trashinfo", NULL), 0, "its .trashinfo too");
			is_int(verb(v, 0, "trash.list", NULL, 0, &rep), 0, "trash.list");
			ok(rep.body && strstr(rep.body, "/products/old"), "lists it");
			vv_admin_reply_release(&rep);
			{
				struct vv_fsck_report fr = { 0 };
				char out[80];
				int r = vv_vault_fsck(v, false, NULL, NULL, &fr);
				snprintf(out, sizeof(out), "fsck of the older layout read-only: clean (%s, %llu orphans)",
					 vv_strerror(r), (unsigned long long)fr.orphan_inodes);
				ok(r == 0 && fr.errors == 0 && fr.orphan_inodes == 0, out);
			}
			is_int(vv_vault_close(v), 0, "close");
		}
		b1 = store_bytes(&n1);
		ok(b0 && b1 && n0 > 0 && n0 == n1 && memcmp(b0, b1, n0) == 0,
		   "the read-only open left meta.db and its WAL byte for byte as they were");
		free(b0);
		free(b1);
	}
	v = open_v(30 * 86400);
	ok(v != NULL, "a read-write open migrates");
	if (v) {
		uint64_t ino, dino = 0;
		ok(meta_has_table(v->meta, "trash_parts") && !meta_has_table(v->meta, "trash_kids"),
		   "trash_parts replaces trash_kids");
		ok(trash_by_ino_indexed(meta_db(v->meta)), "trash_ino stays (a row by inode)");
		is_int(vv_meta_dirent_get(v->meta, VV_TRASH_FILES_INO, "old", &ino), VV_ENOENT,
		       "no entry left in .trash/files");
		is_int(list(v, &root_c, VV_TRASH_FILES_INO, &s), 0, "list");
		ok(strstr(s.buf, "old") && strstr(s.buf, "olddir") && !strstr(s.buf, "k"), "the items are there");
		is_int(lk(v, &root_c, VV_TRASH_FILES_INO, "olddir", &dino), 0, "lookup olddir");
		is_int(lk(v, &root_c, dino, "k", NULL), 0, "its part k is inside");
		{
			struct vv_fsck_report fr = { 0 };
			char out[80];
			int r = vv_vault_fsck(v, false, NULL, NULL, &fr);
			snprintf(out, sizeof(out), "fsck after the migration: clean (%s)", vv_strerror(r));
			ok(r == 0 && fr.errors == 0 && fr.orphan_inodes == 0, out);
		}
		/* Damage fsck must name: a row whose inode is gone, an entry in
		 * .trash/files without a row (the older layout's leftovers). */
		is_int(vault_txn(v), 0, "a transaction");
		is_int(meta_exec(v->meta,
				 "INSERT INTO trash(ino, name, path, oparent, oname, deleted, uid, coll, size, gate)"
				 " VALUES(999999, X'6768', X'2f6768', 1, X'6768', 0, 0, 0, 0, X'');"
				 "INSERT INTO dirents(parent, name, ino, mode) SELECT 1152921504606846977, X'7374726179',"
				 " ino, mode FROM inodes WHERE ino != 1 LIMIT 1;"), 0, "plant a ghost row and a stray entry");
		{
			struct vv_fsck_report fr = { 0 };
			vv_vault_fsck(v, false, NULL, NULL, &fr);
			ok(fr.errors >= 2, "fsck names both");
		}
		is_int(meta_exec(v->meta, "DELETE FROM trash WHERE ino=999999;"
				 "DELETE FROM dirents WHERE parent=1152921504606846977;"), 0, "take them out");
		is_int(vv_vault_close(v), 0, "close");
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (system(cmd) != 0)
		printf("# cannot remove %s\n", top);
	return tap_done();
}
