/*
 * meta_trash.c - the recycle bin's table in meta.db (part of the meta
 * module; the vault side is vault_trash.c).
 *
 * A trashed item keeps its inode, xattrs and extents where they were; its
 * directory entry moves under the virtual directory .trash/files (the
 * dirents table's parent VV_TRASH_FILES_INO), and one row here says where
 * it came from:
 *
 *   trash(id INTEGER PRIMARY KEY AUTOINCREMENT,  never reused: names the
 *                                                 .trashinfo inode
 *         ino     INTEGER  the item's inode (a file, or the top directory
 *                          of a removed tree)
 *         name    BLOB     its name in .trash/files (unique there)
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
 *   INDEX trash_oparent(oparent), INDEX trash_deleted(deleted), INDEX trash_ino(ino)
 *
 *   trash_kids(id INTEGER PRIMARY KEY)  rows of items that a later rmdir of
 *          their original parent made part of that directory's tree (rm -rf)
 *          while their entries still sit in .trash/files: hidden from every
 *          listing, lookup, count and sweep; vault_trash.c moves them under
 *          the directory when anyone looks inside it, restores or purges
 *          it, and at open and close.  A marker whose row is gone is
 *          garbage (ids are never reused) and is dropped with its row.
 *
 * Stores made before the trash existed gain the tables at their next
 * read-write open (meta.c's feature table: "trash", then "trash_kids");
 * the format number stays.
 */
#include <stdlib.h>
#include <string.h>

#include "meta_sql_int.h"
#include "vecvault/error.h"

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS trash(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" ino INTEGER NOT NULL, name BLOB NOT NULL, path BLOB NOT NULL,"
	" oparent INTEGER NOT NULL, oname BLOB NOT NULL, deleted INTEGER NOT NULL,"
	" uid INTEGER NOT NULL, coll INTEGER NOT NULL, size INTEGER NOT NULL, gate BLOB NOT NULL);"
	"CREATE INDEX IF NOT EXISTS trash_oparent ON trash(oparent);"
	"CREATE INDEX IF NOT EXISTS trash_deleted ON trash(deleted);"
	"CREATE INDEX IF NOT EXISTS trash_ino ON trash(ino);";

static const char kids_schema[] = "CREATE TABLE IF NOT EXISTS trash_kids(id INTEGER PRIMARY KEY);";

#define COLS "id, ino, name, path, oparent, oname, deleted, uid, coll, size, gate"
/* An item, not a part of a tree whose move back is pending. */
#define ITEM "NOT EXISTS (SELECT 1 FROM trash_kids k WHERE k.id=trash.id)"

static const char q_add[] =
	"INSERT INTO trash(ino, name, path, oparent, oname, deleted, uid, coll, size, gate)"
	" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
static const char q_get[] = "SELECT " COLS " FROM trash WHERE id=?1 AND " ITEM;
static const char q_get_ino[] = "SELECT " COLS " FROM trash WHERE ino=?1 AND " ITEM;
static const char q_del[] = "DELETE FROM trash WHERE id=?1";
static const char q_list[] = "SELECT " COLS " FROM trash WHERE id>?1 AND " ITEM " ORDER BY id LIMIT ?2";
static const char q_kids[] =
	"SELECT t.id, t.ino, t.name, t.oname, t.deleted, t.uid, t.size, d.mode FROM trash t"
	" LEFT JOIN dirents d ON d.parent=?2 AND d.name=t.name"
	" WHERE t.oparent=?1 AND NOT EXISTS (SELECT 1 FROM trash_kids k WHERE k.id=t.id)"
	" ORDER BY t.deleted DESC, t.id DESC";
/* rm -rf's grouping: one statement for a whole directory, not four per
 * item.  The set is the rows of trash_oparent's range for ?1 with the
 * remover's uid ?2 and a time from ?3 on. */
static const char q_adopt[] =
	"INSERT INTO trash_kids(id) SELECT id FROM trash WHERE oparent=?1 AND uid=?2 AND deleted>=?3"
	" AND " ITEM;
/* The move back of the parts of directory ?1's tree (vv_meta_trash_settle). */
#define PARTS "FROM trash WHERE oparent=?1 AND EXISTS (SELECT 1 FROM trash_kids k WHERE k.id=trash.id)"
static const char q_parts[] =
	"SELECT t.id, t.ino, t.name, t.oname, t.deleted, t.uid, t.size, d.mode FROM trash t"
	" JOIN trash_kids k ON k.id=t.id LEFT JOIN dirents d ON d.parent=?2 AND d.name=t.name"
	" WHERE t.oparent=?1 ORDER BY t.id";
static const char q_settle_ent[] =
	"UPDATE dirents SET parent=?1, name=t.oname FROM (SELECT name, oname " PARTS ") AS t"
	" WHERE dirents.parent=?2 AND dirents.name=t.name";
static const char q_settle_ino[] = "UPDATE inodes SET parent=?1 WHERE ino IN (SELECT ino " PARTS ")";
static const char q_settle_del[] = "DELETE " PARTS;
static const char q_kids_gc[] =
	"DELETE FROM trash_kids WHERE id BETWEEN ?1 AND ?2"
	" AND NOT EXISTS (SELECT 1 FROM trash t WHERE t.id=trash_kids.id)";
static const char q_pending[] =
	"SELECT DISTINCT t.oparent FROM trash t JOIN trash_kids k ON k.id=t.id LIMIT ?1";
static const char q_older[] = "SELECT " COLS " FROM trash WHERE deleted<?1 AND " ITEM " ORDER BY deleted, id";
static const char q_stats[] = "SELECT count(*), coalesce(sum(size), 0) FROM trash WHERE " ITEM;
static const char q_coll_used[] = "SELECT 1 FROM inodes WHERE coll=?1 LIMIT 1";

#define XSTMT(m, q) sqlite3_stmt *s = meta_sql((m), (q)); if (!s) return VV_EIO

int meta_trash_schema(struct vv_meta *m)
{
	return meta_exec(m, schema);
}

int meta_trash_kids_schema(struct vv_meta *m)
{
	return meta_exec(m, kids_schema);
}

/* For a read-only open of a store whose last read-write open was by a
 * build before trash_kids: such a store holds no parts, and every item
 * query names the table, so an empty one in the connection's own temp
 * schema (in memory, vv_meta_open: never in the store) stands in for it.
 * query_only (meta_vfs.c) is off for that one statement; the VFS refuses
 * every write to the store's files regardless. */
static const char kids_temp[] =
	"PRAGMA query_only=OFF; CREATE TEMP TABLE IF NOT EXISTS trash_kids(id INTEGER PRIMARY KEY);";

bool vv_meta_trash_ready(struct vv_meta *m)
{
	int r;

	if (!meta_has_table(m, "trash"))
		return false;
	if (meta_has_table(m, "trash_kids"))
		return true;
	if (!meta_readonly(m))
		return false;
	r = meta_exec(m, kids_temp);
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

int vv_meta_trash_add(struct vv_meta *m, struct vv_trash_row *r)
{
	int rc;
	XSTMT(m, q_add);

	sqlite3_bind_int64(s, 1, (int64_t)r->ino);
	sqlite3_bind_blob(s, 2, r->name, (int)strlen(r->name), SQLITE_STATIC);
	sqlite3_bind_blob(s, 3, r->path, (int)strlen(r->path), SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, (int64_t)r->oparent);
	sqlite3_bind_blob(s, 5, r->oname, (int)strlen(r->oname), SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, r->deleted);
	sqlite3_bind_int64(s, 7, r->uid);
	sqlite3_bind_int64(s, 8, r->coll);
	sqlite3_bind_int64(s, 9, (int64_t)r->size);
	sqlite3_bind_blob(s, 10, r->gate, (int)r->gatelen, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return meta_err(m, rc);
	r->id = (uint64_t)sqlite3_last_insert_rowid(sqlite3_db_handle(s));
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

int vv_meta_trash_get_ino(struct vv_meta *m, uint64_t ino, struct vv_trash_row *r)
{
	XSTMT(m, q_get_ino);

	sqlite3_bind_int64(s, 1, (int64_t)ino);
	return get_one(m, s, r);
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

static int kid_rows(struct vv_meta *m, sqlite3_stmt *s, vv_trash_kid_cb cb, void *ctx)
{
	struct vv_trash_kid k;
	int rc, ret = 0;

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

int vv_meta_trash_kids(struct vv_meta *m, uint64_t oparent, uint64_t files, vv_trash_kid_cb cb, void *ctx)
{
	XSTMT(m, q_kids);

	sqlite3_bind_int64(s, 1, (int64_t)oparent);
	sqlite3_bind_int64(s, 2, (int64_t)files);
	return kid_rows(m, s, cb, ctx);
}

int vv_meta_trash_parts(struct vv_meta *m, uint64_t dir, uint64_t files, vv_trash_kid_cb cb, void *ctx)
{
	XSTMT(m, q_parts);

	sqlite3_bind_int64(s, 1, (int64_t)dir);
	sqlite3_bind_int64(s, 2, (int64_t)files);
	return kid_rows(m, s, cb, ctx);
}

/* Run q with ?1..?3 (nb of them bound); *changed: rows it changed. */
static int run3(struct vv_meta *m, const char *q, int nb, int64_t a, int64_t b, int64_t c, uint64_t *changed)
{
	int rc;
	XSTMT(m, q);

	sqlite3_bind_int64(s, 1, a);
	if (nb > 1)
		sqlite3_bind_int64(s, 2, b);
	if (nb > 2)
		sqlite3_bind_int64(s, 3, c);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return meta_err(m, rc);
	if (changed)
		*changed = (uint64_t)sqlite3_changes(sqlite3_db_handle(s));
	return 0;
}

int vv_meta_trash_adopt(struct vv_meta *m, uint64_t oparent, uint32_t uid, int64_t since, uint64_t *n)
{
	return run3(m, q_adopt, 3, (int64_t)oparent, uid, since, n);
}

int vv_meta_trash_settle(struct vv_meta *m, uint64_t dir, uint64_t files, uint64_t lo, uint64_t hi,
			 uint64_t *n)
{
	int r;

	*n = 0;
	/* Entries first: the inodes' and the rows' statements read the rows. */
	if ((r = run3(m, q_settle_ent, 2, (int64_t)dir, (int64_t)files, 0, n)) < 0 ||
	    (r = run3(m, q_settle_ino, 1, (int64_t)dir, 0, 0, NULL)) < 0 ||
	    (r = run3(m, q_settle_del, 1, (int64_t)dir, 0, 0, NULL)) < 0)
		return r;
	return run3(m, q_kids_gc, 2, (int64_t)lo, (int64_t)hi, 0, NULL);
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

int vv_meta_coll_used(struct vv_meta *m, uint32_t coll, bool *used)
{
	int rc;
	XSTMT(m, q_coll_used);

	sqlite3_bind_int64(s, 1, coll);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	*used = rc == SQLITE_ROW;
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : meta_err(m, rc);
}
