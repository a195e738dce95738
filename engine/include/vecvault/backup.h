/*
 * backup.h - backup repositories: a snapshot of a vault exported to a
 * directory DEST outside STORE, restorable with DEST's passphrase alone
 * (docs/design.md "Backups"; the byte tables are in docs/format.md
 * "Backup repository").
 *
 *   DEST/
 *     config              plaintext: format, repo id, KDF params, key slots; MAC'd
 *     lock                the writer lock (flock; holds the writer's pid)
 *     objects/XX/<64 hex> store chunk files, byte for byte (never decrypted);
 *                         name = keyed BLAKE2b of the bytes (repo key)
 *     manifests/<32 hex>  one per backup, sealed under the repo key: the
 *                         snapshot's rows, the object list and the data keys
 *                         of its collections re-wrapped under the repo key
 *
 * Nothing under DEST names a file, collection or size in clear: object
 * sizes are all it shows, as in the store.  Objects are written (tmp,
 * fsync, rename) before the manifest that names them, and a manifest is
 * written tmp + fsync + rename + directory fsync, so a copy of DEST taken
 * at any moment (rsync) holds every complete backup.
 *
 * Who may do what: anyone holding DEST's passphrase may list, verify and
 * restore.  Creating a backup runs in the daemon (it holds the collection
 * keys): the admin verb backup.create (owner scope), which opens DEST with
 * no symlink followed and refuses a DEST the asking user does not own or
 * that others may write (VV_EUNSAFE).
 *
 * Functions return 0 or a negative VV_E* code and log the reason.
 */
#ifndef VECVAULT_BACKUP_H
#define VECVAULT_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VV_REPO_ID_BYTES 16
#define VV_BACKUP_ID_BYTES 16
#define VV_BACKUP_ID_HEX (2 * VV_BACKUP_ID_BYTES)
#define VV_BACKUP_TAG_MAX 255

/* Open flags. */
#define VV_REPO_ALLOW_TEST_KDF 0x1   /* accept the test-only Argon2id minimum
				      * (the CLI sets it from VECVAULT_TEST_KDF=1) */
#define VV_REPO_WRITE 0x2            /* take the writer lock (VV_EBUSY if held) */
#define VV_REPO_CHECK_OWNER 0x4      /* DEST and everything opened in it must
				      * belong to `uid` (or root) and be
				      * writable by no one else: VV_EUNSAFE */

struct vv_repo;

/* Make a new repository in dest (must not exist, or be an empty
 * directory; VV_EEXIST otherwise).  kdf_profile: VV_KDF_PROFILE_* of
 * vault.h (TEST needs VV_REPO_ALLOW_TEST_KDF, else VV_EDOWNGRADE). */
int vv_repo_init(const char *dest, const char *pass, size_t passlen, int kdf_profile,
		 unsigned flags, char id_hex[2 * VV_REPO_ID_BYTES + 1])
	__attribute__((warn_unused_result));

/* Open dest and unlock its key with pass.  Errors: VV_ENOENT / VV_ENOTINIT
 * (no repository there), VV_EFORMAT (unknown version), VV_ECORRUPT
 * (config malformed or its MAC fails), VV_EBADPASS, VV_EDOWNGRADE, VV_EBUSY
 * (VV_REPO_WRITE and another writer holds the lock: its pid is logged),
 * VV_EUNSAFE (VV_REPO_CHECK_OWNER).  *out owned by the caller. */
int vv_repo_open(const char *dest, const char *pass, size_t passlen, unsigned flags,
		 uint32_t uid, struct vv_repo **out) __attribute__((warn_unused_result));
void vv_repo_close(struct vv_repo *r);

/* What a manifest says of its backup (list, verify). */
struct vv_backup_info {
	char id[VV_BACKUP_ID_HEX + 1];
	int64_t created;                  /* ns since the epoch: the backup */
	int64_t snap_created;             /* the snapshot it exports */
	char snapshot[256];
	char tag[VV_BACKUP_TAG_MAX + 1];
	char store_id[33];                /* the vault it came from */
	uint64_t files, bytes;            /* regular files and their sizes */
	uint64_t objects, stored;         /* objects it names, their bytes */
};

/* Every backup, oldest first.  A manifest that does not authenticate is
 * reported to bad(ctx, name, code) (NULL: skipped) and the walk goes on;
 * the return is then VV_ECORRUPT. */
int vv_repo_list(struct vv_repo *r, int (*cb)(void *ctx, const struct vv_backup_info *b),
		 void (*bad)(void *ctx, const char *manifest, int code), void *ctx);

/* Progress of a long operation (create, verify --read-data, restore). */
struct vv_repo_progress {
	uint64_t objects_done, objects_total;
	uint64_t bytes_done, bytes_total;
	uint64_t objects_sent, bytes_sent;   /* create: what was copied */
};
typedef void (*vv_repo_progress_fn)(void *ctx, const struct vv_repo_progress *p);
/* One problem, a line naming the manifest or object concerned. */
typedef void (*vv_repo_problem_fn)(void *ctx, const char *line);

/* Check every manifest (authenticates, parses, names only objects that
 * exist) and every object it names (size and keyed hash of its bytes =
 * its name).  read_data: also decrypt every block of every file with the
 * data keys in the manifests.  Objects no manifest names are counted in
 * *unreferenced (forget --prune removes them), not problems.  Returns 0
 * clean, VV_ECORRUPT with *problems > 0 otherwise. */
int vv_repo_verify(struct vv_repo *r, bool read_data, vv_repo_problem_fn problem,
		   vv_repo_progress_fn progress, void *ctx, uint64_t *problems,
		   uint64_t *unreferenced);

/* Find a backup by its hex id or a unique prefix of at least 4 digits
 * (VV_ENOENT none, VV_EEXIST ambiguous); id_hex gets the full id. */
int vv_repo_find(struct vv_repo *r, const char *prefix, char id_hex[VV_BACKUP_ID_HEX + 1]);

/* Restore backup id into a new vault at newstore (as vv_vault_create_store:
 * must not exist or be empty; new store id, new anchor, passphrase pass,
 * owned by uid/gid only where the backup says so).  Every object is
 * checked against its name before it is written; any mismatch stops the
 * restore with the object named to problem, and newstore is removed.
 * vflags: VV_VAULT_ALLOW_TEST_KDF. */
struct vv_store;
/* Called once the restored vault is committed, with its store (borrowed,
 * still unlocked: its subkeys work) for its first audit record without a
 * second key derivation. */
typedef void (*vv_repo_made_fn)(void *ctx, struct vv_store *s);
int vv_repo_restore_store(struct vv_repo *r, const char *id_hex, const char *newstore,
			  const char *pass, size_t passlen, int kdf_profile, unsigned vflags,
			  const char *state_dir, vv_repo_problem_fn problem,
			  vv_repo_progress_fn progress, vv_repo_made_fn made, void *ctx);

/* The same in two steps, so that the new vault's key derivation (an
 * Argon2id, the fixed cost of a restore) runs on a thread of its own
 * while the caller unlocks the repository (the other one): _begin starts
 * making newstore in the background (pass is copied); then either
 * _finish (restores backup id_hex from r into it, and frees t, whatever
 * the outcome) or _abort (waits for the thread, removes what it made,
 * frees t).  A failure to create the store is reported by _finish. */
struct vv_restore_target;
int vv_repo_restore_begin(const char *newstore, const char *pass, size_t passlen,
			  int kdf_profile, unsigned vflags, struct vv_restore_target **out);
int vv_repo_restore_finish(struct vv_restore_target *t, struct vv_repo *r,
			   const char *id_hex, const char *state_dir,
			   vv_repo_problem_fn problem, vv_repo_progress_fn progress,
			   vv_repo_made_fn made, void *ctx);
void vv_repo_restore_abort(struct vv_restore_target *t);

/* Restore into a directory (a mounted vault, through its access checks):
 * the tree of backup id below path ("/" or "/products") is walked depth
 * first, entries of a directory in their readdir order.  Per entry:
 *   VV_RT_DIR      begin a directory (create it; its children follow)
 *   VV_RT_DIR_END  its children are done (now apply mode/owner/times/xattrs)
 *   VV_RT_FILE     a regular file: data(ctx, off, buf, len) calls follow in
 *                  offset order (holes skipped), then VV_RT_FILE_END
 *   VV_RT_SYMLINK  target in e->target
 *   VV_RT_LINK     another name of a file met before (e->link_to, relative)
 *   VV_RT_OTHER    a device, FIFO or socket (e->rdev)
 * Paths are relative to path ("" is path itself, which comes first as a
 * VV_RT_DIR when it is a directory).  Every block is decrypted and
 * authenticated before data() sees it; a problem stops the walk
 * (VV_ECORRUPT) after naming the object to problem(). */
enum vv_rt_kind { VV_RT_DIR, VV_RT_DIR_END, VV_RT_FILE, VV_RT_FILE_END, VV_RT_SYMLINK, VV_RT_LINK,
		  VV_RT_OTHER };
struct vv_rt_xattr {
	const char *name;
	const void *value;
	size_t len;
};
struct vv_rt_entry {
	enum vv_rt_kind kind;
	const char *path;
	uint32_t mode, uid, gid;
	uint64_t size, rdev;
	int64_t atime, mtime;             /* ns */
	const char *target;               /* VV_RT_SYMLINK */
	const char *link_to;              /* VV_RT_LINK */
	const struct vv_rt_xattr *xattrs; /* on *_END, SYMLINK, OTHER */
	size_t nxattrs;
};
struct vv_rt_ops {
	int (*entry)(void *ctx, const struct vv_rt_entry *e);
	int (*data)(void *ctx, uint64_t off, const void *buf, size_t len);
	vv_repo_problem_fn problem;
	vv_repo_progress_fn progress;
	void *ctx;
};
int vv_repo_restore_tree(struct vv_repo *r, const char *id_hex, const char *path,
			 const struct vv_rt_ops *ops);

/* Retention in the shape of `restic forget` (the snapshot schedule's rule,
 * vv_snap_retain in snap_int.h, applied to the backups' times): going from
 * the newest backup to the oldest, each policy keeps a backup when its hour
 * (day, ISO week, month; UTC) differs from the previous one's and the policy
 * has count left; all counts zero keeps everything. */
struct vv_backup_keep {
	uint32_t hourly, daily, weekly, monthly;
};

/* Forget the backups the policy does not keep (their manifests are
 * deleted; objects stay until a prune).  prune: then delete every object
 * no remaining manifest names (and temp files of interrupted runs); it is
 * refused (VV_ECORRUPT, nothing deleted) while any manifest does not
 * read, since what it names is unknown.  Needs VV_REPO_WRITE.  Crash-safe:
 * manifests go first, durably; an interrupted prune leaves only objects
 * the next prune removes.  cb sees each backup with its verdict before
 * anything is deleted; dry_run deletes nothing. */
int vv_repo_forget(struct vv_repo *r, const struct vv_backup_keep *k, bool prune, bool dry_run,
		   int (*cb)(void *ctx, const struct vv_backup_info *b, bool kept), void *ctx,
		   uint64_t *forgotten, uint64_t *pruned, uint64_t *pruned_bytes);

#endif
