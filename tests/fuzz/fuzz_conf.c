/*
 * fuzz_conf.c - libFuzzer target for the vecvault.conf parser
 * (engine/store.c, through vv_store_conf_parse: the parser vv_store_open
 * runs on STORE/vecvault.conf).
 *
 * Untrusted bytes: the whole conf.  It is the only plaintext file of a
 * store and is parsed before any key exists (its MAC is checked only after
 * unlock), so whoever can write the store directory chooses every byte.
 * Errors must be VV_EFORMAT or VV_ECORRUPT (or VV_ENOMEM), never a crash.
 * Invariants asserted (abort() on violation) for what is accepted:
 *   - version 1, a 32-hex-digit store id, page size a power of two in
 *     512..65536, created >= 0;
 *   - 1..16 slots, indexes strictly ascending in 0..15, Argon2id ops in
 *     1..256 and memory <= 64 GiB (the bounds that cap an edited conf);
 *   - no NUL byte anywhere, and the MAC covers exactly the bytes before a
 *     final "mac = <64 hex>\n" line, i.e. macoff + 71 == size;
 *   - the MAC value is opaque to the parser: the same bytes with another
 *     MAC parse to the same result.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vecvault/error.h"
#include "vecvault/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_info(const struct vv_store_info *in)
{
	int last = -1;

	if (in->version != 1 || strlen(in->store_id) != 2 * VV_STORE_ID_BYTES ||
	    strspn(in->store_id, "0123456789abcdef") != 2 * VV_STORE_ID_BYTES)
		abort();
	if (in->page_size < 512 || in->page_size > 65536 || (in->page_size & (in->page_size - 1)))
		abort();
	if (in->created < 0 || in->nslots < 1 || in->nslots > VV_STORE_MAX_SLOTS)
		abort();
	for (int i = 0; i < in->nslots; i++) {
		if (in->slots[i].index <= last || in->slots[i].index >= VV_STORE_MAX_SLOTS)
			abort();
		if (in->slots[i].opslimit < 1 || in->slots[i].opslimit > 256 ||
		    in->slots[i].memlimit > (64ull << 30))
			abort();
		last = in->slots[i].index;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vv_store_info info, again;
	size_t macoff = 0, off2 = 0;
	uint8_t *copy;
	int r = vv_store_conf_parse(data, size, &info, &macoff);

	if (r != 0) {
		if (r != VV_EFORMAT && r != VV_ECORRUPT && r != VV_ENOMEM)
			abort();
		return 0;
	}
	check_info(&info);
	if (memchr(data, '\0', size) || macoff + 6 + 64 + 1 != size ||
	    memcmp(data + macoff, "mac = ", 6) != 0 || data[size - 1] != '\n')
		abort();
	/* Another MAC: same parse (only unlock looks at it). */
	if (!(copy = malloc(size)))
		return 0;
	memcpy(copy, data, size);
	memset(copy + macoff + 6, copy[macoff + 6] == '0' ? '1' : '0', 64);
	if (vv_store_conf_parse(copy, size, &again, &off2) != 0 || off2 != macoff ||
	    memcmp(&info, &again, sizeof(info)) != 0)
		abort();
	free(copy);
	return 0;
}
