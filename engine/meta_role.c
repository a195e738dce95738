/*
 * meta_role.c - the roles table of meta.db (meta_sql_int.h).
 *
 *   roles(name TEXT PRIMARY KEY, gid INTEGER NOT NULL UNIQUE,
 *         created INTEGER NOT NULL)          a role is a POSIX group
 *
 * Plus the one query roles need over the core schema: every stored ACL
 * blob, to find where a role is still granted.
 */
#include <string.h>

#include "meta_sql_int.h"
#include "vecvault/error.h"

int meta_role_schema(struct vv_meta *m)
{
	return meta_exec(m, "CREATE TABLE IF NOT EXISTS roles(name TEXT PRIMARY KEY,"
			 " gid INTEGER NOT NULL UNIQUE, created INTEGER NOT NULL)");
}

int vv_meta_role_add(struct vv_meta *m, const char *name, uint32_t gid, int64_t created)
{
	sqlite3_stmt *s = meta_sql(m, "INSERT INTO roles(name, gid, created) VALUES(?1, ?2, ?3)");
	int rc;

	if (!s)
		return VV_EIO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, gid);
	sqlite3_bind_int64(s, 3, created);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_CONSTRAINT)
		return VV_EEXIST;
	return rc == SQLITE_DONE ? 0 : meta_err(m, rc);
}

int vv_meta_role_get(struct vv_meta *m, const char *name, uint32_t *gid)
{
	sqlite3_stmt *s;
	int r;

	if (!meta_has_table(m, "roles"))
		return VV_ENOENT;
	if (!(s = meta_sql(m, "SELECT gid FROM roles WHERE name=?1")))
		return VV_EIO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if ((r = meta_row(m, s)) < 0)
		return r;
	*gid = (uint32_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	return 0;
}

int vv_meta_role_del(struct vv_meta *m, const char *name)
{
	sqlite3_stmt *s = meta_sql(m, "DELETE FROM roles WHERE name=?1");
	int r;

	if (!s)
		return VV_EIO;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	if ((r = meta_run(m, s)) < 0)
		return r;
	return sqlite3_changes(sqlite3_db_handle(s)) ? 0 : VV_ENOENT;
}

int vv_meta_role_iter(struct vv_meta *m,
		      int (*cb)(void *ctx, const char *name, uint32_t gid, int64_t created),
		      void *ctx)
{
	sqlite3_stmt *s;
	int rc, r = 0;

	if (!meta_has_table(m, "roles"))
		return 0;
	if (!(s = meta_sql(m, "SELECT name, gid, created FROM roles ORDER BY name")))
		return VV_EIO;
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW)
		r = cb(ctx, (const char *)sqlite3_column_text(s, 0),
		       (uint32_t)sqlite3_column_int64(s, 1), sqlite3_column_int64(s, 2));
	if (r == 0 && rc != SQLITE_DONE)
		r = meta_err(m, rc);
	sqlite3_reset(s);
	return r;
}

int vv_meta_acl_iter(struct vv_meta *m,
		     int (*cb)(void *ctx, uint64_t ino, bool dflt, const uint8_t *blob, size_t len),
		     void *ctx)
{
	sqlite3_stmt *s = meta_sql(m, "SELECT ino, name, value FROM xattrs WHERE name IN"
				   " ('system.posix_acl_access', 'system.posix_acl_default')");
	int rc, r = 0;

	if (!s)
		return VV_EIO;
	while (r == 0 && (rc = sqlite3_step(s)) == SQLITE_ROW)
		r = cb(ctx, (uint64_t)sqlite3_column_int64(s, 0),
		       strcmp((const char *)sqlite3_column_text(s, 1), "system.posix_acl_default") == 0,
		       sqlite3_column_blob(s, 2), (size_t)sqlite3_column_bytes(s, 2));
	if (r == 0 && rc != SQLITE_DONE)
		r = meta_err(m, rc);
	sqlite3_reset(s);
	return r;
}
