/*
 * meta_grant.c - the grants table of meta.db (meta_sql_int.h).
 *
 *   coll_admins(coll INTEGER, gid INTEGER, PRIMARY KEY(coll, gid))
 *       the roles (POSIX gids) holding the admin privilege on a collection
 *       (coll: the inode number of the collection's directory; inode
 *       numbers are never reused, so a deleted collection's rows match nothing)
 *
 * The ACL entries a grant writes are ordinary xattrs rows; only the
 * privilege needs a table of its own.
 */
#include "meta_sql_int.h"
#include "vecvault/error.h"

int meta_grant_schema(struct vv_meta *m)
{
	return meta_exec(m, "CREATE TABLE IF NOT EXISTS coll_admins(coll INTEGER NOT NULL,"
			 " gid INTEGER NOT NULL, PRIMARY KEY(coll, gid)) WITHOUT ROWID");
}

int vv_meta_admin_set(struct vv_meta *m, uint64_t coll, uint32_t gid, bool on)
{
	sqlite3_stmt *s;

	if (!meta_has_table(m, "coll_admins"))
		return VV_EROFS;             /* a read-only open of an older store */
	s = on ? meta_sql(m, "INSERT OR IGNORE INTO coll_admins(coll, gid) VALUES(?1, ?2)")
	       : meta_sql(m, "DELETE FROM coll_admins WHERE coll=?1 AND gid=?2");
	if (!s)
		return VV_EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)coll);
	sqlite3_bind_int64(s, 2, gid);
	return meta_run(m, s);
}

int vv_meta_admin_list(struct vv_meta *m, uint64_t coll, uint32_t *gids, size_t max, size_t *n)
{
	sqlite3_stmt *s;
	int rc, r = 0;

	*n = 0;
	if (!meta_has_table(m, "coll_admins"))
		return 0;
	if (!(s = meta_sql(m, "SELECT gid FROM coll_admins WHERE coll=?1 ORDER BY gid")))
		return VV_EIO;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)coll);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n < max)
			gids[*n] = (uint32_t)sqlite3_column_int64(s, 0);
		(*n)++;
	}
	if (rc != SQLITE_DONE)
		r = meta_err(m, rc);
	sqlite3_reset(s);
	return r;
}
