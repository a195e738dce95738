/*
 * meta_core_int.h - between meta.c (the connection, the core schema and
 * its statements, transactions, checkpoints, kv) and meta_rows.c (the core
 * tables' rows); the feature files see meta_sql_int.h only.
 */
#ifndef VV_META_CORE_INT_H
#define VV_META_CORE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "meta_int.h"
#include "vecvault/error.h"

/* The core statements, prepared once per connection (meta_core_sql). */
enum {
	S_KV_GET, S_KV_SET,
	S_INO_GET, S_INO_PUT, S_INO_PUT_DATA, S_INO_DATA_GET, S_INO_DATA_SET, S_INO_DEL,
	S_INO_XDEL, S_INO_ITER,
	S_DE_GET, S_DE_ADD, S_DE_DEL, S_DE_MOVE, S_DE_SETINO, S_DE_ANY, S_DE_LIST, S_DE_LIST_PLUS, S_DE_FIND, S_DE_ALL,
	S_DE_PARENTS,
	S_DE_RANGE, S_DE_RANGE_PLUS,
	S_X_GET, S_X_SET, S_X_DEL, S_X_LIST, S_X_ANY,
	S_E_LOAD, S_E_PUT, S_E_TRIM_SEL, S_E_TRIM_DEL, S_E_ALL,
	S_C_GET, S_C_INS, S_C_UPD, S_C_DEL, S_C_ITER, S_C_SETREFS, S_C_STATS,
	S_COLL_GET, S_COLL_ADD, S_COLL_DEL,
	S_COUNT_INO, S_COLL_NEEDED, S_COLL_IDS,
	S_BEGIN, S_COMMIT, S_ROLLBACK, S_COMMITS_INC,
	S_NSTMT
};

#define META_XSTMT_MAX 96             /* feature statements per connection */

struct meta_snapc;

struct vv_meta {
	sqlite3 *db;
	sqlite3_stmt *st[S_NSTMT];
	struct { const char *sql; sqlite3_stmt *s; } x[META_XSTMT_MAX];
	size_t nx;
	bool txn;                        /* a write transaction is pending */
	bool reading;                    /* a BEGIN is open (reads run inside it) */
	bool ro;                         /* VV_META_READONLY */
	bool icount, icount_known;       /* the inode_count table exists (vv_meta_counts) */
	struct meta_snapc *snapc;        /* snapshot files' connections (meta_snap_file.c) */
	/* the checkpointer (vv_meta_ckpt_*): its own connection, one checkpoint
	 * at a time on either connection (ckpt_mu, taken after the vault's) */
	sqlite3 *peer;
	pthread_mutex_t ckpt_mu;
	bool ckpt_mu_ok;
	uint32_t wal_frames;             /* in the WAL after the last commit */
	bool ckpt_failing;               /* the last pass failed (logged once) */
};

/* meta.c: the SQL of each statement; the prepared statement for id, reset
 * and with bindings cleared (NULL after logging if it cannot be prepared). */
extern const char *const meta_core_sql[S_NSTMT];
sqlite3_stmt *meta_stmt(struct vv_meta *m, int id);

#define STMT(m, id) sqlite3_stmt *s = meta_stmt((m), (id)); if (!s) return VV_EIO

/* SQLite stores integers signed: inode numbers and sizes above 2^63 are
 * refused by the vault layer, so the cast loses nothing. */
static inline int64_t i64(uint64_t v)
{
	return (int64_t)v;
}

#endif
