/*
 * crypto_int.h - keys, KDF, AEAD, MACs and secure memory.
 *
 * The only module that includes <sodium.h> or <openssl/evp.h>.  Everything
 * else calls these.  Conventions: sizes are the constants below; functions
 * return 0 or a negative VV_E* code; a failed open (authentication failure)
 * returns VV_ECORRUPT and zeroes its output; secrets live in memory from
 * vv_secure_alloc() and are zeroed by vv_secure_free().
 */
#ifndef VV_CRYPTO_INT_H
#define VV_CRYPTO_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vecvault/harden.h"         /* vv_crypto_harden_process */

#define VV_KEY_BYTES 32          /* every symmetric key */
#define VV_SALT_BYTES 16         /* Argon2id salt */
#define VV_XNONCE_BYTES 24       /* XChaCha20-Poly1305 nonce */
#define VV_GCM_NONCE_BYTES 12    /* AES-256-GCM nonce */
#define VV_TAG_BYTES 16          /* both AEADs */
#define VV_MAC_BYTES 32          /* keyed BLAKE2b-256 */
#define VV_SHA256_BYTES 32

/* Must be called once before anything else (idempotent, thread-safe). */
int vv_crypto_init(void) __attribute__((warn_unused_result));

/* Guarded, locked memory for secrets (sodium_malloc); NULL on failure.
 * vv_secure_free zeroes and frees; accepts NULL. */
void *vv_secure_alloc(size_t n);
void vv_secure_free(void *p);
void vv_memzero(void *p, size_t n);
/* Constant-time equality. */
bool vv_memeq_ct(const void *a, const void *b, size_t n);
void vv_random_bytes(void *buf, size_t n);

/* Argon2id KDF profiles.  VV_KDF_TEST is the explicit test-only minimum; it
 * is accepted at open only when the caller allows it (see store.h). */
struct vv_kdf_params {
	uint64_t opslimit;
	uint64_t memlimit;       /* bytes */
};
enum vv_kdf_profile { VV_KDF_INTERACTIVE, VV_KDF_MODERATE, VV_KDF_TEST };
void vv_kdf_params_for(enum vv_kdf_profile p, struct vv_kdf_params *out);
/* Bounds on key-slot parameters read from untrusted bytes (a store's
 * conf, a backup repository's config): well above every profile, low
 * enough that whoever can edit those bytes, without the key, cannot make
 * an unlock (a mount, a scheduled backup, list or restore) run an
 * Argon2id of hours: the slot is refused before it is tried. */
#define VV_KDF_OPS_BOUND 256
#define VV_KDF_MEM_BOUND (64ull << 30)
/* Minimums accepted for a non-test vault. */
bool vv_kdf_params_ok(const struct vv_kdf_params *p, bool allow_test);
/* out = Argon2id(pass, salt, params), VV_KEY_BYTES. */
int vv_kdf_derive(uint8_t out[VV_KEY_BYTES], const char *pass, size_t passlen,
		  const uint8_t salt[VV_SALT_BYTES], const struct vv_kdf_params *p)
	__attribute__((warn_unused_result));

/* Subkeys of the master key (crypto_kdf): ctx is exactly 8 chars. */
int vv_subkey(uint8_t out[VV_KEY_BYTES], const uint8_t master[VV_KEY_BYTES],
	      uint64_t id, const char ctx[8]);
/* Key for one chunk: keyed BLAKE2b-256(key = collection key, "vv-chunk" || chunk id). */
int vv_chunk_key(uint8_t out[VV_KEY_BYTES], const uint8_t coll_key[VV_KEY_BYTES],
		 const uint8_t *chunk_id, size_t idlen);

/* XChaCha20-Poly1305, detached tag.  ct may equal pt (in place). */
int vv_xchacha_seal(uint8_t *ct, uint8_t tag[VV_TAG_BYTES], const uint8_t *pt, size_t len,
		    const uint8_t *ad, size_t adlen, const uint8_t nonce[VV_XNONCE_BYTES],
		    const uint8_t key[VV_KEY_BYTES]);
int vv_xchacha_open(uint8_t *pt, const uint8_t *ct, size_t len, const uint8_t tag[VV_TAG_BYTES],
		    const uint8_t *ad, size_t adlen, const uint8_t nonce[VV_XNONCE_BYTES],
		    const uint8_t key[VV_KEY_BYTES]) __attribute__((warn_unused_result));

/* AES-256-GCM through OpenSSL EVP.  A context holds one key schedule and is
 * used by one thread at a time; create one per chunk key (cheap enough) or
 * cache them.  ct may equal pt. */
struct vv_gcm;
int vv_gcm_new(const uint8_t key[VV_KEY_BYTES], struct vv_gcm **out);
void vv_gcm_free(struct vv_gcm *g);
int vv_gcm_seal(struct vv_gcm *g, const uint8_t nonce[VV_GCM_NONCE_BYTES],
		const uint8_t *ad, size_t adlen, const uint8_t *pt, size_t len,
		uint8_t *ct, uint8_t tag[VV_TAG_BYTES]);
int vv_gcm_open(struct vv_gcm *g, const uint8_t nonce[VV_GCM_NONCE_BYTES],
		const uint8_t *ad, size_t adlen, const uint8_t *ct, size_t len,
		const uint8_t tag[VV_TAG_BYTES], uint8_t *pt) __attribute__((warn_unused_result));

/* Keyed BLAKE2b-256 MAC, one-shot and incremental. */
int vv_mac(uint8_t out[VV_MAC_BYTES], const uint8_t key[VV_KEY_BYTES], const void *data, size_t len);
/* HMAC-SHA-256 of data (32 bytes out): backup object names of a version 2
 * repository (repo_object.c). */
int vv_hmac_sha256(uint8_t out[VV_MAC_BYTES], const uint8_t key[VV_KEY_BYTES], const void *data,
		   size_t len);
struct vv_mac_state { _Alignas(64) uint8_t opaque[384]; };
int vv_mac_init(struct vv_mac_state *st, const uint8_t key[VV_KEY_BYTES]);
int vv_mac_update(struct vv_mac_state *st, const void *data, size_t len);
int vv_mac_final(struct vv_mac_state *st, uint8_t out[VV_MAC_BYTES]);

void vv_sha256(uint8_t out[VV_SHA256_BYTES], const void *data, size_t len);

/* Seal a key under a key-encryption key (XChaCha20-Poly1305, random nonce):
 * out = nonce(24) || ct(32) || tag(16) = VV_WRAPPED_BYTES. */
#define VV_WRAPPED_BYTES (VV_XNONCE_BYTES + VV_KEY_BYTES + VV_TAG_BYTES)
int vv_key_wrap(uint8_t out[VV_WRAPPED_BYTES], const uint8_t key[VV_KEY_BYTES],
		const uint8_t kek[VV_KEY_BYTES], const uint8_t *ad, size_t adlen);
int vv_key_unwrap(uint8_t key[VV_KEY_BYTES], const uint8_t in[VV_WRAPPED_BYTES],
		  const uint8_t kek[VV_KEY_BYTES], const uint8_t *ad, size_t adlen)
	__attribute__((warn_unused_result));

/* Hex helpers (lower case); hex_decode returns VV_ECORRUPT on bad input. */
void vv_hex_encode(char *out, const uint8_t *in, size_t n);   /* out: 2n+1 */
int vv_hex_decode(uint8_t *out, size_t n, const char *hex, size_t hexlen);

/* Password hashes for vault users: Argon2id in libsodium's self-describing
 * string form ("$argon2id$v=19$m=...,t=...,p=1$salt$hash", < VV_PWHASH_STR_BYTES
 * with its NUL), at least the interactive limits.  vv_pwhash_str fills out
 * or returns VV_ENOMEM (the memory limit could not be had) / VV_EINVAL
 * (password longer than VV_PWHASH_PASS_MAX).  vv_pwhash_verify costs one
 * Argon2id evaluation whatever the outcome: 0 when pass matches,
 * VV_EBADPASS when it does not, VV_EINVAL for a string that is no Argon2id
 * hash (it then still spends the time on a dummy hash, so callers cannot be
 * timed into telling a broken row from a wrong password). */
#define VV_PWHASH_STR_BYTES 128
#define VV_PWHASH_PASS_MAX 4096
int vv_pwhash_str(char out[VV_PWHASH_STR_BYTES], const char *pass, size_t passlen)
	__attribute__((warn_unused_result));
int vv_pwhash_verify(const char *str, const char *pass, size_t passlen)
	__attribute__((warn_unused_result));
/* Argon2id evaluations vv_pwhash_verify has made in this process (tests
 * check that every login attempt costs exactly one). */
uint64_t vv_pwhash_verify_count(void);

/* Base64 in the URL-safe alphabet without padding (RFC 4648 section 5),
 * for tokens shown to people.  encode: out holds VV_B64URL_LEN(n) + 1.
 * decode: exactly n bytes from exactly the canonical text, else VV_EINVAL
 * (out zeroed). */
#define VV_B64URL_LEN(n) (((n) * 4 + 2) / 3)
void vv_b64url_encode(char *out, const uint8_t *in, size_t n);
int vv_b64url_decode(uint8_t *out, size_t n, const char *text, size_t textlen)
	__attribute__((warn_unused_result));

#endif
