/*
 * test_crypto.c - known-answer, round-trip and tamper tests for crypto.c.
 *
 * Known answers come from the GCM specification (AES-256-GCM test cases 13
 * and 16), FIPS 180-2 (SHA-256 "abc"), draft-irtf-cfrg-xchacha (A.3.1), and
 * an independent BLAKE2b implementation (Python hashlib) for the keyed MAC,
 * the chunk key and crypto_kdf subkeys.  Every authentication failure must
 * give VV_ECORRUPT and leave the output buffer zeroed.
 */
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>

#include "crypto_int.h"
#include "vecvault/error.h"
#include "tap.h"

static void unhex(uint8_t *out, const char *hex)
{
	size_t n = strlen(hex) / 2;
	if (vv_hex_decode(out, n, hex, strlen(hex)) < 0)
		memset(out, 0xee, n);
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static void test_hash_mac(void)
{
	uint8_t out[32], want[32], key[32];
	struct vv_mac_state st;

	vv_sha256(out, "abc", 3);
	unhex(want, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	ok(memcmp(out, want, 32) == 0, "sha256(abc) known answer");

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	unhex(want, "d63a32d3e44738d7907f964316c241adaba0abfeabc32349677578a15a203f7f");
	is_int(vv_mac(out, key, "abc", 3), 0, "vv_mac ok");
	ok(memcmp(out, want, 32) == 0, "keyed blake2b-256 known answer");

	memset(out, 0, sizeof(out));
	is_int(vv_mac_init(&st, key), 0, "mac_init");
	vv_mac_update(&st, "a", 1);
	vv_mac_update(&st, "", 0);
	vv_mac_update(&st, "bc", 2);
	is_int(vv_mac_final(&st, out), 0, "mac_final");
	ok(memcmp(out, want, 32) == 0, "incremental mac equals one-shot");

	key[0] ^= 1;
	vv_mac(out, key, "abc", 3);
	ok(memcmp(out, want, 32) != 0, "mac depends on key");
}

static void test_kdf_keys(void)
{
	uint8_t master[32], out[32], out2[32], want[32], id[32], coll[32];

	for (int i = 0; i < 32; i++) {
		master[i] = (uint8_t)i;
		id[i] = (uint8_t)i;
		coll[i] = 7;
	}
	is_int(vv_subkey(out, master, 5, "vvmeta__"), 0, "subkey ok");
	unhex(want, "5bad870970c6e52a84fa8cd74c6cc39b4cbb5f3ffa0311a9ba36b5fb748461d5");
	ok(memcmp(out, want, 32) == 0, "crypto_kdf subkey known answer");
	vv_subkey(out2, master, 6, "vvmeta__");
	ok(memcmp(out, out2, 32) != 0, "subkey depends on id");
	vv_subkey(out2, master, 5, "vvaudit_");
	ok(memcmp(out, out2, 32) != 0, "subkey depends on context");

	is_int(vv_chunk_key(out, coll, id, 32), 0, "chunk key ok");
	unhex(want, "6c83208d6baebb0350468594a2f8fdb42ce6739f132093032e86e4f20082f963");
	ok(memcmp(out, want, 32) == 0, "chunk key = blake2b(coll, vv-chunk||id) known answer");
	id[31] ^= 0x80;
	vv_chunk_key(out2, coll, id, 32);
	ok(memcmp(out, out2, 32) != 0, "chunk key depends on chunk id");
}

static void test_argon(void)
{
	struct vv_kdf_params p, q;
	uint8_t salt[VV_SALT_BYTES] = { 1, 2, 3 }, k1[32], k2[32];

	vv_kdf_params_for(VV_KDF_TEST, &p);
	ok(vv_kdf_params_ok(&p, true), "test profile ok when allowed");
	ok(!vv_kdf_params_ok(&p, false), "test profile refused when not allowed");
	vv_kdf_params_for(VV_KDF_INTERACTIVE, &q);
	ok(vv_kdf_params_ok(&q, false), "interactive profile ok");
	q.opslimit -= 1;
	ok(!vv_kdf_params_ok(&q, false), "below interactive ops refused");
	vv_kdf_params_for(VV_KDF_MODERATE, &q);
	ok(vv_kdf_params_ok(&q, false), "moderate profile ok");
	q = p;
	q.memlimit /= 2;
	ok(!vv_kdf_params_ok(&q, true), "below minimum memory refused even in test mode");

	is_int(vv_kdf_derive(k1, "pw", 2, salt, &p), 0, "argon2id derive");
	is_int(vv_kdf_derive(k2, "pw", 2, salt, &p), 0, "argon2id derive again");
	ok(memcmp(k1, k2, 32) == 0, "argon2id deterministic");
	is_int(vv_kdf_derive(k2, "pX", 2, salt, &p), 0, "derive other pass");
	ok(memcmp(k1, k2, 32) != 0, "argon2id depends on passphrase");
	salt[15] = 9;
	is_int(vv_kdf_derive(k2, "pw", 2, salt, &p), 0, "derive other salt");
	ok(memcmp(k1, k2, 32) != 0, "argon2id depends on salt");
	q = p;
	q.opslimit = 0;
	is_int(vv_kdf_derive(k2, "pw", 2, salt, &q), VV_EINVAL, "argon2id refuses ops below minimum");
	ok(all_zero(k2, 32), "failed derive zeroes output");
}

static void test_gcm(void)
{
	uint8_t key[32], iv[12], pt[60], ad[20], ct[60], want[60], tag[16], wtag[16], back[60];
	struct vv_gcm *g = NULL, *z = NULL;
	uint8_t zk[32] = { 0 }, ziv[12] = { 0 };

	/* Test case 13: zero key, zero IV, empty everything. */
	is_int(vv_gcm_new(zk, &z), 0, "gcm_new zero key");
	is_int(vv_gcm_seal(z, ziv, NULL, 0, NULL, 0, NULL, tag), 0, "gcm seal empty");
	unhex(wtag, "530f8afbc74536b9a963b4f1c4cb738b");
	ok(memcmp(tag, wtag, 16) == 0, "AES-256-GCM test case 13 tag");
	vv_gcm_free(z);

	/* Test case 16: 60-byte plaintext with 20 bytes of AAD. */
	unhex(key, "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
	unhex(iv, "cafebabefacedbaddecaf888");
	unhex(pt, "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
		  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
	unhex(ad, "feedfacedeadbeeffeedfacedeadbeefabaddad2");
	unhex(want, "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
		    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662");
	unhex(wtag, "76fc6ece0f4e1768cddf8853bb2d551b");
	is_int(vv_gcm_new(key, &g), 0, "gcm_new");
	is_int(vv_gcm_seal(g, iv, ad, 20, pt, 60, ct, tag), 0, "gcm seal");
	ok(memcmp(ct, want, 60) == 0, "AES-256-GCM test case 16 ciphertext");
	ok(memcmp(tag, wtag, 16) == 0, "AES-256-GCM test case 16 tag");

	/* The context is reused: open, then seal again, then open in place. */
	is_int(vv_gcm_open(g, iv, ad, 20, ct, 60, tag, back), 0, "gcm open");
	ok(memcmp(back, pt, 60) == 0, "gcm round trip");
	memset(ct, 0, sizeof(ct));
	vv_gcm_seal(g, iv, ad, 20, pt, 60, ct, tag);
	ok(memcmp(ct, want, 60) == 0 && memcmp(tag, wtag, 16) == 0, "context reuse gives same answer");
	memcpy(back, ct, 60);
	is_int(vv_gcm_open(g, iv, ad, 20, back, 60, tag, back), 0, "gcm open in place");
	ok(memcmp(back, pt, 60) == 0, "in-place round trip");

	ct[7] ^= 0x10;
	memset(back, 0xaa, sizeof(back));
	is_int(vv_gcm_open(g, iv, ad, 20, ct, 60, tag, back), VV_ECORRUPT, "gcm flipped ct bit");
	ok(all_zero(back, 60), "gcm tamper zeroes output");
	ct[7] ^= 0x10;
	tag[15] ^= 1;
	memset(back, 0xaa, sizeof(back));
	is_int(vv_gcm_open(g, iv, ad, 20, ct, 60, tag, back), VV_ECORRUPT, "gcm flipped tag bit");
	ok(all_zero(back, 60), "gcm bad tag zeroes output");
	tag[15] ^= 1;
	ad[0] ^= 1;
	is_int(vv_gcm_open(g, iv, ad, 20, ct, 60, tag, back), VV_ECORRUPT, "gcm flipped ad bit");
	ad[0] ^= 1;
	iv[11] ^= 1;
	is_int(vv_gcm_open(g, iv, ad, 20, ct, 60, tag, back), VV_ECORRUPT, "gcm other nonce");
	iv[11] ^= 1;
	is_int(vv_gcm_open(g, iv, ad, 20, ct, 60, tag, back), 0, "gcm still opens after failures");
	vv_gcm_free(g);
	vv_gcm_free(NULL);

	/* A larger buffer (several AES blocks, not a multiple of 16). */
	{
		size_t n = (1u << 20) + 7;
		uint8_t *a = malloc(n), *b = malloc(n);
		vv_random_bytes(a, n);
		vv_gcm_new(key, &g);
		vv_gcm_seal(g, iv, NULL, 0, a, n, b, tag);
		ok(memcmp(a, b, 64) != 0, "1 MiB sealed");
		is_int(vv_gcm_open(g, iv, NULL, 0, b, n, tag, b), 0, "1 MiB opens");
		ok(memcmp(a, b, n) == 0, "1 MiB round trip");
		vv_gcm_free(g);
		free(a);
		free(b);
	}
}

static void test_xchacha(void)
{
	const char *msg = "Ladies and Gentlemen of the class of '99: If I could offer you only one "
			  "tip for the future, sunscreen would be it.";
	size_t n = strlen(msg);
	uint8_t key[32], nonce[24], ad[12], ct[128], want[128], tag[16], wtag[16], back[128];

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(0x80 + i);
	for (int i = 0; i < 24; i++)
		nonce[i] = (uint8_t)(0x40 + i);
	unhex(ad, "50515253c0c1c2c3c4c5c6c7");
	unhex(want, "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
		    "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
		    "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
		    "21f9664c97637da9768812f615c68b13b52e");
	unhex(wtag, "c0875924c1c7987947deafd8780acf49");
	is_int(vv_xchacha_seal(ct, tag, (const uint8_t *)msg, n, ad, 12, nonce, key), 0, "xchacha seal");
	ok(memcmp(ct, want, n) == 0, "XChaCha20-Poly1305 A.3.1 ciphertext");
	ok(memcmp(tag, wtag, 16) == 0, "XChaCha20-Poly1305 A.3.1 tag");
	is_int(vv_xchacha_open(back, ct, n, tag, ad, 12, nonce, key), 0, "xchacha open");
	ok(memcmp(back, msg, n) == 0, "xchacha round trip");

	ct[0] ^= 1;
	memset(back, 0xaa, sizeof(back));
	is_int(vv_xchacha_open(back, ct, n, tag, ad, 12, nonce, key), VV_ECORRUPT, "xchacha flipped ct");
	ok(all_zero(back, n), "xchacha tamper zeroes output");
	ct[0] ^= 1;
	tag[0] ^= 1;
	memset(back, 0xaa, sizeof(back));
	is_int(vv_xchacha_open(back, ct, n, tag, ad, 12, nonce, key), VV_ECORRUPT, "xchacha flipped tag");
	ok(all_zero(back, n), "xchacha bad tag zeroes output");
	tag[0] ^= 1;
	ad[11] ^= 1;
	is_int(vv_xchacha_open(back, ct, n, tag, ad, 12, nonce, key), VV_ECORRUPT, "xchacha flipped ad");
	ad[11] ^= 1;
	memcpy(back, ct, n);
	is_int(vv_xchacha_open(back, back, n, tag, ad, 12, nonce, key), 0, "xchacha open in place");
	ok(memcmp(back, msg, n) == 0, "xchacha in-place round trip");
}

static void test_wrap(void)
{
	uint8_t key[32], kek[32], kek2[32], w1[VV_WRAPPED_BYTES], w2[VV_WRAPPED_BYTES], out[32];
	const char *ad = "store-id:slot0";

	vv_random_bytes(key, 32);
	vv_random_bytes(kek, 32);
	memcpy(kek2, kek, 32);
	kek2[31] ^= 1;
	is_int(vv_key_wrap(w1, key, kek, (const uint8_t *)ad, strlen(ad)), 0, "wrap");
	vv_key_wrap(w2, key, kek, (const uint8_t *)ad, strlen(ad));
	ok(memcmp(w1, w2, sizeof(w1)) != 0, "two wraps differ (random nonce)");
	ok(memmem(w1, sizeof(w1), key, 32) == NULL, "wrapped bytes do not contain the key");
	is_int(vv_key_unwrap(out, w1, kek, (const uint8_t *)ad, strlen(ad)), 0, "unwrap");
	ok(memcmp(out, key, 32) == 0, "unwrap gives the key");
	memset(out, 0xaa, 32);
	is_int(vv_key_unwrap(out, w1, kek2, (const uint8_t *)ad, strlen(ad)), VV_ECORRUPT, "unwrap wrong kek");
	ok(all_zero(out, 32), "failed unwrap zeroes key");
	is_int(vv_key_unwrap(out, w1, kek, (const uint8_t *)"store-id:slot1", 14), VV_ECORRUPT,
	       "unwrap wrong ad");
	w1[3] ^= 1;
	is_int(vv_key_unwrap(out, w1, kek, (const uint8_t *)ad, strlen(ad)), VV_ECORRUPT, "unwrap bad nonce");
}

static void test_misc(void)
{
	uint8_t b[4] = { 0x00, 0xab, 0x7f, 0xff }, d[4];
	char hex[9];
	void *p;

	vv_hex_encode(hex, b, 4);
	is_str(hex, "00ab7fff", "hex encode");
	is_int(vv_hex_decode(d, 4, hex, 8), 0, "hex decode");
	ok(memcmp(b, d, 4) == 0, "hex round trip");
	is_int(vv_hex_decode(d, 4, "00AB7FFF", 8), VV_ECORRUPT, "hex upper case refused");
	is_int(vv_hex_decode(d, 4, "00ab7ff", 7), VV_ECORRUPT, "hex short refused");
	is_int(vv_hex_decode(d, 4, "00ab7fzz", 8), VV_ECORRUPT, "hex bad digit refused");
	is_int(vv_hex_decode(d, 4, "00ab 7ff", 8), VV_ECORRUPT, "hex space refused");

	ok(vv_memeq_ct("abcd", "abcd", 4), "memeq equal");
	ok(!vv_memeq_ct("abcd", "abce", 4), "memeq differ");
	p = vv_secure_alloc(64);
	ok(p != NULL, "secure alloc");
	memset(p, 0x5a, 64);
	vv_memzero(p, 64);
	ok(all_zero(p, 64), "memzero");
	vv_secure_free(p);
	vv_secure_free(NULL);

	is_int(vv_crypto_harden_process(), 0, "harden process");
	is_int(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0, "process no longer dumpable");
}

/* Vault-user password hashes: a hash made elsewhere (libsodium's string
 * form, as other Argon2id implementations write it) verifies, ours round
 * trip, and nothing else passes. */
static void test_pwhash(void)
{
	/* Argon2id, m=32 MiB, t=4, p=1, password "lol" (a libsodium string
	 * from an interoperability suite): the known answer. */
	static const char kat[] =
		"$argon2id$v=19$m=32768,t=4,p=1$hpzXc4WKvufO8pLbVp5SAQ$"
		"9PnUVB2tJVKyPTKDUkq+vqKxvK7QEkR0K8zDnu62hSI";
	char h1[VV_PWHASH_STR_BYTES], h2[VV_PWHASH_STR_BYTES], bad[sizeof(kat)];

	is_int(vv_pwhash_verify(kat, "lol", 3), 0, "pwhash: known answer verifies");
	is_int(vv_pwhash_verify(kat, "lol!", 4), VV_EBADPASS, "pwhash: known answer, other password");
	memcpy(bad, kat, sizeof(kat));
	bad[sizeof(kat) - 3] ^= 1;
	is_int(vv_pwhash_verify(bad, "lol", 3), VV_EBADPASS, "pwhash: a changed hash fails");

	is_int(vv_pwhash_str(h1, "correct horse", 13), 0, "pwhash: hash");
	is_int(vv_pwhash_str(h2, "correct horse", 13), 0, "pwhash: hash again");
	ok(strncmp(h1, "$argon2id$v=19$m=65536,t=2,p=1$", 31) == 0,
	   "pwhash: Argon2id with at least the interactive limits");
	ok(strcmp(h1, h2) != 0, "pwhash: salted (two hashes differ)");
	is_int(vv_pwhash_verify(h1, "correct horse", 13), 0, "pwhash: round trip");
	is_int(vv_pwhash_verify(h1, "correct hors", 12), VV_EBADPASS, "pwhash: prefix refused");
	is_int(vv_pwhash_verify(h1, "correct horse!", 14), VV_EBADPASS, "pwhash: longer refused");
	is_int(vv_pwhash_verify("$argon2i$v=19$m=4096,t=3,p=1$MzE4ODFiZWFlMjAzOWUAAA$"
				"FWUV6tsyJ32qThiLi1cCsLIbf3dIOG/RwXcTzt536KY", "password", 8),
	       VV_EINVAL, "pwhash: Argon2i (not id) refused");
	is_int(vv_pwhash_verify("", "x", 1), VV_EINVAL, "pwhash: empty string refused");
	is_int(vv_pwhash_verify(NULL, "x", 1), VV_EINVAL, "pwhash: no hash refused");
	is_int(vv_pwhash_str(h2, "x", VV_PWHASH_PASS_MAX + 1), VV_EINVAL, "pwhash: over-long password");
}

static void test_b64url(void)
{
	uint8_t in[32], out[32];
	char t[VV_B64URL_LEN(32) + 1];

	for (int i = 0; i < 32; i++)
		in[i] = (uint8_t)(0xfb + i * 7);
	vv_b64url_encode(t, (const uint8_t *)"\xfb\xff\xbf", 3);
	is_str(t, "-_-_", "b64url: URL-safe alphabet known answer");
	vv_b64url_encode(t, (const uint8_t *)"ab", 2);
	is_str(t, "YWI", "b64url: no padding");
	vv_b64url_encode(t, in, 32);
	is_int(strlen(t), 43, "b64url: 32 bytes -> 43 characters");
	is_int(vv_b64url_decode(out, 32, t, 43), 0, "b64url: round trip");
	ok(memcmp(in, out, 32) == 0, "b64url: same bytes");
	is_int(vv_b64url_decode(out, 32, t, 42), VV_EINVAL, "b64url: short refused");
	ok(all_zero(out, 32), "b64url: failure zeroes");
	t[42] = t[42] == 'A' ? 'B' : 'A';
	ok(vv_b64url_decode(out, 32, t, 43) == VV_EINVAL || memcmp(in, out, 32) != 0,
	   "b64url: a changed last character is refused or decodes differently");
	is_int(vv_b64url_decode(out, 2, "YWJ", 3), VV_EINVAL, "b64url: stray low bits refused");
	is_int(vv_b64url_decode(out, 2, "YW+", 3), VV_EINVAL, "b64url: '+' is not URL-safe");
	is_int(vv_b64url_decode(out, 2, "YWI=", 4), VV_EINVAL, "b64url: padding refused");
}

int main(void)
{
	is_int(vv_crypto_init(), 0, "crypto init");
	is_int(vv_crypto_init(), 0, "crypto init is idempotent");
	test_hash_mac();
	test_kdf_keys();
	test_argon();
	test_gcm();
	test_xchacha();
	test_wrap();
	test_misc();
	test_pwhash();
	test_b64url();
	return tap_done();
}
