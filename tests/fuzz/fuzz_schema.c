/*
 * fuzz_schema.c - libFuzzer target: schema xattr values (what a user may
 * setfattr on a collection) and segment name classification.  Checks that
 * the canonical form is a fixed point.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vecvault/vector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "user.vecvault.dim", "user.vecvault.metric",
					     "user.vecvault.dtype", "user.other" };
	char canon[16], again[16], name[64];

	if (size < 1)
		return 0;
	const char *xn = names[data[0] & 3];
	if (vv_schema_check_xattr(xn, (const char *)data + 1, size - 1, canon, sizeof(canon)) == 0) {
		if (vv_schema_check_xattr(xn, canon, strlen(canon), again, sizeof(again)) != 0 ||
		    strcmp(canon, again) != 0)
			abort();
	}
	if (size - 1 < sizeof(name)) {
		memcpy(name, data + 1, size - 1);
		name[size - 1] = 0;
		(void)vv_segment_name_is_segment(name);
		(void)vv_segment_format_from_name(name);
	}
	return 0;
}
