/*
 * fuzz_npy.c - libFuzzer target: the .npy header parser (segments and id
 * sidecars).  The input is a whole file; a few sizes around the real one
 * are also tried, as the daemon passes the size from metadata.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "vecvault/vector.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vv_segment_info si;
	const char *why;
	size_t head = size < VV_VEC_PROBE_LEN ? size : VV_VEC_PROBE_LEN;
	uint64_t sizes[3] = { size, size + 64, size > 8 ? size - 8 : 0 };

	for (int i = 0; i < 3; i++) {
		if (vv_segment_probe(VV_SEG_NPY, data, head, sizes[i], &si, &why) == 0) {
			/* invariants the scan relies on */
			if (si.dim == 0 || si.dim > VV_VEC_MAX_DIM || si.data_off > sizes[i] ||
			    si.count * si.stride + si.data_off != sizes[i])
				abort();
		} else if (!why) {
			abort();
		}
		if (vv_segment_probe_ids(data, head, sizes[i], &si, &why) == 0 &&
		    si.count * 8 + si.data_off != sizes[i])
			abort();
	}
	return 0;
}
