/*
 * vault_fsck.c - vecvault fsck: decrypt and check everything.
 *
 * 1. meta.db: PRAGMA integrity_check reads every page, so every page is
 *    decrypted and authenticated.
 * 2. Directory entries point at existing inodes; link counts match.
 * 3. Every extent's block is read and authenticated (damage is named by
 *    path, block and chunk).
 * 4. Chunk reference counts match the extents; chunk files on disk that
 *    nothing references (orphans of a crash) are freed when repairing;
 *    referenced chunks that are missing are damage.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto_int.h"
#include "grow.h"
#include "os.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

struct ino_info {
	uint64_t ino;
	uint32_t mode, nlink, coll;
	uint32_t links;                  /* entries seen (a trash row is one) */
	bool trashed;                    /* a trash row names it */
	uint8_t objid[VV_OBJID_BYTES];
};

struct cref {
	uint8_t id[VV_CHUNK_ID_BYTES];
	uint64_t refs;                   /* from extents */
	uint64_t min_size;
	bool in_table, on_disk;
};

struct fsck {
	struct vv_vault *v;
	bool repair;
	vv_report_fn fn;
	void *ctx;
	struct vv_fsck_report *rep;
	struct ino_info *inos;
	size_t ninos, capinos;
	struct cref *crefs;
	size_t ncrefs, capcrefs;
	uint8_t *buf;
	uint64_t blocks_est;             /* for progress: stored bytes in blocks */
};

static void say(struct fsck *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct fsck *f, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (f->fn)
		f->fn(f->ctx, line);
}

/* Reading every block is the long part; the estimate counts each file's
 * stored bytes in whole blocks, so it is exact but for holes and short
 * interior blocks, and the total is never shown below what is done. */
static void progress(struct fsck *f, bool last)
{
	uint64_t done = f->rep->blocks_checked;

	if (f->v->progress)
		f->v->progress(f->v->progress_ctx, done,
			       last || done > f->blocks_est ? done : f->blocks_est);
}

static void integrity_line(void *ctx, const char *line)
{
	struct fsck *f = ctx;

	f->rep->damaged++;
	say(f, "damaged: meta.db: %s", line);
}

static int collect_ino(void *ctx, const struct vv_inode_row *r)
{
	struct fsck *f = ctx;

	if (VV_GROW(f->inos, f->ninos, f->capinos) < 0)
		return VV_ENOMEM;
	f->inos[f->ninos].ino = r->ino;
	f->inos[f->ninos].mode = r->mode;
	f->inos[f->ninos].nlink = r->nlink;
	f->inos[f->ninos].coll = r->coll;
	f->inos[f->ninos].links = 0;
	f->inos[f->ninos].trashed = false;
	memcpy(f->inos[f->ninos].objid, r->objid, VV_OBJID_BYTES);
	f->ninos++;
	f->blocks_est += (r->stored + VV_BLOCK_SIZE - 1) / VV_BLOCK_SIZE;
	f->rep->inodes++;
	if (S_ISDIR(r->mode))
		f->rep->dirs++;
	else if (S_ISREG(r->mode))
		f->rep->files++;
	return 0;
}

static struct ino_info *find_ino(struct fsck *f, uint64_t ino)
{
	size_t lo = 0, hi = f->ninos;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (f->inos[mid].ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < f->ninos && f->inos[lo].ino == ino ? &f->inos[lo] : NULL;
}

static int check_dirent(void *ctx, uint64_t parent, const char *name, uint64_t ino)
{
	struct fsck *f = ctx;
	struct ino_info *p = find_ino(f, parent), *i = find_ino(f, ino);

	/* A store in the trash's older layout (before its next read-write
	 * open migrates it, meta_trash.c) has its items' entries in the
	 * virtual .trash/files: their rows count their links (trash_link). */
	if (parent == VV_TRASH_FILES_INO) {
		if (!i || !i->trashed) {
			f->rep->errors++;
			say(f, "error: entry '%s' in .trash/files (inode %llu) has no trash row", name,
			    (unsigned long long)ino);
		}
		return 0;
	}
	if (!p || !S_ISDIR(p->mode)) {
		f->rep->errors++;
		say(f, "error: entry '%s' in missing directory inode %llu", name, (unsigned long long)parent);
	}
	if (!i) {
		f->rep->errors++;
		say(f, "error: entry '%s' (in inode %llu) points at missing inode %llu", name,
		    (unsigned long long)parent, (unsigned long long)ino);
		return 0;
	}
	i->links++;
	return 0;
}

/* A trashed item, or a part of a removed tree, has no directory entry:
 * its row in the trash table is its one link (vault_trash.c). */
static int trash_link(void *ctx, uint64_t ino, const char *name)
{
	struct fsck *f = ctx;
	struct ino_info *i = find_ino(f, ino);

	if (!i) {
		f->rep->errors++;
		say(f, "error: trash item '%s' points at missing inode %llu", name, (unsigned long long)ino);
		return 0;
	}
	i->links++;
	i->trashed = true;
	return 0;
}

static struct cref *cref_get(struct fsck *f, const uint8_t id[VV_CHUNK_ID_BYTES], bool add)
{
	for (size_t i = 0; i < f->ncrefs; i++)        /* small vaults: linear is fine */
		if (memcmp(f->crefs[i].id, id, VV_CHUNK_ID_BYTES) == 0)
			return &f->crefs[i];
	if (!add)
		return NULL;
	if (VV_GROW(f->crefs, f->ncrefs, f->capcrefs) < 0)
		return NULL;
	memset(&f->crefs[f->ncrefs], 0, sizeof(f->crefs[0]));
	memcpy(f->crefs[f->ncrefs].id, id, VV_CHUNK_ID_BYTES);
	return &f->crefs[f->ncrefs++];
}

static int check_extent(void *ctx, uint64_t ino, const struct vv_extent *e)
{
	struct fsck *f = ctx;
	struct ino_info *i = find_ino(f, ino);
	struct cref *c = cref_get(f, e->chunk_id, true);
	const uint8_t *key;
	char hex[17], path[4096];
	int r;

	if (!c)
		return VV_ENOMEM;
	c->refs++;
	if (vv_content_extent_end(e) > c->min_size)
		c->min_size = vv_content_extent_end(e);
	f->rep->blocks_checked++;
	progress(f, false);
	vv_hex_encode(hex, e->chunk_id, 8);
	if (!i) {
		f->rep->errors++;
		say(f, "error: extent of missing inode %llu (chunk %s)", (unsigned long long)ino, hex);
		return 0;
	}
	if ((r = vault_key(f->v, i->coll, &key)) < 0) {
		f->rep->damaged++;
		say(f, "damaged: key of collection %u: %s", i->coll, vv_strerror(r));
		return 0;
	}
	r = vv_content_read_block(f->v->content, key, i->objid, e, f->buf);
	if (r < 0) {
		vault_node_path(f->v, ino, path, sizeof(path));
		f->rep->damaged++;
		say(f, "damaged: %s block %llu (chunk %s...): %s", path, (unsigned long long)e->fblock,
		    hex, r == VV_ECORRUPT ? "authentication failed" : vv_strerror(r));
	}
	return 0;
}

/* A snapshot holds one reference on each distinct chunk it names
 * (meta_snap*.c), counted beside the live tree's one per extent. */
static int snap_ref(void *ctx, uint32_t sid, const uint8_t *chunk)
{
	struct fsck *f = ctx;
	struct cref *c = cref_get(f, chunk, true);

	(void)sid;
	if (!c)
		return VV_ENOMEM;
	c->refs++;
	f->rep->snapshot_refs++;
	return 0;
}

static void snap_line(void *ctx, const char *line)
{
	struct fsck *f = ctx;

	f->rep->errors++;
	say(f, "%s", line);
}

static int snap_check(void *ctx, const struct vv_snap_row *s)
{
	struct fsck *f = ctx;
	uint64_t bad = 0;

	f->rep->snapshots++;
	return vv_meta_snap_check(f->v->meta, s->id, snap_line, f, &bad);
}

static int table_chunk(void *ctx, const uint8_t *id, uint32_t coll, uint64_t refs, uint64_t size)
{
	struct fsck *f = ctx;
	struct cref *c = cref_get(f, id, true);

	if (!c)
		return VV_ENOMEM;
	c->in_table = true;
	if (c->refs != refs) {
		char hex[17];
		vv_hex_encode(hex, id, 8);
		f->rep->errors++;
		say(f, "error: chunk %s... counted %llu references, has %llu%s", hex,
		    (unsigned long long)refs, (unsigned long long)c->refs, f->repair ? " (fixed)" : "");
		if (f->repair)
			vv_meta_chunk_set_refs(f->v->meta, id, c->refs);
	}
	return 0;
}

static int disk_chunk(void *ctx, const uint8_t id[VV_CHUNK_ID_BYTES], uint64_t size)
{
	struct fsck *f = ctx;
	struct cref *c = cref_get(f, id, false);
	char hex[17];

	f->rep->chunks++;
	vv_hex_encode(hex, id, 8);
	if (!c || c->refs == 0) {
		f->rep->orphan_chunks++;
		if (f->repair && vv_content_unlink(f->v->content, id) == 0)
			f->rep->orphan_chunks_freed++;
		say(f, "orphan: chunk %s... (%llu bytes) is referenced by nothing%s", hex,
		    (unsigned long long)size, f->repair ? ", freed" : "");
		return 0;
	}
	c->on_disk = true;
	if (size < c->min_size) {
		f->rep->damaged++;
		say(f, "damaged: chunk %s... is truncated (%llu of at least %llu bytes)", hex,
		    (unsigned long long)size, (unsigned long long)c->min_size);
	}
	return 0;
}

static int junk(void *ctx, const char *rel)
{
	struct fsck *f = ctx;
	const char *base = strrchr(rel, '/');
	char path[4096], sub[4096];

	base = base ? base + 1 : rel;
	if (strncmp(base, ".tmp-", 5) == 0) {
		/* A chunk being written when the process died: never committed. */
		f->rep->orphan_chunks++;
		snprintf(sub, sizeof(sub), "chunks/%s", rel);
		if (f->repair && vv_store_path(f->v->store, sub, path, sizeof(path)) == 0 &&
		    vv_os_unlink(path) == 0)
			f->rep->orphan_chunks_freed++;
		say(f, "orphan: chunks/%s was left half-written by a crash%s", rel,
		    f->repair ? ", removed" : "");
		return 0;
	}
	f->rep->errors++;
	say(f, "junk: chunks/%s is not a chunk object (not removed: vecvault did not write it)", rel);
	return 0;
}

/* Collection keys nothing needs (vv_meta_coll_needed): a writable open
 * drops them (vault_coll_gc), so only a dry run finds any. */
static int check_keys(struct fsck *f)
{
	uint32_t *ids = NULL;
	size_t n = 0;
	int r;

	if ((r = vv_meta_coll_ids(f->v->meta, f->v->root_coll, &ids, &n)) < 0)
		return r;
	f->rep->keys = n + 1;
	for (size_t i = 0; i < n; i++) {
		bool needed = true;
		if ((r = vv_meta_coll_needed(f->v->meta, ids[i], 0, &needed)) < 0)
			break;
		if (needed)
			continue;
		f->rep->orphan_keys++;
		if (f->repair && (r = vault_coll_release(f->v, ids[i], 0)) > 0)
			f->rep->orphan_keys_dropped++;
		say(f, "orphan: key of collection %u is needed by nothing%s", ids[i],
		    r > 0 ? " (dropped)" : "");
		if (r < 0)
			break;
	}
	free(ids);
	return r < 0 ? r : 0;
}

int vv_vault_fsck(struct vv_vault *v, bool repair, vv_report_fn fn, void *ctx,
		  struct vv_fsck_report *rep)
{
	struct fsck f = { .v = v, .repair = repair, .fn = fn, .ctx = ctx, .rep = rep };
	int r;

	memset(rep, 0, sizeof(*rep));
	f.buf = malloc(VV_BLOCK_SIZE);
	if (!f.buf)
		return VV_ENOMEM;
	if ((r = vault_flush_all(v)) < 0)
		goto out;
	pthread_mutex_lock(&v->mu);
	if ((r = vault_commit_anchor(v)) < 0)
		goto unlock;
	vault_unlink_freed(v, true);        /* freed chunks are not orphans */
	vv_meta_integrity(v->meta, integrity_line, &f);
	if ((r = vv_meta_inode_iter(v->meta, collect_ino, &f)) < 0 ||
	    (v->trash.ready && (r = vv_meta_trash_links(v->meta, trash_link, &f)) < 0) ||
	    (r = vv_meta_dirent_iter_all(v->meta, check_dirent, &f)) < 0)
		goto report;
	for (size_t i = 0; i < f.ninos; i++) {
		struct ino_info *n = &f.inos[i];
		uint32_t want = S_ISDIR(n->mode) ? 0 : n->links;
		if (n->ino == VV_ROOT_INO)
			continue;
		if (n->links == 0) {
			f.rep->orphan_inodes++;
			say(&f, "orphan: inode %llu is in no directory", (unsigned long long)n->ino);
		} else if (!S_ISDIR(n->mode) && n->nlink != want) {
			f.rep->errors++;
			say(&f, "error: inode %llu has link count %u but %u entries",
			    (unsigned long long)n->ino, n->nlink, n->links);
		}
	}
	/* The transaction holds the repairs of reference counts below; a dry
	 * run (a read-only vault, where vault_txn says EROFS) changes nothing
	 * and needs none. */
	if ((r = vv_meta_extent_iter_all(v->meta, check_extent, &f)) < 0 ||
	    (r = vv_meta_snap_list(v->meta, snap_check, &f)) < 0 ||
	    (r = vv_meta_snap_chunk_iter(v->meta, snap_ref, &f)) < 0 ||
	    (repair && (r = vault_txn(v)) < 0) ||
	    (r = vv_meta_chunk_iter(v->meta, table_chunk, &f)) < 0)
		goto report;
	{
		/* statfs's kept inode count (meta.c inode_count) */
		uint64_t kept = 0;
		if ((r = vv_meta_counts(v->meta, &kept)) < 0)
			goto report;
		if (kept != f.ninos) {
			f.rep->errors++;
			say(&f, "error: meta.db keeps an inode count of %llu but holds %zu inodes%s",
			    (unsigned long long)kept, f.ninos, repair ? " (fixed)" : "");
			if (repair && (r = vv_meta_counts_set(v->meta, f.ninos)) < 0)
				goto report;
		}
	}
	for (size_t i = 0; i < f.ncrefs; i++)
		if (f.crefs[i].refs && !f.crefs[i].in_table) {
			char hex[17];
			vv_hex_encode(hex, f.crefs[i].id, 8);
			f.rep->errors++;
			say(&f, "error: chunk %s... is used but not counted%s", hex, repair ? " (fixed)" : "");
			if (repair)
				vv_meta_chunk_ref(v->meta, f.crefs[i].id, 0, (int64_t)f.crefs[i].refs, 0, NULL);
		}
	progress(&f, true);
	if ((r = vv_content_list_all(v->content, disk_chunk, junk, &f)) < 0)
		goto report;
	for (size_t i = 0; i < f.ncrefs; i++)
		if (f.crefs[i].refs && !f.crefs[i].on_disk) {
			char hex[17];
			vv_hex_encode(hex, f.crefs[i].id, 8);
			f.rep->missing_chunks++;
			f.rep->damaged++;
			say(&f, "damaged: chunk %s... is missing (%llu blocks lost)", hex,
			    (unsigned long long)f.crefs[i].refs);
		}
	if ((r = check_keys(&f)) < 0)
		goto report;
	if (repair)
		r = vault_commit_anchor(v);
report:
	if (r == 0 && (rep->damaged || rep->missing_chunks))
		r = VV_ECORRUPT;
unlock:
	pthread_mutex_unlock(&v->mu);
out:
	free(f.inos);
	free(f.crefs);
	free(f.buf);
	return r;
}
