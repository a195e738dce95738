/*
 * fuzz_acl.c - libFuzzer target for the ACL xattr parser (engine/access.c).
 *
 * The blob arrives from setxattr(system.posix_acl_*), i.e. from any local
 * user who owns a file: every entry point that reads it must reject garbage
 * with VV_EINVAL and never read out of bounds.  Also checks the invariants
 * that hold for whatever is accepted: normalising is idempotent, the text
 * form parses back to the same bytes, and the permission check on the
 * normalised blob never reports a corrupt ACL.
 *
 *   clang -g -fsanitize=fuzzer,address,undefined -I engine -I engine/include \
 *         tests/fuzz/fuzz_acl.c engine/access.c engine/log.c engine/error.c
 *   ./a.out tests/fuzz/corpus/acl
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vecvault/access.h"
#include "vecvault/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *norm = NULL, *again = NULL, *back = NULL, *acc = NULL, *def = NULL;
	size_t nlen = 0, alen = 0, blen = 0, acclen = 0, deflen = 0;
	char *text = NULL;
	int valid = vv_acl_valid(data, size);
	int r = vv_acl_normalize(data, size, &norm, &nlen);

	if ((valid == 0) != (r == 0))
		abort();
	if (r == 0) {
		struct vv_ident id = { 1000, 1000, 1, 0, NULL };
		struct vv_perm p = { S_IFREG | 0770, 0, 0, norm, nlen, false };
		uint32_t m;

		if (vv_acl_normalize(norm, nlen, &again, &alen) != 0 || alen != nlen ||
		    memcmp(norm, again, nlen) != 0)
			abort();
		if (vv_acl_to_text(norm, nlen, &text) != 0)
			abort();
		if (vv_acl_from_text(text, &back, &blen) != 0 || blen != nlen || memcmp(back, norm, nlen) != 0)
			abort();
		(void)vv_access_check(&id, &p, VV_MAY_READ | VV_MAY_WRITE);
		if (vv_acl_inherit(norm, nlen, S_IFDIR | 0777, 022, true, &m, &acc, &acclen, &def, &deflen) != 0)
			abort();
		if (acc && vv_acl_valid(acc, acclen) != 0)
			abort();
		if (vv_acl_chmod(norm, nlen, 0751) != 0)
			abort();
	} else {
		/* Unnormalised input straight into the check: must fail closed. */
		struct vv_ident id = { 1000, 1000, 1, 0, NULL };
		struct vv_perm p = { S_IFREG | 0777, 0, 0, data, size, false };

		if (size > 0 && vv_access_check(&id, &p, VV_MAY_READ) != VV_EACCES)
			abort();
	}
	free(norm);
	free(again);
	free(back);
	free(text);
	free(acc);
	free(def);
	return 0;
}
