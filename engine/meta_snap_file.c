/*
 * meta_snap_file.c - snapshots kept as files (STORE/snapshots/ID.db): their
 * records in meta.db, the connections that read the files, and making,
 * deleting, recovering, sweeping, checking and restoring from them.  A
 * file of its own because such a snapshot is a database of its own;
 * meta_snap.c holds the tables every snapshot has, the rows of older
 * builds' snapshots and the view (meta_snap_int.h between the two).
 *
 * A snapshot made by this build is a byte copy of the checkpointed meta.db
 * (vv_metavfs_copy): its rows are the live tables of that copy, read
 * through a read-only connection of their own with the live queries.
 * meta.db keeps, per such snapshot:
 *   snap_files(snap PK, state 0 pending / 1 ready, mac)   mac: the whole
 *                          file's keyed hash (older builds), NULL with tags
 *   snap_tags(snap PK, tags)                  the tag of each page, 16 bytes
 *                          each in page order (this build; the VFS checks
 *                          every page read against it)
 *   snap_chunks(snap, chunk) PK                           its references
 * plus its snaps row and snap_colls rows, as before.  A pending snapshot
 * (its file not yet synced) is hidden, and dropped with its references at
 * the next read-write open (vv_meta_snap_recover).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto_int.h"
#include "grow.h"
#include "meta_snap_int.h"
#include "meta_sql_int.h"
#include "meta_vfs_int.h"
#include "os.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

static const char file_schema_sql[] =
	"CREATE TABLE IF NOT EXISTS snap_files(snap INTEGER PRIMARY KEY, state INTEGER NOT NULL,"
	" mac BLOB);"
	"CREATE TABLE IF NOT EXISTS snap_chunks(snap INTEGER NOT NULL, chunk BLOB NOT NULL,"
	" PRIMARY KEY(snap, chunk)) WITHOUT ROWID;";

int meta_snap_file_schema(struct vv_meta *m)
{
	return meta_exec(m, file_schema_sql);
}

int meta_snap_tags_schema(struct vv_meta *m)
{
	return meta_exec(m, "CREATE TABLE IF NOT EXISTS snap_tags(snap INTEGER PRIMARY KEY,"
			 " tags BLOB NOT NULL);");
}

static const char q_f_kind[] = "SELECT state, mac FROM snap_files WHERE snap=?1";
static const char q_f_add[] = "INSERT INTO snap_files(snap, state, mac) VALUES(?1, 0, NULL)";
/* Every collection until the snapshot is ready (a superset, so that no
 * key it needs can be dropped meanwhile), then exactly its own. */
static const char q_f_colls[] = "INSERT INTO snap_colls SELECT ?1, id FROM colls";
static const char q_f_chunks[] = "INSERT INTO snap_chunks SELECT DISTINCT ?1, chunk FROM extents";
static const char q_f_ref[] = "UPDATE chunks SET refs=refs+1 WHERE id IN"
			      " (SELECT chunk FROM snap_chunks WHERE snap=?1)";
static const char q_f_ready[] = "UPDATE snap_files SET state=1, mac=NULL WHERE snap=?1 AND state=0";
static const char q_f_tags_add[] = "INSERT INTO snap_tags(snap, tags) VALUES(?1, ?2)";
static const char q_f_tags[] = "SELECT tags FROM snap_tags WHERE snap=?1";
static const char q_f_del_t[] = "DELETE FROM snap_tags WHERE snap=?1";
static const char q_f_counts[] = "UPDATE snaps SET inodes=?2, bytes=?3 WHERE id=?1";
static const char q_f_coll_one[] = "INSERT OR IGNORE INTO snap_colls(snap, coll) VALUES(?1, ?2)";
/* On the file: files, their bytes and collections, in one scan. */
static const char q_ff_sum[] = "SELECT coll, sum(mode & 61440 = 32768),"
			       " sum(CASE WHEN mode & 61440 = 32768 THEN size ELSE 0 END)"
			       " FROM inodes GROUP BY coll";
static const char q_ff_owners[] = "SELECT DISTINCT uid FROM inodes";
static const char q_f_chunk_list[] = "SELECT chunk FROM snap_chunks WHERE snap=?1";
static const char q_f_del_ch[] = "DELETE FROM snap_chunks WHERE snap=?1";
static const char q_f_del_f[] = "DELETE FROM snap_files WHERE snap=?1";
static const char q_f_pending[] = "SELECT snap FROM snap_files WHERE state=0";
static const char q_f_ready_list[] = "SELECT snap FROM snap_files WHERE state=1";
static const char q_f_has_chunk[] = "SELECT 1 FROM snap_chunks WHERE snap=?1 AND chunk=?2";
/* On the file (fsck). */
static const char q_ff_chk_de[] = "SELECT d.parent, d.ino FROM dirents d WHERE NOT EXISTS"
				  " (SELECT 1 FROM inodes i WHERE i.ino=d.ino)";
static const char q_ff_chk_e[] = "SELECT DISTINCT e.ino FROM extents e WHERE NOT EXISTS"
				 " (SELECT 1 FROM inodes i WHERE i.ino=e.ino)";
static const char q_ff_chunks[] = "SELECT DISTINCT chunk FROM extents";
/* On the file (restore). */
static const char q_ff_ino[] = "SELECT " INODE_COLS ", data FROM inodes WHERE ino=?1";
static const char q_ff_x[] = "SELECT name, value FROM xattrs WHERE ino=?1";
static const char q_ff_e[] = "SELECT fblock, chunk, off, len, slot FROM extents WHERE ino=?1";
static const char q_rf_ino[] = "INSERT INTO inodes(ino, " INODE_COLS ", data)"
			       " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)";
static const char q_rf_x[] = "INSERT INTO xattrs(ino, name, value) VALUES(?1, ?2, ?3)";
static const char q_rf_e[] = "INSERT INTO extents(ino, fblock, chunk, off, len, slot) VALUES(?1,?2,?3,?4,?5,?6)";

#define SNAPC_CONNS 4                    /* open snapshot files, least recently used goes */
#define SNAPC_STMTS 48                   /* statements per connection */
#define SNAPC_CACHE "PRAGMA cache_size=-8192"

struct snapc_conn {
	uint32_t sid;                    /* 0: free */
	sqlite3 *db;
	uint64_t used;
	struct { const char *sql; sqlite3_stmt *s; } x[SNAPC_STMTS];
	size_t nx;
};

struct meta_snapc {
	struct snapc_conn c[SNAPC_CONNS];
	uint64_t tick;
	uint32_t *verified;              /* files whose MAC this process checked */
	size_t nver, capver;
};

bool meta_snap_have_files(struct vv_meta *m)
{
	return meta_has_table(m, "snap_files");
}

int vv_meta_snap_file_path(struct vv_meta *m, uint32_t sid, char *buf, size_t cap)
{
	const char *db = sqlite3_db_filename(meta_db(m), "main");
	const char *slash = db ? strrchr(db, '/') : NULL;
	int n;

	if (!slash)
		return VV_EINVAL;
	if (sid == 0)
		n = snprintf(buf, cap, "%.*s/snapshots", (int)(slash - db), db);
	else
		n = snprintf(buf, cap, "%.*s/snapshots/%u.db", (int)(slash - db), db, sid);
	return n < 0 || (size_t)n >= cap ? VV_ENAMETOOLONG : 0;
}

static void conn_close(struct snapc_conn *c)
{
	for (size_t i = 0; i < c->nx; i++)
		sqlite3_finalize(c->x[i].s);
	if (c->db && vv_metavfs_close(c->db) < 0)
		vv_log(VV_LOG_WARN, "meta: closing snapshot %u's file failed", c->sid);
	memset(c, 0, sizeof(*c));
}

static void conn_drop(struct vv_meta *m, uint32_t sid)
{
	struct meta_snapc *sc = *meta_snapc_of(m);

	for (int i = 0; sc && i < SNAPC_CONNS; i++)
		if (sc->c[i].sid == sid)
			conn_close(&sc->c[i]);
	for (size_t i = 0; sc && i < sc->nver; i++)
		if (sc->verified[i] == sid)
			sc->verified[i] = sc->verified[--sc->nver];
}

void meta_snap_files_close(struct vv_meta *m)
{
	struct meta_snapc *sc = *meta_snapc_of(m);

	if (!sc)
		return;
	for (int i = 0; i < SNAPC_CONNS; i++)
		conn_close(&sc->c[i]);
	free(sc->verified);
	free(sc);
	*meta_snapc_of(m) = NULL;
}

static bool conn_busy(const struct snapc_conn *c)
{
	for (size_t i = 0; i < c->nx; i++)
		if (sqlite3_stmt_busy(c->x[i].s))
			return true;
	return false;
}

/* Is sid a file snapshot: 1 (state, mac set), 0 (rows or none), or VV_E*.
 * A ready snapshot of this build has no mac (all zeros): its pages' tags
 * bind it (file_tags). */
int meta_snap_file_kind(struct vv_meta *m, uint32_t sid, int *state, uint8_t mac[VV_MAC_BYTES])
{
	int r;

	if (!meta_snap_have_files(m))
		return 0;
	sqlite3_stmt *s = meta_sql(m, q_f_kind);
	if (!s)
		return VV_EIO;
	sqlite3_bind_int64(s, 1, sid);
	if ((r = meta_row(m, s)) < 0)
		return r == VV_ENOENT ? 0 : r;
	*state = sqlite3_column_int(s, 0);
	memset(mac, 0, VV_MAC_BYTES);
	if (*state == 1 && sqlite3_column_bytes(s, 1) == VV_MAC_BYTES)
		memcpy(mac, sqlite3_column_blob(s, 1), VV_MAC_BYTES);
	else if (*state == 1 && sqlite3_column_type(s, 1) != SQLITE_NULL)
		r = VV_ECORRUPT;
	sqlite3_reset(s);
	return r < 0 ? r : 1;
}

static bool has_mac(const uint8_t mac[VV_MAC_BYTES])
{
	static const uint8_t zero[VV_MAC_BYTES];

	return !vv_memeq_ct(mac, zero, VV_MAC_BYTES);
}

/* The recorded page tags of ready snapshot sid (a snapshot without a mac);
 * free with vv_meta_snap_tags_free.  None, or not whole tags: VV_ECORRUPT. */
static int file_tags(struct vv_meta *m, uint32_t sid, struct vv_snap_tags *t)
{
	int n, r;

	memset(t, 0, sizeof(*t));
	if (!meta_has_table(m, "snap_tags")) {
		r = VV_ENOENT;
		goto bad;
	}
	{
		XSTMT(m, q_f_tags);
		if (!s)
			return VV_EIO;
		sqlite3_bind_int64(s, 1, sid);
		if ((r = meta_row(m, s)) < 0) {
			if (r != VV_ENOENT)
				return r;
			goto bad;
		}
		n = sqlite3_column_bytes(s, 0);
		if (n <= 0 || n % VV_TAG_BYTES) {
			sqlite3_reset(s);
			r = VV_ENOENT;
			goto bad;
		}
		if (!(t->tags = malloc((size_t)n))) {
			sqlite3_reset(s);
			return VV_ENOMEM;
		}
		memcpy(t->tags, sqlite3_column_blob(s, 0), (size_t)n);
		t->npages = (uint32_t)(n / VV_TAG_BYTES);
		sqlite3_reset(s);
	}
	return 0;
bad:
	vv_log(VV_LOG_ERR, "meta: snapshot %u has neither the hash of its file nor its pages' tags "
	       "in meta.db", sid);
	return VV_ECORRUPT;
}

void vv_meta_snap_tags_free(struct vv_snap_tags *t)
{
	if (t) {
		free(t->tags);
		memset(t, 0, sizeof(*t));
	}
}

static bool is_verified(const struct meta_snapc *sc, uint32_t sid)
{
	for (size_t i = 0; i < sc->nver; i++)
		if (sc->verified[i] == sid)
			return true;
	return false;
}

static int set_verified(struct meta_snapc *sc, uint32_t sid)
{
	if (is_verified(sc, sid))
		return 0;
	if (VV_GROW(sc->verified, sc->nver, sc->capver) < 0)
		return VV_ENOMEM;
	sc->verified[sc->nver++] = sid;
	return 0;
}

/* The open connection on snapshot sid's file (opened, and its MAC checked
 * once per process, or always with recheck).  VV_ENOENT: sid is not a
 * ready file snapshot. */
static int conn_get(struct vv_meta *m, uint32_t sid, bool recheck, struct snapc_conn **out)
{
	struct meta_snapc *sc = *meta_snapc_of(m);
	struct snapc_conn *c = NULL;
	struct vv_snap_tags t = { 0 };
	uint8_t mac[VV_MAC_BYTES];
	char path[4096];
	sqlite3 *db = NULL;
	bool paged;
	int state = 0, r;

	if (sid == 0)
		return VV_ENOENT;                /* .snapshots itself: no rows anywhere */
	if (!sc) {
		if (!(sc = calloc(1, sizeof(*sc))))
			return VV_ENOMEM;
		*meta_snapc_of(m) = sc;
	}
	for (int i = 0; i < SNAPC_CONNS && !recheck; i++)
		if (sc->c[i].sid == sid) {
			sc->c[i].used = ++sc->tick;
			*out = &sc->c[i];
			return 0;
		}
	if ((r = meta_snap_file_kind(m, sid, &state, mac)) <= 0)
		return r < 0 ? r : VV_ENOENT;
	if (state != 1)
		return VV_ENOENT;
	/* This build's snapshots: every page read is checked against its
	 * tag, so nothing is read up front (and recheck has nothing to add
	 * but a fresh connection).  Older ones: the whole file once. */
	if ((paged = !has_mac(mac)) && (r = file_tags(m, sid, &t)) < 0)
		return r;
	if (recheck)
		conn_drop(m, sid);
	for (int i = 0; i < SNAPC_CONNS; i++) {
		struct snapc_conn *k = &sc->c[i];
		if (!k->sid) {
			c = k;
			break;
		}
		if (!conn_busy(k) && (!c || k->used < c->used))
			c = k;
	}
	if (!c) {
		vv_log(VV_LOG_ERR, "meta: every snapshot connection is busy");
		return VV_EBUSY;
	}
	if ((r = vv_meta_snap_file_path(m, sid, path, sizeof(path))) < 0 ||
	    (r = vv_metavfs_open_copy(meta_db(m), path, sid, paged || is_verified(sc, sid) ? NULL : mac,
				      t.tags, t.npages, &db)) < 0)
		goto out;
	sqlite3_extended_result_codes(db, 1);
	/* A read transaction held open, as on the main connection: no
	 * re-validation of the cache per statement. */
	if (sqlite3_exec(db, SNAPC_CACHE "; BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		r = VV_EIO;
		goto out;
	}
	if (!paged && (r = set_verified(sc, sid)) < 0)
		goto out;
	if (c->sid)
		conn_close(c);
	c->sid = sid;
	c->db = db;
	c->used = ++sc->tick;
	db = NULL;
	*out = c;
out:
	if (db)
		vv_metavfs_close(db);
	vv_meta_snap_tags_free(&t);
	vv_memzero(mac, sizeof(mac));
	return r;
}

static sqlite3_stmt *conn_sql(struct snapc_conn *c, const char *sql)
{
	sqlite3_stmt *s = NULL;

	for (size_t i = 0; i < c->nx; i++)
		if (c->x[i].sql == sql) {
			sqlite3_reset(c->x[i].s);
			sqlite3_clear_bindings(c->x[i].s);
			return c->x[i].s;
		}
	if (c->nx == SNAPC_STMTS) {
		vv_log(VV_LOG_ERR, "meta: more than %d statements on a snapshot file", SNAPC_STMTS);
		return NULL;
	}
	if (sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
		vv_log(VV_LOG_ERR, "meta: snapshot %u: cannot prepare \"%.60s\": %s", c->sid, sql,
		       sqlite3_errmsg(c->db));
		sqlite3_finalize(s);
		return NULL;
	}
	c->x[c->nx].sql = sql;
	c->x[c->nx++].s = s;
	return s;
}

bool meta_snap_file_sql(struct vv_meta *m, uint32_t sid, const char *sql, sqlite3_stmt **s)
{
	struct snapc_conn *c;
	int r = conn_get(m, sid, false, &c);

	*s = NULL;
	if (r == VV_ENOENT)
		return false;
	if (r == 0)
		*s = conn_sql(c, sql);
	else
		vv_log(VV_LOG_ERR, "meta: snapshot %u cannot be read: %s", sid, vv_strerror(r));
	return true;
}

/* The statement sql on snapshot sid's file, or NULL with *r (VV_ENOENT:
 * not a file snapshot). */
static sqlite3_stmt *file_stmt(struct vv_meta *m, uint32_t sid, const char *sql, int *r)
{
	struct snapc_conn *c;
	sqlite3_stmt *s = NULL;

	if ((*r = conn_get(m, sid, false, &c)) == 0 && !(s = conn_sql(c, sql)))
		*r = VV_EIO;
	return s;
}

/* Step 1, inside the caller's transaction (vault_snap.c): the rows that
 * make snapshot id pending, and its references. */
int meta_snap_file_begin(struct vv_meta *m, uint32_t id)
{
	static const char *const qs[] = { q_f_add, q_f_colls, q_f_chunks, q_f_ref };
	int r = 0;

	for (size_t i = 0; r == 0 && i < sizeof(qs) / sizeof(qs[0]); i++)
		r = meta_snap_exec_id(m, qs[i], id);
	return r;
}

int vv_meta_snap_copy(struct vv_meta *m, uint32_t id, struct vv_snap_tags *tags)
{
	char path[4096];
	struct stat st;
	int r;

	if ((r = vv_meta_snap_file_path(m, 0, path, sizeof(path))) < 0)
		return r;
	if ((r = vv_os_lstat(path, &st)) == 0 && !S_ISDIR(st.st_mode)) {
		vv_log(VV_LOG_ERR, "meta: %s is not a directory (a link or file put there?)", path);
		return VV_EIO;
	}
	if (r == -ENOENT) {
		/* made once per store; its name made durable in STORE now, the
		 * file's below by the caller's sync of this directory */
		if ((r = vv_os_mkdir(path, 0700)) < 0 && r != -EEXIST) {
			vv_log(VV_LOG_ERR, "meta: cannot make %s: %s", path, strerror(-r));
			return r == -ENOSPC ? VV_ENOSPC : VV_EIO;
		}
		*strrchr(path, '/') = 0;
		if (vv_os_fsync_dir(path) < 0) {
			vv_log(VV_LOG_ERR, "meta: cannot sync %s", path);
			return VV_EIO;
		}
		if ((r = vv_meta_snap_file_path(m, 0, path, sizeof(path))) < 0)
			return r;
	}
	if ((r = vv_meta_snap_file_path(m, id, path, sizeof(path))) < 0)
		return r;
	/* No background checkpoint writes the file between the two. */
	meta_ckpt_hold(m, true);
	if ((r = meta_checkpoint(m)) == 0)
		r = vv_metavfs_copy(meta_db(m), path, &tags->tags, &tags->npages);
	meta_ckpt_hold(m, false);
	return r;
}

void vv_meta_snap_scan_free(struct vv_snap_scan *sc)
{
	if (sc) {
		free(sc->colls);
		memset(sc, 0, sizeof(*sc));
	}
}

/* Only the keys of m's connection are used (the VFS's registry), never
 * the connection: this runs without the vault's lock. */
int vv_meta_snap_scan(struct vv_meta *m, uint32_t id, const char *path, const struct vv_snap_tags *tags,
		      struct vv_snap_scan *out)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *f = NULL;
	size_t cap = 0;
	int r, rc;

	memset(out, 0, sizeof(*out));
	if ((r = vv_metavfs_open_copy(meta_db(m), path, id, NULL, tags->tags, tags->npages, &db)) < 0)
		return r;
	if (sqlite3_exec(db, SNAPC_CACHE, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, q_ff_sum, -1, &f, NULL) != SQLITE_OK) {
		r = VV_EIO;
		goto out;
	}
	while ((rc = sqlite3_step(f)) == SQLITE_ROW) {
		if ((r = VV_GROW(out->colls, out->ncolls, cap)) < 0)
			goto out;
		out->colls[out->ncolls++] = (uint32_t)sqlite3_column_int64(f, 0);
		out->files += (uint64_t)sqlite3_column_int64(f, 1);
		out->bytes += (uint64_t)sqlite3_column_int64(f, 2);
	}
	if (rc != SQLITE_DONE)
		r = vv_metavfs_err(db, rc);
out:
	sqlite3_finalize(f);
	vv_metavfs_close(db);
	if (r < 0)
		vv_meta_snap_scan_free(out);
	return r;
}

int vv_meta_snap_ready(struct vv_meta *m, uint32_t id, const struct vv_snap_tags *tags,
		       const struct vv_snap_scan *scan, struct vv_snap_row *out)
{
	int r;

	if ((r = vv_meta_savepoint(m)) < 0)
		return r;
	{
		XSTMT(m, q_f_ready);
		if (!s) {
			r = VV_EIO;
			goto out;
		}
		sqlite3_bind_int64(s, 1, id);
		if ((r = meta_snap_step_done(m, s)) < 0)
			goto out;
		if (sqlite3_changes(meta_db(m)) != 1) {
			r = VV_ENOENT;
			goto out;
		}
	}
	{
		XSTMT(m, q_f_tags_add);
		if (!s) {
			r = VV_EIO;
			goto out;
		}
		if (!tags->tags || !tags->npages) {
			r = VV_EINVAL;
			goto out;
		}
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_blob64(s, 2, tags->tags, (sqlite3_uint64)tags->npages * VV_TAG_BYTES,
				    SQLITE_STATIC);
		if ((r = meta_snap_step_done(m, s)) < 0)
			goto out;
	}
	if ((r = meta_snap_exec_id(m, meta_snap_q_del_c, id)) < 0)
		goto out;
	for (size_t i = 0; i < scan->ncolls; i++) {
		XSTMT(m, q_f_coll_one);
		if (!s) {
			r = VV_EIO;
			goto out;
		}
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_int64(s, 2, scan->colls[i]);
		if ((r = meta_snap_step_done(m, s)) < 0)
			goto out;
	}
	{
		XSTMT(m, q_f_counts);
		if (!s) {
			r = VV_EIO;
			goto out;
		}
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_int64(s, 2, (int64_t)scan->files);
		sqlite3_bind_int64(s, 3, (int64_t)scan->bytes);
		r = meta_snap_step_done(m, s);
	}
out:
	r = vv_meta_savepoint_end(m, r);
	return r < 0 || !out ? r : vv_meta_snap_get_id(m, id, out);
}

/* A file snapshot's references and rows (the file goes after the commit:
 * vv_meta_snap_unlink_file). */
int meta_snap_file_delete(struct vv_meta *m, uint32_t id,
			  void (*freed)(void *ctx, const uint8_t *chunk), void *ctx)
{
	static const char *const dels[] = { q_f_del_ch, q_f_del_t, q_f_del_f, meta_snap_q_del_c,
					    meta_snap_q_del_s };

	conn_drop(m, id);
	return meta_snap_drop_refs_rows(m, id, q_f_chunk_list, dels, sizeof(dels) / sizeof(dels[0]), freed,
					ctx);
}

int vv_meta_snap_unlink_file(struct vv_meta *m, uint32_t id)
{
	char path[4096], wal[4200];
	int r;

	conn_drop(m, id);
	if ((r = vv_meta_snap_file_path(m, id, path, sizeof(path))) < 0)
		return r;
	snprintf(wal, sizeof(wal), "%s-wal", path);
	vv_os_unlink(wal);
	if ((r = vv_os_unlink(path)) < 0 && r != -ENOENT) {
		vv_log(VV_LOG_WARN, "meta: cannot remove %s: %s (fsck or the next mount does)", path,
		       strerror(-r));
		return VV_EIO;
	}
	if (vv_meta_snap_file_path(m, 0, path, sizeof(path)) == 0)
		vv_os_fsync_dir(path);
	return 0;
}

int vv_meta_snap_recover(struct vv_meta *m, void (*freed)(void *ctx, const uint8_t *chunk), void *ctx,
			 uint32_t *dropped)
{
	uint32_t ids[64];
	size_t n = 0;
	int r;

	*dropped = 0;
	if (!meta_snap_have_files(m))
		return 0;
	do {
		n = 0;
		{
			XSTMT(m, q_f_pending);
			if (!s)
				return VV_EIO;
			while ((r = meta_row(m, s)) == 0 && n < 64)
				ids[n++] = (uint32_t)sqlite3_column_int64(s, 0);
			sqlite3_reset(s);
			if (r < 0 && r != VV_ENOENT)
				return r;
		}
		for (size_t i = 0; i < n; i++) {
			if ((r = vv_meta_savepoint(m)) < 0 ||
			    (r = vv_meta_savepoint_end(m, meta_snap_file_delete(m, ids[i], freed, ctx))) < 0)
				return r;
			(*dropped)++;
		}
	} while (n == 64);
	return 0;
}

/* The ids of the ready file snapshots into *ids (malloc'd, the caller
 * frees it, also on failure), *n of them. */
static int ready_ids(struct vv_meta *m, uint32_t **ids, size_t *n)
{
	XSTMT(m, q_f_ready_list);
	size_t cap = 0;
	int r;

	if (!s)
		return VV_EIO;
	while ((r = meta_row(m, s)) == 0) {
		if ((r = VV_GROW(*ids, *n, cap)) < 0)
			break;
		(*ids)[(*n)++] = (uint32_t)sqlite3_column_int64(s, 0);
	}
	sqlite3_reset(s);
	return r == VV_ENOENT ? 0 : r;
}

int vv_meta_snap_sweep(struct vv_meta *m)
{
	char dir[4096], path[4400];
	uint32_t *keep = NULL;
	size_t nk = 0;
	struct dirent *e;
	DIR *d;
	int r = 0;

	if (!meta_snap_have_files(m) || vv_meta_snap_file_path(m, 0, dir, sizeof(dir)) < 0)
		return 0;
	if ((r = ready_ids(m, &keep, &nk)) < 0)
		goto out;
	if (!(d = opendir(dir)))
		goto out;
	while ((e = readdir(d))) {
		char *end;
		unsigned long id;
		bool ours = false;
		if (e->d_name[0] == '.')
			continue;
		id = strtoul(e->d_name, &end, 10);
		if (strcmp(end, ".db") == 0)
			for (size_t i = 0; i < nk; i++)
				ours |= keep[i] == id;
		if (ours)
			continue;
		/* a pending snapshot's file, an empty -wal of a reader, a copy
		 * whose commit never came */
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		vv_log(VV_LOG_INFO, "meta: removing %s (no snapshot of this store owns it)", path);
		vv_os_unlink(path);
	}
	closedir(d);
	vv_os_fsync_dir(dir);
out:
	free(keep);
	return r;
}

/* The owners of every ready file snapshot's inodes, each distinct uid of
 * a file once (a uid in several files comes once per file): one scan of
 * each file's inodes table, its pages read and checked as any read of it.
 * A file that cannot be read is named in the log and skipped: a row it
 * could not give is one no read through .snapshots gets either, and one
 * damaged snapshot must not keep the store from opening (fsck names it). */
int meta_snap_file_owners(struct vv_meta *m, int (*cb)(void *ctx, uint32_t uid), void *ctx)
{
	uint32_t *ids = NULL;
	size_t n = 0;
	int r = 0;

	if (!meta_snap_have_files(m))
		return 0;
	if ((r = ready_ids(m, &ids, &n)) < 0)
		goto out;
	for (size_t i = 0; r == 0 && i < n; i++) {
		int rc = SQLITE_DONE, e;
		sqlite3_stmt *s = file_stmt(m, ids[i], q_ff_owners, &e);
		if (s) {
			while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW)
				r = cb(ctx, (uint32_t)sqlite3_column_int64(s, 0));
			sqlite3_reset(s);
			e = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : VV_EIO;
		}
		if (r == 0 && e < 0)
			vv_log(VV_LOG_WARN, "meta: snapshot %u: cannot read the owners of its files (%s);"
			       " skipped", ids[i], vv_strerror(e));
	}
out:
	free(ids);
	return r;
}

int vv_meta_snap_file_bytes(struct vv_meta *m, uint64_t *bytes)
{
	char path[4096];
	struct stat st;
	int r;

	*bytes = 0;
	if (!meta_snap_have_files(m))
		return 0;
	XSTMT(m, q_f_ready_list);
	if (!s)
		return VV_EIO;
	while ((r = meta_row(m, s)) == 0)
		if (vv_meta_snap_file_path(m, (uint32_t)sqlite3_column_int64(s, 0), path, sizeof(path)) == 0 &&
		    vv_os_stat(path, &st) == 0)      /* the disk it takes: free pages are holes */
			*bytes += (uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size ?
				  (uint64_t)st.st_blocks * 512 : (uint64_t)st.st_size;
	sqlite3_reset(s);
	return r == VV_ENOENT ? 0 : r;
}

/* This build's snapshot sid: every page of its file against its tag
 * (and authenticated), so that fsck names damage no read has met yet.
 * 1: damaged (said through cb), 0: whole, or VV_E*. */
static int file_check_pages(struct vv_meta *m, uint32_t sid, void (*cb)(void *ctx, const char *line),
			    void *ctx)
{
	struct vv_metavfs_damage d;
	struct vv_snap_tags t;
	char path[4096], line[300];
	int r;

	if ((r = file_tags(m, sid, &t)) < 0) {
		snprintf(line, sizeof(line), "error: snapshot %u: its file has no record in meta.db "
			 "(neither a hash nor page tags)", sid);
		cb(ctx, line);
		return r == VV_ECORRUPT ? 1 : r;
	}
	if ((r = vv_meta_snap_file_path(m, sid, path, sizeof(path))) < 0 ||
	    (r = vv_metavfs_check_copy(meta_db(m), path, t.tags, t.npages, &d)) < 0)
		goto out;
	r = 1;
	if (d.missing)
		snprintf(line, sizeof(line), "error: snapshot %u: its file snapshots/%u.db cannot be "
			 "read: %s", sid, sid, strerror(-d.err));
	else if (d.bad)
		snprintf(line, sizeof(line), "error: snapshot %u: its file does not match its record: "
			 "%u of its %u pages differ (first: page %u; tampered, swapped or truncated)",
			 sid, d.bad, t.npages, d.first);
	else if (d.size != d.want)
		snprintf(line, sizeof(line), "error: snapshot %u: its file is %llu bytes, its record "
			 "says %llu (extended or replaced)", sid, (unsigned long long)d.size,
			 (unsigned long long)d.want);
	else
		r = 0;
	if (r)
		cb(ctx, line);
out:
	vv_meta_snap_tags_free(&t);
	return r;
}

/* fsck of a file snapshot: its pages against their tags (or, of an older
 * build, its MAC against the whole file), the structure of its rows, and
 * that snap_chunks holds a reference for every chunk its extents name. */
int meta_snap_file_check(struct vv_meta *m, uint32_t sid, void (*cb)(void *ctx, const char *line),
			 void *ctx, uint64_t *problems)
{
	struct snapc_conn *c;
	uint8_t mac[VV_MAC_BYTES];
	char line[200];
	int rc = SQLITE_DONE, r, state = 0;

	if ((r = meta_snap_file_kind(m, sid, &state, mac)) < 0)
		return r;
	if (state == 1 && !has_mac(mac)) {
		if ((r = file_check_pages(m, sid, cb, ctx)) < 0)
			return r;
		if (r) {
			(*problems)++;
			return 0;
		}
	}

	if ((r = conn_get(m, sid, true, &c)) < 0) {
		(*problems)++;
		snprintf(line, sizeof(line), "error: snapshot %u: its file cannot be read or does not "
			 "match its record: %s", sid, vv_strerror(r));
		cb(ctx, line);
		return 0;
	}
	for (int q = 0; q < 3; q++) {
		sqlite3_stmt *s = conn_sql(c, q == 0 ? q_ff_chk_de : q == 1 ? q_ff_chk_e : q_ff_chunks);
		if (!s)
			return VV_EIO;
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			if (q == 2) {
				sqlite3_stmt *h = meta_sql(m, q_f_has_chunk);
				if (!h) {
					rc = SQLITE_ERROR;
					break;
				}
				sqlite3_bind_int64(h, 1, sid);
				sqlite3_bind_blob(h, 2, sqlite3_column_blob(s, 0), sqlite3_column_bytes(s, 0),
						  SQLITE_TRANSIENT);
				r = meta_row(m, h);
				sqlite3_reset(h);
				if (r == 0)
					continue;
				if (r != VV_ENOENT) {
					sqlite3_reset(s);
					return r;
				}
			}
			(*problems)++;
			if (q == 0)
				snprintf(line, sizeof(line), "error: snapshot %u: entry in directory %lld names "
					 "missing inode %lld", sid, (long long)sqlite3_column_int64(s, 0),
					 (long long)sqlite3_column_int64(s, 1));
			else if (q == 1)
				snprintf(line, sizeof(line), "error: snapshot %u: extents of missing inode %lld",
					 sid, (long long)sqlite3_column_int64(s, 0));
			else
				snprintf(line, sizeof(line), "error: snapshot %u: a chunk its files name holds "
					 "no reference of it (it could be freed under it)", sid);
			cb(ctx, line);
		}
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return meta_err(m, rc);
	}
	return 0;
}

/* Restore from a file snapshot: the rows cross connections. */
int meta_snap_file_restore(struct vv_meta *m, uint32_t sid, uint64_t real, uint64_t ino,
			   uint32_t nlink, uint64_t parent)
{
	sqlite3_stmt *f, *t;
	int r, rc;

	if (!(f = file_stmt(m, sid, q_ff_ino, &r)))
		return r;
	sqlite3_bind_int64(f, 1, (int64_t)real);
	if ((rc = sqlite3_step(f)) != SQLITE_ROW) {
		sqlite3_reset(f);
		return rc == SQLITE_DONE ? VV_ENOENT : meta_err(m, rc);
	}
	if (!(t = meta_sql(m, q_rf_ino))) {
		sqlite3_reset(f);
		return VV_EIO;
	}
	sqlite3_bind_int64(t, 1, (int64_t)ino);
	for (int i = 0; i < 15; i++)
		sqlite3_bind_value(t, i + 2, sqlite3_column_value(f, i));
	sqlite3_bind_int64(t, 6, nlink);                    /* nlink */
	sqlite3_bind_int64(t, 12, (int64_t)parent);         /* parent */
	r = meta_snap_step_done(m, t);
	sqlite3_reset(f);
	if (r < 0)
		return r;
	for (int q = 0; q < 2 && r == 0; q++) {
		if (!(f = file_stmt(m, sid, q ? q_ff_e : q_ff_x, &r)))
			return r;
		sqlite3_bind_int64(f, 1, (int64_t)real);
		while (r == 0 && (rc = sqlite3_step(f)) == SQLITE_ROW) {
			if (!(t = meta_sql(m, q ? q_rf_e : q_rf_x))) {
				r = VV_EIO;
				break;
			}
			sqlite3_bind_int64(t, 1, (int64_t)ino);
			for (int i = 0; i < (q ? 5 : 2); i++)
				sqlite3_bind_value(t, i + 2, sqlite3_column_value(f, i));
			if ((r = meta_snap_step_done(m, t)) < 0)
				break;
			/* the live tree counts one reference per extent */
			if (q && (sqlite3_column_bytes(f, 1) != VV_CHUNK_ID_BYTES ||
				  (r = vv_meta_chunk_ref(m, sqlite3_column_blob(f, 1), 0, 1, 0, NULL)) < 0))
				r = r < 0 ? r : VV_ECORRUPT;
		}
		if (r == 0 && rc != SQLITE_DONE)
			r = meta_err(m, rc);
		sqlite3_reset(f);
	}
	return r;
}
