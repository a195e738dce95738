/*
 * test_access.c - the permission check, setattr owner rules and ACL blobs.
 *
 * Expected values marked "ext4" were measured on this machine's kernel
 * (6.x) with setfacl/getfacl/chmod/chown and os.stat as the oracle
 * (script shape: create under /tmp on ext4, act as uid 1000 via setresuid,
 * read back); the rest follow from the kernel sources named in access.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tap.h"
#include "vecvault/access.h"
#include "vecvault/error.h"

#define R VV_MAY_READ
#define W VV_MAY_WRITE
#define X VV_MAY_EXEC
#define REG S_IFREG
#define DIR_ S_IFDIR

/* ---- helpers ---- */

static uint8_t *acl(const char *text, size_t *len)
{
	uint8_t *b = NULL;
	int r = vv_acl_from_text(text, &b, len);

	if (r < 0) {
		printf("# bad test ACL '%s': %d\n", text, r);
		exit(2);
	}
	return b;
}

static char *text_of(const uint8_t *b, size_t len)
{
	char *s = NULL;

	if (vv_acl_to_text(b, len, &s) < 0)
		return NULL;
	return s;
}

/* Raw blob builder for hostile inputs. */
struct raw { uint8_t b[256]; size_t len; };

static void raw_u16(struct raw *r, uint16_t v) { r->b[r->len++] = (uint8_t)v; r->b[r->len++] = (uint8_t)(v >> 8); }
static void raw_u32(struct raw *r, uint32_t v) { raw_u16(r, (uint16_t)v); raw_u16(r, (uint16_t)(v >> 16)); }
static void raw_ent(struct raw *r, uint16_t tag, uint16_t perm, uint32_t id) { raw_u16(r, tag); raw_u16(r, perm); raw_u32(r, id); }

/* ---- the decision table ---- */

struct check_case {
	const char *name;
	uint32_t uid, gid, ngroups, groups[3];
	uint32_t mode, fuid, fgid;
	const char *acl;        /* NULL: none */
	int mask;
	int want;
};

static const struct check_case checks[] = {
	/* classic mode bits */
	{ "owner reads 0600", 1000, 1000, 0, {0}, REG | 0600, 1000, 1000, NULL, R, 0 },
	{ "owner writes 0600", 1000, 1000, 0, {0}, REG | 0600, 1000, 1000, NULL, W, 0 },
	{ "owner no exec 0600", 1000, 1000, 0, {0}, REG | 0600, 1000, 1000, NULL, X, VV_EACCES },
	{ "owner denied by owner bits though other has it", 1000, 1000, 0, {0}, REG | 0047, 1000, 1000, NULL, R, VV_EACCES },
	{ "group member denied by group bits though other has it", 1001, 1000, 0, {0}, REG | 0607, 1000, 1000, NULL, R, VV_EACCES },
	{ "group reads 0640", 1001, 1000, 0, {0}, REG | 0640, 1000, 1000, NULL, R, 0 },
	{ "group no write 0640", 1001, 1000, 0, {0}, REG | 0640, 1000, 1000, NULL, W, VV_EACCES },
	{ "other denied 0640", 1002, 1002, 0, {0}, REG | 0640, 1000, 1000, NULL, R, VV_EACCES },
	{ "other reads 0644", 1002, 1002, 0, {0}, REG | 0644, 1000, 1000, NULL, R, 0 },
	{ "rw needs both bits", 1002, 1002, 0, {0}, REG | 0644, 1000, 1000, NULL, R | W, VV_EACCES },
	{ "supplementary group reads", 1002, 1002, 2, {50, 1000}, REG | 0640, 1000, 1000, NULL, R, 0 },
	{ "supplementary group not matching", 1002, 1002, 2, {50, 51}, REG | 0640, 1000, 1000, NULL, R, VV_EACCES },
	{ "dir search by other 0711", 1002, 1002, 0, {0}, DIR_ | 0711, 1000, 1000, NULL, X, 0 },
	{ "dir list by other 0711", 1002, 1002, 0, {0}, DIR_ | 0711, 1000, 1000, NULL, R, VV_EACCES },
	{ "mask 0 always granted", 1002, 1002, 0, {0}, REG | 0000, 1000, 1000, NULL, 0, 0 },
	/* root */
	{ "root reads 0000", 0, 0, 0, {0}, REG | 0000, 1000, 1000, NULL, R, 0 },
	{ "root writes 0000", 0, 0, 0, {0}, REG | 0000, 1000, 1000, NULL, W, 0 },
	{ "root searches dir 0000", 0, 0, 0, {0}, DIR_ | 0000, 1000, 1000, NULL, X | W | R, 0 },
	{ "root no exec of 0644 (ext4)", 0, 0, 0, {0}, REG | 0644, 1000, 1000, NULL, X, VV_EACCES },
	{ "root exec of 0001 (ext4)", 0, 0, 0, {0}, REG | 0001, 1000, 1000, NULL, X, 0 },
	{ "root rw of 0001 (ext4)", 0, 0, 0, {0}, REG | 0001, 0, 0, NULL, R | W, 0 },
	{ "root exec with ACL no x", 0, 0, 0, {0}, REG | 0664, 1000, 1000, "u::rw-,u:5:rwx,g::rw-,m::rw-,o::r--", X, VV_EACCES },
	/* ACLs: named users */
	{ "named user rw via ACL", 7, 7, 0, {0}, REG | 0660, 1000, 1000, "u::rw-,u:7:rw-,g::r--,m::rw-,o::---", W, 0 },
	{ "named user limited by mask", 7, 7, 0, {0}, REG | 0640, 1000, 1000, "u::rw-,u:7:rw-,g::r--,m::r--,o::---", W, VV_EACCES },
	{ "named user reads within mask", 7, 7, 0, {0}, REG | 0640, 1000, 1000, "u::rw-,u:7:rw-,g::r--,m::r--,o::---", R, 0 },
	{ "named user entry beats other", 7, 7, 0, {0}, REG | 0644, 1000, 1000, "u::rw-,u:7:---,g::r--,m::r--,o::r--", R, VV_EACCES },
	{ "named user entry beats group", 7, 1000, 0, {0}, REG | 0640, 1000, 1000, "u::rw-,u:7:---,g::r--,m::r--,o::---", R, VV_EACCES },
	{ "owner ignores named entry for itself", 1000, 1000, 0, {0}, REG | 0460, 1000, 1000, "u::r--,u:1000:rw-,g::r--,m::rw-,o::---", W, VV_EACCES },
	{ "mask --- falls to other bits (ext4)", 1000, 1000, 0, {0}, REG | 0604, 0, 0, "u::rw-,u:1000:rwx,g::---,m::---,o::r--", R, 0 },
	/* ACLs: groups */
	{ "owning group via ACL limited by mask", 1001, 1000, 0, {0}, REG | 0640, 1000, 1000, "u::rw-,u:7:rw-,g::rw-,m::r--,o::---", W, VV_EACCES },
	{ "named group grants", 1001, 1001, 1, {9}, REG | 0660, 1000, 1000, "u::rw-,g::---,g:9:rw-,m::rw-,o::r--", W, 0 },
	{ "named group limited by mask", 1001, 1001, 1, {9}, REG | 0640, 1000, 1000, "u::rw-,g::---,g:9:rw-,m::r--,o::r--", W, VV_EACCES },
	{ "in a group class: other not used", 1001, 1001, 1, {9}, REG | 0664, 1000, 1000, "u::rw-,g::---,g:9:-w-,m::rw-,o::r--", R, VV_EACCES },
	{ "one of several group entries grants", 1001, 1000, 2, {9, 10}, REG | 0670, 1000, 1000, "u::rw-,g::r--,g:9:-w-,g:10:rwx,m::rwx,o::---", R | W, 0 },
	{ "no single group entry grants all", 1001, 1000, 1, {9}, REG | 0670, 1000, 1000, "u::rw-,g::r--,g:9:-w-,m::rwx,o::rwx", R | W, VV_EACCES },
	{ "not in any ACL group: other", 1001, 1001, 0, {0}, REG | 0674, 1000, 1000, "u::rw-,g::r--,g:9:rw-,m::rwx,o::r--", R, 0 },
	{ "not in any ACL group: other denies w", 1001, 1001, 0, {0}, REG | 0674, 1000, 1000, "u::rw-,g::r--,g:9:rw-,m::rwx,o::r--", W, VV_EACCES },
	{ "dir search by named group", 1001, 1001, 1, {9}, DIR_ | 0750, 1000, 1000, "u::rwx,g::---,g:9:r-x,m::r-x,o::---", X, 0 },
	{ "malformed stored ACL fails closed", 1001, 1001, 0, {0}, REG | 0674, 1000, 1000, "BAD", R, VV_EACCES },
	{ "malformed stored ACL, group class 0: still closed", 1001, 1001, 0, {0}, REG | 0604, 1000, 1000, "BAD", R, VV_EACCES },
	{ "malformed stored ACL: owner still decides by mode", 1000, 1000, 0, {0}, REG | 0604, 1000, 1000, "BAD", R, 0 },
	{ "1-byte ACL blob fails closed", 1001, 1001, 0, {0}, REG | 0777, 1000, 1000, "SHORT", R, VV_EACCES },
};

static void test_checks(void)
{
	/* An unsorted blob is not what the vault stores: it must fail closed. */
	static const uint8_t unsorted[] = { 2, 0, 0, 0,
		0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x01, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
		0x04, 0, 4, 0, 0xff, 0xff, 0xff, 0xff };

	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		const struct check_case *c = &checks[i];
		struct vv_ident id = { c->uid, c->gid, 1, c->ngroups, c->groups };
		struct vv_perm p = { c->mode, c->fuid, c->fgid, NULL, 0, false };
		uint8_t *b = NULL;
		size_t len = 0;

		if (c->acl && strcmp(c->acl, "SHORT") == 0) {
			p.acl = unsorted;
			p.acl_len = 1;
		} else if (c->acl && strcmp(c->acl, "BAD") == 0) {
			p.acl = unsorted;
			p.acl_len = sizeof(unsorted);
		} else if (c->acl) {
			b = acl(c->acl, &len);
			p.acl = b;
			p.acl_len = len;
		}
		is_int(vv_access_check(&id, &p, c->mask), c->want, c->name);
		free(b);
	}
}

/* ---- hostile blobs ---- */

static void test_hostile(void)
{
	struct raw r;
	uint8_t *out = (uint8_t *)1;
	size_t outlen = 99;
	char *txt;

#define BASE(r) do { raw_ent(r, 1, 6, ~0u); raw_ent(r, 4, 4, ~0u); raw_ent(r, 0x20, 4, ~0u); } while (0)
	memset(&r, 0, sizeof(r)); raw_u32(&r, 2); BASE(&r);
	is_int(vv_acl_valid(r.b, r.len), 0, "minimal ACL valid");
	is_int(vv_acl_valid(r.b, r.len - 1), VV_EINVAL, "truncated entry");
	is_int(vv_acl_valid(r.b, 3), VV_EINVAL, "truncated header");
	is_int(vv_acl_valid(r.b, 4), VV_EINVAL, "header only (no entries)");
	is_int(vv_acl_valid(NULL, 0), VV_EINVAL, "NULL blob");
	is_int(vv_acl_valid(r.b, r.len - 8), VV_EINVAL, "missing other");
	r.b[0] = 1;
	is_int(vv_acl_valid(r.b, r.len), VV_EINVAL, "wrong version");
	r.b[0] = 2;
	r.b[4 + 8 + 2] = 0x0c;          /* group_obj perm with a high bit */
	is_int(vv_acl_valid(r.b, r.len), VV_EINVAL, "perm with high bits");
	r.b[4 + 8 + 2] = 4;
	r.b[4 + 8 + 3] = 0x80;
	is_int(vv_acl_valid(r.b, r.len), VV_EINVAL, "perm high byte");
	r.b[4 + 8 + 3] = 0;
	r.b[4 + 8] = 0x40;              /* unknown tag */
	is_int(vv_acl_valid(r.b, r.len), VV_EINVAL, "bad tag");
	r.b[4 + 8] = 0x00;
	is_int(vv_acl_valid(r.b, r.len), VV_EINVAL, "tag 0");

	memset(&r, 0, sizeof(r)); raw_u32(&r, 2); BASE(&r); raw_ent(&r, 2, 7, 5);
	is_int(vv_acl_valid(r.b, r.len), VV_EINVAL, "named user without mask");
	raw_ent(&r, 0x10, 7, ~0u);
	is_int(vv_acl_valid(r.b, r.len), 0, "named user with mask, unsorted: valid");
	raw_ent(&r, 2, 4, 5);
	is_int(vv_acl_valid(r.b, r.len), VV_EINVAL, "duplicate named user id");
	memset(&r, 0, sizeof(r)); raw_u32(&r, 2); BASE(&r); raw_ent(&r, 0x10, 7, ~0u); raw_ent(&r, 0x10, 7, ~0u);
	is_int(vv_acl_valid(r.b, r.len), VV_EINVAL, "two masks");
	memset(&r, 0, sizeof(r)); raw_u32(&r, 2); BASE(&r); raw_ent(&r, 1, 7, ~0u);
	is_int(vv_acl_valid(r.b, r.len), VV_EINVAL, "two user_obj");
	memset(&r, 0, sizeof(r)); raw_u32(&r, 2); BASE(&r); raw_ent(&r, 0x20, 7, 3);
	is_int(vv_acl_valid(r.b, r.len), VV_EINVAL, "two other (different ids)");
	memset(&r, 0, sizeof(r)); raw_u32(&r, 2); BASE(&r); raw_ent(&r, 8, 7, ~0u); raw_ent(&r, 0x10, 7, ~0u);
	is_int(vv_acl_valid(r.b, r.len), VV_EINVAL, "named group with undefined id");
	memset(&r, 0, sizeof(r)); raw_u32(&r, 2); raw_ent(&r, 1, 7, 0); raw_ent(&r, 4, 7, 0);
	is_int(vv_acl_valid(r.b, r.len), VV_EINVAL, "no other");
	is_int(vv_acl_normalize(r.b, r.len, &out, &outlen), VV_EINVAL, "normalize rejects");
	ok(out == NULL && outlen == 0, "normalize leaves no output on error");
	txt = (char *)1;
	is_int(vv_acl_to_text(r.b, r.len, &txt), VV_EINVAL, "to_text rejects");
	ok(txt == NULL, "to_text leaves no output on error");

	/* Huge count: more entries than XATTR_SIZE_MAX can carry. */
	{
		size_t n = VV_ACL_MAX_ENTRIES + 1, len = 4 + 8 * n;
		uint8_t *big = calloc(1, len);
		big[0] = 2;
		is_int(vv_acl_valid(big, len), VV_EINVAL, "8192 entries rejected");
		/* Max size but all-zero entries: fails fast on tag, no crash. */
		is_int(vv_acl_valid(big, len - 8), VV_EINVAL, "8191 zero entries rejected");
		free(big);
	}
	/* Largest valid ACL: 8187 named users. */
	{
		size_t n = VV_ACL_MAX_ENTRIES, len = 4 + 8 * n;
		struct raw hdr = { {0}, 0 };
		uint8_t *big = malloc(len), *norm = NULL;
		size_t nlen = 0, o = 4;

		raw_u32(&hdr, 2);
		memcpy(big, hdr.b, 4);
		/* reverse order to exercise the sort */
		for (size_t i = 0; i < n - 4; i++, o += 8) {
			struct raw e = { {0}, 0 };
			raw_ent(&e, 2, 4, (uint32_t)(n - i));
			memcpy(big + o, e.b, 8);
		}
		{
			struct raw e = { {0}, 0 };
			raw_ent(&e, 0x20, 0, ~0u); raw_ent(&e, 0x10, 4, ~0u); raw_ent(&e, 4, 4, ~0u); raw_ent(&e, 1, 6, ~0u);
			memcpy(big + o, e.b, 32);
		}
		is_int(vv_acl_normalize(big, len, &norm, &nlen), 0, "8191-entry ACL normalises");
		ok(norm && nlen == len && norm[4] == 1 && norm[12] == 2 && norm[16] == 5,
		   "sorted: user_obj first, then named user 5");
		free(norm);
		free(big);
	}
#undef BASE
}

/* ---- normalise, text ---- */

static void test_text(void)
{
	static const uint8_t ext4_blob[] = {  /* getfattr -e hex on ext4 of u::rwx,g::r-x,m::r--,o::--- */
		0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x07, 0x00, 0xff, 0xff, 0xff, 0xff,
		0x04, 0x00, 0x05, 0x00, 0xff, 0xff, 0xff, 0xff, 0x10, 0x00, 0x04, 0x00,
		0xff, 0xff, 0xff, 0xff, 0x20, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff };
	static const struct { const char *in, *out; } rt[] = {
		{ "user::rw-,user:1000:r--,group::r--,mask::r--,other::---",
		  "user::rw-,user:1000:r--,group::r--,mask::r--,other::---" },
		{ "o::r,g::r-x,u::rwx", "user::rwx,group::r-x,other::r--" },
		{ "u::rw,g:9:rw,u:7:r,m::rw,g::r,u:3:x,o::-", "user::rw-,user:3:--x,user:7:r--,group::r--,group:9:rw-,mask::rw-,other::---" },
		{ " user::rwx\n group::---\n other::---\n", "user::rwx,group::---,other::---" },
		{ "u::rwx,g::rwx,o::rwx,u:4294967294:rwx,m::rwx", "user::rwx,user:4294967294:rwx,group::rwx,mask::rwx,other::rwx" },
	};
	static const char *bad[] = {
		"", "user::rw-", "user::rw-,group::r--", "user::rw-,group::r--,other::r--,other::r--",
		"user::rwz,group::r--,other::r--", "user::rrw,group::r--,other::r--", "bogus::rw-,group::r--,other::r--",
		"user:abc:rw-,user::rw-,group::r--,mask::r--,other::r--", "user:4294967295:r,u::r,g::r,m::r,o::r",
		"user::rw-,group::r--,mask:5:r--,other::r--", "user:7:r--,user::rw-,group::r--,other::r--",
		"user::,group::r--,other::r--", "user:rw-,group::r--,other::r--",
	};
	uint8_t *b, *n = NULL;
	size_t len, nlen;
	char *s;

	for (size_t i = 0; i < sizeof(rt) / sizeof(rt[0]); i++) {
		b = acl(rt[i].in, &len);
		s = text_of(b, len);
		is_str(s, rt[i].out, rt[i].in);
		free(s);
		free(b);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		b = (uint8_t *)1;
		is_int(vv_acl_from_text(bad[i], &b, &len), VV_EINVAL, bad[i]);
		ok(b == NULL, "no output for bad text");
	}
	b = acl("u::rwx,g::r-x,m::r--,o::---", &len);
	ok(len == sizeof(ext4_blob) && memcmp(b, ext4_blob, len) == 0, "from_text bytes equal ext4's xattr (ext4)");
	free(b);
	/* Base entries with junk ids normalise to undefined ids. */
	{
		uint8_t in[sizeof(ext4_blob)];
		memcpy(in, ext4_blob, sizeof(in));
		in[8] = 0; in[9] = 0; in[10] = 0; in[11] = 0;
		is_int(vv_acl_normalize(in, sizeof(in), &n, &nlen), 0, "normalise base entry with id 0");
		ok(n && nlen == sizeof(ext4_blob) && memcmp(n, ext4_blob, nlen) == 0, "id rewritten to 0xFFFFFFFF");
		free(n);
	}
}

/* ---- ACL <-> mode ---- */

static void test_to_mode(void)
{
	struct vv_ident root = { 0, 0, 1, 0, NULL }, owner = { 1000, 1000, 1, 0, NULL }, other = { 1001, 1001, 1, 0, NULL };
	struct vv_perm p = { REG | 02755, 1000, 0, NULL, 0, false };
	uint32_t m = 0;
	bool store = false;
	uint8_t *b;
	size_t len;

	b = acl("u::r-x,u:7:rw-,g::r--,m::rw-,o::-wx", &len);
	is_int(vv_acl_to_mode(&root, &p, b, len, &m, &store), 0, "root sets ACL");
	is_int(m, REG | 02563, "mode from ACL, sgid kept for root (ext4)");
	ok(store, "ACL with named entries stored");
	is_int(vv_acl_to_mode(&owner, &p, b, len, &m, &store), 0, "owner sets ACL");
	is_int(m, REG | 0563, "owner not in group loses sgid");
	is_int(vv_acl_to_mode(&other, &p, b, len, &m, &store), VV_EPERM, "non-owner may not set ACL");
	free(b);

	p.mode = REG | 0644;
	b = acl("u::rwx,g::r-x,m::r--,o::---", &len);
	is_int(vv_acl_to_mode(&root, &p, b, len, &m, &store), 0, "mask-only ACL");
	is_int(m, REG | 0740, "mask gives the group bits (ext4)");
	ok(store, "mask alone makes it non-equivalent (ext4 stores it)");
	free(b);

	b = acl("u::rw-,g::r--,o::---", &len);
	is_int(vv_acl_to_mode(&owner, &p, b, len, &m, &store), 0, "equivalent ACL");
	is_int(m, REG | 0640, "mode from base entries");
	ok(!store, "equivalent ACL not stored");
	free(b);
	is_int(vv_acl_to_mode(&owner, &p, (const uint8_t *)"\2\0\0\0", 4, &m, &store), VV_EINVAL, "bad blob");

	/* default ACLs */
	b = acl("u::rwx,g::r-x,o::---", &len);
	p.mode = DIR_ | 0755;
	is_int(vv_acl_check_default(&owner, &p, b, len), 0, "default ACL on own dir");
	is_int(vv_acl_check_default(&other, &p, b, len), VV_EPERM, "default ACL on another's dir");
	p.mode = REG | 0644;
	is_int(vv_acl_check_default(&owner, &p, b, len), VV_EACCES, "default ACL on a file");
	p.mode = DIR_ | 0755;
	is_int(vv_acl_check_default(&owner, &p, b, len - 8), VV_EINVAL, "bad default ACL");
	free(b);
}

static void test_acl_chmod(void)
{
	uint8_t *b;
	size_t len;
	char *s;

	b = acl("u::rw-,u:7:rwx,g::r-x,g:9:rw-,m::rwx,o::r--", &len);
	is_int(vv_acl_chmod(b, len, 0751), 0, "acl chmod");
	s = text_of(b, len);
	is_str(s, "user::rwx,user:7:rwx,group::r-x,group:9:rw-,mask::r-x,other::--x", "chmod 751 sets mask not group_obj (ext4)");
	free(s);
	free(b);

	b = acl("u::rw-,g::r-x,o::r--", &len);
	is_int(vv_acl_chmod(b, len, 0704), 0, "acl chmod no mask");
	s = text_of(b, len);
	is_str(s, "user::rwx,group::---,other::r--", "chmod without mask sets group_obj");
	free(s);
	is_int(vv_acl_chmod(b, len - 1, 0704), VV_EINVAL, "acl chmod bad blob");
	free(b);
}

static void test_inherit(void)
{
	static const struct {
		const char *name, *def;
		uint32_t mode, umask;
		bool is_dir;
		uint32_t want_mode;
		const char *want_acc, *want_def;
	} cases[] = {
		{ "file 664 umask 077 (ext4)", "u::rwx,u:7:r-x,g::rwx,m::rwx,o::r-x", REG | 0664, 077, false, REG | 0664,
		  "user::rw-,user:7:r-x,group::rwx,mask::rw-,other::r--", NULL },
		{ "dir 750 (ext4)", "u::rwx,u:7:r-x,g::rwx,m::rwx,o::r-x", DIR_ | 0750, 022, true, DIR_ | 0750,
		  "user::rwx,user:7:r-x,group::rwx,mask::r-x,other::---", "user::rwx,user:7:r-x,group::rwx,mask::rwx,other::r-x" },
		{ "file 4741 keeps suid (ext4)", "u::rwx,u:7:r-x,g::rwx,m::rwx,o::r-x", REG | 04741, 022, false, REG | 04741,
		  "user::rwx,user:7:r-x,group::rwx,mask::r--,other::--x", NULL },
		{ "equivalent default: no access ACL (ext4)", "u::rwx,g::r-x,o::r--", REG | 0666, 077, false, REG | 0644, NULL, NULL },
		{ "equivalent default, dir inherits default", "u::rwx,g::r-x,o::r--", DIR_ | 0777, 077, true, DIR_ | 0754, NULL,
		  "user::rwx,group::r-x,other::r--" },
		{ "no default: umask", NULL, REG | 0666, 022, false, REG | 0644, NULL, NULL },
		{ "no default dir: umask", NULL, DIR_ | 0777, 027, true, DIR_ | 0750, NULL, NULL },
		{ "symlink: no ACL", "u::rwx,g::r-x,o::r--", S_IFLNK | 0777, 022, false, S_IFLNK | 0777, NULL, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t *d = NULL, *acc = NULL, *def = NULL;
		size_t dlen = 0, alen = 0, deflen = 0;
		uint32_t m = 0;
		char *s;

		if (cases[i].def)
			d = acl(cases[i].def, &dlen);
		is_int(vv_acl_inherit(d, dlen, cases[i].mode, cases[i].umask, cases[i].is_dir, &m, &acc, &alen, &def, &deflen),
		       0, cases[i].name);
		is_int(m, cases[i].want_mode, "  mode");
		if (cases[i].want_acc) {
			s = text_of(acc, alen);
			is_str(s, cases[i].want_acc, "  access ACL");
			free(s);
		} else {
			ok(acc == NULL && alen == 0, "  no access ACL");
		}
		if (cases[i].want_def) {
			s = text_of(def, deflen);
			is_str(s, cases[i].want_def, "  default ACL");
			free(s);
		} else {
			ok(def == NULL && deflen == 0, "  no default ACL");
		}
		free(d);
		free(acc);
		free(def);
	}
	{
		uint8_t *acc = (uint8_t *)1, *def = (uint8_t *)1;
		size_t alen, deflen;
		uint32_t m;
		is_int(vv_acl_inherit((const uint8_t *)"\2\0\0\0\1\0\7\0", 8, REG | 0666, 022, false, &m, &acc, &alen, &def, &deflen),
		       VV_EINVAL, "bad parent default");
		ok(acc == NULL && def == NULL, "no outputs on error");
	}
}

/* ---- setattr rules ---- */

static void test_setattr(void)
{
	uint32_t g1001[] = { 1001 };
	struct vv_ident root = { 0, 0, 1, 0, NULL }, u1000 = { 1000, 1000, 1, 0, NULL },
			u1000g = { 1000, 1000, 1, 1, g1001 }, u1001 = { 1001, 1001, 1, 0, NULL },
			u1002 = { 1002, 1002, 1, 0, NULL };
	struct vv_perm p;
	uint32_t m;

	/* sticky */
	struct vv_perm tmp = { DIR_ | 01777, 0, 0, NULL, 0, false }, plain = { DIR_ | 0777, 0, 0, NULL, 0, false },
		       mine = { REG | 0644, 1000, 1000, NULL, 0, false }, owned_dir = { DIR_ | 01777, 1001, 1001, NULL, 0, false };
	is_int(vv_access_sticky(&u1000, &tmp, &mine), 0, "sticky: file owner may delete");
	is_int(vv_access_sticky(&u1001, &tmp, &mine), VV_EPERM, "sticky: stranger may not");
	is_int(vv_access_sticky(&u1001, &owned_dir, &mine), 0, "sticky: dir owner may");
	is_int(vv_access_sticky(&root, &tmp, &mine), 0, "sticky: root may");
	is_int(vv_access_sticky(&u1001, &plain, &mine), 0, "not sticky: anyone with write");
	is_int(vv_access_may_delete(&u1001, &tmp, &mine), VV_EPERM, "may_delete: sticky EPERM");
	plain.mode = DIR_ | 0755;
	is_int(vv_access_may_delete(&u1001, &plain, &mine), VV_EACCES, "may_delete: no write on dir EACCES");
	plain.mode = DIR_ | 0773;
	is_int(vv_access_may_delete(&u1001, &plain, &mine), 0, "may_delete: write+search on dir");
	plain.mode = DIR_ | 0772;
	is_int(vv_access_may_delete(&u1001, &plain, &mine), VV_EACCES, "may_delete: write without search");

	/* chmod */
	p = (struct vv_perm){ REG | 0644, 1000, 0, NULL, 0, false };
	is_int(vv_access_chmod(&u1000, &p, 02755, &m), 0, "owner chmod");
	is_int(m, REG | 0755, "owner not in group loses sgid (ext4)");
	p.gid = 1000;
	is_int(vv_access_chmod(&u1000, &p, 06755, &m), 0, "owner chmod in group");
	is_int(m, REG | 06755, "in group keeps sgid");
	is_int(vv_access_chmod(&u1001, &p, 0777, &m), VV_EPERM, "non-owner chmod EPERM");
	p.gid = 5;
	is_int(vv_access_chmod(&root, &p, 0172755, &m), 0, "root chmod");
	is_int(m, REG | 02755, "root keeps sgid; file type kept, not taken from newmode");

	/* chown */
	p = (struct vv_perm){ REG | 06755, 1000, 1000, NULL, 0, false };
	is_int(vv_access_chown(&root, &p, VV_ID_NONE, VV_ID_NONE, &m), 0, "root chown -1 -1");
	is_int(m, REG | 0755, "root chown clears suid and sgid with g+x (ext4)");
	p.mode = REG | 06745;
	is_int(vv_access_chown(&root, &p, 5, VV_ID_NONE, &m), 0, "root chown to 5");
	is_int(m, REG | 02745, "sgid without g+x kept for root (ext4)");
	p.mode = REG | 06755;
	is_int(vv_access_chown(&u1000g, &p, VV_ID_NONE, 1001, &m), 0, "owner chgrp to own group (ext4)");
	is_int(m, REG | 0755, "owner chgrp clears suid/sgid (ext4)");
	is_int(vv_access_chown(&u1000, &p, VV_ID_NONE, 5, &m), VV_EPERM, "owner chgrp to foreign group (ext4)");
	is_int(vv_access_chown(&u1000, &p, 1001, VV_ID_NONE, &m), VV_EPERM, "owner gives file away");
	is_int(vv_access_chown(&u1000, &p, 1000, 1000, &m), 0, "owner chown to self, same group");
	is_int(vv_access_chown(&u1001, &p, VV_ID_NONE, 1001, &m), VV_EPERM, "non-owner chgrp");
	is_int(vv_access_chown(&u1001, &p, 1000, VV_ID_NONE, &m), VV_EPERM, "non-owner chown to current owner");
	p.mode = REG | 02644;
	p.gid = 5;
	is_int(vv_access_chown(&u1000g, &p, VV_ID_NONE, 1001, &m), 0, "owner chgrp from foreign group");
	is_int(m, REG | 0644, "sgid dropped: caller not in current group");
	p.mode = DIR_ | 06755;
	is_int(vv_access_chown(&root, &p, 5, 5, &m), 0, "root chown dir");
	is_int(m, DIR_ | 06755, "directories keep suid/sgid");

	/* utimes */
	p = (struct vv_perm){ REG | 0666, 1000, 1000, NULL, 0, false };
	is_int(vv_access_utimes(&u1002, &p, false), 0, "touch now with write permission (ext4)");
	is_int(vv_access_utimes(&u1002, &p, true), VV_EPERM, "explicit times need owner (ext4)");
	is_int(vv_access_utimes(&u1000, &p, true), 0, "owner explicit times");
	is_int(vv_access_utimes(&root, &p, true), 0, "root explicit times");
	p.mode = REG | 0644;
	is_int(vv_access_utimes(&u1002, &p, false), VV_EACCES, "touch now without write");
	is_int(vv_access_utimes(&u1000, &p, false), 0, "owner touch now on 0644");

	/* killpriv */
	static const struct {
		const char *name;
		int who;           /* 0 root, 1 u1000 (groups: 1000) */
		uint32_t mode, gid, want;
	} kp[] = {
		{ "write by owner not in group: sgid w/o g+x dropped (ext4)", 1, REG | 02646, 0, REG | 0646 },
		{ "write 6656: both dropped (ext4)", 1, REG | 06656, 0, REG | 0656 },
		{ "write in group, sgid w/o g+x kept (ext4)", 1, REG | 02646, 1000, REG | 02646 },
		{ "write in group, sgid with g+x dropped", 1, REG | 02656, 1000, REG | 0656 },
		{ "suid dropped", 1, REG | 04755, 1000, REG | 0755 },
		{ "root write keeps bits", 0, REG | 06755, 1000, REG | 06755 },
		{ "no bits: unchanged", 1, REG | 0644, 0, REG | 0644 },
		{ "directory untouched", 1, DIR_ | 02775, 0, DIR_ | 02775 },
	};
	for (size_t i = 0; i < sizeof(kp) / sizeof(kp[0]); i++) {
		struct vv_perm q = { kp[i].mode, 1000, kp[i].gid, NULL, 0, false };
		is_int(vv_access_killpriv(kp[i].who ? &u1000 : &root, &q), kp[i].want, kp[i].name);
	}

	/* predicates */
	ok(vv_access_in_group(&u1000g, 1001) && vv_access_in_group(&u1000g, 1000) && !vv_access_in_group(&u1000g, 5),
	   "in_group: primary and supplementary");
	ok(vv_access_owner_or_root(&root, 5) && vv_access_owner_or_root(&u1000, 1000) && !vv_access_owner_or_root(&u1000, 5),
	   "owner_or_root");
}

int main(void)
{
	test_checks();
	test_hostile();
	test_text();
	test_to_mode();
	test_acl_chmod();
	test_inherit();
	test_setattr();
	return tap_done();
}
