/*
 * test_grow.c - growable arrays (engine/grow.h): growth from empty,
 * doubling, sizes that would wrap size_t refused before realloc is asked,
 * and a failed realloc leaving the old array as it was.
 *
 * realloc is wrapped at link time (CMakeLists: -Wl,--wrap=realloc for this
 * test only), so the test counts calls and can make the next one fail.
 */
#include <stdint.h>
#include <stdlib.h>

#include "grow.h"
#include "tap.h"
#include "vecvault/error.h"

void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);

static int calls, fail_next;

void *__wrap_realloc(void *p, size_t n)
{
	calls++;
	if (fail_next) {
		fail_next = 0;
		return NULL;
	}
	return __real_realloc(p, n);
}

struct rec { uint64_t a; char name[24]; };

static void from_empty(void)
{
	uint32_t *v = NULL;
	size_t n = 0, cap = 0;
	int bad = 0, r = 0;

	calls = 0;
	is_int(VV_GROW(v, n, cap), 0, "an empty array grows");
	ok(v != NULL, "it has storage");
	is_int(cap, VV_GROW_FIRST, "to VV_GROW_FIRST elements");
	for (uint32_t i = 0; i < 100000 && r == 0; i++)
		if ((r = VV_GROW(v, n, cap)) == 0)
			v[n++] = i * 7u;
	is_int(r, 0, "100000 appends");
	for (size_t i = 0; i < n; i++)
		bad += v[i] != (uint32_t)i * 7u;
	is_int(bad, 0, "every element kept across the reallocations");
	is_int(cap, 131072, "the capacity doubled (16 << 13)");
	is_int(calls, 14, "one realloc per doubling, none while there is room");
	free(v);
}

static void need_many(void)
{
	struct rec *v = NULL;
	size_t cap = 0;

	is_int(vv_grow(&v, &cap, 100, sizeof(*v)), 0, "room for 100 at once");
	is_int(cap, 128, "doubled until it fits");
	v[99].a = 1;
	calls = 0;
	is_int(vv_grow(&v, &cap, 128, sizeof(*v)), 0, "need == cap");
	is_int(calls, 0, "is no realloc");
	is_int(vv_grow(&v, &cap, 0, sizeof(*v)), 0, "need 0 is a no-op");
	is_int(vv_grow(&v, &cap, 129, sizeof(*v)), 0, "one past cap");
	is_int(cap, 256, "doubles");
	is_int(v[99].a, 1, "contents kept");
	free(v);
}

static void overflow(void)
{
	/* Fake arrays: realloc must never see them (calls stays 0). */
	uint64_t fake;
	uint64_t *v = &fake;
	char *b = (char *)&fake;
	size_t cap;

	calls = 0;
	cap = SIZE_MAX / sizeof(*v) / 2 + 1;
	is_int(VV_GROW(v, cap, cap), VV_ENOMEM, "n * size past SIZE_MAX is refused");
	ok(v == &fake && cap == SIZE_MAX / sizeof(*v) / 2 + 1, "pointer and capacity unchanged");

	cap = SIZE_MAX / 2 + 1;
	is_int(VV_GROW(b, cap, cap), VV_ENOMEM, "doubling past SIZE_MAX (size 1) is refused");
	ok(b == (char *)&fake && cap == SIZE_MAX / 2 + 1, "pointer and capacity unchanged");

	cap = SIZE_MAX;
	is_int(vv_grow(&b, &cap, SIZE_MAX, 1), 0, "need SIZE_MAX with cap SIZE_MAX: room already");

	v = NULL;
	cap = 0;
	is_int(vv_grow(&v, &cap, SIZE_MAX / sizeof(*v) + 1, sizeof(*v)), VV_ENOMEM,
	       "an empty array asked for more than SIZE_MAX / size elements");
	ok(v == NULL && cap == 0, "stays empty");
	is_int(vv_grow(&v, &cap, 1, 0), VV_EINVAL, "element size 0 is refused");
	is_int(calls, 0, "realloc never asked for a size that wrapped");
}

static void failure_keeps_old(void)
{
	struct rec *v = NULL, *before;
	size_t n = 0, cap = 0;
	int bad = 0;

	while (n < VV_GROW_FIRST) {
		if (VV_GROW(v, n, cap) < 0)
			break;
		v[n].a = n;
		snprintf(v[n].name, sizeof(v[n].name), "rec %zu", n);
		n++;
	}
	before = v;
	fail_next = 1;
	is_int(VV_GROW(v, n, cap), VV_ENOMEM, "a realloc failure is VV_ENOMEM");
	ok(v == before, "the old pointer is kept");
	is_int(cap, VV_GROW_FIRST, "and the old capacity");
	for (size_t i = 0; i < n; i++) {
		char want[24];
		snprintf(want, sizeof(want), "rec %zu", i);
		bad += v[i].a != i || strcmp(v[i].name, want) != 0;
	}
	is_int(bad, 0, "the old array is whole and readable");
	is_int(VV_GROW(v, n, cap), 0, "the next try grows it");
	is_int(cap, 2 * VV_GROW_FIRST, "to twice the capacity");
	v[n].a = n;
	n++;
	bad = 0;
	for (size_t i = 0; i < n; i++)
		bad += v[i].a != i;
	is_int(bad, 0, "with every element");
	free(v);

	/* Empty and failing: still empty, nothing to free but NULL. */
	v = NULL;
	cap = 0;
	fail_next = 1;
	is_int(VV_GROW(v, 0, cap), VV_ENOMEM, "the first growth fails");
	ok(v == NULL && cap == 0, "the array stays empty");
}

int main(void)
{
	from_empty();
	need_many();
	overflow();
	failure_keeps_old();
	return tap_done();
}
