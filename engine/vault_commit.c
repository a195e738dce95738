/*
 * vault_commit.c - the metadata transaction and the commit pipeline
 * (DESIGN invariant 4), chunks released by commits, the full-disk reserve
 * (invariant 6).
 *
 * Durability, in one place.  Operations change meta.db inside one long
 * transaction under v->mu.  Every commit is durable once it returns, in two
 * steps: SQLite writes the WAL frames (synchronous=NORMAL, set in meta.c,
 * the only place that sets it), then this file fsyncs the WAL.  Commits are
 * batched, not weakened: the ticker (vault.c) commits every COMMIT_MS, and
 * fsync, sync and close commit at once.  The ticker, fsync and sync use the
 * group commit (vault_commit_group): the WAL fsync runs outside v->mu and
 * covers every commit written before it; docs/design.md, "Commit pipeline".
 * Before every commit vv_content_sync() makes each chunk written so far
 * durable, so no commit can reference a chunk a power cut could lose (the
 * group commit fsyncs most of them outside v->mu first);
 * chunks whose last reference a commit dropped are unlinked once every
 * written commit is durable.  The rollback anchor outside STORE (a file
 * written and fsync'd on its own) is what lags: it is caught up by
 * vault_commit_anchor() and the group commit with anchor, every few seconds
 * from the ticker and at fsync, sync, open and close, only when no written
 * commit awaits its sync, so an older meta.db is caught at the next mount
 * up to that lag.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "crypto_int.h"
#include "grow.h"
#include "os.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

int64_t vault_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void ckpt_settle(struct vv_vault *v);

int vault_txn(struct vv_vault *v)
{
	if (v->cm.fatal)
		return v->cm.fatal;
	if (v->flags & VV_VAULT_READONLY)
		return VV_EROFS;
	ckpt_settle(v);
	vault_keys_settle(v, false);
	return vv_meta_begin(v->meta);
}

/* --- the checkpointer --------------------------------------------------------
 *
 * SQLite's automatic checkpoint ran inside the COMMIT that passed 1000 WAL
 * frames, so under v->mu: the page writes and two fsyncs (50-240 ms, up to
 * 1.1 s at load) with every request waiting.  The writer's connection now
 * never checkpoints (meta.c, vv_meta_ckpt_open); this thread does, through
 * its own connection, outside v->mu: after a durable commit leaves
 * ckpt.frames frames in the WAL (or any, when the disk is nearly full) it
 * copies every committed frame into meta.db and syncs it (PASSIVE: commits
 * go on meanwhile).  The WAL starts over only at a commit whose connection
 * began reading after every frame was copied (the writer keeps a read
 * transaction open between commits).  So once a pass has caught up
 * (ckpt.ready, ckpt.caught frames), ckpt_settle, at the next commit or
 * transaction start with no write open, lets the writer's next read begin
 * past them all (vv_meta_ckpt_finish): free when nothing was committed
 * since (the load paused), and the commit after it restarts the log in
 * place and truncates it to journal_size_limit as before.  Under steady
 * load something always was: then another pass follows, outside mu, once
 * another ckpt.frames were committed or the commits pause (ckpt_kick), and
 * only once the WAL holds CKPT_HARD times the bound (at most four
 * reserves' worth), or the disk is nearly full, does the finishing step copy under mu what was committed since
 * the pass (a commit or two, not 1000 frames, but with meta.db's fsync).
 * The WAL is therefore bounded (CKPT_HARD * ckpt.frames plus a pass's
 * overlap), and as before when space is tight, which is what the
 * full-disk guards count on: a restarted WAL reuses its own blocks, and
 * the WAL headroom is untouched.  Power cuts: a pass is
 * SQLite's own checkpoint (WAL synced before any page is copied, meta.db
 * synced before the WAL may be reused), through the same encrypting VFS;
 * test_crash cuts during passes (its workloads run with a 16-frame bound). */

#define CKPT_HARD 4

/* CKPT_HARD times the bound, but at most 4 reserves of WAL (1/8 of a
 * small file system) and never below the bound. */
static uint64_t ckpt_hard(const struct vv_vault *v)
{
	uint64_t hard = 4ull * v->cm.reserve / vv_store_page_size(v->store);

	if (hard > (uint64_t)CKPT_HARD * v->ckpt.frames)
		hard = (uint64_t)CKPT_HARD * v->ckpt.frames;
	if (hard < v->ckpt.frames)
		hard = v->ckpt.frames;
	return hard;
}

/* Under mu. */
static void ckpt_settle(struct vv_vault *v)
{
	uint32_t f;
	int r;

	uint64_t hard;

	if (!v->ckpt.ready || vv_meta_in_txn(v->meta))
		return;
	hard = ckpt_hard(v);
	f = vv_meta_wal_frames(v->meta);
	if (f != v->ckpt.caught && f < hard && !v->cm.low_space) {
		v->ckpt.ready = false;      /* committed since: another pass first */
		return;
	}
	r = vv_meta_ckpt_finish(v->meta);
	if (r == 0) {
		v->ckpt.finishes++;
		if (f != v->ckpt.caught)
			v->ckpt.finishes_locked++;
	}
	if (r <= 0)
		v->ckpt.ready = false;      /* else a pass runs: at the next commit */
}

/* After a durable commit (the ticker's too, with nothing written), under
 * mu.  Past the bound, a pass is kicked again only once another bound's
 * worth of frames was committed since the last kick, or when commits
 * paused (the ticker's found nothing new).  Kicking one after every
 * commit copied the same hot pages (inode table, directories, kv) again
 * in each pass with two fsyncs: 43 passes instead of 3 checkpoints in a
 * tar -x of 1500 files, 11% more daemon CPU.  A pause kicks one only if
 * frames came since the last kick (or that pass failed), not one per
 * tick while a caught-up WAL waits for its next write to start over.
 * Past the hard bound every commit kicks one, so the finishing step
 * comes at once and the WAL stays within it as before.
 * The finishing step still copies under mu only what came after the
 * last pass, at CKPT_HARD. */
static void ckpt_kick(struct vv_vault *v)
{
	uint32_t f;
	bool idle = v->cm.written == v->ckpt.seen;

	v->ckpt.seen = v->cm.written;
	if (!v->ckpt.run || v->ckpt.busy || v->ckpt.kick || v->ckpt.ready)
		return;
	f = vv_meta_wal_frames(v->meta);
	if (f < v->ckpt.last)
		v->ckpt.last = 0;           /* the log started over */
	if ((f >= v->ckpt.frames && f != v->ckpt.last &&
	     (idle || f - v->ckpt.last >= v->ckpt.frames || f >= ckpt_hard(v))) ||
	    (f && v->cm.low_space)) {
		v->ckpt.kick = true;
		v->ckpt.last = f;
		pthread_cond_signal(&v->ckpt.cv);
	}
}

static void *ckpt_thread(void *arg)
{
	struct vv_vault *v = arg;
	int log, done, r;

	pthread_mutex_lock(&v->mu);
	for (;;) {
		while (v->ckpt.run && !v->ckpt.kick)
			pthread_cond_wait(&v->ckpt.cv, &v->mu);
		if (!v->ckpt.run)
			break;
		v->ckpt.kick = false;
		v->ckpt.busy = true;
		pthread_mutex_unlock(&v->mu);
		r = vv_meta_ckpt_pass(v->meta, v->ckpt.test_hook, v->ckpt.test_ctx, &log, &done);
		pthread_mutex_lock(&v->mu);
		v->ckpt.busy = false;
		v->ckpt.passes++;
		if (r == 0 && log == done && log > 0) {
			v->ckpt.ready = true;
			v->ckpt.caught = (uint32_t)log;
		} else if (r < 0) {
			v->ckpt.last = 0;       /* again at the next pause */
		}
		pthread_cond_broadcast(&v->ckpt.cv);
	}
	pthread_mutex_unlock(&v->mu);
	return NULL;
}

void vault_ckpt_start(struct vv_vault *v, uint32_t frames)
{
	if (v->ckpt.run || (v->flags & VV_VAULT_READONLY))
		return;
	v->ckpt.frames = frames ? frames : 1000;
	if (pthread_cond_init(&v->ckpt.cv, NULL) != 0)
		return;
	if (vv_meta_ckpt_open(v->meta) < 0)
		goto fail;                  /* logged; SQLite checkpoints in commits */
	v->ckpt.run = true;
	if (pthread_create(&v->ckpt.thread, NULL, ckpt_thread, v) != 0) {
		v->ckpt.run = false;
		vv_log(VV_LOG_WARN, "vault: no checkpointer thread; commits checkpoint the WAL");
		goto fail;
	}
	return;
fail:
	vv_meta_ckpt_close(v->meta);        /* SQLite checkpoints in commits again */
	pthread_cond_destroy(&v->ckpt.cv);
}

void vault_ckpt_stop(struct vv_vault *v)
{
	if (!v->ckpt.run)
		return;
	pthread_mutex_lock(&v->mu);
	v->ckpt.run = false;
	pthread_cond_broadcast(&v->ckpt.cv);
	pthread_mutex_unlock(&v->mu);
	pthread_join(v->ckpt.thread, NULL);
	pthread_cond_destroy(&v->ckpt.cv);
}

/* --- the full-disk reserve (DESIGN invariant 6) ------------------------------
 *
 * STORE/reserve holds v->cm.reserve random bytes (1/32 of the file system,
 * between 256 KiB and 4 MiB: a deletion's commit needs a few dozen KiB).
 * When the disk's free space falls below twice that, growth is refused
 * (VV_ENOSPC) and the reserve is released, so that deletions and their
 * commits (WAL frames need space) still succeed; it is recreated once space
 * is back. */

uint64_t vault_free_bytes(struct vv_vault *v)
{
	struct statvfs sv;

	if (statvfs(vv_store_dir(v->store), &sv) < 0)
		return UINT64_MAX;
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

static void reserve_path(struct vv_vault *v, char *buf, size_t cap)
{
	if (vv_store_path(v->store, "reserve", buf, cap) < 0)
		buf[0] = 0;
}

static void reserve_release(struct vv_vault *v)
{
	char path[4096];

	reserve_path(v, path, sizeof(path));
	if (path[0] && vv_os_unlink(path) == 0)
		vv_log(VV_LOG_WARN, "vault: disk nearly full; released the %u KiB reserve so deletions "
		       "can proceed", v->cm.reserve >> 10);
}

static void reserve_make(struct vv_vault *v)
{
	struct stat st;
	char path[4096];
	uint8_t *buf;
	int fd, r = 0;

	reserve_path(v, path, sizeof(path));
	if (!path[0] || vv_os_stat(path, &st) == 0 || vault_free_bytes(v) < 4ull * v->cm.reserve)
		return;
	buf = malloc(1 << 20);
	if (!buf)
		return;
	fd = vv_os_open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0) {
		free(buf);
		return;
	}
	for (uint32_t off = 0; r == 0 && off < v->cm.reserve; off += 1 << 20) {
		uint32_t n = v->cm.reserve - off < (1u << 20) ? v->cm.reserve - off : 1u << 20;
		vv_random_bytes(buf, n);
		r = vv_os_pwrite_full(fd, buf, n, off);
	}
	if (r == 0)
		r = vv_os_fsync(fd);
	vv_os_close(fd);
	if (r < 0)
		vv_os_unlink(path);
	free(buf);
}

int vault_space_ok(struct vv_vault *v)
{
	int64_t now = vault_now();

	if (now - v->cm.space_checked > 100000000LL) {
		uint64_t fb = vault_free_bytes(v);
		v->cm.space_checked = now;
		v->cm.low_space = fb < 2ull * v->cm.reserve;
		if (v->cm.low_space)
			reserve_release(v);
	}
	return v->cm.low_space ? VV_ENOSPC : 0;
}

/* Free bytes above which vault_space_tight may reuse a measurement made in
 * the last 100 ms: more than the sealer (four 4 MiB jobs) and anyone else
 * can plausibly write in that time.  Below it, every removal measures. */
#define TIGHT_MARGIN (256ull << 20)

bool vault_space_tight(struct vv_vault *v)
{
	uint64_t need = 2ull * v->cm.reserve + (uint64_t)VV_CHUNK_MAX_BLOCKS * (VV_BLOCK_SIZE + 64);
	int64_t now;

	if (vault_space_ok(v) < 0)
		return true;
	/* Room for one more chunk beyond the reserve, else writes are
	 * failing already (a chunk is written whole).  Measured now when the
	 * disk is anywhere near that (the sealer may have filled it since
	 * vault_space_ok looked); far from it, one recent measurement serves
	 * the removals of the next 100 ms (a statvfs per removal was 3% of
	 * the daemon's CPU in rm -rf with the trash on). */
	now = vault_now();
	if (v->cm.tight_checked && now >= v->cm.tight_checked && now - v->cm.tight_checked < 100000000LL &&
	    v->cm.tight_free > need + TIGHT_MARGIN)
		return false;
	v->cm.tight_free = vault_free_bytes(v);
	v->cm.tight_checked = now;
	return v->cm.tight_free < need;
}

/* Room for the next commits inside the WAL file itself: at least
 * v->cm.reserve bytes allocated past its end (fallocate KEEP_SIZE, so
 * SQLite sees the same size), topped up after a durable commit once less
 * than half is left.  Frames written there need no free space, so a
 * commit still fits when the disk filled while the reserve file was
 * already released and not yet made again (nobody else can take this
 * room; a commit that fails is rolled back by SQLite and the vault then
 * refuses further writes).  When the disk is full the top-up fails
 * quietly and the next commits use what is left.  SQLite's
 * journal_size_limit truncation frees it with the file's tail; the next
 * commit allocates it again. */
static void wal_headroom(struct vv_vault *v)
{
	struct stat st;
	uint64_t alloc;
	int fd;

	if ((fd = vv_meta_wal_fd(v->meta)) < 0 || vv_os_fstat(fd, &st) < 0)
		return;
	alloc = (uint64_t)st.st_blocks * 512;
	if (alloc >= (uint64_t)st.st_size + v->cm.reserve / 2)
		return;
	vv_os_fallocate(fd, FALLOC_FL_KEEP_SIZE, st.st_size, v->cm.reserve);
}

/* --- commits ---------------------------------------------------------------- */

void vault_unlink_later(struct vv_vault *v, const uint8_t id[VV_CHUNK_ID_BYTES])
{
	if (VV_GROW(v->cm.unl, v->cm.nunl, v->cm.unlcap) < 0) {
		vv_log(VV_LOG_WARN, "vault: out of memory; chunk left for fsck to free");
		return;
	}
	memcpy(v->cm.unl[v->cm.nunl++].id, id, VV_CHUNK_ID_BYTES);
}

int vault_seal_checkpoint(struct vv_vault *v)
{
	uint8_t mac[VV_AUDIT_MAC_BYTES];
	uint64_t seq;
	bool have;
	int r;

	pthread_mutex_lock(&v->aud.ckpt_mu);
	have = v->aud.ckpt_have;
	seq = v->aud.ckpt_seq;
	memcpy(mac, v->aud.ckpt_mac, sizeof(mac));
	v->aud.ckpt_have = false;
	pthread_mutex_unlock(&v->aud.ckpt_mu);
	if (!have)
		return 0;
	if ((r = vault_txn(v)) < 0 || (r = vv_meta_kv_set_u64(v->meta, "audit_seq", seq)) < 0 ||
	    (r = vv_meta_kv_set_blob(v->meta, "audit_mac", mac, sizeof(mac))) < 0)
		return r;
	return 0;
}

/* Copy the commit counter to the anchor outside STORE.  Only once every
 * written commit is durable: the counter meta.db holds is the last written
 * one, and an anchor ahead of the durable meta.db would look like a
 * rollback after a power cut.  Otherwise the anchor keeps lagging (the
 * next catch-up brings it). */
static void anchor_catch_up(struct vv_vault *v)
{
	uint64_t commits;

	if (v->cm.durable != v->cm.written)
		return;
	v->cm.anchor_lags = false;
	if (vv_meta_kv_get_u64(v->meta, "commits", &commits) == 0 &&
	    vv_store_anchor_put(v->store, v->state_dir, commits, false) < 0)
		vv_log(VV_LOG_WARN, "vault: cannot update the rollback anchor");
}

/* Make commit `seq` durable: fsync the WAL, which covers every commit
 * written before the fsync starts.  With unlock, v->mu is released during
 * the fsync and only one such sync runs at a time; a caller whose commit an
 * earlier sync did not cover waits for it, then starts the next one (group
 * commit).  Without unlock the fsync runs under mu (callers that hold state
 * across the commit), possibly beside an unlocked one: fsync is safe on one
 * descriptor from two threads. */
static int sync_to(struct vv_vault *v, uint64_t seq, bool unlock)
{
	while (v->cm.durable < seq && !v->cm.fatal) {
		uint64_t target = v->cm.written;
		int fd, e;

		if (unlock && v->cm.syncing) {
			pthread_cond_wait(&v->cm.synced, &v->mu);
			continue;
		}
		if ((fd = vv_meta_wal_fd(v->meta)) < 0) {
			e = fd;
		} else if (unlock) {
			v->cm.syncing = true;
			pthread_mutex_unlock(&v->mu);
			e = vv_os_fsync(fd);
			pthread_mutex_lock(&v->mu);
			v->cm.syncing = false;
			pthread_cond_broadcast(&v->cm.synced);
		} else {
			e = vv_os_fsync(fd);
		}
		if (e < 0) {
			vv_log(VV_LOG_ERR, "vault: cannot sync the metadata WAL; refusing further writes");
			v->cm.fatal = VV_EIO;
			break;
		}
		if (target > v->cm.durable)
			v->cm.durable = target;
		/* The chunks released by commits up to the last written one may
		 * go once that one is durable (vault_unlink_freed, outside mu);
		 * when a later commit was written during an unlocked sync, its
		 * own sync releases them. */
		if (v->cm.durable == v->cm.written)
			v->cm.unl_safe = v->cm.unl_written;
	}
	return v->cm.fatal;
}

/* Make the chunks written so far durable with v->mu released (group
 * commits only): the chunk fsyncs of a tar -x of many files over 64 KiB
 * held every request for tens of milliseconds per commit.  One such sync
 * at a time; the commit that follows still calls vv_content_sync() under
 * mu for the chunks sealed meanwhile (and those of a batch another thread
 * is still syncing), so no commit can name a chunk that is not durable. */
static int chunks_sync_unlocked(struct vv_vault *v)
{
	struct vv_content_batch *b;
	int r;

	while (v->cm.chunk_syncing)
		pthread_cond_wait(&v->cm.synced, &v->mu);
	if ((r = vv_content_sync_begin(v->content, &b)) < 0 || !b)
		return r;
	v->cm.chunk_syncing = true;
	pthread_mutex_unlock(&v->mu);
	r = vv_content_sync_end(v->content, b);
	pthread_mutex_lock(&v->mu);
	v->cm.chunk_syncing = false;
	pthread_cond_broadcast(&v->cm.synced);
	if (r < 0)
		vv_log(VV_LOG_ERR, "vault: cannot make chunks durable: %s", vv_strerror(r));
	return r;
}

/* Commit the open transaction, durably (see the top of this file); with
 * anchor, also bring the rollback anchor up to date and recreate the
 * full-disk reserve if it was released; with unlock, the chunk fsyncs
 * (chunks_sync_unlocked) and the WAL sync (sync_to) run outside v->mu. */
static int commit(struct vv_vault *v, bool anchor, bool unlock)
{
	int r;

	if (v->cm.fatal)
		return v->cm.fatal;
	if (v->flags & VV_VAULT_READONLY)
		return 0;
	vault_seal_checkpoint(v);
	if (unlock && vv_meta_in_txn(v->meta)) {
		if ((r = chunks_sync_unlocked(v)) < 0)
			return r;
		if (v->cm.fatal)            /* set by another commit meanwhile */
			return v->cm.fatal;
	}
	if (vv_meta_in_txn(v->meta)) {
		v->cm.space_checked = 0;
		vault_space_ok(v);                  /* releases the reserve if needed */
		if ((r = vv_content_sync(v->content)) < 0) {
			vv_log(VV_LOG_ERR, "vault: cannot make chunks durable: %s", vv_strerror(r));
			return r;
		}
		if ((r = vv_meta_commit_written(v->meta)) < 0) {
			vv_log(VV_LOG_ERR, "vault: metadata commit failed: %s; refusing further writes",
			       vv_strerror(r));
			v->cm.fatal = r;
			return r;
		}
		v->cm.written++;
		v->cm.unl_written = v->cm.nunl;
		if (v->keys.dropping) {
			v->keys.dropping = false;
			v->keys.shred_seq = v->cm.written;
		}
		v->cm.anchor_lags = true;
	}
	/* Also when nothing was pending: what this caller changed may be in a
	 * commit another thread wrote and is still syncing. */
	if ((r = sync_to(v, v->cm.written, unlock)) < 0)
		return r;
	vault_keys_settle(v, false);
	wal_headroom(v);
	ckpt_settle(v);
	ckpt_kick(v);
	if (!anchor)
		return 0;
	if (v->cm.anchor_lags)
		anchor_catch_up(v);
	reserve_make(v);
	return 0;
}

int vault_commit(struct vv_vault *v)
{
	return commit(v, false, false);
}

int vault_commit_anchor(struct vv_vault *v)
{
	return commit(v, true, false);
}

int vault_commit_group(struct vv_vault *v, bool anchor)
{
	return commit(v, anchor, true);
}

void vault_commit_quiesce(struct vv_vault *v)
{
	while (v->cm.syncing || v->cm.chunk_syncing)
		pthread_cond_wait(&v->cm.synced, &v->mu);
}

/* Unlink the chunks that durable commits released.  Not under v->mu: an
 * unlink can take milliseconds (a discard on the store's file system), and
 * every request would wait.  locked: the caller holds v->mu (fsck). */
void vault_unlink_freed(struct vv_vault *v, bool locked)
{
	struct pending_unlink *list;
	size_t n;

	if (!locked)
		pthread_mutex_lock(&v->mu);
	n = v->cm.unl_safe;
	list = n ? malloc(n * sizeof(*list)) : NULL;
	if (list) {
		memcpy(list, v->cm.unl, n * sizeof(*list));
		memmove(v->cm.unl, v->cm.unl + n, (v->cm.nunl - n) * sizeof(*list));
		v->cm.nunl -= n;
		v->cm.unl_written -= n;
		v->cm.unl_safe = 0;
	}
	if (!locked)
		pthread_mutex_unlock(&v->mu);
	for (size_t i = 0; list && i < n; i++)
		vv_content_unlink(v->content, list[i].id);
	free(list);
}

