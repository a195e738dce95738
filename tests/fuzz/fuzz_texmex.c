/*
 * fuzz_texmex.c - libFuzzer target: the TEXMEX (.fvecs/.bvecs/.ivecs)
 * header parser.  The first input byte picks the format.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "vecvault/vector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "a.fvecs", "a.bvecs", "a.ivecs" };
	struct vv_segment_info si;
	const char *why;

	if (size < 1)
		return 0;
	const char *name = names[data[0] % 3];
	data++;
	size--;
	if (vv_segment_probe(vv_segment_format_from_name(name), data, size < VV_VEC_PROBE_LEN ? size : VV_VEC_PROBE_LEN, size, &si, &why) == 0) {
		if (si.dim == 0 || si.dim > VV_VEC_MAX_DIM || si.count * si.stride != size || si.data_off != 4)
			abort();
	} else if (!why) {
		abort();
	}
	return 0;
}
