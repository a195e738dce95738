/*
 * grow.h - growable arrays: one overflow-checked place for "append, and
 * double the array when it is full".
 *
 * An array is three fields the caller owns: the pointer (NULL when empty),
 * the number of elements in use and the capacity, a size_t:
 *
 *	struct ids { uint64_t *id; size_t n, cap; } l = { 0 };
 *	if (VV_GROW(l.id, l.n, l.cap) < 0)
 *		return VV_ENOMEM;
 *	l.id[l.n++] = x;
 *	...
 *	free(l.id);
 *
 * Growth doubles the capacity (VV_GROW_FIRST elements for an empty array,
 * or more until `need` fits), so n appends cost O(n) copying.  A failure
 * changes nothing: the old array stays valid, with its old capacity, and
 * still belongs to the caller (who frees it as usual).
 *
 * Not for arrays that hold secrets (realloc leaves the old bytes behind:
 * those live in sodium memory) nor for buffers whose size another party
 * sets (a getsockopt or getpwnam_r retry).
 */
#ifndef VV_GROW_H
#define VV_GROW_H

#include <stddef.h>

#define VV_GROW_FIRST 16

/* Make *cap >= need for the array whose pointer is at arrp (a T **, passed
 * as void * so that one function serves every T) and whose elements are
 * size bytes (> 0).  No-op when need <= *cap.  0, or VV_ENOMEM when the
 * new capacity times size would not fit in size_t or realloc fails; then
 * neither *arrp nor *cap changed. */
int vv_grow(void *arrp, size_t *cap, size_t need, size_t size);

/* Room for one more element after the first n of arr (an lvalue of type
 * T *; cap a size_t lvalue). */
#define VV_GROW(arr, n, cap) vv_grow(&(arr), &(cap), (size_t)(n) + 1, sizeof(*(arr)))

#endif
