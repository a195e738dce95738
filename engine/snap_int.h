/*
 * snap_int.h - snapshots, as the rest of the vault sees them (vault_snap.c).
 *
 * What a snapshot is and how its rows are stored: meta_int.h "snapshots"
 * and meta_snap*.c.  This file holds the vault side: the read-only guard
 * the namespace, data and xattr files call before any change, the
 * operations the admin verbs and the ticker run, and the retention rule
 * (a pure function, so tests drive it with a fake clock).
 *
 * Locking: every vault_snap_* takes v->mu itself (call without it), except
 * the guards, which only look at numbers.
 */
#ifndef VV_SNAP_INT_H
#define VV_SNAP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meta_int.h"
#include "vecvault/error.h"

struct vv_vault;

/* VV_EROFS when ino is inside .snapshots (the directory itself, a
 * snapshot's root or anything below): every change there is refused. */
static inline int vault_snap_ro(uint64_t ino)
{
	return vv_snap_ino(ino) ? VV_EROFS : 0;
}

/* Is dir the root of the live tree or of a snapshot (its entries are
 * collections)? */
static inline bool vault_snap_is_root(uint64_t ino)
{
	return ino == 1 || (vv_snap_ino(ino) && vv_snap_real(ino) == 1);
}

/* Retention in the shape of `restic forget --keep-hourly/daily/weekly/
 * monthly`: going from the newest snapshot to the oldest, each policy keeps
 * a snapshot when its hour (day, ISO week, month; UTC) differs from the
 * previous snapshot's and that policy still has some of its count left;
 * a snapshot kept by any policy is kept.  All counts zero: keep all.
 * times in ns since the epoch, any order; keep[i] answers for times[i]. */
struct vv_snap_keep {
	uint32_t hourly, daily, weekly, monthly;
};
void vv_snap_retain(const int64_t *times, size_t n, const struct vv_snap_keep *k, bool *keep);

/* The operations (verbs, ticker, tests).  name NULL: the UTC time
 * ("2026-12-06T10:00:00Z").  create flushes every write buffer first, so
 * each write that returned before it is in the snapshot, and commits
 * durably before it returns. */
int vault_snap_create(struct vv_vault *v, const char *name, uint32_t uid, uint32_t flags,
		      struct vv_snap_row *out);
/* Read-write open: drop snapshots a crash left pending (their references
 * and files) and files under snapshots/ no snapshot owns. */
int vault_snap_recover(struct vv_vault *v);
/* VV_EBUSY while a file of the snapshot is open. */
int vault_snap_delete(struct vv_vault *v, const char *name);

/* Schedule: called at open (rw) and by the ticker without v->mu. */
void vault_snap_schedule_init(struct vv_vault *v);
void vault_snap_tick(struct vv_vault *v);

#endif
