/*
 * vault_backup.c - backups of a vault (docs/design.md "Backups"): the
 * daemon's verb backup.create, which exports a snapshot into a repository
 * (repo*.c), forget and prune, and the schedule.  Restore of a backup into
 * a new store is vault_restore.c's.
 *
 * create: the rows of the snapshot (meta_backup.c) and the data keys of
 * its collections, re-wrapped under the repository key, go into one
 * manifest; every chunk its extents name is copied byte for byte as an
 * object, unless the repository holds it already: a chunk some earlier
 * manifest names is not even read (chunks are immutable, so its id says
 * it all), and a chunk a killed run copied is read and hashed but not
 * sent again.  Objects are durable before the manifest is written; the
 * manifest is the commit.  Only v->mu is taken, and only to read the
 * rows and keys: the copying runs unlocked, while the snapshot's
 * references keep its chunks in STORE.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin_int.h"
#include "backup_int.h"
#include "crypto_int.h"
#include "grow.h"
#include "os.h"
#include "repo_int.h"
#include "snap_int.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

#define NS 1000000000LL

/* ---- create --------------------------------------------------------------------- */

struct bsink {
	struct vv_manifest *m;
	uint32_t *colls;
	size_t ncolls, capcolls;
};

static int s_inode(void *ctx, const struct vv_inode_row *r, const void *data, size_t len)
{
	return vv_manifest_add_inode(((struct bsink *)ctx)->m, r, data, len);
}

static int s_dirent(void *ctx, uint64_t parent, const char *name, uint64_t id, uint64_t ino, uint32_t mode)
{
	return vv_manifest_add_dirent(((struct bsink *)ctx)->m, parent, name, id, ino, mode);
}

static int s_xattr(void *ctx, uint64_t ino, const char *name, const void *val, size_t len)
{
	return vv_manifest_add_xattr(((struct bsink *)ctx)->m, ino, name, val, len);
}

static int s_extent(void *ctx, uint64_t ino, const struct vv_extent *e)
{
	return vv_manifest_add_extent(((struct bsink *)ctx)->m, ino, e);
}

static int s_coll(void *ctx, uint32_t coll)
{
	struct bsink *b = ctx;

	if (VV_GROW(b->colls, b->ncolls, b->capcolls) < 0)
		return VV_ENOMEM;
	b->colls[b->ncolls++] = coll;
	return 0;
}

static int cmp_chunk(const void *a, const void *b)
{
	return memcmp(a, b, VV_CHUNK_ID_BYTES);
}

/* The rows and keys of snapshot sr (NULL: of the live tables) into m,
 * under v->mu. */
static int gather(struct vv_vault *v, const struct vv_snap_row *sr, struct vv_repo *repo,
		  struct vv_manifest *m)
{
	struct bsink b = { .m = m };
	struct vv_meta_bk_sink k = { .ctx = &b, .inode = s_inode, .dirent = s_dirent,
				     .xattr = s_xattr, .extent = s_extent, .coll = s_coll };
	uint8_t wrapped[VV_WRAPPED_BYTES];
	bool have_root = false;
	const uint8_t *key;
	int r;

	if ((r = sr ? vv_meta_backup_read(v->meta, sr->id, &k) : vv_meta_backup_read_live(v->meta, &k)) < 0)
		goto out;
	for (size_t i = 0; i <= b.ncolls; i++) {
		/* Every collection of the snapshot, and the root collection
		 * (top-level files; a restore needs its key even when the
		 * snapshot holds none). */
		uint32_t c = i < b.ncolls ? b.colls[i] : v->root_coll;
		if (i < b.ncolls && c == v->root_coll)
			have_root = true;
		if (i == b.ncolls && have_root)
			break;
		if ((r = vault_key(v, c, &key)) < 0 || (r = vv_repo_coll_wrap(repo, m->id, c, key, wrapped)) < 0 ||
		    (r = vv_manifest_add_coll(m, c, wrapped)) < 0)
			goto out;
	}
	m->root_coll = v->root_coll;
out:
	free(b.colls);
	return r;
}

struct cstats {
	uint64_t objects, sent, bytes_sent, stored, skipped_known;
};

/* Where create reports how far it has come (the verb's peer), or NULL. */
struct bk_prog {
	void (*fn)(void *ctx, const struct vv_admin_progress *p);
	void *ctx;
	struct vv_admin_progress p;
};

static void bk_tick(struct bk_prog *g)
{
	if (g && g->fn)
		g->fn(g->ctx, &g->p);
}

/* The bytes of chunk id in STORE (for the progress total), 0 unknown. */
static uint64_t chunk_size(struct vv_vault *v, const uint8_t *id)
{
	char hex[2 * VV_CHUNK_ID_BYTES + 1], rel[96], path[4096];
	struct stat sb;

	vv_hex_encode(hex, id, VV_CHUNK_ID_BYTES);
	snprintf(rel, sizeof(rel), "%s/%.2s/%s", VV_STORE_CHUNKS_DIR, hex, hex);
	if (vv_store_path(v->store, rel, path, sizeof(path)) < 0 || vv_os_stat(path, &sb) < 0)
		return 0;
	return (uint64_t)sb.st_size;
}

/* The distinct chunk ids m's extents name, sorted: *ids malloc'd. */
static int distinct_chunks(const struct vv_manifest *m, uint8_t (**out)[VV_CHUNK_ID_BYTES], size_t *nout)
{
	uint8_t (*ids)[VV_CHUNK_ID_BYTES] = NULL;
	size_t n = 0;

	*out = NULL;
	*nout = 0;
	if (!m->nextents)
		return 0;
	if (!(ids = malloc(m->nextents * sizeof(*ids))))
		return VV_ENOMEM;
	/* A file's blocks lie in few chunks, one after another (extents come
	 * in (ino, fblock) order): drop those runs first, so the sort sees
	 * about one id per chunk, not one per block (2 GiB: 34,000 -> 550). */
	for (size_t i = 0; i < m->nextents; i++)
		if (n == 0 || memcmp(ids[n - 1], m->extents[i].e.chunk_id, VV_CHUNK_ID_BYTES) != 0)
			memcpy(ids[n++], m->extents[i].e.chunk_id, VV_CHUNK_ID_BYTES);
	qsort(ids, n, sizeof(*ids), cmp_chunk);
	{
		size_t u = 0;
		for (size_t i = 0; i < n; i++)
			if (u == 0 || memcmp(ids[u - 1], ids[i], VV_CHUNK_ID_BYTES) != 0)
				memmove(ids[u++], ids[i], VV_CHUNK_ID_BYTES);
		n = u;
	}
	*out = ids;
	*nout = n;
	return 0;
}

/* The workers of create's copy and of restore share one queue discipline
 * (backup_int.h). */
bool vault_backup_next_job(pthread_mutex_t *mu, const int *r, size_t *next, size_t n, size_t *job)
{
	bool more;

	pthread_mutex_lock(mu);
	more = *r >= 0 && *next < n;
	if (more)
		*job = (*next)++;
	pthread_mutex_unlock(mu);
	return more;
}

/*
 * The copy: CP_WORKERS threads (the verb's and seven more) take the
 * chunks one at a time, each read, hashed, and written unless DEST holds
 * it.  Reads and writes are O_DIRECT (repo_object.c "direct I/O"): each waits
 * for the disk, so several at once keep the disk busy while the other
 * threads hash (two cores); eight, not four: a first backup of 2 GiB
 * took a median 3.17 s against 3.55 s with four (5 runs each, load 7,
 * the same CPU time: the hash, not the thread count, is the CPU).  Objects are made durable in batches
 * (repo_object.c), so what arrived before a kill is complete and is not sent
 * again.  Under mu: the manifest, the counts, the progress (the peer's
 * callback is never entered twice at once) and the first error, after
 * which all stop.
 */
#define CP_WORKERS 8

struct cp {
	struct vv_vault *v;
	struct vv_repo *repo;
	const struct vv_repo_index *ix;
	struct vv_manifest *m;
	struct cstats *st;
	struct bk_prog *g;
	uint8_t (*ids)[VV_CHUNK_ID_BYTES];
	size_t n, next;
	pthread_mutex_t mu;
	int r;                             /* the first error */
	char *why;
	size_t whycap;
};

enum { CP_KNOWN, CP_SENT, CP_THERE };   /* named by a manifest / written / found by its hash */

/* Record object i (under c->mu). */
static int cp_done(struct cp *c, size_t i, const uint8_t *name, uint64_t size, int how)
{
	struct bk_prog *g = c->g;
	int r;

	if ((r = vv_manifest_add_object(c->m, c->ids[i], name, size)) < 0)
		return r;
	c->st->stored += size;
	if (how == CP_SENT) {
		c->st->sent++;
		c->st->bytes_sent += size;
	} else if (how == CP_KNOWN) {
		c->st->skipped_known++;
	}
	if (g) {
		g->p.objects_done++;
		g->p.bytes_done += size;
		/* A chunk that changed size since the stat: keep done <= total. */
		if (g->p.bytes_done > g->p.bytes_total)
			g->p.bytes_total = g->p.bytes_done;
		bk_tick(g);
	}
	return 0;
}

/* A worker's buffer for one chunk, aligned for O_DIRECT and kept from one
 * chunk to the next (a fresh 4 MiB buffer per chunk costs page faults). */
struct cp_buf {
	uint8_t *p;
	size_t cap;
};

/* Read the chunk file at path into b: O_DIRECT (chunks are written with
 * O_DIRECT, so they are seldom in the page cache, and reading them
 * through it would only allocate pages to evict). */
static int cp_read(const char *path, struct cp_buf *b, size_t *len)
{
	struct stat sb;
	int fd, r;

	if ((fd = vv_os_open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0)) < 0)
		return vv_err_from_errno(-fd);
	if ((r = vv_os_fstat(fd, &sb)) < 0) {
		r = vv_err_from_errno(-r);
		goto out;
	}
	if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > VV_REPO_OBJECT_MAX) {
		r = VV_ECORRUPT;
		goto out;
	}
	if (b->cap < (size_t)sb.st_size || !b->p) {
		free(b->p);
		b->cap = 0;
		if (!(b->p = vv_repo_buf_alloc((size_t)sb.st_size))) {
			r = VV_ENOMEM;
			goto out;
		}
		b->cap = (size_t)sb.st_size;
	}
	*len = (size_t)sb.st_size;
	r = vv_repo_pread_file(fd, b->p, *len);
out:
	vv_os_close(fd);
	return r;
}

/* Chunk i into the repository; why names a failure. */
static int cp_one(struct cp *c, size_t i, struct cp_buf *b, char *why, size_t whycap)
{
	const struct vv_bk_object *known = vv_repo_index_find(c->ix, c->ids[i]);
	char hex[2 * VV_CHUNK_ID_BYTES + 1], rel[96], path[4096];
	uint8_t name[VV_REPO_NAME_BYTES];
	bool sent = false;
	size_t len = 0;
	int r;

	if (known && vv_repo_object_have(c->repo, known->name, known->size)) {
		pthread_mutex_lock(&c->mu);
		r = cp_done(c, i, known->name, known->size, CP_KNOWN);
		pthread_mutex_unlock(&c->mu);
		return r;
	}
	vv_hex_encode(hex, c->ids[i], VV_CHUNK_ID_BYTES);
	snprintf(rel, sizeof(rel), "%s/%.2s/%s", VV_STORE_CHUNKS_DIR, hex, hex);
	if ((r = vv_store_path(c->v->store, rel, path, sizeof(path))) < 0)
		return r;
	if ((r = cp_read(path, b, &len)) < 0) {
		snprintf(why, whycap, "cannot read chunk %.16s... of the snapshot: %s", hex, vv_strerror(r));
		return r;
	}
	if ((r = vv_repo_object_name(c->repo, b->p, len, name)) == 0 &&
	    !vv_repo_object_have(c->repo, name, len)) {
		if ((r = vv_repo_object_put(c->repo, name, b->p, len)) < 0)
			snprintf(why, whycap, "cannot write an object into the repository: %s%s",
				 vv_strerror(r), r == VV_ENOSPC ? " (the destination is full; "
				 "what arrived stays and is not sent again)" : "");
		sent = true;
	}
	if (r < 0)
		return r;
	pthread_mutex_lock(&c->mu);
	r = cp_done(c, i, name, len, sent ? CP_SENT : CP_THERE);
	pthread_mutex_unlock(&c->mu);
	return r;
}

static void *cp_main(void *arg)
{
	struct cp *c = arg;
	struct cp_buf b = { 0 };
	char why[256];

	for (size_t i; vault_backup_next_job(&c->mu, &c->r, &c->next, c->n, &i);) {
		int r;

		why[0] = 0;
		if (__atomic_load_n(&c->v->bk.stop, __ATOMIC_RELAXED)) {
			/* The vault is closing: stop between two objects, as a
			 * kill would (what arrived stays; no manifest names it yet). */
			r = VV_ECANCELED;
			snprintf(why, sizeof(why), "stopped by the unmount");
		} else {
			r = cp_one(c, i, &b, why, sizeof(why));
		}
		if (r < 0) {
			pthread_mutex_lock(&c->mu);
			if (c->r == 0) {
				c->r = r;
				snprintf(c->why, c->whycap, "%s", why);
			}
			pthread_mutex_unlock(&c->mu);
		}
	}
	free(b.p);
	return NULL;
}

/* Copy the chunks m's extents name into repo, adding m's object list;
 * ix: what the repository's manifests name already. */
static int copy_chunks(struct vv_vault *v, struct vv_repo *repo, const struct vv_repo_index *ix,
		       struct vv_manifest *m, struct cstats *st, struct bk_prog *g, char *why,
		       size_t whycap)
{
	struct cp c = { .v = v, .repo = repo, .ix = ix, .m = m, .st = st, .g = g, .why = why,
			.whycap = whycap };
	pthread_t th[CP_WORKERS - 1];
	int started = 0, r;

	if ((r = distinct_chunks(m, &c.ids, &c.n)) < 0)
		return r;
	if (g && g->fn) {
		/* Totals first, so the peer sees a rate and an ETA: a known
		 * object's size is in the index, the others' a stat away. */
		g->p.objects_total = c.n;
		for (size_t i = 0; i < c.n; i++) {
			const struct vv_bk_object *known = vv_repo_index_find(ix, c.ids[i]);
			g->p.bytes_total += known ? known->size : chunk_size(v, c.ids[i]);
		}
		bk_tick(g);
	}
	pthread_mutex_init(&c.mu, NULL);
	for (int i = 0; i < CP_WORKERS - 1 && c.n > 1; i++)
		if (pthread_create(&th[i], NULL, cp_main, &c) == 0)
			started++;
	cp_main(&c);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&c.mu);
	if ((r = c.r) == 0)
		st->objects = c.n;
	free(c.ids);
	return r;
}

/* A backup without a snapshot, when one is not needed: the live rows,
 * read under v->mu after the write buffers are flushed (the view a
 * snapshot taken now would copy), when the repository holds every chunk
 * they name already, as a complete object of its size.  Nothing is then
 * copied, so no snapshot's references must keep chunks alive meanwhile,
 * and a re-run over an unchanged vault costs no snapshot create and
 * delete (two commits).  1: m holds the backup; 0: a chunk is missing
 * (m is emptied but keeps its ids: take a snapshot); < 0 an error. */
static int try_live(struct vv_vault *v, struct vv_repo *repo, const struct vv_repo_index *ix,
		    struct vv_manifest *m, struct cstats *st, uint64_t *files, uint64_t *bytes)
{
	uint8_t (*ids)[VV_CHUNK_ID_BYTES] = NULL, id[VV_BACKUP_ID_BYTES], store_id[16];
	size_t n = 0;
	int r;

	if (!ix->n)
		return 0;                  /* an empty repository: everything is to copy */
	if ((r = vault_flush_all(v)) < 0)
		return r;
	pthread_mutex_lock(&v->mu);
	r = gather(v, NULL, repo, m);
	pthread_mutex_unlock(&v->mu);
	if (r < 0 || (r = distinct_chunks(m, &ids, &n)) < 0)
		goto out;
	r = 1;
	for (size_t i = 0; i < n && r == 1; i++) {
		const struct vv_bk_object *known = vv_repo_index_find(ix, ids[i]);
		if (!known || !vv_repo_object_have(repo, known->name, known->size))
			r = 0;
		else if (vv_manifest_add_object(m, ids[i], known->name, known->size) < 0)
			r = VV_ENOMEM;
		else
			st->stored += known->size;
	}
	if (r == 1) {
		st->objects = st->skipped_known = n;
		*files = *bytes = 0;
		for (size_t i = 0; i < m->ninodes; i++)
			if (S_ISREG(m->inodes[i].r.mode)) {
				++*files;
				*bytes += m->inodes[i].r.size;
			}
	}
out:
	free(ids);
	if (r != 1) {
		memcpy(id, m->id, sizeof(id));
		memcpy(store_id, m->store_id, sizeof(store_id));
		vv_manifest_free(m);
		memset(m, 0, sizeof(*m));
		memcpy(m->id, id, sizeof(id));
		memcpy(m->store_id, store_id, sizeof(store_id));
		*st = (struct cstats){ 0 };
	}
	return r;
}

static bool tag_ok(const char *t)
{
	size_t n = strlen(t);

	if (n > VV_BACKUP_TAG_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f)
			return false;
	return true;
}

/* What one backup run is asked to do (the verb's arguments, or the
 * schedule's settings). */
struct bk_job {
	const char *dest, *pass, *snap, *tag;
	size_t passlen;
	uint32_t uid;                      /* DEST must be this user's (or root's) */
	bool json;
	const char *who;                   /* "backup.create" or "scheduled backup" */
	struct bk_prog *prog;              /* the peer's progress, or NULL */
};

/* Longest detail of a backup record: a restore note's fixed words, id,
 * three tags, two 20-digit counts and a 1024-byte cut of its directory
 * (run_restore_note) fit, so its "(reported by ...)" is never cut off. */
#define BK_DETAIL_MAX 2048

static int audit_bk(struct vv_vault *v, const struct vv_ctx *c, const char *what, int r,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* One record per backup operation, with its outcome (op "backup"): as
 * the daemon's own (c NULL), or as the peer c's report. */
static int audit_bk(struct vv_vault *v, const struct vv_ctx *c, const char *what, int r,
		    const char *fmt, ...)
{
	char detail[BK_DETAIL_MAX];
	int n;
	va_list ap;

	n = snprintf(detail, sizeof(detail), "%s ", what);
	va_start(ap, fmt);
	vsnprintf(detail + n, sizeof(detail) - (size_t)n, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&v->mu);
	vault_audit(v, c, "backup", VV_ROOT_INO, 0, NULL, r, detail);
	pthread_mutex_unlock(&v->mu);
	return r;
}

/* Export a snapshot (a fresh one unless j->snap) into j->dest; the
 * outcome goes to rep (status and message) and to the audit log. */
static int create(struct vv_vault *v, const struct bk_job *j, struct vv_admin_reply *rep,
		  char id_out[VV_BACKUP_ID_HEX + 1])
{
	const char *dest = j->dest, *snap = j->snap, *tag = j->tag, *who = j->who;
	char auto_name[64] = "", hex[VV_BACKUP_ID_HEX + 1], why[256] = "";
	/* The key cache: a re-run with the same passphrase skips the Argon2id
	 * (repo.c; docs/security.md). */
	unsigned flags = VV_REPO_WRITE | VV_REPO_CHECK_OWNER | VV_REPO_KEY_CACHE;
	struct vv_manifest m;
	struct vv_snap_row sr;
	struct vv_repo *repo = NULL;
	struct vv_repo_index ix = { 0 };
	struct cstats st = { 0 };
	uint64_t pk_n = 0, pk_w = 0, pk_b = 0;
	bool live = false;
	int r;

	memset(&m, 0, sizeof(m));
	memset(&sr, 0, sizeof(sr));
	if (v->flags & VV_VAULT_ALLOW_TEST_KDF)
		flags |= VV_REPO_ALLOW_TEST_KDF;
	r = vv_repo_open(dest, j->pass, j->passlen, flags, j->uid, &repo);
	if (r == VV_EBUSY)
		vault_admin_fail(rep, r, "%s: %s is locked by another backup that is "
				 "running now; wait for it to finish", who, dest);
	else if (r == VV_EUNSAFE)
		vault_admin_fail(rep, r, "%s: %s (or a file in it) is a symbolic link, "
				 "is not owned by uid %u or may be written by others: refused", who, dest,
				 (unsigned)j->uid);
	else if (r == VV_ENOTINIT || r == VV_ENOENT)
		vault_admin_fail(rep, r, "%s: %s is not a backup repository (make one "
				 "with vecvault backup init)", who, dest);
	else if (r == VV_EBADPASS)
		vault_admin_fail(rep, r, "%s: wrong passphrase for the repository %s", who, dest);
	else if (r < 0)
		vault_admin_fail(rep, r, "%s: cannot open the repository %s: %s", who, dest,
				 vv_strerror(r));
	if (r < 0)
		goto out;
	if ((r = vv_repo_index_load(repo, &ix)) < 0) {
		vault_admin_fail(rep, r, "%s: cannot read the manifests of %s: %s", who, dest,
				 vv_strerror(r));
		goto out;
	}
	vv_random_bytes(m.id, sizeof(m.id));
	if ((r = vv_hex_decode(m.store_id, sizeof(m.store_id), vv_store_id(v->store), 32)) < 0)
		goto out;
	if (!snap || !*snap) {
		time_t now = (time_t)(vault_now() / NS);
		uint8_t rnd[3];
		char hx[7];
		struct tm tm;
		gmtime_r(&now, &tm);
		vv_random_bytes(rnd, sizeof(rnd));
		vv_hex_encode(hx, rnd, sizeof(rnd));
		strftime(auto_name, sizeof(auto_name), "backup-%Y%m%dT%H%M%SZ-", &tm);
		strncat(auto_name, hx, sizeof(auto_name) - strlen(auto_name) - 1);
		r = try_live(v, repo, &ix, &m, &st, &sr.inodes, &sr.bytes);
		if (r < 0) {
			vault_admin_fail(rep, r, "%s: cannot read the vault's rows: %s", who, vv_strerror(r));
			auto_name[0] = 0;
			goto out;
		}
		if (r == 1) {
			/* Named as the snapshot it stands for (none was taken). */
			snprintf(sr.name, sizeof(sr.name), "%s", auto_name);
			sr.created = vault_now();
			auto_name[0] = 0;
			live = true;
		} else if ((r = vault_snap_create(v, auto_name, j->uid, 0, &sr)) < 0) {
			vault_admin_fail(rep, r, "%s: cannot take a snapshot to back up: %s", who,
					 vv_strerror(r));
			auto_name[0] = 0;
			goto out;
		}
		snap = auto_name;
	}
	if (!live) {
		pthread_mutex_lock(&v->mu);
		r = vv_meta_snap_get(v->meta, snap, &sr);
		if (r == 0)
			r = gather(v, &sr, repo, &m);
		pthread_mutex_unlock(&v->mu);
		if (r == VV_ENOENT) {
			vault_admin_fail(rep, r, "%s: no snapshot named '%s'", who, snap);
			goto out;
		}
		if (r < 0) {
			vault_admin_fail(rep, r, "%s: cannot read snapshot '%s': %s", who, snap,
					 vv_strerror(r));
			goto out;
		}
		if ((r = copy_chunks(v, repo, &ix, &m, &st, j->prog, why, sizeof(why))) < 0) {
			vault_admin_fail(rep, r, "%s: %s (the repository still holds every complete "
					 "backup; run it again to resume)", who, why[0] ? why : vv_strerror(r));
			goto out;
		}
	} else if (j->prog && j->prog->fn) {
		j->prog->p.objects_total = j->prog->p.objects_done = st.objects;
		j->prog->p.bytes_total = j->prog->p.bytes_done = st.stored;
		bk_tick(j->prog);
	}
	m.info.created = vault_now();
	m.info.snap_created = sr.created;
	snprintf(m.info.snapshot, sizeof(m.info.snapshot), "%s", sr.name);
	snprintf(m.info.tag, sizeof(m.info.tag), "%s", tag ? tag : "");
	m.info.files = sr.inodes;
	m.info.bytes = sr.bytes;
	if ((r = vv_repo_manifest_store(repo, &m)) < 0) {
		vault_admin_fail(rep, r, "%s: cannot write the manifest: %s (the repository "
				 "still holds every complete backup; run it again to resume)", who, vv_strerror(r));
		goto out;
	}
	vv_repo_packs_stats(repo, &pk_n, &pk_w, &pk_b);
	vv_hex_encode(hex, m.id, VV_BACKUP_ID_BYTES);
	if (id_out)
		memcpy(id_out, hex, sizeof(hex));
	audit_bk(v, NULL, "create", 0, "%s to %s: snapshot %s%s, %llu files, %llu bytes, %llu objects, "
		 "%llu sent (%llu bytes); metadata %llu packs, %llu written (%llu bytes)", hex, dest,
		 sr.name, live ? " (not taken: every chunk was in the repository, the live rows were "
		 "read)" : "", (unsigned long long)sr.inodes, (unsigned long long)sr.bytes,
		 (unsigned long long)st.objects, (unsigned long long)st.sent,
		 (unsigned long long)st.bytes_sent, (unsigned long long)pk_n, (unsigned long long)pk_w,
		 (unsigned long long)pk_b);
	vv_log(VV_LOG_INFO, "backup: %s to %s: %llu objects, %llu sent (%llu bytes)", hex, dest,
	       (unsigned long long)st.objects, (unsigned long long)st.sent,
	       (unsigned long long)st.bytes_sent);
	if (j->json)
		r = vault_admin_printf(rep, "{\"id\":\"%s\",\"snapshot\":", hex) < 0 ||
		    vault_admin_json_str(rep, sr.name) < 0 ||
		    vault_admin_printf(rep, ",\"files\":%llu,\"bytes\":%llu,\"objects\":%llu,"
				       "\"objects_sent\":%llu,\"bytes_sent\":%llu,\"stored\":%llu,"
				       "\"packs\":%llu,\"packs_written\":%llu,\"pack_bytes_written\":%llu}\n",
				       (unsigned long long)sr.inodes, (unsigned long long)sr.bytes,
				       (unsigned long long)st.objects, (unsigned long long)st.sent,
				       (unsigned long long)st.bytes_sent, (unsigned long long)st.stored,
				       (unsigned long long)pk_n, (unsigned long long)pk_w,
				       (unsigned long long)pk_b) < 0
			    ? VV_ENOMEM : 0;
	else
		r = vault_admin_printf(rep, "backup %s: %llu files, %llu bytes; %llu objects, %llu sent "
				       "(%llu bytes), %llu already there; metadata %llu packs, %llu "
				       "written (%llu bytes)\n", hex,
				       (unsigned long long)sr.inodes, (unsigned long long)sr.bytes,
				       (unsigned long long)st.objects, (unsigned long long)st.sent,
				       (unsigned long long)st.bytes_sent,
				       (unsigned long long)(st.objects - st.sent), (unsigned long long)pk_n,
				       (unsigned long long)pk_w, (unsigned long long)pk_b);
out:
	if (r < 0)
		audit_bk(v, NULL, "create", r, "to %s failed: %s", dest,
			 rep->status < 0 && rep->msg[0] ? rep->msg : vv_strerror(r));
	/* The snapshot taken for this backup only: the manifest holds it now
	 * (or the backup failed; a rerun takes a fresh one). */
	if (auto_name[0] && vault_snap_delete(v, auto_name) < 0)
		vv_log(VV_LOG_WARN, "backup: cannot delete the snapshot %s taken for it", auto_name);
	vv_repo_index_free(&ix);
	vv_manifest_free(&m);
	vv_repo_close(repo);
	return r;
}

static int run_create(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	struct bk_job j = { .dest = vault_admin_arg(rq, "dest"), .pass = vault_admin_arg(rq, "pass"),
			    .snap = vault_admin_arg(rq, "snapshot"), .tag = vault_admin_arg(rq, "tag"),
			    .uid = rq->peer.uid, .json = vault_admin_json(rq), .who = "backup.create" };
	struct bk_prog g = { .fn = rq->progress, .ctx = rq->pctx };

	if (!j.dest || j.dest[0] != '/')
		return vault_admin_fail(rep, VV_EINVAL, "backup.create: DEST must be an absolute path");
	if (!j.pass || !*j.pass)
		return vault_admin_fail(rep, VV_EINVAL, "backup.create: the repository's passphrase is missing");
	if (j.tag && !tag_ok(j.tag))
		return vault_admin_fail(rep, VV_EINVAL, "backup.create: a tag is at most 255 bytes "
					"without control characters");
	if (v->flags & VV_VAULT_READONLY)
		return vault_admin_fail(rep, VV_EROFS, "backup.create: the vault is mounted read-only "
					"(a backup exports a snapshot, which it cannot take)");
	j.passlen = strlen(j.pass);
	if (rq->progress)
		j.prog = &g;
	return create(v, &j, rep, NULL);
}

/* ---- forget and prune ----------------------------------------------------------- */

/* What one forget is asked to do (backup.forget's arguments, or the
 * schedule's policy). */
struct fg_job {
	const char *dest, *pass;
	size_t passlen;
	uint32_t uid;                      /* DEST must be this user's (or root's) */
	const struct vv_backup_keep *keep;
	bool prune, dry_run;
	const char *who;                   /* "scheduled", or "by uid N" */
	struct vv_admin_reply *body;       /* the verdicts, one a line, or NULL */
};

static int verdict(void *ctx, const struct vv_backup_info *b, bool kept)
{
	struct fg_job *f = ctx;
	time_t t = (time_t)(b->created / NS);
	char when[32];
	struct tm tm;

	if (!f->body)
		return 0;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return vault_admin_printf(f->body, "%-6s %s  %s  %s\n", kept ? "keep" : "forget", b->id, when,
				  b->snapshot);
}

/* Forget (and prune) in f->dest; one audit record for the forget and one
 * for the prune, with their counts and outcome (a dry run: one, saying
 * so).  The outcome goes to rep too. */
static int forget(struct vv_vault *v, struct fg_job *f, struct vv_admin_reply *rep)
{
	const struct vv_backup_keep *k = f->keep;
	unsigned flags = VV_REPO_WRITE | VV_REPO_CHECK_OWNER | VV_REPO_KEY_CACHE |
			 ((v->flags & VV_VAULT_ALLOW_TEST_KDF) ? VV_REPO_ALLOW_TEST_KDF : 0);
	uint64_t forgotten = 0, pruned = 0, pruned_bytes = 0;
	struct vv_repo *repo = NULL;
	int r;

	r = vv_repo_open(f->dest, f->pass, f->passlen, flags, f->uid, &repo);
	if (r == 0)
		r = vv_repo_forget(repo, k, f->prune, f->dry_run, verdict, f, &forgotten, &pruned,
				   &pruned_bytes);
	vv_repo_close(repo);
	if (r == VV_EBUSY)
		vault_admin_fail(rep, r, "forget: %s is locked by a backup that is running now; try "
				 "again when it is done", f->dest);
	else if (r == VV_EUNSAFE)
		vault_admin_fail(rep, r, "forget: %s (or a file in it) is a symbolic link, is not owned "
				 "by uid %u or may be written by others: refused", f->dest, (unsigned)f->uid);
	else if (r == VV_ENOTINIT || r == VV_ENOENT)
		vault_admin_fail(rep, r, "forget: %s is not a backup repository", f->dest);
	else if (r == VV_EBADPASS)
		vault_admin_fail(rep, r, "forget: wrong passphrase for the repository %s", f->dest);
	else if (r == VV_ECORRUPT)
		vault_admin_fail(rep, r, "forget in %s: a manifest does not read: prune refused, nothing "
				 "deleted (vecvault backup verify names it)", f->dest);
	else if (r < 0)
		vault_admin_fail(rep, r, "forget in %s failed: %s", f->dest, vv_strerror(r));
	audit_bk(v, NULL, "forget", r, "in %s (%s%s; keep hourly %u daily %u weekly %u monthly %u): "
		 "%llu forgotten%s%s", f->dest, f->who, f->dry_run ? ", dry run: nothing deleted" : "",
		 k->hourly, k->daily, k->weekly, k->monthly, (unsigned long long)forgotten,
		 r < 0 ? ", failed: " : "", r < 0 ? vv_strerror(r) : "");
	if (f->prune && !f->dry_run)
		audit_bk(v, NULL, "prune", r, "in %s (%s): %llu objects, %llu bytes deleted%s%s", f->dest, f->who,
			 (unsigned long long)pruned, (unsigned long long)pruned_bytes,
			 r < 0 ? ", failed: " : "", r < 0 ? vv_strerror(r) : "");
	if (r < 0)
		return r;
	r = vault_admin_printf(rep, "%s%llu backups forgotten", f->dry_run ? "dry run: " : "",
			       (unsigned long long)forgotten);
	if (r == 0 && f->prune)
		r = vault_admin_printf(rep, ", %llu objects (%llu bytes) pruned", (unsigned long long)pruned,
				       (unsigned long long)pruned_bytes);
	if (r == 0)
		r = vault_admin_printf(rep, "\n");
	return r;
}

static int keep_arg(const struct vv_admin_req *rq, const char *key, uint32_t *out,
		    struct vv_admin_reply *rep)
{
	const char *s = vault_admin_arg(rq, key);
	char *end;
	unsigned long n;

	*out = 0;
	if (!s)
		return 0;
	n = strtoul(s, &end, 10);
	if (!*s || *end || s[0] == '-' || n > 1000000)
		return vault_admin_fail(rep, VV_EINVAL, "backup.forget: %s '%.32s' is not a count "
					"(0 to 1000000)", key, s);
	*out = (uint32_t)n;
	return 0;
}

/* backup.forget {dest, pass, keep_hourly..keep_monthly, prune, dry_run}:
 * the CLI's `vecvault backup forget` while a vault of the repository is
 * mounted, so that the forget and the prune are in that vault's audit log
 * (docs/design.md "Backups"). */
static int run_forget(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	struct vv_backup_keep k;
	char who[32];
	struct fg_job f = { .dest = vault_admin_arg(rq, "dest"), .pass = vault_admin_arg(rq, "pass"),
			    .uid = rq->peer.uid, .keep = &k, .prune = vault_admin_flag(rq, "prune"),
			    .dry_run = vault_admin_flag(rq, "dry_run"), .who = who, .body = rep };
	int r;

	if (!f.dest || f.dest[0] != '/')
		return vault_admin_fail(rep, VV_EINVAL, "backup.forget: DEST must be an absolute path");
	if (!f.pass || !*f.pass)
		return vault_admin_fail(rep, VV_EINVAL, "backup.forget: the repository's passphrase is missing");
	if ((r = keep_arg(rq, "keep_hourly", &k.hourly, rep)) < 0 ||
	    (r = keep_arg(rq, "keep_daily", &k.daily, rep)) < 0 ||
	    (r = keep_arg(rq, "keep_weekly", &k.weekly, rep)) < 0 ||
	    (r = keep_arg(rq, "keep_monthly", &k.monthly, rep)) < 0)
		return r;
	f.passlen = strlen(f.pass);
	snprintf(who, sizeof(who), "by uid %u", (unsigned)rq->peer.uid);
	return forget(v, &f, rep);
}

/* backup.restore {dest, id, into, path, phase, files, bytes, why}: what
 * `vecvault backup restore --into DIR` tells the daemon of the vault DIR
 * is in, before it writes (phase "start") and after ("done", "failed"),
 * so the restore is in the vault's audit log around the writes, which
 * are audited as any.  The CLI does the work, as the user, through the
 * mount; so the record says it is the client's report, and is made in
 * the peer's name (its uid, gid and pid; tests/integration/t1038), whole
 * (BK_DETAIL_MAX: no argument can push the reporter out).  Anyone who may
 * write into DIR (checked as a lookup and a write would be) may report. */
static int run_restore_note(struct vv_vault *v, const struct vv_admin_req *rq,
			    struct vv_admin_reply *rep)
{
	const char *dest = vault_admin_arg(rq, "dest"), *id = vault_admin_arg(rq, "id"),
		   *into = vault_admin_arg(rq, "into"), *path = vault_admin_arg(rq, "path"),
		   *phase = vault_admin_arg(rq, "phase"), *files = vault_admin_arg(rq, "files"),
		   *bytes = vault_admin_arg(rq, "bytes"), *why = vault_admin_arg(rq, "why");
	/* The record is the peer's (its uid, gid and pid in their fields),
	 * never the daemon's: what it says is only what the peer reported. */
	struct vv_ctx c = { .id = rq->peer, .comm = "vecvault-admin",
			    .client = rq->client ? rq->client : "local" };
	struct node *n = NULL;
	uint64_t ino;
	int r, res;

	if (!dest || !id || !into || !phase || (strcmp(phase, "start") && strcmp(phase, "done") &&
						strcmp(phase, "failed")))
		return vault_admin_fail(rep, VV_EINVAL, "backup.restore: needs dest, id, into and phase "
					"(start, done or failed)");
	if (strlen(id) > VV_BACKUP_ID_HEX || strspn(id, "0123456789abcdef") != strlen(id) ||
	    (files && (strspn(files, "0123456789") != strlen(files) || strlen(files) > 20)) ||
	    (bytes && (strspn(bytes, "0123456789") != strlen(bytes) || strlen(bytes) > 20)) ||
	    !tag_ok(dest) ||
	    (path && !tag_ok(path)) || (why && !tag_ok(why)))
		return vault_admin_fail(rep, VV_EINVAL, "backup.restore: an argument is malformed");
	pthread_mutex_lock(&v->mu);
	r = vault_admin_resolve_as(v, &rq->peer, into, &ino);
	if (r == 0 && (r = vault_node_get(v, ino, &n)) == 0) {
		r = vault_node_check(v, &c, n, VV_MAY_WRITE | VV_MAY_EXEC);
		vault_node_put(v, n);
	}
	pthread_mutex_unlock(&v->mu);
	if (r < 0)
		return vault_admin_fail(rep, r, "backup.restore: you may not write into %.200s: %s", into,
					vv_strerror(r));
	res = !strcmp(phase, "failed") ? VV_EIO : 0;
	if (!strcmp(phase, "start"))
		audit_bk(v, &c, "restore", 0, "%s from %s (%s) into %.1024s: starting (reported by uid %u, "
			 "pid %u)", id, dest, path ? path : "/", into, (unsigned)rq->peer.uid,
			 (unsigned)rq->peer.pid);
	else
		audit_bk(v, &c, "restore", res, "%s from %s (%s) into %.1024s: %s, %s files, %s bytes%s%s "
			 "(reported by uid %u, pid %u)", id, dest, path ? path : "/", into, phase,
			 files ? files : "?", bytes ? bytes : "?", why ? ": " : "", why ? why : "",
			 (unsigned)rq->peer.uid, (unsigned)rq->peer.pid);
	return 0;
}

const struct vault_admin_verb vault_backup_verbs[] = {
	/* Owner only: a backup holds every collection's key. */
	{ "backup.create", ADMIN_OWNER, "dest", run_create },
	/* Owner only: it deletes backups (and DEST must be the peer's). */
	{ "backup.forget", ADMIN_OWNER, "dest", run_forget },
	/* A note around restore --into: anyone who may write there. */
	{ "backup.restore", ADMIN_ANYONE, "into", run_restore_note },
	{ NULL, 0, NULL, NULL },
};

/* ---- the schedule ---------------------------------------------------------------- */

/*
 * vecvault mount --backup-to DEST --backup-every DUR: the ticker (vault.c)
 * marks a run due every `every` seconds; this thread runs it: create (a
 * fresh snapshot, exported, then deleted), then, when a keep policy was
 * given, forget (manifests only; pruning objects stays a deliberate
 * `vecvault backup forget --prune`).  A failure is logged and audited
 * with its reason and waits for the next tick: there is no retry loop.
 * The schedule continues across remounts: the first run is due one period
 * after this vault's newest backup in DEST (at once when there is none).
 */

struct newest {
	const char *store_id;
	int64_t t;
};

static int newest_cb(void *ctx, const struct vv_backup_info *b)
{
	struct newest *n = ctx;

	if (!strcmp(b->store_id, n->store_id) && b->created > n->t)
		n->t = b->created;
	return 0;
}

static int64_t first_due(struct vv_vault *v)
{
	struct vault_backup_sched *s = &v->bk;
	struct newest n = { vv_store_id(v->store), 0 };
	unsigned flags = (v->flags & VV_VAULT_ALLOW_TEST_KDF) ? VV_REPO_ALLOW_TEST_KDF : 0;
	struct vv_repo *repo = NULL;
	int64_t now = vault_now();

	if (vv_repo_open(s->dest, s->pass, s->passlen, flags, 0, &repo) == 0)
		vv_repo_list(repo, newest_cb, NULL, &n);
	vv_repo_close(repo);
	if (n.t && n.t + (int64_t)s->every * NS > now)
		return n.t + (int64_t)s->every * NS;
	return now;
}

static void sched_forget(struct vv_vault *v)
{
	struct vault_backup_sched *s = &v->bk;
	struct vv_backup_keep k = { s->keep_hourly, s->keep_daily, s->keep_weekly, s->keep_monthly };
	struct fg_job f = { .dest = s->dest, .pass = s->pass, .passlen = s->passlen, .uid = geteuid(),
			    .keep = &k, .who = "scheduled" };
	struct vv_admin_reply rep;

	if (!k.hourly && !k.daily && !k.weekly && !k.monthly)
		return;
	vv_admin_reply_init(&rep);
	if (forget(v, &f, &rep) < 0)
		vv_log(VV_LOG_ERR, "scheduled backup: %s", rep.msg);
	vv_admin_reply_release(&rep);
}

static void sched_run(struct vv_vault *v)
{
	struct vault_backup_sched *s = &v->bk;
	struct bk_job j = { .dest = s->dest, .pass = s->pass, .passlen = s->passlen,
			    .uid = geteuid(), .who = "scheduled backup" };
	char id[VV_BACKUP_ID_HEX + 1] = "";
	struct vv_admin_reply rep;
	int r;

	vv_admin_reply_init(&rep);
	r = create(v, &j, &rep, id);
	if (r < 0)
		vv_log(VV_LOG_ERR, "%s; next try in %u s", rep.msg, s->every);
	else
		sched_forget(v);
	vv_admin_reply_release(&rep);
}

static void *sched_main(void *arg)
{
	struct vv_vault *v = arg;
	struct vault_backup_sched *s = &v->bk;
	int64_t due = first_due(v);

	pthread_mutex_lock(&v->mu);
	s->next = due;
	for (;;) {
		while (!s->stop && !s->due)
			pthread_cond_wait(&s->cv, &v->mu);
		if (s->stop)
			break;
		s->due = false;
		pthread_mutex_unlock(&v->mu);
		sched_run(v);
		pthread_mutex_lock(&v->mu);
	}
	pthread_mutex_unlock(&v->mu);
	return NULL;
}

void vault_backup_tick(struct vv_vault *v, int64_t now)
{
	struct vault_backup_sched *s = &v->bk;

	if (!s->running || now < s->next)
		return;
	s->next = now + (int64_t)s->every * NS;
	s->due = true;
	pthread_cond_signal(&s->cv);
}

int vault_backup_sched_start(struct vv_vault *v, const struct vv_vault_opts *o)
{
	struct vault_backup_sched *s = &v->bk;

	if (!o->backup_every || !o->backup_dest || !o->backup_pass)
		return 0;
	s->every = o->backup_every;
	s->keep_hourly = o->backup_keep_hourly;
	s->keep_daily = o->backup_keep_daily;
	s->keep_weekly = o->backup_keep_weekly;
	s->keep_monthly = o->backup_keep_monthly;
	s->next = INT64_MAX;             /* first_due() sets it */
	if (!(s->dest = strdup(o->backup_dest)) || !(s->pass = vv_secure_alloc(o->backup_passlen + 1)))
		goto nomem;
	memcpy(s->pass, o->backup_pass, o->backup_passlen);
	s->pass[o->backup_passlen] = 0;
	s->passlen = o->backup_passlen;
	pthread_cond_init(&s->cv, NULL);
	if (pthread_create(&s->thread, NULL, sched_main, v) != 0) {
		pthread_cond_destroy(&s->cv);
		goto nomem;
	}
	s->running = true;
	vv_log(VV_LOG_INFO, "scheduled backup: every %u s to %s", s->every, s->dest);
	return 0;
nomem:
	free(s->dest);
	s->dest = NULL;
	vv_secure_free(s->pass);
	s->pass = NULL;
	return VV_ENOMEM;
}

void vault_backup_sched_stop(struct vv_vault *v)
{
	struct vault_backup_sched *s = &v->bk;

	if (s->running) {
		pthread_mutex_lock(&v->mu);
		__atomic_store_n(&s->stop, true, __ATOMIC_RELAXED);
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&v->mu);
		pthread_join(s->thread, NULL);
		pthread_cond_destroy(&s->cv);
		s->running = false;
	}
	free(s->dest);
	s->dest = NULL;
	vv_secure_free(s->pass);
	s->pass = NULL;
	/* The repository keys backup runs unlocked go with the vault. */
	vv_repo_key_cache_clear();
}
