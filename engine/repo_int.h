/*
 * repo_int.h - the backup repository format module (repo*.c), as the
 * vault's backup code (vault_backup.c) and the fuzzer see it.
 *
 * A manifest is one backup: the rows WHERE snap = ID of the snapshot
 * tables (read through meta_backup.c), the objects they name and the data
 * keys of their collections wrapped under the repository key.  repo_body.c
 * owns its bytes (docs/format.md "Backup repository"); this header gives
 * the decoded form.  The module's own files share
 * repo_dest_int.h, which says what each holds.  Ownership: a struct
 * vv_manifest owns every array and string in it; vv_manifest_free
 * releases them.  A struct vv_repo is used by one thread, except that
 * vv_repo_object_name, _have and _put may run in several at once (the
 * copy threads of a backup).
 */
#ifndef VV_REPO_INT_H
#define VV_REPO_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "content_int.h"
#include "crypto_int.h"
#include "meta_int.h"
#include "vecvault/backup.h"

#define VV_REPO_NAME_BYTES 32              /* object name: keyed BLAKE2b-256 */
#define VV_REPO_OBJECT_MAX (16u << 20)     /* larger objects are refused */
#define VV_REPO_MANIFEST_MAX (1u << 30)

/* vv_repo_open flag, the daemon's only: keep the repository key a slot
 * unlocked (with a keyed verifier of the passphrase) for later opens with
 * the same passphrase in this process (repo.c "the daemon's key cache").
 * vv_repo_key_cache_clear forgets every key (the vault's close). */
#define VV_REPO_KEY_CACHE 0x100
void vv_repo_key_cache_clear(void);

struct vv_bk_inode {
	struct vv_inode_row r;
	uint8_t *data;                     /* inline bytes / symlink target, or NULL */
	uint32_t datalen;
};

struct vv_bk_dirent {
	uint64_t parent, id, ino;
	uint32_t mode;
	char *name;                        /* NUL-terminated, 1..255 bytes */
};

struct vv_bk_xattr {
	uint64_t ino;
	char *name;
	uint8_t *val;
	uint32_t vlen;
};

struct vv_bk_extent {
	uint64_t ino;
	struct vv_extent e;
};

struct vv_bk_coll {
	uint32_t id;
	uint8_t wrapped[VV_WRAPPED_BYTES]; /* under the repo's key-wrap subkey */
};

struct vv_bk_object {
	uint8_t chunk[VV_CHUNK_ID_BYTES];  /* its name in the store */
	uint8_t name[VV_REPO_NAME_BYTES];  /* its name in the repository */
	uint64_t size;
};

/* A metadata pack of a version 2 manifest (docs/format.md "Metadata
 * packs"): an object holding one sealed piece of the rows. */
struct vv_bk_pack {
	uint8_t name[VV_REPO_NAME_BYTES];
	uint64_t size;                     /* the object's bytes */
	uint32_t plen;                     /* the piece of the rows it holds */
};

struct vv_manifest {
	uint8_t id[VV_BACKUP_ID_BYTES];
	uint8_t store_id[16];
	struct vv_backup_info info;        /* id, times, names, counts */
	uint32_t root_coll;                /* kv root_coll of the vault */
	struct vv_bk_coll *colls;
	struct vv_bk_object *objs;
	struct vv_bk_inode *inodes;
	struct vv_bk_dirent *dirents;
	struct vv_bk_xattr *xattrs;
	struct vv_bk_extent *extents;
	struct vv_bk_pack *packs;          /* version 2: where the rows were (load, store) */
	size_t ncolls, nobjs, ninodes, ndirents, nxattrs, nextents, npacks;
	size_t capc, capo, capi, capd, capx, cape, capp;
};

void vv_manifest_free(struct vv_manifest *m);
/* Append one element (copies the strings and bytes): 0 or VV_ENOMEM. */
int vv_manifest_add_inode(struct vv_manifest *m, const struct vv_inode_row *r,
			  const void *data, size_t len);
int vv_manifest_add_dirent(struct vv_manifest *m, uint64_t parent, const char *name,
			   uint64_t id, uint64_t ino, uint32_t mode);
int vv_manifest_add_xattr(struct vv_manifest *m, uint64_t ino, const char *name,
			  const void *val, size_t len);
int vv_manifest_add_extent(struct vv_manifest *m, uint64_t ino, const struct vv_extent *e);
int vv_manifest_add_coll(struct vv_manifest *m, uint32_t id,
			 const uint8_t wrapped[VV_WRAPPED_BYTES]);
int vv_manifest_add_object(struct vv_manifest *m, const uint8_t *chunk, const uint8_t *name,
			   uint64_t size);

/* The plaintext body (docs/format.md "Manifests"), padded to a multiple
 * of 4096.  encode: *out malloc'd.  decode: untrusted bytes into a zeroed
 * *m (freed again on failure); VV_ECORRUPT on anything malformed,
 * VV_ENOMEM.  Pure: the fuzzer runs decode (tests/fuzz/fuzz_backup.c). */
int vv_manifest_encode(const struct vv_manifest *m, uint8_t **out, size_t *outlen);
int vv_manifest_decode(const uint8_t *buf, size_t len, struct vv_manifest *m);
/* A version 2 body (docs/format.md "Metadata packs"), parsed over buffers: the
 * head, the pack list, END! and padding; then src gives each pack's piece
 * in order (plen bytes into piece: 0, or a VV_E* code that the decode
 * returns) and the pieces must hold the rows exactly to END!.  Into a
 * zeroed *m (freed again on failure); m->packs lists the packs.  The rows'
 * buffer grows only as pieces arrive.  vv_repo_manifest_load reads the
 * packs from DEST (pack_open); the fuzzer gives them from memory. */
typedef int (*vv_pack_src_fn)(void *ctx, const struct vv_bk_pack *pk, uint8_t *piece);
int vv_manifest_decode_v2(const uint8_t *body, size_t blen, vv_pack_src_fn src, void *ctx,
			  struct vv_manifest *m);
/* A pack object's bytes f (len, untrusted) opened under the `vvbkpack`
 * subkey key of repository repo_id: its size must be pk->size, its magic
 * and tag right, its u32 length pk->plen, its padding zeros; then the
 * piece (pk->plen bytes) is copied to piece.  VV_ECORRUPT, VV_ENOMEM.
 * The check of the bytes against the pack's name is the caller's. */
int vv_repo_pack_unseal(const uint8_t key[VV_KEY_BYTES], const uint8_t repo_id[VV_REPO_ID_BYTES],
			const struct vv_bk_pack *pk, const uint8_t *f, size_t len, uint8_t *piece);
/* A manifest file's header (docs/format.md "Manifests"; the seal after
 * it is the caller's): VV_ECORRUPT (short, not a manifest), VV_EFORMAT
 * (another version); *ver 1 or 2, the repository and backup ids. */
int vv_repo_manifest_head(const uint8_t *file, size_t len, uint32_t *ver, uint8_t rid[VV_REPO_ID_BYTES],
			  uint8_t bid[VV_BACKUP_ID_BYTES]);
/* DEST/lock's bytes (written by the holder, but by anyone who can write
 * DEST too): a pid (1..9 decimal digits, no leading 0) and an optional
 * newline, or VV_ECORRUPT (then it is not shown). */
int vv_repo_lock_pid(const uint8_t *buf, size_t len, long *pid);
/* The config's bytes, parsed without a key (fuzz target, repo info):
 * its id, key slots and format version (*version, unless NULL: 1 or 2).
 * VV_EFORMAT (not a repository config, unknown version, or too short to
 * hold the version), VV_ECORRUPT. */
int vv_repo_config_parse(const uint8_t *buf, size_t len, uint8_t repo_id[VV_REPO_ID_BYTES],
			 int *nslots, uint32_t *version);

/* Keys. */
int vv_repo_coll_wrap(struct vv_repo *r, const uint8_t backup_id[VV_BACKUP_ID_BYTES],
		      uint32_t coll, const uint8_t key[VV_KEY_BYTES],
		      uint8_t out[VV_WRAPPED_BYTES]);
int vv_repo_coll_unwrap(struct vv_repo *r, const uint8_t backup_id[VV_BACKUP_ID_BYTES],
			uint32_t coll, const uint8_t in[VV_WRAPPED_BYTES],
			uint8_t key[VV_KEY_BYTES]) __attribute__((warn_unused_result));

/* Direct I/O (repo_object.c "direct I/O"): a buffer aligned for O_DIRECT (len
 * rounded up; free()), and whole-file reads and writes at offset 0 of an
 * open fd that go O_DIRECT for the aligned part when buf is aligned and
 * the file system takes it, through the page cache otherwise.  0 or a
 * VV_E* code (VV_ECORRUPT: the file is shorter than len). */
void *vv_repo_buf_alloc(size_t len);
int vv_repo_pread_file(int fd, void *buf, size_t len);
int vv_repo_pwrite_file(int fd, const void *buf, size_t len);

/* Objects. */
int vv_repo_object_name(struct vv_repo *r, const void *bytes, size_t len,
			uint8_t name[VV_REPO_NAME_BYTES]);
/* Is the object there with this size (a complete earlier copy)? */
bool vv_repo_object_have(struct vv_repo *r, const uint8_t name[VV_REPO_NAME_BYTES],
			 uint64_t size);
/* Write it under a tmp name and start its write-back; it is fdatasync'ed
 * and renamed to its name with the other objects of its batch (repo_object.c:
 * every 32 objects or 128 MiB, in vv_repo_objects_sync, and at close), so
 * a file under an object's name is always complete.  Until then _have
 * and _read do not see it.  Its directory is synced by
 * vv_repo_objects_sync, which must run before a manifest names it. */
int vv_repo_object_put(struct vv_repo *r, const uint8_t name[VV_REPO_NAME_BYTES],
		       const void *bytes, size_t len);
int vv_repo_objects_sync(struct vv_repo *r);
/* Read a whole object into *buf WITHOUT checking it against its name: for
 * a caller that authenticates every byte it keeps some other way (restore:
 * each block's AES-GCM).  *buf (*cap bytes, vv_repo_buf_alloc'd, or NULL)
 * is reused when big enough, else replaced; the caller frees it.
 * VV_ENOENT (missing), VV_ECORRUPT (shorter than it was a moment ago). */
int vv_repo_object_load(struct vv_repo *r, const uint8_t name[VV_REPO_NAME_BYTES],
			uint8_t **buf, size_t *cap, size_t *len);
/* Read a whole object (malloc'd) and check it against its name:
 * VV_ENOENT (missing), VV_ECORRUPT (other bytes). */
int vv_repo_object_read(struct vv_repo *r, const uint8_t name[VV_REPO_NAME_BYTES],
			uint8_t **out, size_t *len);

/* Manifests.  load reads version 1 (rows in the manifest) and 2 (rows in
 * metadata packs, each checked against its name, size and tag); m->packs
 * lists a version 2 manifest's packs.  VV_ECORRUPT: then vv_repo_why
 * names the pack at fault when one was ("" otherwise). */
int vv_repo_manifest_load(struct vv_repo *r, const char *id_hex, struct vv_manifest *m);
const char *vv_repo_why(const struct vv_repo *r);
/* Seal and publish m as a version 2 manifest: its rows cut into packs at
 * content-defined boundaries, each sealed deterministically and stored as
 * an object unless there already (an unchanged pack is neither sealed nor
 * written again while the daemon's cache knows it); then the manifest
 * (tmp + fsync + rename + dir fsync).  m->packs is not used. */
int vv_repo_manifest_store(struct vv_repo *r, const struct vv_manifest *m);
/* The metadata packs of the last manifest_store: how many it named, how
 * many of them it wrote (the others were there), their bytes. */
void vv_repo_packs_stats(const struct vv_repo *r, uint64_t *named, uint64_t *written,
			 uint64_t *bytes_written);
/* Every manifest name (32 hex), sorted; *names malloc'd array of
 * malloc'd strings (vv_repo_names_free). */
int vv_repo_manifest_names(struct vv_repo *r, char ***names, size_t *n);
void vv_repo_names_free(char **names, size_t n);

/* What the repository already holds, from every manifest: chunk id ->
 * object, for incremental runs (a chunk named there is not read again). */
struct vv_repo_index {
	struct vv_bk_object *o;            /* sorted by chunk id */
	size_t n;
};
int vv_repo_index_load(struct vv_repo *r, struct vv_repo_index *ix);
const struct vv_bk_object *vv_repo_index_find(const struct vv_repo_index *ix,
					      const uint8_t chunk[VV_CHUNK_ID_BYTES]);
void vv_repo_index_free(struct vv_repo_index *ix);

const uint8_t *vv_repo_id(const struct vv_repo *r);
/* DEST/objects, borrowed (verify walks it). */
int vv_repo_objfd(const struct vv_repo *r);
/* DEST/manifests, borrowed (forget unlinks there). */
int vv_repo_manfd(const struct vv_repo *r);
/* The uid/gid new files in DEST get (DEST's owner). */
void vv_repo_owner(const struct vv_repo *r, uint32_t *uid, uint32_t *gid);

#endif
