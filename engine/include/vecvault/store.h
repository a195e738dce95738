/*
 * store.h - the store directory: vecvault.conf, key slots, the lock, anchors.
 *
 *   STORE/
 *     vecvault.conf   the only plaintext file; MAC'd (docs/format.md)
 *     meta.db         written by the meta module
 *     chunks/         written by the content module
 *
 * A struct vv_store is opened (conf parsed, directory locked), then unlocked
 * with a passphrase (a key slot unwraps the master key, the conf MAC is then
 * checked).  Other engine modules get keys from it as subkeys by name
 * (VV_SUBKEY_*); the master key itself never leaves store.c.
 *
 * All functions return 0 or a negative VV_E* code (vecvault/error.h) and log
 * the reason through vv_log().  A struct vv_store is not thread-safe.
 */
#ifndef VECVAULT_STORE_H
#define VECVAULT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VV_STORE_KEY_BYTES 32        /* master key and every subkey */
#define VV_STORE_ID_BYTES 16         /* random store id (32 hex digits) */
#define VV_STORE_MAX_SLOTS 16
#define VV_STORE_CONF_NAME "vecvault.conf"
#define VV_STORE_CHUNKS_DIR "chunks"

/* Open/create flags. */
#define VV_STORE_ALLOW_TEST_KDF 0x1  /* accept the test-only Argon2id minimum.
				      * FOR TEST SUITES ONLY.  The only way in:
				      * the engine reads no environment (the CLI
				      * sets it from VECVAULT_TEST_KDF=1) */
#define VV_STORE_NOLOCK 0x2          /* read the conf without taking the lock
				      * (vecvault info); unlock still works */

/* Argon2id profiles for new key slots. */
enum vv_store_kdf {
	VV_STORE_KDF_INTERACTIVE = 0,  /* libsodium INTERACTIVE (default) */
	VV_STORE_KDF_MODERATE = 1,     /* libsodium MODERATE */
	VV_STORE_KDF_TEST = 2          /* minimum; needs VV_STORE_ALLOW_TEST_KDF */
};

/* Subkey contexts (crypto_kdf, exactly 8 chars) for vv_store_subkey(); the
 * one place they are fixed.  id 0 unless the module defines more. */
#define VV_SUBKEY_META "vvmeta__"      /* meta.db page encryption, WAL pads */
#define VV_SUBKEY_AUDIT "vvaudit_"     /* audit record MACs */
#define VV_SUBKEY_ANCHOR "vvanchor"    /* anchor file MAC (used by store.c) */
#define VV_SUBKEY_CONF "vvconf__"      /* vecvault.conf MAC (used by store.c) */
#define VV_SUBKEY_COLLWRAP "vvcoll__"  /* wraps per-collection data keys */

struct vv_store;   /* opaque */

struct vv_store_create_opts {
	enum vv_store_kdf kdf;   /* profile of slot 0 */
	uint32_t page_size;      /* meta.db page size; 0 = 4096; power of 2, 512..65536 */
};

/* Make a new store in dir, which must not exist or be an empty directory
 * (else VV_EEXIST; the parent must exist).  Creates dir (0700), chunks/ and
 * vecvault.conf with one key slot (index 0) for pass.  On success *out is
 * open, locked and unlocked; the caller closes it.  o may be NULL
 * (defaults).  A TEST profile without VV_STORE_ALLOW_TEST_KDF gives
 * VV_EDOWNGRADE; an empty passphrase VV_EINVAL. */
int vv_store_create(const char *dir, const char *pass, size_t passlen,
		    const struct vv_store_create_opts *o, unsigned flags, struct vv_store **out)
	__attribute__((warn_unused_result));

/* Open an existing store: parse vecvault.conf and (unless VV_STORE_NOLOCK)
 * take an exclusive flock on the directory, held until close.
 * Errors: VV_ENOENT (no dir), VV_ENOTDIR, VV_ENOTINIT (dir without conf),
 * VV_EFORMAT (not a vecvault conf, unknown version), VV_ECORRUPT (malformed
 * conf), VV_EBUSY (locked by another open, e.g. a running daemon).
 * On success the caller owns *out (vv_store_close). */
int vv_store_open(const char *dir, unsigned flags, struct vv_store **out)
	__attribute__((warn_unused_result));

/* Try pass against every slot; on success the master key is held in secure
 * memory and the conf MAC is verified.  *slot_out (may be NULL) gets the
 * slot index that matched.  Errors: VV_EBADPASS (no slot matched),
 * VV_EDOWNGRADE (no slot matched and some slot's KDF parameters were below
 * the minimum and so were not tried), VV_ECORRUPT (conf MAC mismatch: the
 * store stays locked), VV_EINVAL (already unlocked). */
int vv_store_unlock(struct vv_store *s, const char *pass, size_t passlen, int *slot_out)
	__attribute__((warn_unused_result));

bool vv_store_is_unlocked(const struct vv_store *s);

/* Zero the keys, release the lock, free.  NULL ok. */
void vv_store_close(struct vv_store *s);

/* Key slots; all need an unlocked, locked-open store (VV_EINVAL otherwise)
 * and rewrite vecvault.conf atomically with a new MAC.  On any failure the
 * conf on disk and the in-memory state are unchanged. */
/* Add a slot for pass at the lowest free index (VV_ENOSPC when all 16 are
 * used). */
int vv_store_slot_add(struct vv_store *s, const char *pass, size_t passlen,
		      enum vv_store_kdf kdf, int *slot_out) __attribute__((warn_unused_result));
/* Remove slot; VV_ENOENT if unused, VV_EINVAL if it is the last one. */
int vv_store_slot_remove(struct vv_store *s, int slot) __attribute__((warn_unused_result));
/* New passphrase for one slot (fresh salt, same KDF parameters); data and
 * other slots untouched. */
int vv_store_slot_change(struct vv_store *s, int slot, const char *pass, size_t passlen)
	__attribute__((warn_unused_result));

struct vv_store_info {
	int version;
	char store_id[2 * VV_STORE_ID_BYTES + 1];
	uint32_t page_size;
	int64_t created;          /* unix time */
	int nslots;
	struct {
		int index;
		uint64_t opslimit;
		uint64_t memlimit;        /* bytes */
	} slots[VV_STORE_MAX_SLOTS];
};
/* Fill *out from the parsed conf (no key needed; unauthenticated until
 * unlock). */
int vv_store_info(const struct vv_store *s, struct vv_store_info *out);

/* Parse vecvault.conf bytes only: no file, no lock, no key; the parser
 * vv_store_open runs, for tools and fuzzers (tests/fuzz/fuzz_conf.c).  On
 * success *out is what vv_store_info would give and *macoff (may be NULL)
 * the offset of the "mac = " line, i.e. how many leading bytes the MAC
 * covers.  Nothing is authenticated.  Errors as vv_store_open's: VV_EFORMAT,
 * VV_ECORRUPT; and VV_ENOMEM. */
int vv_store_conf_parse(const void *buf, size_t len, struct vv_store_info *out, size_t *macoff)
	__attribute__((warn_unused_result));

/* Borrowed strings, valid until vv_store_close. */
const char *vv_store_dir(const struct vv_store *s);
const char *vv_store_id(const struct vv_store *s);       /* 32 hex digits */
uint32_t vv_store_page_size(const struct vv_store *s);

/* out = STORE/rel (rel relative, no leading '/'); VV_ENAMETOOLONG if it does
 * not fit in outlen. */
int vv_store_path(const struct vv_store *s, const char *rel, char *out, size_t outlen);

/* out = crypto_kdf subkey (id, ctx) of the master key; ctx is one of the
 * VV_SUBKEY_* names.  Needs an unlocked store (VV_EINVAL).  out is a secret:
 * the caller keeps it in vv_secure_alloc memory and zeroes it. */
int vv_store_subkey(const struct vv_store *s, uint64_t id, const char ctx[8],
		    uint8_t out[VV_STORE_KEY_BYTES]) __attribute__((warn_unused_result));

/* Rollback anchor: the highest metadata commit counter this machine has seen
 * for this store, in STATE_DIR/anchors/<store-id>, MAC'd with the anchor
 * subkey.  Both need an unlocked store.  state_dir (borrowed) is the
 * caller's per-user state directory; the engine has no default and reads
 * no environment (the CLI's is tools/env.c: $VECVAULT_STATE_DIR, ...).
 * NULL or "" -> VV_ENOENT.
 * get: missing file -> *counter = 0 (first mount here) and 0; a forged,
 *      truncated or foreign anchor -> VV_ECORRUPT.
 * put: writes counter (even if lower: the caller decides, e.g. an explicit
 *      restore); durable = fsync file and directory (vv_os_write_atomic),
 *      otherwise tmp+rename without fsync, for frequent updates. */
int vv_store_anchor_get(const struct vv_store *s, const char *state_dir, uint64_t *counter)
	__attribute__((warn_unused_result));
int vv_store_anchor_put(const struct vv_store *s, const char *state_dir, uint64_t counter,
			bool durable) __attribute__((warn_unused_result));

#endif
