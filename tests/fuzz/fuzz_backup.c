/*
 * fuzz_backup.c - libFuzzer target for the backup repository parsers
 * (engine/repo.c): byte 0 picks which, the rest is the input.
 *   0: vv_manifest_decode, a manifest body.  It is sealed under the
 *      repository key, so only a holder of the key can write one; still,
 *      a repository shipped to others (rsync) is read by whoever restores,
 *      and the parser must hold against a key holder's malice.
 *   1: vv_repo_config_parse, DEST/config, plaintext and parsed before any
 *      key exists: whoever can write DEST chooses every byte.
 * Errors must be VV_ECORRUPT / VV_EFORMAT / VV_ENOMEM, never a crash.
 * Invariants asserted (abort() on violation):
 *   - an accepted body encodes and decodes again to the same bytes (the
 *     format has one spelling), with the same counts; names are 1..255
 *     bytes without '/' or NUL and never "." or "..";
 *   - an accepted config has 1..16 slots and exactly the size they need.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo_int.h"
#include "vecvault/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void manifest(const uint8_t *p, size_t n)
{
	struct vv_manifest m, m2;
	uint8_t *enc = NULL, *enc2 = NULL;
	size_t elen = 0, elen2 = 0;
	int r = vv_manifest_decode(p, n, &m);

	if (r < 0) {
		if (r != VV_ECORRUPT && r != VV_ENOMEM)
			abort();
		return;
	}
	for (size_t i = 0; i < m.ndirents; i++) {
		const char *s = m.dirents[i].name;
		size_t l = strlen(s);
		if (l < 1 || l > 255 || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, ".."))
			abort();
	}
	if (vv_manifest_encode(&m, &enc, &elen) == 0) {
		if (vv_manifest_decode(enc, elen, &m2) < 0)
			abort();
		if (m2.ninodes != m.ninodes || m2.ndirents != m.ndirents || m2.nxattrs != m.nxattrs ||
		    m2.nextents != m.nextents || m2.nobjs != m.nobjs || m2.ncolls != m.ncolls)
			abort();
		if (vv_manifest_encode(&m2, &enc2, &elen2) != 0 || elen2 != elen || memcmp(enc, enc2, elen))
			abort();
		vv_manifest_free(&m2);
	}
	free(enc);
	free(enc2);
	vv_manifest_free(&m);
}

static void config(const uint8_t *p, size_t n)
{
	uint8_t id[VV_REPO_ID_BYTES];
	int slots = 0, r = vv_repo_config_parse(p, n, id, &slots);

	if (r < 0) {
		if (r != VV_ECORRUPT && r != VV_EFORMAT)
			abort();
		return;
	}
	if (slots < 1 || slots > 16 || n != 40 + (size_t)slots * 108 + 32)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] == 0)
		manifest(data + 1, size - 1);
	else if (data[0] == 1)
		config(data + 1, size - 1);
	return 0;
}
