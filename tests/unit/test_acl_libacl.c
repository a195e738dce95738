/*
 * test_acl_libacl.c - the engine's ACL text parser and printer against
 * libacl, the reference every admin's setfacl/getfacl use.
 *
 * The engine keeps its own bounds-checked code for ACLs (access.c) because
 * what it handles is the kernel's xattr blob, untrusted bytes from
 * setxattr, which libacl has no API for (acl_copy_ext is libacl's own
 * format).  So the two must agree: random ACLs written as text are parsed
 * by both, must be judged valid or invalid alike, and when valid must
 * hold the same entries; text printed by either is read back by the other
 * to the same entries.
 */
#include <acl/libacl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/acl.h>

#include "tap.h"
#include "vecvault/access.h"
#include "vecvault/error.h"

struct e3 {
	unsigned tag, id, perm;
};

static int cmp_e3(const void *a, const void *b)
{
	const struct e3 *x = a, *y = b;

	if (x->tag != y->tag)
		return x->tag < y->tag ? -1 : 1;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return (int)x->perm - (int)y->perm;
}

/* libacl's entries of acl, sorted; the count, or -1. */
static int lib_entries(acl_t acl, struct e3 *out, int max)
{
	acl_entry_t ent;
	int n = 0, w = ACL_FIRST_ENTRY;

	while (acl_get_entry(acl, w, &ent) == 1) {
		acl_tag_t tag;
		acl_permset_t ps;

		w = ACL_NEXT_ENTRY;
		if (n == max || acl_get_tag_type(ent, &tag) < 0 || acl_get_permset(ent, &ps) < 0)
			return -1;
		out[n].tag = (unsigned)tag;
		out[n].id = 0xFFFFFFFFu;
		if (tag == ACL_USER || tag == ACL_GROUP) {
			id_t *q = acl_get_qualifier(ent);

			if (!q)
				return -1;
			out[n].id = (unsigned)*q;
			acl_free(q);
		}
		out[n].perm = (acl_get_perm(ps, ACL_READ) ? 4u : 0) |
			      (acl_get_perm(ps, ACL_WRITE) ? 2u : 0) |
			      (acl_get_perm(ps, ACL_EXECUTE) ? 1u : 0);
		n++;
	}
	qsort(out, (size_t)n, sizeof(*out), cmp_e3);
	return n;
}

/* The engine's blob as entries, sorted (the blob is little-endian). */
static int vv_entries(const uint8_t *b, size_t len, struct e3 *out, int max)
{
	int n = 0;

	for (size_t off = VV_ACL_HDR; off + VV_ACL_ENTRY <= len && n < max; off += VV_ACL_ENTRY, n++) {
		out[n].tag = (unsigned)(b[off] | b[off + 1] << 8);
		out[n].perm = (unsigned)(b[off + 2] | b[off + 3] << 8);
		out[n].id = (unsigned)b[off + 4] | (unsigned)b[off + 5] << 8 |
			    (unsigned)b[off + 6] << 16 | (unsigned)b[off + 7] << 24;
	}
	qsort(out, (size_t)n, sizeof(*out), cmp_e3);
	return n;
}

static unsigned rnd(unsigned n)
{
	return (unsigned)(random() % n);
}

static void perm_text(char *s, unsigned p)
{
	s[0] = p & 4 ? 'r' : '-';
	s[1] = p & 2 ? 'w' : '-';
	s[2] = p & 1 ? 'x' : '-';
	s[3] = '\0';
}

/* A random ACL as text: usually valid, sometimes missing a base entry or
 * the mask, or naming an id twice. */
static void random_text(char *t, size_t cap)
{
	static const char *const base[] = { "user::", "group::", "other::" };
	unsigned nu = rnd(4), ng = rnd(4);
	bool mask = (nu + ng) ? rnd(8) != 0 : rnd(3) == 0;
	size_t off = 0;
	char p[4];

	t[0] = '\0';
	for (int i = 0; i < 3; i++) {
		if (rnd(40) == 0)
			continue;                       /* a missing base entry */
		perm_text(p, rnd(8));
		off += (size_t)snprintf(t + off, cap - off, "%s%s%s", off ? "," : "", base[i], p);
	}
	for (unsigned i = 0; i < nu; i++) {
		perm_text(p, rnd(8));
		off += (size_t)snprintf(t + off, cap - off, "%suser:%u:%s", off ? "," : "",
					1000 + rnd(6), p);
	}
	for (unsigned i = 0; i < ng; i++) {
		perm_text(p, rnd(8));
		off += (size_t)snprintf(t + off, cap - off, "%sgroup:%u:%s", off ? "," : "",
					100 + rnd(6), p);
	}
	if (mask) {
		perm_text(p, rnd(8));
		snprintf(t + off, cap - off, "%smask::%s", off ? "," : "", p);
	}
}

int main(void)
{
	int agree = 0, valid = 0, invalid = 0, roundtrip = 0, fails = 0;

	srandom(20261206);
	for (int i = 0; i < 20000; i++) {
		struct e3 a[32], b[32];
		char text[1024], *ours_text = NULL;
		uint8_t *blob = NULL;
		size_t blen = 0;
		acl_t acl = NULL;
		bool lib_ok;
		int r, na, nb;

		random_text(text, sizeof(text));
		acl = acl_from_text(text);
		lib_ok = acl && acl_valid(acl) == 0;
		r = vv_acl_from_text(text, &blob, &blen);
		if (lib_ok != (r == 0)) {
			if (fails++ < 5)
				printf("# '%s': libacl %s, engine %d\n", text, lib_ok ? "valid" : "invalid", r);
			goto next;
		}
		if (!lib_ok) {
			invalid++;
			agree++;
			goto next;
		}
		valid++;
		na = lib_entries(acl, a, 32);
		nb = vv_entries(blob, blen, b, 32);
		if (na != nb || memcmp(a, b, (size_t)na * sizeof(*a)) != 0) {
			if (fails++ < 5)
				printf("# '%s': different entries\n", text);
			goto next;
		}
		agree++;
		/* The engine's text, read by libacl; libacl's text, read by the engine. */
		if (vv_acl_to_text(blob, blen, &ours_text) == 0) {
			acl_t back = acl_from_text(ours_text);
			char *lt = acl_to_any_text(acl, NULL, ',', TEXT_NUMERIC_IDS);
			uint8_t *b2 = NULL;
			size_t b2len = 0;

			if (back && lib_entries(back, a, 32) == nb && memcmp(a, b, (size_t)nb * sizeof(*a)) == 0 &&
			    lt && vv_acl_from_text(lt, &b2, &b2len) == 0 && b2len == blen &&
			    memcmp(b2, blob, blen) == 0)
				roundtrip++;
			else if (fails++ < 5)
				printf("# '%s': text round trip differs ('%s' / '%s')\n", text, ours_text,
				       lt ? lt : "?");
			acl_free(back);
			acl_free(lt);
			free(b2);
		}
next:
		free(ours_text);
		free(blob);
		acl_free(acl);
	}
	printf("# %d valid, %d invalid, %d agreed, %d round trips\n", valid, invalid, agree, roundtrip);
	is_int(fails, 0, "the engine and libacl agree on 20000 random ACL texts");
	ok(valid > 5000 && invalid > 100, "the sample holds valid and invalid ACLs");
	is_int(roundtrip, valid, "every valid ACL's text reads back across the two");
	return tap_done();
}
