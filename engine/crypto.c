/*
 * crypto.c - keys, KDF, AEAD, MACs and secure memory (see crypto_int.h).
 *
 * The only file that includes <sodium.h> or <openssl/evp.h>.  libsodium
 * gives Argon2id, crypto_kdf subkeys, keyed BLAKE2b, XChaCha20-Poly1305 and
 * guarded memory; OpenSSL EVP gives AES-256-GCM (hardware AES, several times
 * faster than XChaCha on this class of machine, which matters for chunk data)
 * and SHA-256.
 *
 * Every authentication failure returns VV_ECORRUPT and zeroes the plaintext
 * output, so a caller that forgets to check the result still never sees
 * unauthenticated bytes.
 */
#include <assert.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include "crypto_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

static_assert(sizeof(crypto_generichash_state) <= sizeof(struct vv_mac_state),
	      "crypto_generichash_state must fit struct vv_mac_state");
static_assert(_Alignof(crypto_generichash_state) <= _Alignof(struct vv_mac_state),
	      "struct vv_mac_state is under-aligned for crypto_generichash_state");
static_assert(VV_KEY_BYTES == crypto_kdf_KEYBYTES, "kdf key size");
static_assert(VV_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "xchacha key size");
static_assert(VV_XNONCE_BYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "xchacha nonce size");
static_assert(VV_TAG_BYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES, "xchacha tag size");
static_assert(VV_SALT_BYTES == crypto_pwhash_SALTBYTES, "argon2 salt size");
static_assert(VV_MAC_BYTES >= crypto_generichash_BYTES_MIN &&
	      VV_MAC_BYTES <= crypto_generichash_BYTES_MAX, "mac size");
static_assert(VV_SHA256_BYTES == crypto_hash_sha256_BYTES, "sha256 size");

/* Largest piece handed to one EVP call: its lengths are int. */
#define EVP_STEP (1u << 30)

int vv_crypto_init(void)
{
	/* sodium_init is itself idempotent and thread-safe: 0 first time,
	 * 1 when already initialised, -1 on failure. */
	if (sodium_init() < 0) {
		vv_log(VV_LOG_ERR, "crypto: libsodium initialisation failed");
		return VV_ECRYPTO;
	}
	return 0;
}

void *vv_secure_alloc(size_t n)
{
	return sodium_malloc(n);
}

void vv_secure_free(void *p)
{
	/* sodium_free zeroes before unmapping and accepts NULL. */
	sodium_free(p);
}

void vv_memzero(void *p, size_t n)
{
	if (p && n)
		sodium_memzero(p, n);
}

bool vv_memeq_ct(const void *a, const void *b, size_t n)
{
	if (n == 0)
		return true;
	return sodium_memcmp(a, b, n) == 0;
}

void vv_random_bytes(void *buf, size_t n)
{
	randombytes_buf(buf, n);
}

/* ---- Argon2id --------------------------------------------------------- */

void vv_kdf_params_for(enum vv_kdf_profile p, struct vv_kdf_params *out)
{
	switch (p) {
	case VV_KDF_MODERATE:
		out->opslimit = crypto_pwhash_OPSLIMIT_MODERATE;
		out->memlimit = crypto_pwhash_MEMLIMIT_MODERATE;
		break;
	case VV_KDF_TEST:
		out->opslimit = crypto_pwhash_OPSLIMIT_MIN;
		out->memlimit = crypto_pwhash_MEMLIMIT_MIN;
		break;
	case VV_KDF_INTERACTIVE:
	default:
		out->opslimit = crypto_pwhash_OPSLIMIT_INTERACTIVE;
		out->memlimit = crypto_pwhash_MEMLIMIT_INTERACTIVE;
		break;
	}
}

bool vv_kdf_params_ok(const struct vv_kdf_params *p, bool allow_test)
{
	if (p->opslimit > crypto_pwhash_OPSLIMIT_MAX || p->memlimit > crypto_pwhash_MEMLIMIT_MAX)
		return false;
	if (p->opslimit >= crypto_pwhash_OPSLIMIT_INTERACTIVE &&
	    p->memlimit >= crypto_pwhash_MEMLIMIT_INTERACTIVE)
		return true;
	return allow_test && p->opslimit >= crypto_pwhash_OPSLIMIT_MIN &&
	       p->memlimit >= crypto_pwhash_MEMLIMIT_MIN;
}

int vv_kdf_derive(uint8_t out[VV_KEY_BYTES], const char *pass, size_t passlen,
		  const uint8_t salt[VV_SALT_BYTES], const struct vv_kdf_params *p)
{
	int r = 0;

	if (p->opslimit < crypto_pwhash_OPSLIMIT_MIN || p->opslimit > crypto_pwhash_OPSLIMIT_MAX ||
	    p->memlimit < crypto_pwhash_MEMLIMIT_MIN || p->memlimit > crypto_pwhash_MEMLIMIT_MAX ||
	    p->memlimit > SIZE_MAX || passlen > crypto_pwhash_PASSWD_MAX) {
		r = VV_EINVAL;
		goto out;
	}
	/* crypto_pwhash fails only when it cannot get its memory. */
	if (crypto_pwhash(out, VV_KEY_BYTES, pass, passlen, salt, p->opslimit,
			  (size_t)p->memlimit, crypto_pwhash_ALG_ARGON2ID13) != 0) {
		vv_log(VV_LOG_ERR, "crypto: argon2id needs %llu bytes of memory, allocation failed",
		       (unsigned long long)p->memlimit);
		r = VV_ENOMEM;
	}
out:
	if (r < 0)
		vv_memzero(out, VV_KEY_BYTES);
	return r;
}

/* ---- subkeys ------------------------------------------------------------ */

int vv_subkey(uint8_t out[VV_KEY_BYTES], const uint8_t master[VV_KEY_BYTES],
	      uint64_t id, const char ctx[8])
{
	if (crypto_kdf_derive_from_key(out, VV_KEY_BYTES, id, ctx, master) != 0)
		return VV_ECRYPTO;
	return 0;
}

int vv_chunk_key(uint8_t out[VV_KEY_BYTES], const uint8_t coll_key[VV_KEY_BYTES],
		 const uint8_t *chunk_id, size_t idlen)
{
	static const char label[8] = { 'v', 'v', '-', 'c', 'h', 'u', 'n', 'k' };
	crypto_generichash_state st;
	int r = 0;

	if (crypto_generichash_init(&st, coll_key, VV_KEY_BYTES, VV_KEY_BYTES) != 0 ||
	    crypto_generichash_update(&st, (const uint8_t *)label, sizeof(label)) != 0 ||
	    crypto_generichash_update(&st, chunk_id, idlen) != 0 ||
	    crypto_generichash_final(&st, out, VV_KEY_BYTES) != 0)
		r = VV_ECRYPTO;
	sodium_memzero(&st, sizeof(st));
	return r;
}

/* ---- XChaCha20-Poly1305 ---------------------------------------------- */

int vv_xchacha_seal(uint8_t *ct, uint8_t tag[VV_TAG_BYTES], const uint8_t *pt, size_t len,
		    const uint8_t *ad, size_t adlen, const uint8_t nonce[VV_XNONCE_BYTES],
		    const uint8_t key[VV_KEY_BYTES])
{
	if (crypto_aead_xchacha20poly1305_ietf_encrypt_detached(ct, tag, NULL, pt, len, ad, adlen,
								 NULL, nonce, key) != 0)
		return VV_ECRYPTO;
	return 0;
}

int vv_xchacha_open(uint8_t *pt, const uint8_t *ct, size_t len, const uint8_t tag[VV_TAG_BYTES],
		    const uint8_t *ad, size_t adlen, const uint8_t nonce[VV_XNONCE_BYTES],
		    const uint8_t key[VV_KEY_BYTES])
{
	if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(pt, NULL, ct, len, tag, ad, adlen,
								 nonce, key) != 0) {
		vv_memzero(pt, len);
		return VV_ECORRUPT;
	}
	return 0;
}

/* ---- AES-256-GCM ------------------------------------------------------ */

/* Two contexts, each keyed once: the key schedule is the expensive part, and
 * keeping encryption and decryption apart avoids relying on how a given
 * OpenSSL version treats a direction switch with a NULL key. */
struct vv_gcm {
	EVP_CIPHER_CTX *enc;
	EVP_CIPHER_CTX *dec;
};

int vv_gcm_new(const uint8_t key[VV_KEY_BYTES], struct vv_gcm **out)
{
	struct vv_gcm *g;
	int r = VV_ECRYPTO;

	*out = NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return VV_ENOMEM;
	g->enc = EVP_CIPHER_CTX_new();
	g->dec = EVP_CIPHER_CTX_new();
	if (!g->enc || !g->dec) {
		r = VV_ENOMEM;
		goto out;
	}
	if (EVP_EncryptInit_ex(g->enc, EVP_aes_256_gcm(), NULL, key, NULL) != 1 ||
	    EVP_DecryptInit_ex(g->dec, EVP_aes_256_gcm(), NULL, key, NULL) != 1)
		goto out;
	*out = g;
	g = NULL;
	r = 0;
out:
	vv_gcm_free(g);
	return r;
}

void vv_gcm_free(struct vv_gcm *g)
{
	if (!g)
		return;
	/* EVP_CIPHER_CTX_free cleanses the key schedule. */
	EVP_CIPHER_CTX_free(g->enc);
	EVP_CIPHER_CTX_free(g->dec);
	free(g);
}

/* Feed len bytes through ctx in int-sized steps (out NULL: AAD). */
static int evp_feed(EVP_CIPHER_CTX *ctx, bool enc, uint8_t *out, const uint8_t *in, size_t len)
{
	while (len > 0) {
		int step = (int)(len > EVP_STEP ? EVP_STEP : len), n = 0;
		int ok = enc ? EVP_EncryptUpdate(ctx, out, &n, in, step)
			     : EVP_DecryptUpdate(ctx, out, &n, in, step);
		if (ok != 1)
			return VV_ECRYPTO;
		in += step;
		if (out)
			out += step;
		len -= (size_t)step;
	}
	return 0;
}

int vv_gcm_seal(struct vv_gcm *g, const uint8_t nonce[VV_GCM_NONCE_BYTES],
		const uint8_t *ad, size_t adlen, const uint8_t *pt, size_t len,
		uint8_t *ct, uint8_t tag[VV_TAG_BYTES])
{
	uint8_t fin[16];
	int n = 0, r = VV_ECRYPTO;

	if (EVP_EncryptInit_ex(g->enc, NULL, NULL, NULL, nonce) != 1)
		goto out;
	if ((r = evp_feed(g->enc, true, NULL, ad, adlen)) < 0)
		goto out;
	if ((r = evp_feed(g->enc, true, ct, pt, len)) < 0)
		goto out;
	r = VV_ECRYPTO;
	if (EVP_EncryptFinal_ex(g->enc, fin, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(g->enc, EVP_CTRL_GCM_GET_TAG, VV_TAG_BYTES, tag) != 1)
		goto out;
	r = 0;
out:
	return r;
}

int vv_gcm_open(struct vv_gcm *g, const uint8_t nonce[VV_GCM_NONCE_BYTES],
		const uint8_t *ad, size_t adlen, const uint8_t *ct, size_t len,
		const uint8_t tag[VV_TAG_BYTES], uint8_t *pt)
{
	uint8_t fin[16], t[VV_TAG_BYTES];
	int n = 0, r = VV_ECRYPTO;

	memcpy(t, tag, sizeof(t));   /* SET_TAG takes a non-const pointer */
	if (EVP_DecryptInit_ex(g->dec, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_CIPHER_CTX_ctrl(g->dec, EVP_CTRL_GCM_SET_TAG, VV_TAG_BYTES, t) != 1)
		goto out;
	if ((r = evp_feed(g->dec, false, NULL, ad, adlen)) < 0)
		goto out;
	if ((r = evp_feed(g->dec, false, pt, ct, len)) < 0)
		goto out;
	/* Final is where the tag is checked: failure here is tampering. */
	r = EVP_DecryptFinal_ex(g->dec, fin, &n) == 1 ? 0 : VV_ECORRUPT;
out:
	if (r < 0)
		vv_memzero(pt, len);
	if (r == VV_ECRYPTO)
		r = VV_ECORRUPT;   /* never hand out plaintext we could not verify */
	return r;
}

/* ---- MACs and hashes ------------------------------------------------- */

/* HMAC-SHA-256 (OpenSSL: SHA-NI where the CPU has it, 2.7x the speed of
 * libsodium's BLAKE2b on the machines we measure on). */
int vv_hmac_sha256(uint8_t out[VV_MAC_BYTES], const uint8_t key[VV_KEY_BYTES], const void *data,
		   size_t len)
{
	unsigned int n = 0;

	if (!HMAC(EVP_sha256(), key, VV_KEY_BYTES, data, len, out, &n) || n != VV_MAC_BYTES)
		return VV_ECRYPTO;
	return 0;
}

int vv_mac(uint8_t out[VV_MAC_BYTES], const uint8_t key[VV_KEY_BYTES], const void *data, size_t len)
{
	if (crypto_generichash(out, VV_MAC_BYTES, data, len, key, VV_KEY_BYTES) != 0)
		return VV_ECRYPTO;
	return 0;
}

int vv_mac_init(struct vv_mac_state *st, const uint8_t key[VV_KEY_BYTES])
{
	if (crypto_generichash_init((crypto_generichash_state *)st->opaque, key, VV_KEY_BYTES,
				    VV_MAC_BYTES) != 0)
		return VV_ECRYPTO;
	return 0;
}

int vv_mac_update(struct vv_mac_state *st, const void *data, size_t len)
{
	if (crypto_generichash_update((crypto_generichash_state *)st->opaque, data, len) != 0)
		return VV_ECRYPTO;
	return 0;
}

int vv_mac_final(struct vv_mac_state *st, uint8_t out[VV_MAC_BYTES])
{
	int r = 0;

	if (crypto_generichash_final((crypto_generichash_state *)st->opaque, out, VV_MAC_BYTES) != 0)
		r = VV_ECRYPTO;
	sodium_memzero(st, sizeof(*st));
	return r;
}

void vv_sha256(uint8_t out[VV_SHA256_BYTES], const void *data, size_t len)
{
	/* EVP_Digest fails only on allocation failure; libsodium's SHA-256
	 * cannot fail, so fall back to it rather than return garbage. */
	if (EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL) != 1)
		crypto_hash_sha256(out, data, len);
}

/* ---- key wrapping ---------------------------------------------------- */

int vv_key_wrap(uint8_t out[VV_WRAPPED_BYTES], const uint8_t key[VV_KEY_BYTES],
		const uint8_t kek[VV_KEY_BYTES], const uint8_t *ad, size_t adlen)
{
	uint8_t *nonce = out, *ct = out + VV_XNONCE_BYTES, *tag = ct + VV_KEY_BYTES;

	/* A random 192-bit nonce: wraps are rare and keys are re-wrapped under
	 * fresh KEKs, so collisions are not a concern. */
	randombytes_buf(nonce, VV_XNONCE_BYTES);
	return vv_xchacha_seal(ct, tag, key, VV_KEY_BYTES, ad, adlen, nonce, kek);
}

int vv_key_unwrap(uint8_t key[VV_KEY_BYTES], const uint8_t in[VV_WRAPPED_BYTES],
		  const uint8_t kek[VV_KEY_BYTES], const uint8_t *ad, size_t adlen)
{
	const uint8_t *nonce = in, *ct = in + VV_XNONCE_BYTES, *tag = ct + VV_KEY_BYTES;

	return vv_xchacha_open(key, ct, VV_KEY_BYTES, tag, ad, adlen, nonce, kek);
}

/* ---- hex ------------------------------------------------------------- */

void vv_hex_encode(char *out, const uint8_t *in, size_t n)
{
	sodium_bin2hex(out, 2 * n + 1, in, n);
}

int vv_hex_decode(uint8_t *out, size_t n, const char *hex, size_t hexlen)
{
	size_t got = 0;
	const char *end = NULL;

	if (hexlen != 2 * n)
		return VV_ECORRUPT;
	for (size_t i = 0; i < hexlen; i++) {
		char c = hex[i];
		/* Lower case only: one spelling per value keeps MACs canonical. */
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return VV_ECORRUPT;
	}
	if (sodium_hex2bin(out, n, hex, hexlen, NULL, &got, &end) != 0 || got != n ||
	    end != hex + hexlen) {
		vv_memzero(out, n);
		return VV_ECORRUPT;
	}
	return 0;
}

/* ---- password hashes ------------------------------------------------- */

static_assert(VV_PWHASH_STR_BYTES >= crypto_pwhash_STRBYTES, "pwhash string size");

int vv_pwhash_str(char out[VV_PWHASH_STR_BYTES], const char *pass, size_t passlen)
{
	memset(out, 0, VV_PWHASH_STR_BYTES);
	if (passlen > VV_PWHASH_PASS_MAX)
		return VV_EINVAL;
	/* Interactive limits (64 MiB, 2 passes): a login costs ~0.1 s of one
	 * core, which is what online guessing has to pay per attempt. */
	if (crypto_pwhash_str_alg(out, pass, passlen, crypto_pwhash_OPSLIMIT_INTERACTIVE,
				  crypto_pwhash_MEMLIMIT_INTERACTIVE,
				  crypto_pwhash_ALG_ARGON2ID13) != 0) {
		vv_log(VV_LOG_ERR, "crypto: cannot get memory for a password hash");
		return VV_ENOMEM;
	}
	return 0;
}

/* A well-formed hash of a random password, made once: what an unknown user
 * or a damaged row is checked against, so every verification costs the same. */
static char dummy_hash[crypto_pwhash_STRBYTES];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_make(void)
{
	uint8_t pw[16];

	randombytes_buf(pw, sizeof(pw));
	if (crypto_pwhash_str_alg(dummy_hash, (const char *)pw, sizeof(pw),
				  crypto_pwhash_OPSLIMIT_INTERACTIVE,
				  crypto_pwhash_MEMLIMIT_INTERACTIVE,
				  crypto_pwhash_ALG_ARGON2ID13) != 0)
		dummy_hash[0] = '\0';
	sodium_memzero(pw, sizeof(pw));
}

static _Atomic uint64_t verify_count;

uint64_t vv_pwhash_verify_count(void)
{
	return verify_count;
}

int vv_pwhash_verify(const char *str, const char *pass, size_t passlen)
{
	bool wellformed = str && strncmp(str, crypto_pwhash_argon2id_STRPREFIX,
					 strlen(crypto_pwhash_argon2id_STRPREFIX)) == 0 &&
			  strnlen(str, VV_PWHASH_STR_BYTES) < VV_PWHASH_STR_BYTES;
	int rc;

	if (passlen > VV_PWHASH_PASS_MAX) {
		pass = "";
		passlen = 0;
		wellformed = false;
	}
	verify_count++;
	if (!wellformed) {
		pthread_once(&dummy_once, dummy_make);
		if (dummy_hash[0] && crypto_pwhash_str_verify(dummy_hash, pass, passlen) == 0)
			vv_log(VV_LOG_WARN, "crypto: a password matched the dummy hash");
		return VV_EINVAL;
	}
	rc = crypto_pwhash_str_verify(str, pass, passlen);
	return rc == 0 ? 0 : VV_EBADPASS;
}

/* ---- base64url ------------------------------------------------------- */

void vv_b64url_encode(char *out, const uint8_t *in, size_t n)
{
	sodium_bin2base64(out, VV_B64URL_LEN(n) + 1, in, n,
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int vv_b64url_decode(uint8_t *out, size_t n, const char *text, size_t textlen)
{
	size_t got = 0;
	const char *end = NULL;
	char back[VV_B64URL_LEN(64) + 1];

	/* One spelling per value: the length must be exact and re-encoding
	 * must give the same text (no stray bits in the last character). */
	if (textlen != VV_B64URL_LEN(n) || n > 64 ||
	    sodium_base642bin(out, n, text, textlen, NULL, &got, &end,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    got != n || end != text + textlen)
		goto bad;
	vv_b64url_encode(back, out, n);
	if (memcmp(back, text, textlen) != 0)
		goto bad;
	return 0;
bad:
	vv_memzero(out, n);
	return VV_EINVAL;
}

/* ---- process hardening ----------------------------------------------- */

int vv_crypto_harden_process(void)
{
	struct rlimit rl = { 0, 0 };
	int r = 0;

	/* Not dumpable: no core files and no ptrace attach by same-uid
	 * processes, so keys in memory stay in this process. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		vv_log(VV_LOG_ERR, "crypto: prctl(PR_SET_DUMPABLE) failed");
		r = VV_ESYS;
	}
	if (setrlimit(RLIMIT_CORE, &rl) != 0) {
		vv_log(VV_LOG_ERR, "crypto: setrlimit(RLIMIT_CORE) failed");
		r = VV_ESYS;
	}
	return r;
}
