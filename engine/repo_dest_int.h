/*
 * repo_dest_int.h - the open backup repository (struct vv_repo) as the
 * files of the repository module share it.
 *
 * repo_int.h is the module as the vault's backup code and the fuzzers see
 * it, with struct vv_repo opaque; only these files include this header:
 *
 *   repo.c           config and key slots, init, open/close, the writer
 *                    lock, the daemon's key cache, safe opens inside DEST
 *   repo_object.c    direct I/O; objects: naming, put in batches synced
 *                    on parallel threads, have, load/read
 *   repo_body.c      a manifest body and a metadata pack as bytes, with
 *                    no file and no struct vv_repo (what the fuzzers run)
 *   repo_manifest.c  manifests in DEST: rows cut into packs and written,
 *                    sealed files stored and loaded, listed, found; the
 *                    index; the daemon's manifest and pack cache
 *
 * (repo_check.c, repo_forget.c and repo_tree.c use repo_int.h alone.)
 * Byte layouts: docs/format.md "Backup repository".  Thread safety is
 * repo_int.h's: a struct vv_repo is one thread's, but for the object calls
 * the copy threads make (the batch fields, under pmu).
 */
#ifndef VV_REPO_DEST_INT_H
#define VV_REPO_DEST_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto_int.h"
#include "repo_int.h"
#include "vecvault/error.h"

#define VV_REPO_PEND_MAX 32                /* objects synced and renamed together */

struct vv_repo {
	int dfd, objfd, manfd, lockfd;
	bool check;                        /* VV_REPO_CHECK_OWNER */
	bool cache;                        /* VV_REPO_KEY_CACHE: also the manifest cache */
	uint32_t version;                  /* of the config: 2 names objects with HMAC-SHA-256 */
	uint32_t uid, gid;                 /* DEST's owner: new files get it */
	uint8_t id[VV_REPO_ID_BYTES];
	uint8_t *key;                      /* secure: repo key */
	uint8_t *kman, *kobj, *kcoll;      /* secure: subkeys */
	uint8_t *kpack, *kpackn, *kgear;   /* secure: metadata packs (seal, nonce, cuts) */
	char why[160];                     /* vv_repo_why */
	uint64_t pk_named, pk_written, pk_bytes;   /* vv_repo_packs_stats */
	bool dirty[256], objdirty;         /* objects/XX and objects/ to fsync */
	/* Objects written under their tmp name, write-back started, not yet
	 * synced nor renamed (vv_repo_object_put, flush_pending); under pmu. */
	pthread_mutex_t pmu;
	pthread_cond_t pcv;                /* a batch landed or was taken */
	bool pinit;
	struct pend {
		int dfd, fd;                   /* objects/XX, the tmp file */
		uint8_t name[VV_REPO_NAME_BYTES];
	} pend[VV_REPO_PEND_MAX], fly[VV_REPO_PEND_MAX];   /* filling; being synced (nfly > 0) */
	int npend, nfly;
	uint64_t pbytes;
};

/* An errno (either sign) as a VV_E* code. */
static inline int vv_repo_oserr(int e)
{
	return vv_err_from_errno(e < 0 ? -e : e);
}

/* ---- repo.c: safe opens inside DEST ----
 * Every directory and file is opened relative to DEST without following
 * a symbolic link (O_NOFOLLOW on each step), so a link planted in DEST
 * never redirects a write. */

/* Open directory name under dirfd into *out (made, and given DEST's
 * owner, when create and absent); with VV_REPO_CHECK_OWNER, refused
 * (VV_EUNSAFE) if another user owns it or may write it. */
int vv_repo_subdir(struct vv_repo *r, int dirfd, const char *name, bool create, int *out);
/* As root, give new file fd DEST's owner (best effort: a warning). */
void vv_repo_give(const struct vv_repo *r, int fd);
/* The whole regular file name under dirfd (VV_EFBIG past max bytes) into
 * *out, malloc'd; direct: vv_repo_buf_alloc'd and read O_DIRECT. */
int vv_repo_read_at(int dirfd, const char *name, size_t max, bool direct, uint8_t **out,
		    size_t *len);
/* tmp + write + fsync + rename in dirfd; the directory is not synced. */
int vv_repo_write_at(struct vv_repo *r, int dirfd, const char *name, const void *buf, size_t len);

/* ---- repo.c: the daemon's caches (VV_REPO_KEY_CACHE) ----
 * The key cache (repo.c) and the manifest and pack cache
 * (repo_manifest.c) are both under this lock. */
extern pthread_mutex_t vv_repo_cache_mu;
/* Under vv_repo_cache_mu: forget every repository's cached manifests,
 * packs and rows (vv_repo_key_cache_clear). */
void vv_repo_manifest_cache_drop(void);

/* ---- repo_object.c: the object batches of an open repository ---- */

/* At open, before any object call: the batch's lock. */
void vv_repo_objects_init(struct vv_repo *r);
/* At close: the pending batch synced and renamed (a failed or stopped
 * run: what arrived complete stays), the lock destroyed. */
void vv_repo_objects_close(struct vv_repo *r);

/* ---- repo_body.c, for the writer in repo_manifest.c ---- */

/* A growing output buffer; err sticks.  With ref set (and p NULL), the
 * bytes are compared with ref's instead of stored, until one differs:
 * then ref's equal prefix becomes p (vv_repo_ob_own) and storing goes on.
 * An unchanged vault's rows thus cost no fresh megabytes (page faults)
 * and no second pass to compare them with the last run's. */
struct repo_obuf {
	uint8_t *p;
	size_t len, cap;
	int err;
	const uint8_t *ref;
	size_t reflen;
	size_t refsame;                    /* vv_repo_ob_own: bytes equal to ref's when it stopped */
};

/* Stop comparing: the bytes so far (ref's) into p, of capacity cap. */
void vv_repo_ob_own(struct repo_obuf *o);
/* Append the rows of m (objects to extents) and END!: the same bytes for
 * the same metadata, whatever the backup (docs/format.md "Manifests"). */
void vv_manifest_enc_rows(struct repo_obuf *o, const struct vv_manifest *m);
/* A version 2 body: m's head, the list of its npk packs pk, END!,
 * padding.  *out malloc'd.  VV_ENOMEM, VV_EFBIG. */
int vv_manifest_encode_v2(const struct vv_manifest *m, const struct vv_bk_pack *pk, size_t npk,
			  uint8_t **out, size_t *outlen);
/* Length of the next piece of p (len bytes left), cut where the gear
 * hash (table g) says (docs/format.md "Metadata packs"). */
size_t vv_repo_pack_cut(const uint64_t g[256], const uint8_t *p, size_t len);
/* Seal piece p (len bytes, its keyed hash ph: the nonce) as a pack object
 * under the `vvbkpack` subkey key of repository repo_id: *out
 * vv_repo_buf_alloc'd, *outlen bytes.  VV_ENOMEM, VV_ECRYPTO. */
int vv_repo_pack_seal(const uint8_t key[VV_KEY_BYTES], const uint8_t repo_id[VV_REPO_ID_BYTES],
		      const uint8_t *p, size_t len, const uint8_t ph[VV_MAC_BYTES], uint8_t **out,
		      size_t *outlen);

#endif
