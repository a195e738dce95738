/*
 * backup_int.h - backups as the vault sees them: reading one snapshot's
 * rows for export (meta_backup.c) and the daemon's side of `vecvault
 * backup` (vault_backup.c: the backup.* verbs; vault_restore.c: restore
 * into a new store).
 * The repository's bytes are repo*.c's (repo_int.h).
 */
#ifndef VV_BACKUP_INT_H
#define VV_BACKUP_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "content_int.h"
#include "meta_int.h"

/* Where vv_meta_backup_read puts a snapshot's rows; each callback returns
 * 0 or a VV_E* code that stops the read (and is returned).  Pointers are
 * valid only during the call.  Inode numbers are the stored (real) ones. */
struct vv_meta_bk_sink {
	void *ctx;
	int (*inode)(void *ctx, const struct vv_inode_row *r, const void *data, size_t len);
	int (*dirent)(void *ctx, uint64_t parent, const char *name, uint64_t id, uint64_t ino,
		      uint32_t mode);
	int (*xattr)(void *ctx, uint64_t ino, const char *name, const void *val, size_t len);
	int (*extent)(void *ctx, uint64_t ino, const struct vv_extent *e);
	int (*coll)(void *ctx, uint32_t coll);
};

/* Every row of snapshot sid, table by table (inodes, dirents, xattrs,
 * extents, collections).  Under the vault's lock; reads only. */
int vv_meta_backup_read(struct vv_meta *m, uint32_t sid, const struct vv_meta_bk_sink *k);
/* The same rows from the live tables, as a snapshot taken
 * now would hold them.  Under the vault's lock; reads only. */
int vv_meta_backup_read_live(struct vv_meta *m, const struct vv_meta_bk_sink *k);

/* The queue discipline the workers of backup.create's copy
 * (vault_backup.c) and of restore (vault_restore.c) share: the next of n
 * jobs (*next, into *job), taken under mu, unless the run has failed
 * (*r < 0: all stop).  false: nothing more to take. */
bool vault_backup_next_job(pthread_mutex_t *mu, const int *r, size_t *next, size_t n, size_t *job);

#endif
