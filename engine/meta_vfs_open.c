/*
 * meta_vfs_open.c - connections to meta.db through the encrypting VFS:
 * open (create, read-only, snapshot files), close with its checkpoint, the
 * checkpointer's peer connection, and the mapping of SQLite's result codes to VV_E* codes.  The
 * VFS itself and the byte layout: meta_vfs.c; what they share:
 * meta_vfs_impl_int.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "buf.h"
#include "crypto_int.h"
#include "grow.h"
#include "meta_vfs_impl_int.h"
#include "meta_vfs_int.h"
#include "os.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

int vv_metavfs_err(sqlite3 *db, int rc)
{
	int ext = db ? sqlite3_extended_errcode(db) : rc;

	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_NOMEM:
		return VV_ENOMEM;
	case SQLITE_FULL:
		return VV_ENOSPC;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return VV_ECORRUPT;
	case SQLITE_IOERR:
		if (rc == SQLITE_IOERR_AUTH || ext == SQLITE_IOERR_AUTH)
			return VV_ECORRUPT;
		return ext == SQLITE_IOERR_NOMEM ? VV_ENOMEM : VV_EIO;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return VV_EBUSY;
	case SQLITE_READONLY:
		return VV_EROFS;
	case SQLITE_CONSTRAINT:
		return VV_EEXIST;
	default:
		return VV_EIO;
	}
}

/* Run one statement and copy the first column of its first row, if any. */
static int pragma(sqlite3 *db, const char *sql, char *ans, size_t anslen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (ans && anslen)
		ans[0] = '\0';
	if (rc != SQLITE_OK)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		if (ans && anslen && t)
			snprintf(ans, anslen, "%s", (const char *)t);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
	}
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
out:
	if (rc != SQLITE_OK)
		vv_log(VV_LOG_ERR, "meta.db: \"%s\" failed: %s", sql, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc;
}

static void unbind(struct binding *b)
{
	struct binding **pp;

	if (!b)
		return;
	pthread_mutex_lock(&meta_vfs_lock);
	for (pp = &meta_vfs_bindings; *pp; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	meta_vfs_shm_put(b->shm);
	pthread_mutex_unlock(&meta_vfs_lock);
	vv_secure_free(b->keys);
	free(b->tags);
	free(b->path);
	free(b);
}

/* key: the store's meta key (subkeys derived here); or NULL and keys: a
 * block of NKEYS subkeys to copy (a snapshot file under the same keys). */
static int bind_key(const char *full, const uint8_t key[32], const uint8_t *keys, uint32_t psz,
		    struct binding **out)
{
	struct binding *b = calloc(1, sizeof(*b));
	int r = VV_ENOMEM;

	*out = NULL;
	if (!b)
		goto out;
	b->path = strdup(full);
	b->keys = vv_secure_alloc(NKEYS * VV_KEY_BYTES);
	b->psz = psz;
	b->shm = meta_vfs_shm_new();
	if (!b->path || !b->keys || !b->shm)
		goto out;
	if (keys)
		memcpy(b->keys, keys, NKEYS * VV_KEY_BYTES);
	for (int i = 0; !keys && i < NKEYS; i++)
		if ((r = vv_subkey(b->keys + i * VV_KEY_BYTES, key, (uint64_t)i + 1, KDF_CTX)) < 0)
			goto out;
	pthread_mutex_lock(&meta_vfs_lock);
	if (meta_vfs_find_path(full, strlen(full))) {
		r = VV_EBUSY;
	} else {
		b->next = meta_vfs_bindings;
		meta_vfs_bindings = b;
		r = 0;
	}
	pthread_mutex_unlock(&meta_vfs_lock);
out:
	if (r < 0 && b) {
		vv_secure_free(b->keys);
		if (b->shm) {
			pthread_mutex_lock(&meta_vfs_lock);
			meta_vfs_shm_put(b->shm);
			pthread_mutex_unlock(&meta_vfs_lock);
		}
		free(b->path);
		free(b);
	} else {
		*out = b;
	}
	return r;
}

/* After a read-only connection closed: SQLite made an empty WAL to read
 * through, and without the checkpoint at close nobody removes it.  Leave
 * the store as we found it (an empty WAL holds nothing). */
static void drop_new_wal(const struct binding *b)
{
	char *wal = NULL;
	struct stat st;

	if (!b || !b->readonly || !b->wal_absent || asprintf(&wal, "%s-wal", b->path) < 0)
		return;
	if (vv_os_stat(wal, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)
		vv_os_unlink(wal);
	free(wal);
}

/* Existence rules for create / open; see the header. */
static int check_files(const char *full, bool create)
{
	struct stat st;
	char *wal = NULL;
	int e = vv_os_stat(full, &st), r = 0;

	if (create) {
		if (e == 0 && st.st_size > 0) {
			vv_log(VV_LOG_ERR, "meta.db: %s already exists", full);
			r = VV_EEXIST;
			goto out;
		}
		if (asprintf(&wal, "%s-wal", full) < 0) {
			wal = NULL;
			r = VV_ENOMEM;
			goto out;
		}
		if (vv_os_stat(wal, &st) == 0) {
			vv_log(VV_LOG_ERR, "meta.db: stale %s exists", wal);
			r = VV_EEXIST;
		}
		goto out;
	}
	if (e < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		vv_log(VV_LOG_ERR, "meta.db: %s is %s: an initialised vault needs it",
		       full, e < 0 ? "missing" : "empty");
		r = VV_ECORRUPT;
	}
out:
	free(wal);
	return r;
}

int vv_metavfs_open(const char *path, const uint8_t key[32], uint32_t page_size,
		    unsigned flags, sqlite3 **out)
{
	if (out)
		*out = NULL;
	if (!key)
		return VV_EINVAL;
	return meta_vfs_open_with(path, key, NULL, NULL, 0, page_size, flags, out);
}

/* keys (not key): a snapshot file, with its page tags if ntags > 0. */
int meta_vfs_open_with(const char *path, const uint8_t key[32], const uint8_t *keys, const uint8_t *tags,
		       uint32_t ntags, uint32_t page_size, unsigned flags, sqlite3 **out)
{
	struct binding *b = NULL;
	sqlite3 *db = NULL;
	char *full = NULL, sql[64], ans[32];
	bool create = flags & VV_METAVFS_CREATE, ro = flags & VV_METAVFS_READONLY;
	int r = VV_EINVAL, rc, n;

	if (out)
		*out = NULL;
	if (!path || (!key && !keys) || !out || page_size < 1024 || page_size > 65536 ||
	    (page_size & (page_size - 1)))
		goto out;
	if ((r = vv_crypto_init()) < 0)
		goto out;
	if (meta_vfs_register() != SQLITE_OK) {
		r = VV_EIO;
		goto out;
	}
	r = VV_ENOMEM;
	full = malloc((size_t)meta_vfs_sqlite.mxPathname + 1);
	if (!full)
		goto out;
	if (meta_vfs_base->xFullPathname(meta_vfs_base, path, meta_vfs_sqlite.mxPathname + 1, full) != SQLITE_OK) {
		r = VV_ENAMETOOLONG;
		goto out;
	}
	if ((r = check_files(full, create)) < 0)
		goto out;
	if ((r = bind_key(full, key, keys, page_size, &b)) < 0)
		goto out;
	if (keys) {
		b->snap = true;
		if (ntags) {
			if (!(b->tags = malloc((size_t)ntags * VV_TAG_BYTES))) {
				r = VV_ENOMEM;
				goto out;
			}
			memcpy(b->tags, tags, (size_t)ntags * VV_TAG_BYTES);
			b->ntags = ntags;
		}
	}
	if (ro && !create) {
		char *wal = NULL;
		struct stat st;
		if (asprintf(&wal, "%s-wal", full) < 0) {
			r = VV_ENOMEM;
			goto out;
		}
		b->readonly = true;
		b->wal_absent = vv_os_stat(wal, &st) == -ENOENT;
		free(wal);
	}

	rc = sqlite3_open_v2(full, &db, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0),
			     VV_METAVFS_NAME);
	if (rc != SQLITE_OK)
		goto sqlerr;
	/* SQLite checkpoints the WAL into the database when the last
	 * connection closes: not for a read-only open, which must leave a WAL
	 * from a crash as it found it. */
	if (b->readonly && sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL) !=
	    SQLITE_OK) {
		r = VV_EIO;
		goto out;
	}
	if (create) {
		/* Before anything is written: page size and the 40 bytes
		 * SQLite must leave alone for nonce and tag.  journal_mode
		 * MEMORY makes SQLite switch to WAL through mode OFF, so the
		 * one transaction that writes the header needs no journal. */
		snprintf(sql, sizeof(sql), "PRAGMA page_size=%u", page_size);
		if ((rc = pragma(db, sql, NULL, 0)) != SQLITE_OK)
			goto sqlerr;
		n = RESERVE;
		if ((rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &n)) != SQLITE_OK)
			goto sqlerr;
	}
	/* A read-write main database shares its WAL index with a second
	 * connection, the checkpointer (vv_metavfs_open_peer): normal locking
	 * through the heap index (struct wshm, meta_vfs.c).  Read-only and
	 * snapshot connections stay alone: exclusive locking keeps their
	 * index in SQLite's heap. */
	if ((ro || keys) &&
	    (rc = pragma(db, "PRAGMA locking_mode=EXCLUSIVE", ans, sizeof(ans))) != SQLITE_OK)
		goto sqlerr;
	if (create && (rc = pragma(db, "PRAGMA journal_mode=MEMORY", NULL, 0)) != SQLITE_OK)
		goto sqlerr;
	if ((rc = pragma(db, "PRAGMA journal_mode=WAL", ans, sizeof(ans))) != SQLITE_OK)
		goto sqlerr;
	if (strcmp(ans, "wal") != 0) {
		vv_log(VV_LOG_ERR, "meta.db: %s: journal_mode=WAL answered \"%s\"", full, ans);
		r = VV_EIO;
		goto out;
	}
	if ((rc = pragma(db, "PRAGMA temp_store=MEMORY", NULL, 0)) != SQLITE_OK ||
	    (rc = pragma(db, "PRAGMA mmap_size=0", NULL, 0)) != SQLITE_OK ||
	    (rc = pragma(db, "PRAGMA cache_size=-" STR(VV_METAVFS_CACHE_KIB), NULL, 0)) != SQLITE_OK ||
	    (rc = pragma(db, "PRAGMA foreign_keys=OFF", NULL, 0)) != SQLITE_OK ||
	    (ro && (rc = pragma(db, "PRAGMA query_only=ON", NULL, 0)) != SQLITE_OK) ||
	    /* A deleted row's bytes (a dropped collection key above all) are
	     * zeroed in their page, and a freed page is zeroed whole, so no
	     * free space keeps them (FAST would leave freed pages as they
	     * were); the WAL's older frames are vv_meta_shred's. */
	    (!ro && (rc = pragma(db, "PRAGMA secure_delete=ON", NULL, 0)) != SQLITE_OK) ||
	    (rc = pragma(db, "PRAGMA page_size", ans, sizeof(ans))) != SQLITE_OK)
		goto sqlerr;
	n = -1;
	if ((rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &n)) != SQLITE_OK)
		goto sqlerr;
	if (strtoul(ans, NULL, 10) != page_size || n != RESERVE) {
		vv_log(VV_LOG_ERR, "meta.db: %s has page size %s reserve %d, conf says %u/%d",
		       full, ans, n, page_size, RESERVE);
		r = VV_ECORRUPT;
		goto out;
	}
	b->db = db;
	*out = db;
	db = NULL;
	b = NULL;
	r = 0;
	goto out;
sqlerr:
	r = vv_metavfs_err(db, rc);
	if (r == 0)
		r = VV_EIO;
	vv_log(VV_LOG_ERR, "meta.db: open %s: %s", full, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
out:
	if (db)
		sqlite3_close_v2(db);
	drop_new_wal(b);
	unbind(b);
	free(full);
	return r;
}

int vv_metavfs_close(sqlite3 *db)
{
	struct binding *b, *found = NULL;
	sqlite3_stmt *st;
	int r = 0, rc;

	if (!db)
		return 0;
	pthread_mutex_lock(&meta_vfs_lock);
	for (b = meta_vfs_bindings; b; b = b->next)
		if (b->db == db)
			found = b;
	pthread_mutex_unlock(&meta_vfs_lock);
	if (!found || !found->readonly) {
		rc = sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			vv_log(VV_LOG_ERR, "meta.db: final checkpoint: %s", sqlite3_errmsg(db));
			r = vv_metavfs_err(db, rc);
		}
	}
	while ((st = sqlite3_next_stmt(db, NULL)) != NULL)
		sqlite3_finalize(st);
	rc = sqlite3_close(db);
	if (rc != SQLITE_OK && r == 0)
		r = VV_EIO;
	drop_new_wal(found);
	unbind(found);
	return r;
}

/* The checkpointer's connection: it syncs what it copies (NORMAL: the WAL
 * before, meta.db after), checkpoints only when asked, spills nothing to
 * disk, maps nothing, caches little and writes no rows. */
static const char *const peer_pragmas[] = {
	"PRAGMA synchronous=NORMAL", "PRAGMA wal_autocheckpoint=0", "PRAGMA temp_store=MEMORY",
	"PRAGMA mmap_size=0", "PRAGMA cache_size=16", "PRAGMA query_only=ON",
};

int vv_metavfs_open_peer(sqlite3 *db, sqlite3 **out)
{
	struct binding *b, *found = NULL;
	sqlite3 *p = NULL;
	char *path = NULL, ans[32];
	int rc, r = VV_EINVAL;

	*out = NULL;
	pthread_mutex_lock(&meta_vfs_lock);
	for (b = meta_vfs_bindings; b; b = b->next)
		if (db && b->db == db)
			found = b;
	if (found && !found->readonly && !found->snap)
		path = strdup(found->path);
	pthread_mutex_unlock(&meta_vfs_lock);
	if (!found || found->readonly || found->snap)
		return VV_EINVAL;
	if (!path)
		return VV_ENOMEM;
	rc = sqlite3_open_v2(path, &p, SQLITE_OPEN_READWRITE, VV_METAVFS_NAME);
	/* Never a checkpoint at close (the writer's close makes the last), nor
	 * one SQLite starts by itself; query_only: it writes no rows. */
	if (rc == SQLITE_OK &&
	    sqlite3_db_config(p, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL) != SQLITE_OK)
		rc = SQLITE_ERROR;
	if (rc == SQLITE_OK)
		rc = pragma(p, "PRAGMA journal_mode", ans, sizeof(ans));
	if (rc == SQLITE_OK && strcmp(ans, "wal") != 0) {
		vv_log(VV_LOG_ERR, "meta.db: %s: the checkpointer found journal_mode \"%s\"", path, ans);
		r = VV_EIO;
		goto out;
	}
	for (size_t i = 0; rc == SQLITE_OK && i < sizeof(peer_pragmas) / sizeof(peer_pragmas[0]); i++)
		rc = pragma(p, peer_pragmas[i], NULL, 0);
	if (rc != SQLITE_OK) {
		r = vv_metavfs_err(p, rc);
		if (r == 0)
			r = VV_EIO;
		vv_log(VV_LOG_ERR, "meta.db: open the checkpointer's connection to %s: %s", path,
		       p ? sqlite3_errmsg(p) : sqlite3_errstr(rc));
		goto out;
	}
	*out = p;
	p = NULL;
	r = 0;
out:
	if (p)
		sqlite3_close(p);
	free(path);
	return r;
}

int vv_metavfs_close_peer(sqlite3 *peer)
{
	sqlite3_stmt *st;

	if (!peer)
		return 0;
	while ((st = sqlite3_next_stmt(peer, NULL)) != NULL)
		sqlite3_finalize(st);
	return sqlite3_close(peer) == SQLITE_OK ? 0 : VV_EIO;
}

int vv_metavfs_wal_discarded(sqlite3 *db)
{
	int n = 0;

	pthread_mutex_lock(&meta_vfs_lock);
	for (struct binding *b = meta_vfs_bindings; b; b = b->next)
		if (b->db == db)
			n = b->discarded;
	pthread_mutex_unlock(&meta_vfs_lock);
	return n;
}
