/*
 * meta_trash.c - the recycle bin's tables in meta.db (part of the meta
 * module; the vault side is vault_trash.c).
 *
 * A trashed item keeps its inode, xattrs and extents where they were; its
 * directory entry is deleted as by a final removal, and one row here is
 * its name in .trash/files and says where it came from:
 *
 *   trash(id INTEGER PRIMARY KEY AUTOINCREMENT,  never reused: names the
 *                                                 .trashinfo inode
 *         ino     INTEGER  the item's inode (a file, or the top directory
 *                          of a removed tree)
 *         name    BLOB     its name in .trash/files (UNIQUE: lookup)
 *         path    BLOB     original vault path, "/products/part-3.npy"
 *         oparent INTEGER  original parent directory's inode
 *         oname   BLOB     original name
 *         deleted INTEGER  ns since the epoch (UTC)
 *         uid     INTEGER  who removed it
 *         coll    INTEGER  its collection (its key stays until the purge)
 *         size    INTEGER  bytes of the tree's files
 *         gate    BLOB     permissions of the directories above it, as
 *                          removed: repeated {u32 mode, u32 uid, u32 gid,
 *                          u32 acl_len, acl_len bytes of ACL blob}, little
 *                          endian, root first (vault_trash.c))
 *   UNIQUE INDEX trash_name(name)
 *   INDEX trash_ino(ino) (meta_sql_int.h: a row by inode, not a scan;
 *          ~0.2% of rm -rf's instructions with the trash on)
 *
 *   trash_parts(dir INTEGER, id INTEGER, PRIMARY KEY(dir, id)) WITHOUT ROWID
 *          rows (id) that a later rmdir of their original parent dir made part
 *          of that directory's tree (rm -rf): hidden from every listing,
 *          lookup, count and sweep; vault_trash.c gives them their entries
 *          back under dir (settle) when anyone looks inside it, restores or
 *          purges it, and at open and close.
 *
 * Each row is one link of its inode (fsck counts it as an entry).  The
 * hot path, a removal, is one entry deleted and one row inserted; expiry
 * scans by id (ids grow with time), hourly.
 *
 * Older layouts, migrated at the next read-write open in one transaction
 * (meta.c's feature table: "trash" makes the current one, "trash_parts"
 * migrates):
 *   - before 2026-12 (main at 7a8b49e): every item and pending part had an
 *     entry in dirents under VV_TRASH_FILES_INO; indexes trash_oparent,
 *     trash_deleted, trash_ino; parts marked in trash_kids(id) (their dir
 *     being their oparent).  The migration deletes those entries, moves
 *     the marks to trash_parts and swaps the indexes (trash_ino stays).
 *   - a read-only open of such a store reads it as it is: a temp view
 *     stands in for trash_parts (vv_meta_trash_ready), lookups scan.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meta_sql_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

#define FILES_INO "1152921504606846977"   /* VV_TRASH_FILES_INO, 2^60 + 1 */

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS trash(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" ino INTEGER NOT NULL, name BLOB NOT NULL, path BLOB NOT NULL,"
	" oparent INTEGER NOT NULL, oname BLOB NOT NULL, deleted INTEGER NOT NULL,"
	" uid INTEGER NOT NULL, coll INTEGER NOT NULL, size INTEGER NOT NULL, gate BLOB NOT NULL);"
	"CREATE UNIQUE INDEX IF NOT EXISTS trash_name ON trash(name);"
	META_TRASH_INO_INDEX ";"
	"CREATE TABLE IF NOT EXISTS trash_parts(dir INTEGER NOT NULL, id INTEGER NOT NULL,"
	" PRIMARY KEY(dir, id)) WITHOUT ROWID;";

/* The migration from the layout with entries in .trash/files (see the top
 * comment).  Runs inside vv_meta_upgrade's transaction: all or nothing.
 * Rows whose names met (only damage could make that) keep theirs with
 * ".ID" added, so the unique index can be made and nothing is lost. */
static const char migrate_parts[] =
	"CREATE TABLE trash_parts(dir INTEGER NOT NULL, id INTEGER NOT NULL,"
	" PRIMARY KEY(dir, id)) WITHOUT ROWID;";
static const char migrate_kids[] =
	"INSERT OR IGNORE INTO trash_parts(dir, id) SELECT t.oparent, k.id FROM trash_kids k"
	" JOIN trash t ON t.id=k.id;"
	"DROP TABLE trash_kids;";
static const char migrate_rest[] =
	"DELETE FROM dirents WHERE parent=" FILES_INO " AND EXISTS (SELECT 1 FROM trash t"
	" WHERE t.name=dirents.name AND t.ino=dirents.ino);"
	"UPDATE trash SET name=CAST(CAST(name AS TEXT) || '.' || id AS BLOB) WHERE EXISTS"
	" (SELECT 1 FROM trash o WHERE o.name=trash.name AND o.id<trash.id);"
	"DROP INDEX IF EXISTS trash_oparent;"
	"DROP INDEX IF EXISTS trash_deleted;"
	"CREATE UNIQUE INDEX IF NOT EXISTS trash_name ON trash(name);";

#define COLS "id, ino, name, path, oparent, oname, deleted, uid, coll, size, gate"
/* An item, not a part of a removed tree (a part's dir is its oparent:
 * the marker is found by its key). */
#define ITEM "NOT EXISTS (SELECT 1 FROM trash_parts p WHERE p.dir=trash.oparent AND p.id=trash.id)"

static const char q_add[] =
	"INSERT OR IGNORE INTO trash(ino, name, path, oparent, oname, deleted, uid, coll, size, gate)"
	" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
static const char q_get[] = "SELECT " COLS " FROM trash WHERE id=?1 AND " ITEM;
static const char q_get_name[] = "SELECT " COLS " FROM trash WHERE name=?1 AND " ITEM;
static const char q_name_of[] = "SELECT name FROM trash WHERE ino=?1 ORDER BY id DESC LIMIT 1";
static const char q_get_ino[] = "SELECT " COLS " FROM trash WHERE ino=?1 ORDER BY id DESC LIMIT 1";
static const char q_del[] = "DELETE FROM trash WHERE id=?1";
static const char q_list[] = "SELECT " COLS " FROM trash WHERE id>?1 AND " ITEM " ORDER BY id LIMIT ?2";
/* rm -rf's grouping: the items ?1 (a JSON array of ids: one statement for
 * a directory), removed from ?2, become parts of ?2's tree (nothing for
 * one that is a part already).  The caller knows the rows are there
 * (vault_trash.c keeps the records of items that left the trash out). */
static const char q_mark[] = "INSERT OR IGNORE INTO trash_parts(dir, id) SELECT ?2, value FROM json_each(?1)";
/* The parts of directory ?1's tree; mode NULL: the inode is missing. */
static const char q_parts[] =
	"SELECT t.id, t.ino, t.name, t.oname, t.deleted, t.uid, t.size, i.mode FROM trash_parts p"
	" JOIN trash t ON t.id=p.id LEFT JOIN inodes i ON i.ino=t.ino WHERE p.dir=?1 ORDER BY t.id";
static const char q_settle_ent[] =
	"INSERT INTO dirents(parent, name, ino, mode) SELECT ?1, t.oname, t.ino, i.mode FROM trash_parts p"
	" JOIN trash t ON t.id=p.id JOIN inodes i ON i.ino=t.ino WHERE p.dir=?1 ORDER BY t.id";
static const char q_settle_ino[] =
	"UPDATE inodes SET parent=?1 WHERE ino IN (SELECT t.ino FROM trash_parts p JOIN trash t"
	" ON t.id=p.id WHERE p.dir=?1)";
static const char q_settle_del[] = "DELETE FROM trash WHERE id IN (SELECT id FROM trash_parts WHERE dir=?1)";
static const char q_settle_marks[] = "DELETE FROM trash_parts WHERE dir=?1";
static const char q_pending[] = "SELECT DISTINCT dir FROM trash_parts LIMIT ?1";
/* No index on deleted: ids grow with time, and the sweep is hourly. */
static const char q_older[] = "SELECT " COLS " FROM trash WHERE deleted<?1 AND " ITEM " ORDER BY id";
static const char q_stats[] = "SELECT count(*), coalesce(sum(size), 0) FROM trash WHERE " ITEM;
static const char q_links[] = "SELECT ino, name FROM trash";

#define XSTMT(m, q) sqlite3_stmt *s = meta_sql((m), (q)); if (!s) return VV_EIO

int meta_trash_schema(struct vv_meta *m)
{
	return meta_exec(m, schema);
}

int meta_trash_migrate(struct vv_meta *m)
{
	int r;

	if ((r = meta_exec(m, migrate_parts)) < 0 ||
	    (meta_has_table(m, "trash_kids") && (r = meta_exec(m, migrate_kids)) < 0) ||
	    (r = meta_exec(m, migrate_rest)) < 0)
		return r;
	vv_log(VV_LOG_INFO, "meta: the trash's items lost their entries in .trash/files (once per store)");
	return 0;
}

/* For a read-only open of a store whose last read-write open was by an
 * older build: every item query names trash_parts, so a view of the old
 * markers (trash_kids, whose parts' dir is their oparent), or an empty
 * table if the store has none, stands in for it in the connection's own
 * temp schema (in memory, vv_meta_open: never in the store).  query_only
 * (meta_vfs.c) is off for that one statement; the VFS refuses every write
 * to the store's files regardless. */
static const char parts_view[] =
	"PRAGMA query_only=OFF; CREATE TEMP VIEW IF NOT EXISTS trash_parts AS SELECT k.id AS id,"
	" t.oparent AS dir FROM main.trash_kids k JOIN main.trash t ON t.id=k.id;";
static const char parts_temp[] =
	"PRAGMA query_only=OFF; CREATE TEMP TABLE IF NOT EXISTS trash_parts(dir INTEGER NOT NULL,"
	" id INTEGER NOT NULL, PRIMARY KEY(dir, id)) WITHOUT ROWID;";

bool vv_meta_trash_ready(struct vv_meta *m)
{
	int r;

	if (!meta_has_table(m, "trash"))
		return false;
	if (meta_has_table(m, "trash_parts"))
		return true;
	if (!meta_readonly(m))
		return false;
	r = meta_exec(m, meta_has_table(m, "trash_kids") ? parts_view : parts_temp);
	/* query_only back on whatever happened above. */
	if (meta_exec(m, "PRAGMA query_only=ON") < 0)
		r = VV_EIO;
	return r == 0;
}

static void blob_str(sqlite3_stmt *s, int col, char *out, size_t cap)
{
	const void *p = sqlite3_column_blob(s, col);
	size_t n = (size_t)sqlite3_column_bytes(s, col);

	if (n >= cap)
		n = cap - 1;
	if (p && n)
		memcpy(out, p, n);
	out[n] = '\0';
}

static void get_row(sqlite3_stmt *s, struct vv_trash_row *r)
{
	const void *g;
	size_t gl;

	r->id = (uint64_t)sqlite3_column_int64(s, 0);
	r->ino = (uint64_t)sqlite3_column_int64(s, 1);
	blob_str(s, 2, r->name, sizeof(r->name));
	blob_str(s, 3, r->path, sizeof(r->path));
	r->oparent = (uint64_t)sqlite3_column_int64(s, 4);
	blob_str(s, 5, r->oname, sizeof(r->oname));
	r->deleted = sqlite3_column_int64(s, 6);
	r->uid = (uint32_t)sqlite3_column_int64(s, 7);
	r->coll = (uint32_t)sqlite3_column_int64(s, 8);
	r->size = (uint64_t)sqlite3_column_int64(s, 9);
	g = sqlite3_column_blob(s, 10);
	gl = (size_t)sqlite3_column_bytes(s, 10);
	/* An over-long gate cannot be checked: keep none, which fails closed
	 * (vault_trash.c treats a truncated gate as denying all but root). */
	r->gatelen = gl <= sizeof(r->gate) ? gl : 0;
	if (g && r->gatelen)
		memcpy(r->gate, g, r->gatelen);
	if (gl > sizeof(r->gate)) {
		r->gate[0] = 0xff;
		r->gatelen = 1;
	}
}

int vv_meta_trash_add(struct vv_meta *m, const struct vv_trash_new *t, uint64_t *id)
{
	int rc;
	XSTMT(m, q_add);

	sqlite3_bind_int64(s, 1, (int64_t)t->ino);
	sqlite3_bind_blob(s, 2, t->name, (int)strlen(t->name), SQLITE_STATIC);
	sqlite3_bind_blob(s, 3, t->path, (int)strlen(t->path), SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, (int64_t)t->oparent);
	sqlite3_bind_blob(s, 5, t->oname, (int)strlen(t->oname), SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, t->deleted);
	sqlite3_bind_int64(s, 7, t->uid);
	sqlite3_bind_int64(s, 8, t->coll);
	sqlite3_bind_int64(s, 9, (int64_t)t->size);
	sqlite3_bind_blob(s, 10, t->gate, (int)t->gatelen, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return meta_err(m, rc);
	/* OR IGNORE: the only constraint that can fail is the name's. */
	if (sqlite3_changes(sqlite3_db_handle(s)) == 0)
		return VV_EEXIST;
	*id = (uint64_t)sqlite3_last_insert_rowid(sqlite3_db_handle(s));
	return 0;
}

static int get_one(struct vv_meta *m, sqlite3_stmt *s, struct vv_trash_row *r)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		get_row(s, r);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? VV_ENOENT : meta_err(m, rc);
}

int vv_meta_trash_get(struct vv_meta *m, uint64_t id, struct vv_trash_row *r)
{
	XSTMT(m, q_get);

	sqlite3_bind_int64(s, 1, (int64_t)id);
	return get_one(m, s, r);
}

int vv_meta_trash_get_name(struct vv_meta *m, const char *name, struct vv_trash_row *r)
{
	XSTMT(m, q_get_name);

	sqlite3_bind_blob(s, 1, name, (int)strlen(name), SQLITE_STATIC);
	return get_one(m, s, r);
}

int vv_meta_trash_get_ino(struct vv_meta *m, uint64_t ino, struct vv_trash_row *r)
{
	XSTMT(m, q_get_ino);

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	return get_one(m, s, r);
}

int vv_meta_trash_name_of(struct vv_meta *m, uint64_t ino, char *name, size_t cap)
{
	int rc;
	XSTMT(m, q_name_of);

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		blob_str(s, 0, name, cap);
	sqlite3_reset(s);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? VV_ENOENT : meta_err(m, rc);
}

int vv_meta_trash_del(struct vv_meta *m, uint64_t id)
{
	int rc;
	XSTMT(m, q_del);

	sqlite3_bind_int64(s, 1, (int64_t)id);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : meta_err(m, rc);
}

/* Rows of s to cb, one heap row reused (a row is ~5 KiB).  The callback
 * may read with other statements but must not change the trash table
 * (callers collect ids first, then act). */
static int each(struct vv_meta *m, sqlite3_stmt *s, vv_trash_cb cb, void *ctx)
{
	struct vv_trash_row *r;
	int rc, ret = 0;

	r = calloc(1, sizeof(*r));
	if (!r) {
		sqlite3_reset(s);
		return VV_ENOMEM;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		get_row(s, r);
		if ((ret = cb(ctx, r)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = meta_err(m, rc);
	sqlite3_reset(s);
	free(r);
	return ret;
}

int vv_meta_trash_list(struct vv_meta *m, uint64_t after, int max, vv_trash_cb cb, void *ctx)
{
	XSTMT(m, q_list);

	sqlite3_bind_int64(s, 1, (int64_t)after);
	sqlite3_bind_int64(s, 2, max > 0 ? max : -1);
	return each(m, s, cb, ctx);
}

int vv_meta_trash_parts(struct vv_meta *m, uint64_t dir, vv_trash_kid_cb cb, void *ctx)
{
	struct vv_trash_kid k;
	int rc, ret = 0;
	XSTMT(m, q_parts);

	sqlite3_bind_int64(s, 1, (int64_t)dir);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		k.id = (uint64_t)sqlite3_column_int64(s, 0);
		k.ino = (uint64_t)sqlite3_column_int64(s, 1);
		blob_str(s, 2, k.name, sizeof(k.name));
		blob_str(s, 3, k.oname, sizeof(k.oname));
		k.deleted = sqlite3_column_int64(s, 4);
		k.uid = (uint32_t)sqlite3_column_int64(s, 5);
		k.size = (uint64_t)sqlite3_column_int64(s, 6);
		k.entry = sqlite3_column_type(s, 7) != SQLITE_NULL;
		k.mode = (uint32_t)sqlite3_column_int64(s, 7);
		if ((ret = cb(ctx, &k)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = meta_err(m, rc);
	sqlite3_reset(s);
	return ret;
}

/* Run q with ?1..?2 (nb of them bound); *changed: rows it changed. */
static int run2(struct vv_meta *m, const char *q, int nb, int64_t a, int64_t b, uint64_t *changed)
{
	int rc;
	XSTMT(m, q);

	sqlite3_bind_int64(s, 1, a);
	if (nb > 1)
		sqlite3_bind_int64(s, 2, b);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return meta_err(m, rc);
	if (changed)
		*changed = (uint64_t)sqlite3_changes(sqlite3_db_handle(s));
	return 0;
}

int vv_meta_trash_mark(struct vv_meta *m, uint64_t dir, const uint64_t *ids, size_t n, uint64_t *marked)
{
	char *js;
	size_t len = 0;
	int rc;
	XSTMT(m, q_mark);

	*marked = 0;
	if (n == 0)
		return 0;
	if (!(js = malloc(n * 21 + 2)))
		return VV_ENOMEM;
	js[len++] = '[';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(js + len, 22, "%s%llu", i ? "," : "", (unsigned long long)ids[i]);
	js[len++] = ']';
	sqlite3_bind_text(s, 1, js, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (int64_t)dir);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	free(js);
	if (rc != SQLITE_DONE)
		return meta_err(m, rc);
	*marked = (uint64_t)sqlite3_changes(sqlite3_db_handle(s));
	return 0;
}

int vv_meta_trash_settle(struct vv_meta *m, uint64_t dir, uint64_t *n)
{
	int r;

	*n = 0;
	/* Entries first: the inodes' and the rows' statements read the rows. */
	if ((r = run2(m, q_settle_ent, 1, (int64_t)dir, 0, n)) < 0 ||
	    (r = run2(m, q_settle_ino, 1, (int64_t)dir, 0, NULL)) < 0 ||
	    (r = run2(m, q_settle_del, 1, (int64_t)dir, 0, NULL)) < 0)
		return r;
	return run2(m, q_settle_marks, 1, (int64_t)dir, 0, NULL);
}

int vv_meta_trash_pending(struct vv_meta *m, uint64_t *dirs, size_t max, size_t *n)
{
	int rc;
	XSTMT(m, q_pending);

	*n = 0;
	sqlite3_bind_int64(s, 1, (int64_t)max);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < max)
		dirs[(*n)++] = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : meta_err(m, rc);
}

int vv_meta_trash_links(struct vv_meta *m, int (*cb)(void *ctx, uint64_t ino, const char *name), void *ctx)
{
	char name[256];
	int rc, ret = 0;
	XSTMT(m, q_links);

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		blob_str(s, 1, name, sizeof(name));
		if ((ret = cb(ctx, (uint64_t)sqlite3_column_int64(s, 0), name)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = meta_err(m, rc);
	sqlite3_reset(s);
	return ret;
}

int vv_meta_trash_older(struct vv_meta *m, int64_t before, vv_trash_cb cb, void *ctx)
{
	XSTMT(m, q_older);

	sqlite3_bind_int64(s, 1, before);
	return each(m, s, cb, ctx);
}

int vv_meta_trash_stats(struct vv_meta *m, uint64_t *items, uint64_t *bytes)
{
	int rc;
	XSTMT(m, q_stats);

	*items = *bytes = 0;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*items = (uint64_t)sqlite3_column_int64(s, 0);
		*bytes = (uint64_t)sqlite3_column_int64(s, 1);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW ? 0 : meta_err(m, rc);
}
