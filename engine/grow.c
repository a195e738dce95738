/*
 * grow.c - growable arrays (grow.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grow.h"
#include "vecvault/error.h"

int vv_grow(void *arrp, size_t *cap, size_t need, size_t size)
{
	size_t nc = *cap ? *cap : VV_GROW_FIRST;
	void *old, *p;

	if (need <= *cap)
		return 0;
	if (size == 0)
		return VV_EINVAL;
	while (nc < need) {
		if (nc > SIZE_MAX / 2)
			return VV_ENOMEM;
		nc *= 2;
	}
	if (nc > SIZE_MAX / size)
		return VV_ENOMEM;
	/* The pointer object is a T *, read and written as bytes: T * and
	 * void * share one representation on every platform POSIX runs on,
	 * and memcpy keeps the access clear of the aliasing rules. */
	memcpy(&old, arrp, sizeof(old));
	if (!(p = realloc(old, nc * size)))
		return VV_ENOMEM;
	memcpy(arrp, &p, sizeof(p));
	*cap = nc;
	return 0;
}
