/*
 * vault_restore.c - restore of a backup into a new store (docs/design.md
 * "Backups"; the backup itself: vault_backup.c).
 *
 * A new store (vv_vault_create_store's steps), the collections
 * with their backed-up keys, the rows of everything reachable from the
 * root, and each chunk checked against its object name and each block
 * decrypted before the one commit that makes the store.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup_int.h"
#include "crypto_int.h"
#include "grow.h"
#include "os.h"
#include "repo_int.h"
#include "snap_int.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

struct rst {
	struct vv_repo *repo;
	struct vv_manifest *m;
	vv_repo_problem_fn problem;
	vv_repo_progress_fn progress;
	void *ctx;
	struct vv_repo_progress p;
	uint8_t **keys;                    /* per m->colls[i], secure */
	uint32_t *newcoll;                 /* per m->colls[i] */
	bool *reach;                       /* per m->inodes[i] (sorted by ino) */
	uint32_t *links;                   /* per m->inodes[i]: entries naming it */
};

static void rsay(struct rst *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rsay(struct rst *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (s->problem)
		s->problem(s->ctx, line);
}

static int r_cmp_ino(const void *a, const void *b)
{
	uint64_t x = ((const struct vv_bk_inode *)a)->r.ino, y = ((const struct vv_bk_inode *)b)->r.ino;

	return x < y ? -1 : x > y;
}

static int r_cmp_de(const void *a, const void *b)
{
	const struct vv_bk_dirent *x = a, *y = b;

	if (x->parent != y->parent)
		return x->parent < y->parent ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int r_cmp_obj(const void *a, const void *b)
{
	return memcmp(((const struct vv_bk_object *)a)->chunk, ((const struct vv_bk_object *)b)->chunk,
		      VV_CHUNK_ID_BYTES);
}

static int r_cmp_ext(const void *a, const void *b)
{
	return memcmp(((const struct vv_bk_extent *)a)->e.chunk_id, ((const struct vv_bk_extent *)b)->e.chunk_id,
		      VV_CHUNK_ID_BYTES);
}

static long ino_index(const struct vv_manifest *m, uint64_t ino)
{
	struct vv_bk_inode k;
	const struct vv_bk_inode *f;

	k.r.ino = ino;
	f = m->ninodes ? bsearch(&k, m->inodes, m->ninodes, sizeof(k), r_cmp_ino) : NULL;
	return f ? (long)(f - m->inodes) : -1;
}

static long coll_index(const struct vv_manifest *m, uint32_t coll)
{
	for (size_t i = 0; i < m->ncolls; i++)
		if (m->colls[i].id == coll)
			return (long)i;
	return -1;
}

/* What is reachable from the root through the entries (a snapshot also
 * holds trashed inodes, which a new store has no trash rows for), and how
 * many entries name each inode.  Untrusted input: a cycle or an entry
 * under a non-directory is corruption. */
static int reach(struct rst *s)
{
	struct vv_manifest *m = s->m;
	uint64_t *queue = NULL;
	size_t qh = 0, qt = 0;
	long root = ino_index(m, VV_ROOT_INO);
	int r = 0;

	if (root < 0 || !S_ISDIR(m->inodes[root].r.mode)) {
		rsay(s, "backup %s: no root directory", m->info.id);
		return VV_ECORRUPT;
	}
	if (!(queue = malloc((m->ninodes + 1) * sizeof(*queue))))
		return VV_ENOMEM;
	s->reach[root] = true;
	queue[qt++] = VV_ROOT_INO;
	while (qh < qt) {
		uint64_t dir = queue[qh++];
		struct vv_bk_dirent k = { .parent = dir, .id = 0 };
		size_t lo = 0, hi = m->ndirents;
		/* First entry of dir (sorted by parent, id). */
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (r_cmp_de(&m->dirents[mid], &k) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (size_t i = lo; i < m->ndirents && m->dirents[i].parent == dir; i++) {
			long x = ino_index(m, m->dirents[i].ino);
			if (x < 0) {
				rsay(s, "backup %s: an entry names inode %llu, which it does not hold",
				     m->info.id, (unsigned long long)m->dirents[i].ino);
				r = VV_ECORRUPT;
				goto out;
			}
			s->links[x]++;
			if (S_ISDIR(m->inodes[x].r.mode)) {
				if (s->reach[x]) {
					rsay(s, "backup %s: directory %llu is entered twice", m->info.id,
					     (unsigned long long)m->inodes[x].r.ino);
					r = VV_ECORRUPT;
					goto out;
				}
				queue[qt++] = m->inodes[x].r.ino;
			}
			s->reach[x] = true;
		}
	}
out:
	free(queue);
	return r;
}

/*
 * The copy of a restore: RS_WORKERS threads (and the caller's, once it
 * has written the rows) take the objects one at a time.  Each is read
 * O_DIRECT, every block a reachable extent names in it is authenticated
 * with its collection key (AES-GCM, AD binding object id, file block,
 * chunk id, slot and length: vv_content_open_mem), the bytes no such
 * extent names are zeroed (dead slots of blocks rewritten since: nothing
 * reads them, and nothing unauthenticated reaches the new store), and the
 * chunk is written O_DIRECT without an fsync.  The object's keyed name is
 * not recomputed: AES-GCM over every byte kept is the same guarantee
 * against an altered, swapped or truncated object (a forger has neither
 * key) at a sixth of the cost (perf of a 2 GiB restore: BLAKE2b 40% of
 * the CPU time, AES-GCM 7%).  When all
 * are written, sync_written fsyncs them (then their directories) in one
 * pass before the one commit that names them (DESIGN invariant 4); the
 * store is not usable before that commit and is removed on failure, so a
 * plain create (O_EXCL: each object is written once) needs no tmp + rename.
 * Under mu: dirs, the progress and the first error.
 */
#define RS_WORKERS 3

struct rs_job {
	const struct vv_bk_object *o;
	size_t lo, hi;                     /* its extents: m->extents[lo..hi) */
};

struct rs_range {
	size_t off, end;
};

struct rs {
	struct rst *s;
	struct vv_store *store;
	struct rs_job *jobs;
	size_t njobs, next;
	bool *written;                     /* per m->objs[i] */
	bool dirs[256];
	pthread_mutex_t mu;
	int r;                             /* the first error */
	char why[512];
};

/* Write chunk id of the new store (O_EXCL, no fsync: see above). */
static int put_chunk(struct rs *w, const uint8_t *id, const uint8_t *buf, size_t len)
{
	char hex[2 * VV_CHUNK_ID_BYTES + 1], rel[128], path[4096];
	int fd, r = 0;

	vv_hex_encode(hex, id, VV_CHUNK_ID_BYTES);
	snprintf(rel, sizeof(rel), "%s/%.2s", VV_STORE_CHUNKS_DIR, hex);
	if ((r = vv_store_path(w->store, rel, path, sizeof(path))) < 0)
		return r;
	pthread_mutex_lock(&w->mu);
	if (!w->dirs[id[0]]) {
		r = vv_os_mkdir(path, 0700);
		if (r < 0 && r != -EEXIST) {
			r = vv_err_from_errno(-r);
		} else {
			w->dirs[id[0]] = true;
			r = 0;
		}
	}
	pthread_mutex_unlock(&w->mu);
	if (r < 0)
		return r;
	snprintf(rel, sizeof(rel), "%s/%.2s/%s", VV_STORE_CHUNKS_DIR, hex, hex);
	if ((r = vv_store_path(w->store, rel, path, sizeof(path))) < 0)
		return r;
	if ((fd = vv_os_open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0)
		return vv_err_from_errno(-fd);
	r = vv_repo_pwrite_file(fd, buf, len);
	if ((fd = vv_os_close(fd)) < 0 && r == 0)
		r = vv_err_from_errno(-fd);  /* NFS and some others report ENOSPC at close */
	return r;
}

/* fsync every chunk the copy wrote (written[i]: m->objs[i]), then their
 * directories and STORE/chunks: all durable before the commit (DESIGN
 * invariant 4).  One pass at the end instead of an fsync per chunk: the
 * data went O_DIRECT, so this is mostly one journal commit. */
static int sync_written(struct vv_manifest *m, struct vv_store *store, const bool *written,
			const bool *dirs)
{
	char hex[2 * VV_CHUNK_ID_BYTES + 1], rel[128], path[4096];
	int fd, r = 0;

	for (size_t i = 0; i < m->nobjs && r == 0; i++) {
		if (!written[i])
			continue;
		vv_hex_encode(hex, m->objs[i].chunk, VV_CHUNK_ID_BYTES);
		snprintf(rel, sizeof(rel), "%s/%.2s/%s", VV_STORE_CHUNKS_DIR, hex, hex);
		if ((r = vv_store_path(store, rel, path, sizeof(path))) < 0)
			break;
		if ((fd = vv_os_open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0)) < 0)
			return vv_err_from_errno(-fd);
		r = vv_os_fsync(fd);
		vv_os_close(fd);
		if (r < 0)
			r = vv_err_from_errno(-r);
	}
	for (int i = 0; i < 256 && r == 0; i++) {
		if (!dirs[i])
			continue;
		snprintf(rel, sizeof(rel), "%s/%02x", VV_STORE_CHUNKS_DIR, i);
		if ((r = vv_store_path(store, rel, path, sizeof(path))) == 0 && (r = vv_os_fsync_dir(path)) < 0)
			r = vv_err_from_errno(-r);
	}
	if (r == 0 && (r = vv_store_path(store, VV_STORE_CHUNKS_DIR, path, sizeof(path))) == 0 &&
	    (r = vv_os_fsync_dir(path)) < 0)
		r = vv_err_from_errno(-r);
	return r;
}

/* The object of extent x, or NULL when it is not restored (unreachable)
 * or does not resolve (restore_chunks names that problem). */
static const struct vv_bk_object *ext_obj(struct rst *s, const struct vv_bk_extent *x, long *in,
					  long *ci)
{
	struct vv_manifest *m = s->m;
	struct vv_bk_object k;

	*in = ino_index(m, x->ino);
	*ci = -1;
	if (*in < 0 || !s->reach[*in])
		return NULL;
	memcpy(k.chunk, x->e.chunk_id, VV_CHUNK_ID_BYTES);
	*ci = coll_index(m, m->inodes[*in].r.coll);
	return m->nobjs ? bsearch(&k, m->objs, m->nobjs, sizeof(k), r_cmp_obj) : NULL;
}

static int rs_cmp_range(const void *a, const void *b)
{
	size_t x = ((const struct rs_range *)a)->off, y = ((const struct rs_range *)b)->off;

	return x < y ? -1 : x > y;
}

/* The first error wins; the others stop at their next object. */
static void rs_fail(struct rs *w, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void rs_fail(struct rs *w, int r, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&w->mu);
	if (w->r == 0) {
		w->r = r;
		va_start(ap, fmt);
		vsnprintf(w->why, sizeof(w->why), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&w->mu);
}

/* Object j: read, authenticate what is kept, zero the rest, write. */
static int rs_one(struct rs *w, const struct rs_job *j, uint8_t **buf, size_t *cap, uint8_t *plain,
		  struct rs_range **rg, size_t *rgcap)
{
	struct rst *s = w->s;
	struct vv_manifest *m = s->m;
	const struct vv_bk_object *o = j->o;
	char nhex[2 * VV_REPO_NAME_BYTES + 1];
	size_t len = 0, nr = 0, cur = VV_CHUNK_HDR_BYTES;
	int r;

	vv_hex_encode(nhex, o->name, VV_REPO_NAME_BYTES);
	if ((r = vv_repo_object_load(s->repo, o->name, buf, cap, &len)) < 0 || len != o->size) {
		r = r < 0 ? r : VV_ECORRUPT;
		rs_fail(w, r, "object %s: %s; nothing restored", nhex, r == VV_ENOENT ? "missing" :
			r == VV_ECORRUPT ? "altered: not the size the backup names" : vv_strerror(r));
		return r;
	}
	if (*rgcap < j->hi - j->lo) {
		free(*rg);
		*rgcap = 0;
		if (!(*rg = malloc((j->hi - j->lo) * sizeof(**rg))))
			return VV_ENOMEM;
		*rgcap = j->hi - j->lo;
	}
	for (size_t i = j->lo; i < j->hi; i++) {
		const struct vv_bk_extent *x = &m->extents[i];
		long in = ino_index(m, x->ino), ci;

		if (in < 0 || !s->reach[in])
			continue;
		ci = coll_index(m, m->inodes[in].r.coll);
		if (vv_content_open_mem(s->keys[ci], m->inodes[in].r.objid, &x->e, *buf, len, plain) < 0) {
			rs_fail(w, VV_ECORRUPT, "object %s: altered: block %llu of inode %llu does not "
				"authenticate; nothing restored", nhex, (unsigned long long)x->e.fblock,
				(unsigned long long)x->ino);
			return VV_ECORRUPT;
		}
		(*rg)[nr].off = x->e.off;
		(*rg)[nr++].end = (size_t)vv_content_extent_end(&x->e);
	}
	/* What no reachable extent names: zeros (the header was checked
	 * by each vv_content_open_mem: version, then zeros). */
	qsort(*rg, nr, sizeof(**rg), rs_cmp_range);
	for (size_t i = 0; i < nr; i++) {
		if ((*rg)[i].off > cur)
			memset(*buf + cur, 0, (*rg)[i].off - cur);
		if ((*rg)[i].end > cur)
			cur = (*rg)[i].end;
	}
	if (len > cur)
		memset(*buf + cur, 0, len - cur);
	if ((r = put_chunk(w, o->chunk, *buf, len)) < 0) {
		rs_fail(w, r, "cannot write a chunk into the new store: %s", vv_strerror(r));
		return r;
	}
	w->written[o - m->objs] = true;
	pthread_mutex_lock(&w->mu);
	s->p.objects_done++;
	s->p.bytes_done += len;
	if (s->progress)
		s->progress(s->ctx, &s->p);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

static void *rs_main(void *arg)
{
	struct rs *w = arg;
	struct rs_range *rg = NULL;
	uint8_t *buf = NULL, *plain = malloc(VV_BLOCK_SIZE);
	size_t cap = 0, rgcap = 0;

	if (!plain)
		rs_fail(w, VV_ENOMEM, "out of memory");
	for (size_t j; vault_backup_next_job(&w->mu, &w->r, &w->next, w->njobs, &j);) {
		if (rs_one(w, &w->jobs[j], &buf, &cap, plain, &rg, &rgcap) == VV_ENOMEM)
			rs_fail(w, VV_ENOMEM, "out of memory");
	}
	free(buf);
	free(plain);
	free(rg);
	return NULL;
}

/* Copy every object the reachable extents name into STORE/chunks (above),
 * taking the live references meanwhile; then sync them. */
static int restore_chunks(struct rst *s, struct vv_store *store, struct vv_meta *meta)
{
	struct vv_manifest *m = s->m;
	struct rs w = { .s = s, .store = store };
	pthread_t th[RS_WORKERS];
	int started = 0, r = 0;

	/* a backup of empty files names no object: qsort's array must not
	 * be NULL, even for 0 items (UBSan) */
	if (m->nobjs)
		qsort(m->objs, m->nobjs, sizeof(*m->objs), r_cmp_obj);
	if (m->nextents)
		qsort(m->extents, m->nextents, sizeof(*m->extents), r_cmp_ext);
	if (!(w.written = calloc(m->nobjs + 1, sizeof(bool))) ||
	    !(w.jobs = calloc(m->nextents + 1, sizeof(*w.jobs)))) {
		r = VV_ENOMEM;
		goto out;
	}
	/* The jobs: each object once, with its run of extents (the extents
	 * are sorted by chunk id, as the objects are). */
	for (size_t i = 0; i < m->nextents; i++) {
		const struct vv_bk_extent *x = &m->extents[i];
		long in, ci;
		const struct vv_bk_object *o = ext_obj(s, x, &in, &ci);

		if (in < 0 || !s->reach[in])
			continue;
		if (!o || ci < 0) {
			rsay(s, "backup %s: block %llu of inode %llu names %s", m->info.id,
			     (unsigned long long)x->e.fblock, (unsigned long long)x->ino,
			     o ? "a collection without a key" : "an object the backup does not list");
			r = VV_ECORRUPT;
			goto out;
		}
		if (w.njobs && w.jobs[w.njobs - 1].o == o) {
			w.jobs[w.njobs - 1].hi = i + 1;
		} else {
			w.jobs[w.njobs].o = o;
			w.jobs[w.njobs].lo = i;
			w.jobs[w.njobs++].hi = i + 1;
		}
	}
	pthread_mutex_init(&w.mu, NULL);
	for (int i = 0; i < RS_WORKERS && (size_t)i < w.njobs; i++)
		if (pthread_create(&th[i], NULL, rs_main, &w) == 0)
			started++;
	/* Meanwhile the extent rows and the chunks' references. */
	for (size_t i = 0; i < m->nextents && r == 0; i++) {
		const struct vv_bk_extent *x = &m->extents[i];
		long in, ci;
		const struct vv_bk_object *o = ext_obj(s, x, &in, &ci);

		if (in < 0 || !s->reach[in])
			continue;
		if ((r = vv_meta_chunk_ref(meta, x->e.chunk_id, s->newcoll[ci], 1, o->size, NULL)) < 0 ||
		    (r = vv_meta_extent_put(meta, x->ino, &x->e)) < 0)
			rs_fail(&w, r, "cannot write the new store's metadata: %s", vv_strerror(r));
	}
	rs_main(&w);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&w.mu);
	if ((r = w.r) < 0) {
		if (w.why[0])
			rsay(s, "%s", w.why);
		goto out;
	}
	/* Done (the totals counted unreachable objects too: an upper bound). */
	s->p.objects_total = s->p.objects_done;
	s->p.bytes_total = s->p.bytes_done;
	if (s->progress)
		s->progress(s->ctx, &s->p);
	/* The chunks and their directories are durable before the commit
	 * that names them (DESIGN invariant 4). */
	if ((r = sync_written(m, store, w.written, w.dirs)) < 0)
		rsay(s, "cannot sync the chunks of the new store: %s", vv_strerror(r));
out:
	free(w.written);
	free(w.jobs);
	return r;
}

static int restore_rows(struct rst *s, struct vv_meta *meta)
{
	struct vv_manifest *m = s->m;
	uint64_t maxino = 1;
	int r;

	for (size_t i = 0; i < m->ninodes; i++) {
		struct vv_inode_row row = m->inodes[i].r;
		long ci;

		if (!s->reach[i])
			continue;
		if ((ci = coll_index(m, row.coll)) < 0) {
			rsay(s, "backup %s: inode %llu's collection %u has no key in the backup", m->info.id,
			     (unsigned long long)row.ino, row.coll);
			return VV_ECORRUPT;
		}
		row.coll = s->newcoll[ci];
		if (!S_ISDIR(row.mode))
			row.nlink = s->links[i];
		if (row.ino > maxino)
			maxino = row.ino;
		if ((r = vv_meta_inode_put(meta, &row)) < 0)
			return r;
		if (m->inodes[i].datalen &&
		    (r = vv_meta_inode_set_data(meta, row.ino, m->inodes[i].data, m->inodes[i].datalen)) < 0)
			return r;
	}
	for (size_t i = 0; i < m->ndirents; i++) {
		const struct vv_bk_dirent *d = &m->dirents[i];
		long p = ino_index(m, d->parent);
		if (p < 0 || !s->reach[p] || !S_ISDIR(m->inodes[p].r.mode))
			continue;
		if ((r = vv_meta_dirent_add(meta, d->parent, d->name, d->ino, d->mode)) < 0)
			return r;
	}
	for (size_t i = 0; i < m->nxattrs; i++) {
		long x = ino_index(m, m->xattrs[i].ino);
		if (x < 0 || !s->reach[x])
			continue;
		if ((r = vv_meta_xattr_set(meta, m->xattrs[i].ino, m->xattrs[i].name, m->xattrs[i].val,
					   m->xattrs[i].vlen)) < 0)
			return r;
	}
	if ((r = vv_meta_kv_set_u64(meta, "next_ino", maxino + 1)) < 0)
		return r;
	/* The backup carries files, not the vault users who made them: their
	 * uids are retired, or the first users added here would own them. */
	return vv_meta_user_retire_owners(meta);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/*
 * The new store of a restore, made on a thread of its own (vault_new_begin:
 * its key slot's Argon2id is most of a small restore's fixed cost) while
 * the caller unlocks the repository and reads the manifest.
 */
struct vv_restore_target {
	pthread_t th;
	char *newstore;
	char *pass;                        /* secure memory */
	size_t passlen;
	int kdf_profile;
	unsigned vflags;
	struct vault_new nv;
	int r;                             /* vault_new_begin's */
	bool threaded;                     /* th runs it: join before looking */
};

static void *rt_main(void *arg)
{
	struct vv_restore_target *t = arg;

	t->r = vault_new_begin(t->newstore, t->pass, t->passlen, t->kdf_profile, t->vflags, &t->nv);
	return NULL;
}

static void rt_free(struct vv_restore_target *t)
{
	if (t->pass)
		vv_memzero(t->pass, t->passlen);
	vv_secure_free(t->pass);
	free(t->newstore);
	free(t);
}

int vv_repo_restore_begin(const char *newstore, const char *pass, size_t passlen, int kdf_profile,
			  unsigned vflags, struct vv_restore_target **out)
{
	struct vv_restore_target *t;
	int r;

	if ((r = vv_crypto_init()) < 0)
		return r;
	if (!(t = calloc(1, sizeof(*t))))
		return VV_ENOMEM;
	t->passlen = passlen;
	t->kdf_profile = kdf_profile;
	t->vflags = vflags;
	if (!(t->newstore = strdup(newstore)) || !(t->pass = vv_secure_alloc(passlen + 1))) {
		rt_free(t);
		return VV_ENOMEM;
	}
	memcpy(t->pass, pass, passlen);
	t->pass[passlen] = 0;
	if (pthread_create(&t->th, NULL, rt_main, t) == 0)
		t->threaded = true;
	else
		rt_main(t);                    /* no thread: made here, in turn */
	*out = t;
	return 0;
}

static void rt_join(struct vv_restore_target *t)
{
	if (t->threaded)
		pthread_join(t->th, NULL);
	t->threaded = false;
}

void vv_repo_restore_abort(struct vv_restore_target *t)
{
	if (!t)
		return;
	rt_join(t);
	if (t->r == 0)
		vault_new_end(&t->nv, VV_ECANCELED, NULL);
	if (t->nv.made && nftw(t->newstore, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		vv_log(VV_LOG_WARN, "backup: cannot remove the half-made %s", t->newstore);
	rt_free(t);
}

int vv_repo_restore_store(struct vv_repo *repo, const char *id_hex, const char *newstore,
			  const char *pass, size_t passlen, int kdf_profile, unsigned vflags,
			  const char *state_dir, vv_repo_problem_fn problem,
			  vv_repo_progress_fn progress, vv_repo_made_fn made, void *ctx)
{
	struct vv_restore_target *t;
	int r;

	if ((r = vv_repo_restore_begin(newstore, pass, passlen, kdf_profile, vflags, &t)) < 0)
		return r;
	return vv_repo_restore_finish(t, repo, id_hex, state_dir, problem, progress, made, ctx);
}

int vv_repo_restore_finish(struct vv_restore_target *t, struct vv_repo *repo, const char *id_hex,
			   const char *state_dir, vv_repo_problem_fn problem,
			   vv_repo_progress_fn progress, vv_repo_made_fn made, void *ctx)
{
	struct rst s = { .repo = repo, .problem = problem, .progress = progress, .ctx = ctx };
	struct vault_new nv = { 0 };
	const char *newstore = t->newstore;
	struct vv_manifest m;
	bool taken = false;
	long rc;
	int r;

	s.m = &m;
	if ((r = vv_repo_manifest_load(repo, id_hex, &m)) < 0) {
		rsay(&s, "manifest %s: %s", id_hex, r == VV_ECORRUPT && vv_repo_why(repo)[0] ?
		     vv_repo_why(repo) : r == VV_ECORRUPT ? "altered, truncated or not of this "
		     "repository (does not authenticate)" : vv_strerror(r));
		goto out;
	}
	/* (a backup of an empty vault has no dirents: NULL, see restore_chunks) */
	if (m.ninodes)
		qsort(m.inodes, m.ninodes, sizeof(*m.inodes), r_cmp_ino);
	if (m.ndirents)
		qsort(m.dirents, m.ndirents, sizeof(*m.dirents), r_cmp_de);
	for (size_t i = 1; i < m.ninodes; i++)
		if (m.inodes[i].r.ino == m.inodes[i - 1].r.ino) {
			rsay(&s, "backup %s: inode %llu twice", m.info.id, (unsigned long long)m.inodes[i].r.ino);
			r = VV_ECORRUPT;
			goto out;
		}
	if (!(s.keys = calloc(m.ncolls + 1, sizeof(*s.keys))) ||
	    !(s.newcoll = calloc(m.ncolls + 1, sizeof(*s.newcoll))) ||
	    !(s.reach = calloc(m.ninodes + 1, sizeof(*s.reach))) ||
	    !(s.links = calloc(m.ninodes + 1, sizeof(*s.links)))) {
		r = VV_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < m.ncolls; i++) {
		if (!(s.keys[i] = vv_secure_alloc(VV_KEY_BYTES))) {
			r = VV_ENOMEM;
			goto out;
		}
		if ((r = vv_repo_coll_unwrap(repo, m.id, m.colls[i].id, m.colls[i].wrapped, s.keys[i])) < 0) {
			rsay(&s, "backup %s: the key of collection %u does not authenticate", m.info.id,
			     m.colls[i].id);
			r = VV_ECORRUPT;
			goto out;
		}
	}
	if ((r = reach(&s)) < 0)
		goto out;
	for (size_t i = 0; i < m.nobjs; i++)
		s.p.bytes_total += m.objs[i].size;
	s.p.objects_total = m.nobjs;
	rt_join(t);
	nv = t->nv;
	taken = true;
	if ((r = t->r) < 0) {
		if (!nv.made)
			rsay(&s, "cannot create a vault in %s: %s", newstore, vv_strerror(r));
		goto out;
	}
	nv.committed = made;
	nv.committed_ctx = ctx;
	for (size_t i = 0; i < m.ncolls; i++)
		if ((r = vault_coll_key_put(nv.meta, nv.wrapkey, s.keys[i], &s.newcoll[i])) < 0)
			goto done;
	if ((rc = coll_index(&m, m.root_coll)) < 0) {
		rsay(&s, "backup %s: the root collection has no key in the backup", m.info.id);
		r = VV_ECORRUPT;
		goto done;
	}
	if ((r = vv_meta_kv_set_u64(nv.meta, "root_coll", s.newcoll[rc])) < 0 ||
	    (r = restore_rows(&s, nv.meta)) < 0)
		goto done;
	r = restore_chunks(&s, nv.store, nv.meta);
done:
	r = vault_new_end(&nv, r, state_dir);
out:
	if (!taken) {
		/* Failed before the new store was needed: it is not kept. */
		rt_join(t);
		if (t->r == 0)
			vault_new_end(&t->nv, r, NULL);
		nv.made = t->nv.made;
	}
	if (r < 0 && nv.made && nftw(newstore, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
		vv_log(VV_LOG_WARN, "backup: cannot remove the half-made %s", newstore);
	rt_free(t);
	for (size_t i = 0; s.keys && i < m.ncolls; i++)
		vv_secure_free(s.keys[i]);
	free(s.keys);
	free(s.newcoll);
	free(s.reach);
	free(s.links);
	vv_manifest_free(&m);
	return r;
}
