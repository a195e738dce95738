/*
 * vault.h - an open vault as a POSIX filesystem, for the FUSE daemon.
 *
 * This is the engine's front door for fs/: one call per filesystem
 * operation, on inode numbers, each deciding access for the calling
 * identity (through the one check in access.h), writing the audit record,
 * and returning 0 / a count or a negative VV_E* code.  fs/ only translates
 * FUSE requests into these calls and the results into replies.
 *
 * Concurrency: every function may be called from many threads at once.
 * Lookup counts: every successful call that returns a struct vv_attr for a
 * node the kernel will remember (lookup, mknod, mkdir, symlink, link,
 * create, and readdirplus entries) takes one lookup reference, returned by
 * vv_vault_forget(); an unlinked node lives until its last reference and
 * open handle are gone.
 */
#ifndef VECVAULT_VAULT_H
#define VECVAULT_VAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include "vecvault/access.h"

#define VV_ROOT_INO 1
#define VV_NAME_MAX 255
#define VV_SYMLINK_MAX 4095          /* PATH_MAX - 1 */
#define VV_XATTR_NAME_MAX 255
#define VV_XATTR_SIZE_MAX 65536

struct vv_vault;
struct vv_file;
struct vv_dir;

/* Who is asking: the identity for the access check plus what the audit
 * record names.  Filled by fs/ per request; strings may be NULL. */
struct vv_ctx {
	struct vv_ident id;
	uint32_t umask;
	const char *comm;            /* process name */
	const char *client;          /* "local" or "addr:port" */
	const char *user;            /* vault user / API key id, if any */
};

struct vv_attr {
	uint64_t ino;
	uint64_t gen;                /* generation number, for NFS-style handles */
	uint32_t mode;               /* S_IFMT | permission bits */
	uint32_t nlink;
	uint32_t uid, gid;
	uint64_t size;
	uint64_t blocks;             /* 512-byte units actually stored */
	uint64_t rdev;
	struct timespec atime, mtime, ctime;
	bool cacheable;              /* every user may search the whole ancestry:
	                                the kernel may cache this entry/attr */
	bool noxattr;                /* no stored xattr, so no ACL: security.*,
	                                trusted.* and system.posix_acl_* are
	                                ENODATA for everyone (a remote client
	                                answers those probes itself) */
};

/* Flags for vv_vault_create_store()/vv_vault_open(). */
#define VV_VAULT_ALLOW_TEST_KDF  0x01   /* accept the test-only KDF profile */
#define VV_VAULT_ACCEPT_ROLLBACK 0x02   /* an intended restore of older metadata */
#define VV_VAULT_READONLY        0x04
#define VV_VAULT_NO_AUDIT        0x08   /* do not open the audit log (audit verify) */

/* KDF profiles for new key slots. */
enum { VV_KDF_PROFILE_INTERACTIVE = 0, VV_KDF_PROFILE_MODERATE = 1, VV_KDF_PROFILE_TEST = 2 };

/* Progress of long vault-wide work: done of total units, total may grow
 * while the work learns more (an estimate); called from the calling thread. */
typedef void (*vv_progress_fn)(void *ctx, uint64_t done, uint64_t total);

struct vv_vault_opts {
	unsigned flags;
	size_t cache_bytes;          /* decrypted block cache; 0 = default */
	/* Where configuration enters: the engine reads no environment, so the
	 * host passes its directories (the CLI gathers them in tools/env.c).
	 * Strings are borrowed for the call; the vault keeps copies. */
	const char *state_dir;       /* rollback anchors in STATE_DIR/anchors;
	                                NULL/"" = VV_ENOENT at open */
	const char *audit_dir;       /* default log AUDIT_DIR/STORE-ID/audit.log,
	                                used when audit_log is NULL */
	const char *audit_log;       /* NULL = the default above (outside STORE) */
	bool audit_required;         /* refuse requests that cannot be audited */
	bool audit_lookups;          /* also record successful lookup/getattr */
	const char *purpose;         /* recorded in the audit log at open and close:
	                                "mount", "fsck", ...; NULL = "open" */
	bool knn_off;                /* no query offload (vv_vault_knn) */
	size_t knn_cache_bytes;      /* its decrypted-segment cache; 0 = default:
	                                a quarter of physical memory */
	int64_t trash_secs;          /* how long removed files and directories stay
	                                in MNT/.trash (seconds); 0: removals are
	                                final (the CLI's default is 30 days) */
	/* Scheduled snapshots (docs/design.md "Snapshots"): every snap_every
	 * seconds the daemon takes one (0: never); after each, retention
	 * deletes scheduled ones (never those made by hand) in the shape of
	 * restic forget --keep-hourly/daily/weekly/monthly (all 0: keep all). */
	uint32_t snap_every;
	uint32_t snap_keep_hourly, snap_keep_daily, snap_keep_weekly, snap_keep_monthly;
	/* Scheduled backups (docs/design.md "Scheduled backups"): every
	 * backup_every seconds (0: never) a thread of the vault exports a fresh
	 * snapshot into the repository backup_dest (absolute; owned by the
	 * daemon's euid, written by no one else), then forgets the backups of
	 * this vault the keep policy does not keep (all 0: keep all; no prune).
	 * backup_pass is copied into secure memory at open. */
	const char *backup_dest;
	const char *backup_pass;
	size_t backup_passlen;
	uint32_t backup_every;
	uint32_t backup_keep_hourly, backup_keep_daily, backup_keep_weekly, backup_keep_monthly;
	/* WAL frames after which the checkpointer thread copies the WAL into
	 * meta.db beside the commits (docs/design.md "Commit pipeline");
	 * 0 = 1000, SQLite's own default.  Tests set it low. */
	uint32_t ckpt_frames;
	/* Sealer threads (encrypt and write full write buffers, docs/design.md
	 * "Sequential writes"): 0 = one per CPU, at least 2, at most 4. */
	unsigned sealers;
	vv_progress_fn progress;     /* long work reports here (vv_vault_fsck:
	                                blocks checked); NULL = nobody asks */
	void *progress_ctx;
};

/* Create a new vault in dir (must not exist, or be an empty directory):
 * conf with one key slot for pass, meta.db with the root directory owned by
 * (uid, gid), and the rollback anchor in state_dir (borrowed; as in
 * vv_vault_opts).  flags: VV_VAULT_ALLOW_TEST_KDF, needed for
 * VV_KDF_PROFILE_TEST (else VV_EDOWNGRADE). */
int vv_vault_create_store(const char *dir, const char *pass, size_t passlen,
			  int kdf_profile, unsigned flags, uint32_t uid, uint32_t gid,
			  const char *state_dir);

/* Open, lock and unlock a vault.  Errors: VV_ENOENT/VV_ENOTINIT/VV_EFORMAT
 * (no vault there), VV_EBUSY (locked by a running daemon), VV_EBADPASS,
 * VV_ECORRUPT, VV_EROLLBACK (metadata older than the anchor; pass
 * VV_VAULT_ACCEPT_ROLLBACK for an intended restore).  *out owned by caller,
 * released with vv_vault_close(). */
int vv_vault_open(const char *dir, const char *pass, size_t passlen,
		  const struct vv_vault_opts *o, struct vv_vault **out);
/* Flush everything, commit durably, checkpoint, release the lock.  NULL ok. */
int vv_vault_close(struct vv_vault *v);

/* The audit checkpoint sealed in meta.db (seq 0 when none yet). */
int vv_vault_audit_sealed(struct vv_vault *v, uint64_t *seq, uint8_t mac[32]);

/* Record an admin action (by the CLI) in the audit log. */
void vv_vault_audit_admin(struct vv_vault *v, const char *op, int result, const char *detail);

/* Make everything written so far durable (like syncfs). */
int vv_vault_sync(struct vv_vault *v);

/* The store id (32 hex digits) that names this vault: its control socket
 * (fs/ctl.c) and the root's user.vecvault.vault attribute.  Borrowed,
 * valid until vv_vault_close. */
const char *vv_vault_id(const struct vv_vault *v);

/* 32 hex digits drawn at random when this vault was opened: two copies of
 * one store (same id) mounted at once answer with different instances, on
 * the root's user.vecvault.instance attribute and in vault.ping, so the
 * CLI never sends a request meant for one to the other.  Borrowed. */
const char *vv_vault_instance(const struct vv_vault *v);

/* Kernel-cache invalidation requests: the vault calls fn (from any thread,
 * possibly while holding internal locks: fn must only queue the request)
 * when a cached entry or inode must be dropped, e.g. after a chmod makes a
 * directory no longer searchable by everyone.  name == NULL: inode only. */
typedef void (*vv_inval_fn)(void *ctx, uint64_t parent_or_ino, const char *name);
void vv_vault_set_inval(struct vv_vault *v, vv_inval_fn fn, void *ctx);
/* wait(ctx), if set, returns once every invalidation fn queued before the
 * call was sent to the kernel.  The vault calls it before a control
 * request's reply (vv_admin_call, outside its locks), so what a verb
 * revoked (a purge, a snapshot delete: the pages of files old handles
 * still hold) is out of the kernel's caches when the command returns. */
typedef void (*vv_inval_wait_fn)(void *ctx);
void vv_vault_set_inval_wait(struct vv_vault *v, vv_inval_wait_fn wait);
/* Ask for that invalidation from outside the vault: a change made through
 * another path (a remote session, net/) must drop what the local mount's
 * kernel cached.  No-op without a local mount. */
void vv_vault_inval(struct vv_vault *v, uint64_t parent_or_ino, const char *name);
/* Return once every invalidation asked for so far reached the kernel (the
 * wait set by vv_vault_set_inval_wait; no-op without one).  Outside the
 * vault's locks and never from a FUSE handler of the mount it waits on. */
void vv_vault_inval_flush(struct vv_vault *v);

/* --- namespace ----------------------------------------------------------- */
/* On VV_ENOENT, out->ino is 0 and out->cacheable says whether the kernel may
 * cache the negative entry (every user may search parent and its ancestry). */
int vv_vault_lookup(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent,
		    const char *name, struct vv_attr *out);
void vv_vault_forget(struct vv_vault *v, uint64_t ino, uint64_t nlookup);
int vv_vault_getattr(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
		     struct vv_attr *out);

/* Which fields vv_vault_setattr changes. */
#define VV_SET_MODE      0x001
#define VV_SET_UID       0x002
#define VV_SET_GID       0x004
#define VV_SET_SIZE      0x008
#define VV_SET_ATIME     0x010
#define VV_SET_MTIME     0x020
#define VV_SET_ATIME_NOW 0x040
#define VV_SET_MTIME_NOW 0x080
#define VV_SET_CTIME     0x100
#define VV_SET_KILL_SUIDGID 0x200    /* kernel asks to clear setuid/setgid */

struct vv_setattr {
	unsigned valid;
	uint32_t mode, uid, gid;
	uint64_t size;
	struct timespec atime, mtime, ctime;
	struct vv_file *fh;          /* ftruncate through an open handle, or NULL */
};
int vv_vault_setattr(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
		     const struct vv_setattr *sa, struct vv_attr *out);

/* Returns the target length (not NUL-terminated beyond buflen) or error;
 * VV_ERANGE if buflen is too small. */
int vv_vault_readlink(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
		      char *buf, size_t buflen);
int vv_vault_mknod(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent,
		   const char *name, uint32_t mode, uint64_t rdev, struct vv_attr *out);
int vv_vault_mkdir(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent,
		   const char *name, uint32_t mode, struct vv_attr *out);
int vv_vault_symlink(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent,
		     const char *name, const char *target, struct vv_attr *out);
int vv_vault_link(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
		  uint64_t newparent, const char *newname, struct vv_attr *out);
int vv_vault_unlink(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent,
		    const char *name);
int vv_vault_rmdir(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent,
		   const char *name);
#define VV_RENAME_NOREPLACE 0x1      /* = RENAME_NOREPLACE */
#define VV_RENAME_EXCHANGE  0x2      /* = RENAME_EXCHANGE */
int vv_vault_rename(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent,
		    const char *name, uint64_t newparent, const char *newname,
		    unsigned flags);

/* --- files ----------------------------------------------------------------- */
/* flags: open(2) flags, plus VV_OPEN_EXEC for an exec open (FMODE_EXEC).
 * *keep_cache: the file is unchanged since its last open, so the kernel may
 * keep its page cache.  *fh owned by the vault until vv_vault_release(). */
#define VV_OPEN_EXEC 0x40000000
int vv_vault_open_file(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
		       int flags, struct vv_file **fh, bool *keep_cache);
int vv_vault_create(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent,
		    const char *name, uint32_t mode, int flags, struct vv_attr *out,
		    struct vv_file **fh);
/* Returns bytes read (short only at EOF) or error. */
ssize_t vv_vault_read(struct vv_vault *v, struct vv_file *fh, void *buf,
		      size_t size, uint64_t off);
/* The same read, for a caller that replies with a gather list (the FUSE
 * read): the bytes are the concatenation of rv->iov[0..rv->n), pointing
 * into buf or at blocks handed over by the block cache instead of copied
 * (blocks decrypted ahead of a sequential reader, read to their end).
 * Always end with vv_vault_read_vec_done (also after an error), which gives
 * the blocks back; buf must stay valid until then. */
#define VV_READ_VEC_MAX 20           /* segments: a 1 MiB read spans at most 17 blocks */
struct vv_read_vec {
	struct iovec iov[VV_READ_VEC_MAX];
	void *own[VV_READ_VEC_MAX];       /* a handed-over block behind iov[i], or NULL */
	int n;
};
ssize_t vv_vault_read_vec(struct vv_vault *v, struct vv_file *fh, void *buf,
			  size_t size, uint64_t off, struct vv_read_vec *rv);
void vv_vault_read_vec_done(struct vv_vault *v, struct vv_read_vec *rv);
/* Returns bytes written or error.  O_APPEND handles write at EOF. */
ssize_t vv_vault_write(struct vv_vault *v, const struct vv_ctx *c, struct vv_file *fh,
		       const void *buf, size_t size, uint64_t off);
/* Whether the file open as fh is open through another handle too (the
 * FUSE layer then drops the kernel's cached pages after a write that
 * bypassed them). */
bool vv_vault_file_shared(struct vv_vault *v, const struct vv_file *fh);
int vv_vault_flush(struct vv_vault *v, struct vv_file *fh);
int vv_vault_fsync(struct vv_vault *v, struct vv_file *fh, bool datasync);
/* Writes the per-handle audit summary (bytes and counts). */
int vv_vault_release(struct vv_vault *v, struct vv_file *fh);
/* Open push: a small file's bytes handed to the kernel's page cache
 * before the OPEN reply (FUSE_NOTIFY_STORE), so that its first read needs
 * no READ round trip (docs/design.md "Small files: per-file daemon cost").
 * vv_vault_open_push copies the whole file into buf (cap bytes) and returns
 * its length when fh is read-only, the file is inline and fits, unchanged
 * since the last open, fh is its only handle, and no byte of it reached
 * the kernel since its node was made; otherwise 0 (nothing to push) or an
 * error.  The bytes count as read by fh (audit).  After a return > 0 the
 * caller sends them and then must call vv_vault_open_push_end, which lets
 * other opens of the file go on (they wait meanwhile) and says whether the
 * file changed, was opened for writing or purged meanwhile: the pages must
 * then be dropped (FUSE_NOTIFY_INVAL_INODE, from the notifier thread). */
struct vv_push {
	uint64_t gen, wopens;
};
ssize_t vv_vault_open_push(struct vv_vault *v, struct vv_file *fh, void *buf, size_t cap,
			   struct vv_push *p);
bool vv_vault_open_push_end(struct vv_vault *v, struct vv_file *fh, const struct vv_push *p);
/* The generation of the data of the file open as fh: a value that names
 * this version of its contents for the vault's life (a change by anyone
 * gives a new one), so a remote client keeps its page cache exactly while
 * it is unchanged.  A virtual file's (.trashinfo) is new at every call:
 * its bytes are made at each open, never kept. */
uint64_t vv_vault_file_gen(struct vv_vault *v, const struct vv_file *fh);
/* The inode of the file open as fh; 0 for a virtual file (read-only). */
uint64_t vv_vault_file_ino(const struct vv_file *fh);
/* mode: 0 or FALLOC_FL_KEEP_SIZE (others: VV_ENOTSUP). */
int vv_vault_fallocate(struct vv_vault *v, const struct vv_ctx *c, struct vv_file *fh,
		       int mode, uint64_t off, uint64_t len);
/* SEEK_DATA / SEEK_HOLE; any other whence is VV_EINVAL. */
int vv_vault_lseek(struct vv_vault *v, struct vv_file *fh, int64_t off, int whence,
		   int64_t *out);
/* The query offload (knn_ioctl.h): scan the segment open as fh (not
 * write-only) for the request in io, replacing it with the reply.  The
 * segment is decrypted into the offload cache on first use.  VV_ENOTTY when
 * the offload is off, VV_EFBIG when the file exceeds the cache, VV_EINVAL /
 * VV_E2BIG for a malformed request or a dimension that is not the
 * segment's, VV_ECORRUPT / VV_EFORMAT... for a segment that does not parse.
 * Audited as "scan"; the file's size counts as bytes read on fh. */
struct vv_knn_ioc;
int vv_vault_knn(struct vv_vault *v, const struct vv_ctx *c, struct vv_file *fh,
		 struct vv_knn_ioc *io);
/* The same, off the caller's thread: the daemon's FUSE workers must never
 * scan (one user could hold them all).  The request joins the offload's
 * scan pool, a queue fair between uids (c->id.uid) with a few requests per
 * uid at most (docs/query.md "Limits").  Returns 0 when queued: done(arg,
 * r) is then called exactly once, from a pool thread or from
 * vv_vault_knn_drain(), with vv_vault_knn()'s result (io holds the reply
 * when r is 0), unless vv_vault_knn_cancel(arg) took the request back
 * first.  c, fh and io must stay valid until then.  Otherwise returns,
 * without calling done: VV_ENOTTY (offload off), VV_EBUSY (this uid has
 * too many requests queued: the caller scans itself), VV_ECANCELED
 * (drained), VV_ENOMEM. */
typedef void (*vv_knn_done_fn)(void *arg, int r);
int vv_vault_knn_submit(struct vv_vault *v, const struct vv_ctx *c, struct vv_file *fh,
			struct vv_knn_ioc *io, vv_knn_done_fn done, void *arg);
/* Take back a queued request (an interrupted caller): 0 when it was still
 * queued (done will never be called: the caller replies), VV_ENOENT when
 * it is running or finished (done is or was called), or when it is a
 * directory request still being prepared by vv_vault_knn_dir_submit, which
 * then returns VV_ECANCELED (done is never called). */
int vv_vault_knn_cancel(struct vv_vault *v, void *arg);
/* Refuse new requests, answer every queued one with VV_ECANCELED and wait
 * for the running ones (a scan is bounded: docs/query.md), so each got its
 * done before the caller's replies stop working.  vv_vault_close() does it
 * too.  NULL ok. */
void vv_vault_knn_drain(struct vv_vault *v);
/* The directory request (knn_ioctl.h "the directory request"): scan the
 * named files of the directory open as dh that c may open for reading now,
 * each checked as c's own lookup and read-only open of it, and answer one
 * merged list (replacing io).  Per-name results in the reply's stats; the
 * whole request fails only for a header that does not pass
 * vv_knn_dir_request_check (VV_EINVAL / VV_E2BIG), VV_ENOTTY (offload
 * off, a virtual directory), VV_EAUDIT, VV_ENOMEM.  Each name served or
 * refused is audited as "scan" (vault_knn_dir.c). */
struct vv_dir;
struct vv_knn_dir_ioc;
int vv_vault_knn_dir(struct vv_vault *v, const struct vv_ctx *c, struct vv_dir *dh,
		     struct vv_knn_dir_ioc *io);
/* The same through the scan pool, as vv_vault_knn_submit (same queue,
 * slots, cancel and drain), in two steps: once the uid's slot is granted
 * (else VV_EBUSY, before any name is looked at), the work of each name
 * (lookup, checks, cache lookup, inline decryption) runs here on the
 * caller's thread, and the pool only scans, records and replies.  Returns
 * also vv_vault_knn_dir's errors of the whole request (VV_EINVAL,
 * VV_E2BIG, VV_EAUDIT, VV_ENOMEM) itself, without calling done, and
 * VV_ECANCELED when canceled or drained while being prepared. */
int vv_vault_knn_dir_submit(struct vv_vault *v, const struct vv_ctx *c, struct vv_dir *dh,
			    struct vv_knn_dir_ioc *io, vv_knn_done_fn done, void *arg);

/* The bulk read (knn_ioctl.h "the bulk read", vault_bulk.c): the files
 * io names in directory dh, each checked and audited as c's read-only open
 * of it would be now, written whole into the caller's buffer through sk.
 * sk->open is called once, after the request's header passed its check and
 * its uid got a slot, before any name is looked up: it checks the buffer
 * the header names (0, or a negative VV_E* that fails the request); then
 * sk->put(arg, off, bytes, len) once per file served, off = h.off + i *
 * h.slot (a negative VV_E* there fails that name and every later one, and
 * no more is written).  On 0 io holds the reply (header, then a
 * struct vv_bulk_stat per name); else io is unchanged and the request's
 * error is returned: VV_EINVAL / VV_E2BIG (header), VV_ENOTTY (the offload
 * is off or dh is a virtual directory), VV_EBUSY (the uid's offload slots
 * are taken), VV_ECANCELED (unmounting), VV_EAUDIT, VV_ENOMEM, or
 * sk->open's.  Runs on the caller's thread; holds nothing after it
 * returns. */
struct vv_bulk_ioc;
struct vv_bulk_hdr;
struct vv_bulk_sink {
	int (*open)(void *arg, const struct vv_bulk_hdr *h);
	int (*put)(void *arg, uint64_t off, const void *p, size_t len);
	void *arg;
};
int vv_vault_bulk_read(struct vv_vault *v, const struct vv_ctx *c, struct vv_dir *dh,
		       struct vv_bulk_ioc *io, const struct vv_bulk_sink *sk)
	__attribute__((warn_unused_result));

/* --- directories ------------------------------------------------------------ */
struct vv_dirent {
	uint64_t ino;
	uint32_t mode;               /* S_IFMT bits suffice for readdir */
	const char *name;
	uint64_t next;               /* offset to resume after this entry */
};
/* fill returns 0 when it took the entry, 1 when its buffer is full (stop;
 * the entry was not taken), or a negative error.  With plus, attr is
 * filled and a lookup reference is taken for each entry fill took (not
 * for "." and ".."). */
typedef int (*vv_fill_fn)(void *ctx, const struct vv_dirent *e, const struct vv_attr *attr);
int vv_vault_opendir(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
		     struct vv_dir **dh);
int vv_vault_readdir(struct vv_vault *v, struct vv_dir *dh, uint64_t off, bool plus,
		     vv_fill_fn fill, void *ctx);
int vv_vault_releasedir(struct vv_vault *v, struct vv_dir *dh);
/* Whether the kernel may keep dh's listing across opens (FOPEN_CACHE_DIR
 * with keep_cache): a directory of the live tree, whose listing is the
 * same for every caller and every change of which reaches the kernel
 * (through it, or by the vault's invalidation of the directory's inode).
 * Never .trash and below (per-caller views, settled lazily), .snapshots or
 * a snapshot's directories.  Decided at opendir. */
bool vv_vault_dir_cacheable(const struct vv_dir *dh);

/* --- xattrs (including system.posix_acl_access / _default) ------------------ */
#define VV_XATTR_CREATE  0x1
#define VV_XATTR_REPLACE 0x2
int vv_vault_setxattr(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
		      const char *name, const void *value, size_t size, int flags);
/* size 0: returns the value's size.  VV_ERANGE if too small. */
ssize_t vv_vault_getxattr(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
			  const char *name, void *buf, size_t size);
ssize_t vv_vault_listxattr(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
			   char *buf, size_t size);
int vv_vault_removexattr(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
			 const char *name);

/* The recycle bin's content: items and bytes of their files (counted as
 * used space: their chunks stay until the purge). */
int vv_vault_trash_stats(struct vv_vault *v, uint64_t *items, uint64_t *bytes);

/* access(2); mask: F_OK (0) or R_OK|W_OK|X_OK. */
int vv_vault_access(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino, int mask);

/* May c still reach ino by its path: search permission on every directory
 * from its parent up to the root (stopping early where every user may
 * search the rest).  For a remote session, whose client caches entries and
 * attributes for a while, and which names inodes, not paths: a walk it
 * skips must not outlive a chmod or ACL change above the node.  A file
 * with several names is reached through any of them (one of its first 64
 * directories and all above it), as a local walk to one of its paths
 * would be (in a snapshot, immutable, it needs no walk: what a lookup
 * handed stays reachable).  0 for the root and the trash's own inodes;
 * VV_EACCES naming nothing else; not recorded (the caller audits). */
int vv_vault_reach(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino);

struct vv_statfs {
	uint64_t bsize, blocks, bfree, bavail, files, ffree;
	uint32_t namemax;
};
/* c: the caller, for the audit record (NULL: not recorded); ino: where asked. */
int vv_vault_statfs(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
		    struct vv_statfs *out);

/* --- admin ------------------------------------------------------------------ */
struct vv_fsck_report {
	uint64_t inodes, dirs, files, chunks, blocks_checked;
	uint64_t damaged;            /* blocks/pages that failed authentication */
	uint64_t missing_chunks;
	uint64_t orphan_chunks, orphan_chunks_freed;
	uint64_t orphan_inodes, orphan_inodes_freed;
	uint64_t keys;               /* collection keys, the root collection's too */
	uint64_t orphan_keys, orphan_keys_dropped;   /* keys nothing needs */
	uint64_t errors;             /* structural problems */
	uint64_t snapshots;          /* snapshots checked */
	uint64_t snapshot_refs;      /* chunk references they hold (one per chunk each) */
};
/* Report sink for fsck findings: one line each, e.g.
 * "damaged: /coll/seg.fvecs block 3 (chunk ab12..): authentication failed". */
typedef void (*vv_report_fn)(void *ctx, const char *line);
/* Full check of an open vault: every page, extent and chunk.  repair: free
 * orphans.  Returns 0 when no damage, VV_ECORRUPT otherwise. */
int vv_vault_fsck(struct vv_vault *v, bool repair, vv_report_fn fn, void *ctx,
		  struct vv_fsck_report *rep);

#endif
