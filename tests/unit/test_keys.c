/*
 * test_keys.c - collection keys (engine/vault_keys.c): the one test before a
 * key goes (vv_meta_coll_needed) for each kind of user, and shredding on
 * disk: once a drop has settled, no byte of the dropped key's wrapped form
 * is left in meta.db (live pages, free space, freed pages) or its WAL,
 * while every other key still is (docs/design.md "Collections and keys").
 *
 * The scanner decrypts every page of meta.db (and of snapshot files, byte
 * copies of it) and every frame of the WAL, valid or left over from before
 * a restart, by the layout at the top of engine/meta_vfs.c, with the
 * crypto module's own functions and the store's meta key.
 *
 * Also a tool for t6047 (a real mount):
 *   test_keys keys STORE PASSFILE        prints "ID HEX" per collection key
 *                                        (the store unmounted)
 *   test_keys scan STORE PASSFILE HEX..  prints "HEX N" (pages or frames
 *                                        holding any third of it), then
 *                                        "pages P frames F unreadable U"
 */
#include <dirent.h>
#include <pthread.h>
#include <unistd.h>
#include <stdint.h>
#include <sys/stat.h>

#include "buf.h"
#include "crypto_int.h"
#include "meta_int.h"
#include "meta_sql_int.h"
#include "meta_vfs_int.h"
#include "vault_int.h"
#include "vault_unit.h"
#include "vecvault/admin.h"
#include "vecvault/store.h"

#define NMAX 128

/* --- the scanner ----------------------------------------------------------- */

struct scan {
	const uint8_t (*key)[VV_WRAPPED_BYTES];  /* wrapped keys to look for */
	size_t n;
	int hits[NMAX];          /* pages or frames holding a third of key i */
	unsigned pages, frames, unreadable;
};

static void look(struct scan *sc, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < sc->n; i++)
		for (size_t off = 0; off < VV_WRAPPED_BYTES; off += VV_WRAPPED_BYTES / 3)
			if (memmem(p, len, sc->key[i] + off, VV_WRAPPED_BYTES / 3)) {
				sc->hits[i]++;
				break;
			}
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b = NULL;
	long n;

	*len = 0;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (b = malloc((size_t)n)) && fread(b, 1, (size_t)n, f) == (size_t)n)
		*len = (size_t)n;
	fclose(f);
	if (!*len) {
		free(b);
		b = NULL;
	}
	return b;
}

static bool blank(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* A main file (meta.db or a snapshot copy): page n at (n-1)*P. */
static void scan_main(struct scan *sc, const char *path, const uint8_t k1[VV_KEY_BYTES], uint32_t psz)
{
	static const char AD[] = "vecvault meta.db page";
	size_t len, body = psz - VV_METAVFS_RESERVE;
	uint8_t *b = slurp(path, &len), ad[sizeof(AD) + 4];

	for (size_t off = 0; b && off + psz <= len; off += psz) {
		uint8_t *pg = b + off;

		if (blank(pg, psz))
			continue;               /* never written, or a snapshot's free page */
		memcpy(ad, AD, sizeof(AD) - 1);
		vv_put_le32(ad + sizeof(AD) - 1, (uint32_t)(off / psz + 1));
		sc->pages++;
		if (vv_xchacha_open(pg, pg, body, pg + body + VV_XNONCE_BYTES, ad, sizeof(AD) - 1 + 4,
				    pg + body, k1) < 0) {
			sc->unreadable++;
			continue;
		}
		look(sc, pg, body);
	}
	free(b);
}

/* The WAL: every frame, whatever its salts (frames of earlier generations
 * of the log stay until overwritten). */
static void scan_wal(struct scan *sc, const char *path, const uint8_t k2[VV_KEY_BYTES], uint32_t psz)
{
	static const char AD[] = "vecvault meta.db wal frame";
	size_t len, body = psz - VV_METAVFS_RESERVE, n = sizeof(AD) - 1;
	uint8_t *b = slurp(path, &len), ad[sizeof(AD) + 20];

	for (size_t off = 32; b && off + 24 + psz <= len; off += 24 + psz) {
		uint8_t *h = b + off, *pg = h + 24;

		if (blank(h, 24 + psz))
			continue;
		memcpy(ad, AD, n);
		vv_put_le32(ad + n, vv_get_be32(h));
		memcpy(ad + n + 4, h + 8, 8);
		vv_put_le64(ad + n + 12, (uint64_t)off);
		sc->frames++;
		if (vv_xchacha_open(pg, pg, body, pg + body + VV_XNONCE_BYTES, ad, n + 20, pg + body,
				    k2) < 0) {
			sc->unreadable++;
			continue;
		}
		look(sc, pg, body);
	}
	free(b);
}

/* The meta key of the store at dir (not locked: it may be mounted). */
static int meta_key(const char *dir, const char *pass, uint8_t mkey[VV_KEY_BYTES], uint32_t *psz)
{
	struct vv_store *s = NULL;
	int r;

	if ((r = vv_store_open(dir, VV_STORE_NOLOCK | VV_STORE_ALLOW_TEST_KDF, &s)) == 0 &&
	    (r = vv_store_unlock(s, pass, strlen(pass), NULL)) == 0 &&
	    (r = vv_store_subkey(s, 1, VV_SUBKEY_META, mkey)) == 0)
		*psz = vv_store_page_size(s);
	vv_store_close(s);
	return r;
}

/* Scan meta.db, meta.db-wal and every snapshot file of the store at dir. */
static int scan_store(const char *dir, const char *pass, struct scan *sc)
{
	uint8_t mkey[VV_KEY_BYTES], k1[VV_KEY_BYTES], k2[VV_KEY_BYTES];
	char path[600];
	uint32_t psz = 0;
	DIR *d;
	struct dirent *e;
	int r;

	memset(sc->hits, 0, sizeof(sc->hits));
	sc->pages = sc->frames = sc->unreadable = 0;
	if ((r = meta_key(dir, pass, mkey, &psz)) < 0 || (r = vv_subkey(k1, mkey, 1, "vvmetavf")) < 0 ||
	    (r = vv_subkey(k2, mkey, 2, "vvmetavf")) < 0)
		return r;
	snprintf(path, sizeof(path), "%s/meta.db", dir);
	scan_main(sc, path, k1, psz);
	snprintf(path, sizeof(path), "%s/meta.db-wal", dir);
	scan_wal(sc, path, k2, psz);
	snprintf(path, sizeof(path), "%s/snapshots", dir);
	if ((d = opendir(path))) {
		while ((e = readdir(d)))
			if (e->d_name[0] != '.') {
				char p2[900];
				snprintf(p2, sizeof(p2), "%s/%s", path, e->d_name);
				scan_main(sc, p2, k1, psz);
			}
		closedir(d);
	}
	vv_memzero(mkey, sizeof(mkey));
	vv_memzero(k1, sizeof(k1));
	vv_memzero(k2, sizeof(k2));
	return 0;
}

/* --- the vault side ---------------------------------------------------------- */

static uint8_t wrapped[NMAX][VV_WRAPPED_BYTES];
static uint32_t coll_of[NMAX];

/* The collection id of /name (the one key the mkdir added). */
static int mkcoll(struct vv_vault *v, const char *name, uint64_t *ino, uint32_t *coll)
{
	uint32_t *before = NULL, *after = NULL;
	size_t nb = 0, na = 0;
	struct vv_attr a;
	int r;

	pthread_mutex_lock(&v->mu);
	r = vv_meta_coll_ids(v->meta, v->root_coll, &before, &nb);
	pthread_mutex_unlock(&v->mu);
	if (r < 0 || (r = vv_vault_mkdir(v, &root_c, VV_ROOT_INO, name, 0755, &a)) < 0)
		goto out;
	vv_vault_forget(v, a.ino, 1);
	*ino = a.ino;
	pthread_mutex_lock(&v->mu);
	r = vv_meta_coll_ids(v->meta, v->root_coll, &after, &na);
	pthread_mutex_unlock(&v->mu);
	if (r == 0)
		r = na == nb + 1 ? 0 : VV_EIO;
	for (size_t i = 0; r == 0 && i < na; i++) {
		bool seen = false;
		for (size_t j = 0; j < nb; j++)
			seen |= after[i] == before[j];
		if (!seen)
			*coll = after[i];
	}
out:
	free(before);
	free(after);
	return r;
}

static int put(struct vv_vault *v, uint64_t dir, const char *name, size_t n, uint64_t *ino)
{
	struct vv_attr a;
	struct vv_file *fh;
	uint8_t buf[4096];
	int r = vv_vault_create(v, &root_c, dir, name, 0644, O_WRONLY, &a, &fh);

	if (r < 0)
		return r;
	memset(buf, 'k', sizeof(buf));
	for (size_t off = 0; r == 0 && off < n; off += sizeof(buf))
		if (vv_vault_write(v, &root_c, fh, buf, n - off < sizeof(buf) ? n - off : sizeof(buf),
				   (off_t)off) < 0)
			r = VV_EIO;
	vv_vault_release(v, fh);
	vv_vault_forget(v, a.ino, 1);
	if (ino)
		*ino = a.ino;
	return r;
}

static bool needed(struct vv_vault *v, uint32_t coll, uint64_t except)
{
	bool nd = true;
	int r;

	pthread_mutex_lock(&v->mu);
	r = vv_meta_coll_needed(v->meta, coll, except, &nd);
	pthread_mutex_unlock(&v->mu);
	return r == 0 && nd;
}

static bool has_key(struct vv_vault *v, uint32_t coll)
{
	uint8_t w[VV_WRAPPED_BYTES];
	size_t len;
	int r;

	pthread_mutex_lock(&v->mu);
	r = vv_meta_coll_get(v->meta, coll, w, sizeof(w), &len);
	pthread_mutex_unlock(&v->mu);
	return r == 0;
}

static int keep_wrapped(struct vv_vault *v, int i)
{
	size_t len;
	int r;

	pthread_mutex_lock(&v->mu);
	r = vv_meta_coll_get(v->meta, coll_of[i], wrapped[i], VV_WRAPPED_BYTES, &len);
	pthread_mutex_unlock(&v->mu);
	return r == 0 && len == VV_WRAPPED_BYTES ? 0 : VV_EIO;
}

static int verb(struct vv_vault *v, const char *name, const char *arg, const char *val)
{
	struct vv_admin_arg args[1] = { { arg, val } };
	struct vv_admin_req rq = { .peer = { .uid = 0, .gid = 0, .pid = 1 }, .client = "local",
				   .verb = name, .nargs = arg ? 1 : 0, .args = args };
	struct vv_admin_reply rep;
	int r;

	vv_admin_reply_init(&rep);
	r = vv_admin_call(v, &rq, &rep);
	vv_admin_reply_release(&rep);
	return r;
}

static struct vv_vault *open_with(const char *dir, const char *st, int64_t trash)
{
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT,
				   .state_dir = st, .trash_secs = trash };
	struct vv_vault *v = NULL;
	int r = vv_vault_open(dir, PASS, strlen(PASS), &o, &v);

	if (r < 0)
		printf("# open %s: %s\n", dir, vv_strerror(r));
	return v;
}

/* vv_meta_coll_needed, for each kind of user, through the vault's own
 * rows: a live file, a trashed one, one unlinked but open, a snapshot's
 * listing; and the key goes at the last of them. */
static void test_needed(void)
{
	struct vv_vault *v = open_with(store, state, 3600);
	uint64_t d, f, f2;
	uint32_t c;
	struct vv_file *fh;
	bool kc;

	if (!v) {
		ok(0, "open");
		return;
	}
	/* a key row and nothing else */
	pthread_mutex_lock(&v->mu);
	{
		uint8_t zero[VV_WRAPPED_BYTES] = { 0 };
		bool nd = true;
		ok(vault_txn(v) == 0 && vv_meta_coll_add(v->meta, zero, sizeof(zero), &c) == 0,
		   "a bare key row");
		ok(vv_meta_coll_needed(v->meta, c, 0, &nd) == 0 && !nd, "needed by nothing: no");
		ok(vv_meta_coll_del(v->meta, c) == 0 && vault_commit(v) == 0, "(removed)");
	}
	pthread_mutex_unlock(&v->mu);

	/* a live file */
	is_int(mkcoll(v, "live", &d, &c), 0, "mkdir /live");
	is_int(put(v, d, "f", 100, &f), 0, "/live/f");
	ok(needed(v, c, 0), "live file and directory: needed");
	ok(needed(v, c, f), "... but for the file: still (the directory's row)");
	ok(needed(v, c, d), "... but for the directory: still (the file's row)");
	ok(!needed(v, c + 1000, 0), "an unknown collection: not needed");

	/* a trashed file: its row stays, so does the key, after the rmdir */
	is_int(vv_vault_unlink(v, &root_c, d, "f"), 0, "rm /live/f (to the trash)");
	is_int(vv_vault_rmdir(v, &root_c, VV_ROOT_INO, "live"), 0, "rmdir /live");
	ok(needed(v, c, d), "trashed file: needed");
	ok(has_key(v, c), "trashed file: the key stays");
	is_int(verb(v, "trash.purge", "all", "1"), 0, "trash purge (all)");
	ok(!needed(v, c, 0), "purged: not needed");
	ok(!has_key(v, c), "purged: the key went");

	/* a file unlinked while open: the row of nlink 0 */
	is_int(mkcoll(v, "open", &d, &c), 0, "mkdir /open");
	is_int(put(v, d, "f", 70000, &f), 0, "/open/f (past inline)");
	is_int(vv_vault_open_file(v, &root_c, f, O_RDONLY, &fh, &kc), 0, "open it");
	is_int(verb(v, "trash.purge", "all", "1"), 0, "(trash emptied)");
	pthread_mutex_lock(&v->mu);
	v->trash.keep_ns = 0;
	pthread_mutex_unlock(&v->mu);
	is_int(vv_vault_unlink(v, &root_c, d, "f"), 0, "rm /open/f for good");
	is_int(vv_vault_rmdir(v, &root_c, VV_ROOT_INO, "open"), 0, "rmdir /open");
	ok(needed(v, c, 0), "unlinked but open: needed");
	ok(!needed(v, c, f), "... by that row alone (except)");
	{
		uint8_t b[16];
		is_int((int)vv_vault_read(v, fh, b, sizeof(b), 0), 16, "it still reads");
		ok(b[0] == 'k' && b[15] == 'k', "... its bytes");
	}
	vv_vault_release(v, fh);
	/* the sealer's job may hold the node a moment past the close */
	for (int i = 0; i < 200 && needed(v, c, 0); i++)
		usleep(10000);
	ok(!needed(v, c, 0), "last close: not needed");
	ok(!has_key(v, c), "last close: the key went");

	/* a snapshot's listing */
	is_int(mkcoll(v, "snap", &d, &c), 0, "mkdir /snap");
	is_int(put(v, d, "f", 100, &f2), 0, "/snap/f");
	is_int(verb(v, "snapshot.create", "name", "s1"), 0, "snapshot s1");
	is_int(vv_vault_unlink(v, &root_c, d, "f"), 0, "rm /snap/f");
	is_int(vv_vault_rmdir(v, &root_c, VV_ROOT_INO, "snap"), 0, "rmdir /snap");
	ok(needed(v, c, 0), "listed by a snapshot only: needed");
	ok(has_key(v, c), "... the key stays");
	is_int(verb(v, "snapshot.delete", "name", "s1"), 0, "snapshot delete s1");
	ok(!needed(v, c, 0), "snapshot gone: not needed");
	ok(!has_key(v, c), "... the key went");
	is_int(vv_vault_close(v), 0, "close");
}

/* A second name made in a removed directory would leave the file, once
 * its first name goes, reachable by no path: its collection's directory
 * then removes empty, and the row keeps the key of data nobody can name.
 * make() refused creation there; link did not.  Neither FUSE (the kernel
 * refuses a link into a dead directory) nor vv:// (vv_vault_reach refuses
 * a removed directory first) reaches it today: the vault's own check. */
static void test_link_dead_dir(void)
{
	struct vv_vault *v = open_with(store, state, 0);
	struct vv_attr a, sub;
	uint64_t d, f;
	uint32_t c;

	if (!v) {
		ok(0, "open");
		return;
	}
	is_int(mkcoll(v, "lk", &d, &c), 0, "mkdir /lk");
	is_int(vv_vault_mkdir(v, &root_c, d, "sub", 0755, &sub), 0, "mkdir /lk/sub (its lookup held)");
	is_int(put(v, d, "f", 100, &f), 0, "/lk/f");
	is_int(vv_vault_rmdir(v, &root_c, d, "sub"), 0, "rmdir /lk/sub");
	is_int(vv_vault_link(v, &root_c, f, sub.ino, "g", &a), VV_ENOENT,
	       "link into the removed directory: ENOENT");
	is_int(vv_vault_symlink(v, &root_c, sub.ino, "s", "f", &a), VV_ENOENT,
	       "symlink there: ENOENT");
	vv_vault_forget(v, sub.ino, 1);
	is_int(vv_vault_close(v), 0, "close");
}

static bool none_of(struct scan *sc, const int *idx, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (sc->hits[idx[i]]) {
			printf("# key %d (collection %u) in %d page(s)\n", idx[i], coll_of[idx[i]],
			       sc->hits[idx[i]]);
			return false;
		}
	return true;
}

static bool all_but(struct scan *sc, size_t n, const bool *gone)
{
	for (size_t i = 0; i < n; i++)
		if (!gone[i] && !sc->hits[i]) {
			printf("# kept key %zu (collection %u) not found\n", i, coll_of[i]);
			return false;
		}
	return true;
}

static off_t wal_size(const char *dir)
{
	char p[600];
	struct stat st;

	snprintf(p, sizeof(p), "%s/meta.db-wal", dir);
	return stat(p, &st) == 0 ? st.st_size : -1;
}

/* Shredding on disk: 120 collections (their keys span several pages of the
 * colls table), each with a file; drops of one, then of many (freeing
 * whole pages), then by a snapshot's deletion, then across a crash. */
static void test_shred(void)
{
	enum { N = 120 };
	struct vv_vault *v = open_with(store, state, 0);
	struct scan sc = { .key = wrapped, .n = N };
	uint64_t dir[N];
	bool gone[N] = { false };
	char name[32];
	int r = 0;

	if (!v) {
		ok(0, "open");
		return;
	}
	for (int i = 0; r == 0 && i < N; i++) {
		uint64_t f;
		snprintf(name, sizeof(name), "c%03d", i);
		if ((r = mkcoll(v, name, &dir[i], &coll_of[i])) == 0 &&
		    (r = put(v, dir[i], "seg", i % 3 ? 200 : 70000, &f)) == 0)
			r = keep_wrapped(v, i);
	}
	is_int(r, 0, "120 collections, a file in each");
	is_int(vv_vault_sync(v), 0, "sync");
	is_int(scan_store(store, PASS, &sc), 0, "scan");
	ok(all_but(&sc, N, gone), "every key is found by the scanner (decrypting pages and frames)");
	is_int((int)sc.unreadable, 0, "every page and frame decrypts");

	/* one drop: rm + rmdir */
	is_int(vv_vault_unlink(v, &root_c, dir[7], "seg"), 0, "rm /c007/seg");
	is_int(vv_vault_rmdir(v, &root_c, VV_ROOT_INO, "c007"), 0, "rmdir /c007");
	gone[7] = true;
	ok(!has_key(v, coll_of[7]), "its key row went");
	is_int(vv_vault_sync(v), 0, "sync (the drop's commit, then its settle)");
	ok(v->keys.shreds > 0, "the settle ran");
	is_int((int)wal_size(store), 0, "the WAL is empty");
	is_int(scan_store(store, PASS, &sc), 0, "scan");
	ok(none_of(&sc, (int[]){ 7 }, 1), "the dropped key is nowhere in meta.db or its WAL");
	ok(all_but(&sc, N, gone), "the other keys are all there");

	/* many drops in one commit: whole pages of the colls table freed */
	for (int i = 10; i < 100; i++) {
		snprintf(name, sizeof(name), "c%03d", i);
		if (vv_vault_unlink(v, &root_c, dir[i], "seg") < 0 ||
		    vv_vault_rmdir(v, &root_c, VV_ROOT_INO, name) < 0)
			r = VV_EIO;
		gone[i] = true;
	}
	is_int(r, 0, "rm -r /c10 .. /c99");
	/* more rows elsewhere after it, so freed pages may be reused */
	for (int i = 0; r == 0 && i < 20; i++) {
		snprintf(name, sizeof(name), "x%02d", i);
		r = put(v, dir[110], name, 3000, NULL);
	}
	is_int(r, 0, "20 more files");
	is_int(vv_vault_sync(v), 0, "sync");
	is_int(scan_store(store, PASS, &sc), 0, "scan");
	{
		int idx[90];
		for (int i = 0; i < 90; i++)
			idx[i] = 10 + i;
		ok(none_of(&sc, idx, 90), "90 dropped keys (whole pages of colls freed): nowhere");
	}
	ok(all_but(&sc, N, gone), "the other keys are all there");

	/* a snapshot lists c105; its deletion drops the key, the copy goes */
	is_int(verb(v, "snapshot.create", "name", "s2"), 0, "snapshot s2");
	is_int(vv_vault_unlink(v, &root_c, dir[105], "seg"), 0, "rm /c105/seg");
	is_int(vv_vault_rmdir(v, &root_c, VV_ROOT_INO, "c105"), 0, "rmdir /c105");
	is_int(vv_vault_sync(v), 0, "sync");
	is_int(scan_store(store, PASS, &sc), 0, "scan");
	ok(sc.hits[105] > 0, "the snapshot keeps c105's key (its row and its copy)");
	is_int(verb(v, "snapshot.delete", "name", "s2"), 0, "snapshot delete s2");
	gone[105] = true;
	is_int(vv_vault_sync(v), 0, "sync");
	is_int(scan_store(store, PASS, &sc), 0, "scan");
	ok(none_of(&sc, (int[]){ 105 }, 1), "c105's key: nowhere (row shredded, snapshot file removed)");
	ok(all_but(&sc, N, gone), "the other keys are all there");

	/* A crash between a drop's commit and its settle: the settle is held
	 * off (a checkpoint pass "runs"), the store copied as the disk holds
	 * it; the copy still has the key somewhere, and its next open
	 * shreds it. */
	{
		char copy[300], st2[300], cmd[1400];
		struct vv_vault *v2;

		meta_ckpt_hold(v->meta, true);
		if (vv_vault_unlink(v, &root_c, dir[110], "seg") < 0)
			r = VV_EIO;
		for (int i = 0; r == 0 && i < 20; i++) {
			snprintf(name, sizeof(name), "x%02d", i);
			r = vv_vault_unlink(v, &root_c, dir[110], name);
		}
		is_int(r, 0, "rm -r /c110");
		is_int(vv_vault_rmdir(v, &root_c, VV_ROOT_INO, "c110"), 0, "rmdir /c110 (settle held off)");
		is_int(vv_vault_sync(v), 0, "sync: the drop is durable");
		gone[110] = true;
		snprintf(copy, sizeof(copy), "%.250s/crash", top);
		snprintf(st2, sizeof(st2), "%.250s/crash-state", top);
		snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s' && cp -a '%s' '%s'", store, copy, state, st2);
		is_int(system(cmd), 0, "copy the store as it is on disk");
		meta_ckpt_hold(v->meta, false);
		is_int(scan_store(copy, PASS, &sc), 0, "scan the copy");
		ok(sc.hits[110] > 0, "before its settle the key is still on disk (the window)");
		v2 = open_with(copy, st2, 0);
		ok(v2 != NULL, "open the copy");
		is_int(scan_store(copy, PASS, &sc), 0, "scan it while open");
		ok(none_of(&sc, (int[]){ 110 }, 1), "the open settled: c110's key is nowhere");
		ok(all_but(&sc, N, gone), "the other keys are all there");
		is_int(vv_vault_close(v2), 0, "close the copy");
	}
	is_int(vv_vault_sync(v), 0, "sync (the held settle runs now)");
	is_int(scan_store(store, PASS, &sc), 0, "scan");
	ok(none_of(&sc, (int[]){ 110 }, 1), "and in the store itself");
	is_int(vv_vault_close(v), 0, "close");
	is_int(scan_store(store, PASS, &sc), 0, "scan after close");
	ok(all_but(&sc, N, gone), "after close the kept keys are all there");
	{
		int idx[N], k = 0;
		for (int i = 0; i < N; i++)
			if (gone[i])
				idx[k++] = i;
		ok(none_of(&sc, idx, (size_t)k), "and no dropped one");
	}
}

/* --- the tool ------------------------------------------------------------- */

static int read_pass(const char *file, char *pass, size_t cap)
{
	FILE *f = fopen(file, "r");
	size_t n;

	if (!f)
		return -1;
	n = fread(pass, 1, cap - 1, f);
	fclose(f);
	pass[n] = 0;
	if (n && pass[n - 1] == '\n')
		pass[n - 1] = 0;
	return 0;
}

static int tool(int argc, char **argv)
{
	char pass[512];
	struct scan sc = { .key = wrapped };

	if (argc < 4 || read_pass(argv[3], pass, sizeof(pass)) < 0) {
		fprintf(stderr, "usage: test_keys keys|scan STORE PASSFILE [HEX...]\n");
		return 2;
	}
	if (strcmp(argv[1], "keys") == 0) {
		uint8_t mkey[VV_KEY_BYTES];
		uint32_t psz, *ids = NULL;
		size_t n = 0;
		struct vv_meta *m = NULL;
		char path[600], hex[2 * VV_WRAPPED_BYTES + 1];
		int r;

		snprintf(path, sizeof(path), "%s/meta.db", argv[2]);
		if ((r = meta_key(argv[2], pass, mkey, &psz)) < 0 ||
		    (r = vv_meta_open(path, mkey, psz, VV_META_READONLY, &m)) < 0 ||
		    (r = vv_meta_coll_ids(m, 0, &ids, &n)) < 0) {
			fprintf(stderr, "test_keys: %s\n", vv_strerror(r));
			vv_meta_close(m);
			return 1;
		}
		for (size_t i = 0; i < n; i++) {
			uint8_t w[VV_WRAPPED_BYTES];
			size_t len;
			if (vv_meta_coll_get(m, ids[i], w, sizeof(w), &len) == 0 && len == sizeof(w)) {
				vv_hex_encode(hex, w, sizeof(w));
				printf("%u %s\n", ids[i], hex);
			}
		}
		free(ids);
		vv_memzero(mkey, sizeof(mkey));
		return vv_meta_close(m) < 0;
	}
	if (strcmp(argv[1], "scan") != 0 || argc - 4 > NMAX)
		return 2;
	for (int i = 4; i < argc; i++)
		if (vv_hex_decode(wrapped[i - 4], VV_WRAPPED_BYTES, argv[i], strlen(argv[i])) < 0) {
			fprintf(stderr, "test_keys: not a wrapped key: %s\n", argv[i]);
			return 2;
		}
	sc.n = (size_t)(argc - 4);
	if (scan_store(argv[2], pass, &sc) < 0) {
		fprintf(stderr, "test_keys: cannot unlock %s\n", argv[2]);
		return 1;
	}
	for (size_t i = 0; i < sc.n; i++)
		printf("%s %d\n", argv[4 + i], sc.hits[i]);
	printf("pages %u frames %u unreadable %u\n", sc.pages, sc.frames, sc.unreadable);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1)
		return tool(argc, argv);
	vu_setup(true);
	test_needed();
	test_link_dead_dir();
	test_shred();
	vu_cleanup();
	return tap_done();
}
