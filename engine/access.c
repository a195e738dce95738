/*
 * access.c - the one permission check, owner rules for setattr, POSIX ACLs.
 *
 * Pure functions over (identity, mode/uid/gid, ACL blob).  The semantics are
 * the Linux kernel's, not a textbook's, because users compare us with ext4:
 * generic_permission + posix_acl_permission for the check (including the
 * kernel's shortcut that ignores the ACL when the group class bits are 0),
 * setattr_prepare / setattr_should_drop_suidgid for chmod, chown, utimes and
 * write, posix_acl_equiv_mode / posix_acl_chmod / posix_acl_create for the
 * mode <-> ACL sync.  Expected values in tests/unit/test_access.c were taken
 * from ext4 on this machine with setfacl/getfacl.
 *
 * ACL xattr blob (kernel format, linux/posix_acl_xattr.h), all LE:
 *
 *   off  size  field
 *   0    4     version = 2
 *   4    8*n   entries { u16 tag; u16 perm; u32 id; }
 *
 *   tag   USER_OBJ 0x01, USER 0x02, GROUP_OBJ 0x04, GROUP 0x08,
 *         MASK 0x10, OTHER 0x20
 *   perm  r 4, w 2, x 1 (nothing else)
 *   id    uid/gid for USER/GROUP, 0xFFFFFFFF (undefined) for the others
 *
 * Valid (like the kernel's posix_acl_valid, plus no duplicate ids): exactly
 * one USER_OBJ, GROUP_OBJ, OTHER; at most one MASK, required when any
 * USER/GROUP entry exists; named ids not 0xFFFFFFFF; 1 <= n <= 8191.
 * Normalised = valid + sorted by (tag, id) + undefined ids on base entries.
 * The blob is untrusted (it comes from setxattr) and is read only through
 * buf.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/acl.h>
#include <sys/stat.h>

#include "buf.h"
#include "grow.h"
#include "vecvault/access.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

_Static_assert(ACL_USER_OBJ == VV_ACL_USER_OBJ && ACL_USER == VV_ACL_USER &&
	       ACL_GROUP_OBJ == VV_ACL_GROUP_OBJ && ACL_GROUP == VV_ACL_GROUP &&
	       ACL_MASK == VV_ACL_MASK && ACL_OTHER == VV_ACL_OTHER,
	       "ACL tags must match the kernel's");

struct ent {
	uint16_t tag;
	uint16_t perm;
	uint32_t id;
};

#define PERM_RWX 7u
#define MODE_PERMS 0777u

/* ---- identity predicates ------------------------------------------------ */

bool vv_access_in_group(const struct vv_ident *id, uint32_t gid)
{
	if (id->gid == gid)
		return true;
	for (uint32_t i = 0; i < id->ngroups; i++)
		if (id->groups && id->groups[i] == gid)
			return true;
	return false;
}

bool vv_access_owner_or_root(const struct vv_ident *id, uint32_t uid)
{
	return id->uid == 0 || id->uid == uid;
}

static bool is_root(const struct vv_ident *id)
{
	return id->uid == 0;
}

/* May id change p's mode and ACLs?  The owner, root, or (the one extension
 * to POSIX, docs/access.md) an administrator of the node's collection. */
static bool may_admin(const struct vv_ident *id, const struct vv_perm *p)
{
	return vv_access_owner_or_root(id, p->uid) || p->coll_admin;
}

/* ---- parsing ------------------------------------------------------------- */

static bool named(uint16_t tag)
{
	return tag == VV_ACL_USER || tag == VV_ACL_GROUP;
}

static bool known_tag(uint16_t tag)
{
	return tag == VV_ACL_USER_OBJ || tag == VV_ACL_USER || tag == VV_ACL_GROUP_OBJ ||
	       tag == VV_ACL_GROUP || tag == VV_ACL_MASK || tag == VV_ACL_OTHER;
}

/* Order by (tag, id); ids of base entries do not take part. */
static int ent_cmp(const struct ent *a, const struct ent *b)
{
	uint32_t ia = named(a->tag) ? a->id : 0, ib = named(b->tag) ? b->id : 0;

	if (a->tag != b->tag)
		return a->tag < b->tag ? -1 : 1;
	if (ia != ib)
		return ia < ib ? -1 : 1;
	return 0;
}

static int ent_qcmp(const void *a, const void *b)
{
	return ent_cmp(a, b);
}

/* Header and size: returns the entry count or VV_EINVAL. */
static long header(struct vv_rbuf *rb, const uint8_t *blob, size_t len)
{
	uint32_t version;
	size_t n;

	if (!blob || len < VV_ACL_HDR)
		return VV_EINVAL;
	vv_rbuf_init(rb, blob, len);
	if (vv_rbuf_get_u32(rb, &version) < 0 || version != VV_ACL_VERSION)
		return VV_EINVAL;
	if (vv_rbuf_left(rb) % VV_ACL_ENTRY)
		return VV_EINVAL;
	n = vv_rbuf_left(rb) / VV_ACL_ENTRY;
	if (n == 0 || n > VV_ACL_MAX_ENTRIES)
		return VV_EINVAL;
	return (long)n;
}

/* One entry, with the per-entry checks. */
static int read_ent(struct vv_rbuf *rb, struct ent *e)
{
	if (vv_rbuf_get_u16(rb, &e->tag) < 0 || vv_rbuf_get_u16(rb, &e->perm) < 0 ||
	    vv_rbuf_get_u32(rb, &e->id) < 0)
		return VV_EINVAL;
	if (!known_tag(e->tag) || (e->perm & ~PERM_RWX))
		return VV_EINVAL;
	if (named(e->tag) && e->id == VV_ACL_UNDEFINED_ID)
		return VV_EINVAL;
	if (!named(e->tag))
		e->id = VV_ACL_UNDEFINED_ID;
	return 0;
}

/* Entry-set rules on a sorted array. */
static int valid_sorted(const struct ent *e, size_t n)
{
	size_t uo = 0, go = 0, mask = 0, other = 0, nnamed = 0;

	for (size_t i = 0; i < n; i++) {
		if (i > 0 && ent_cmp(&e[i - 1], &e[i]) == 0)
			return VV_EINVAL;
		switch (e[i].tag) {
		case VV_ACL_USER_OBJ: uo++; break;
		case VV_ACL_GROUP_OBJ: go++; break;
		case VV_ACL_MASK: mask++; break;
		case VV_ACL_OTHER: other++; break;
		default: nnamed++; break;
		}
	}
	if (uo != 1 || go != 1 || other != 1 || mask > 1 || (nnamed && !mask))
		return VV_EINVAL;
	return 0;
}

/* Parse, validate and sort into a malloc'd array. */
static int parse(const uint8_t *blob, size_t len, struct ent **out, size_t *nout)
{
	struct vv_rbuf rb;
	struct ent *e = NULL;
	long n;
	int r;

	*out = NULL;
	*nout = 0;
	n = header(&rb, blob, len);
	if (n < 0) {
		r = (int)n;
		goto out;
	}
	e = calloc((size_t)n, sizeof(*e));
	if (!e) {
		r = VV_ENOMEM;
		goto out;
	}
	for (long i = 0; i < n; i++)
		if ((r = read_ent(&rb, &e[i])) < 0)
			goto out;
	qsort(e, (size_t)n, sizeof(*e), ent_qcmp);
	if ((r = valid_sorted(e, (size_t)n)) < 0)
		goto out;
	*out = e;
	*nout = (size_t)n;
	e = NULL;
	r = 0;
out:
	free(e);
	return r;
}

static int serialize(const struct ent *e, size_t n, uint8_t **out, size_t *outlen)
{
	struct vv_wbuf wb;
	size_t len = VV_ACL_HDR + n * VV_ACL_ENTRY;
	uint8_t *p = malloc(len);
	int r = 0;

	if (!p) {
		r = VV_ENOMEM;
		goto out;
	}
	vv_wbuf_init(&wb, p, len);
	vv_wbuf_put_u32(&wb, VV_ACL_VERSION);
	for (size_t i = 0; i < n; i++) {
		vv_wbuf_put_u16(&wb, e[i].tag);
		vv_wbuf_put_u16(&wb, e[i].perm);
		vv_wbuf_put_u32(&wb, named(e[i].tag) ? e[i].id : VV_ACL_UNDEFINED_ID);
	}
	if (wb.err) {
		free(p);
		p = NULL;
		r = VV_EINVAL;
		goto out;
	}
	*out = p;
	*outlen = len;
out:
	return r;
}

int vv_acl_valid(const uint8_t *blob, size_t len)
{
	struct ent *e;
	size_t n;
	int r = parse(blob, len, &e, &n);

	free(e);
	return r;
}

int vv_acl_normalize(const uint8_t *blob, size_t len, uint8_t **out, size_t *outlen)
{
	struct ent *e = NULL;
	size_t n;
	int r;

	*out = NULL;
	*outlen = 0;
	if ((r = parse(blob, len, &e, &n)) < 0)
		goto out;
	r = serialize(e, n, out, outlen);
out:
	free(e);
	return r;
}

/* ---- the decision ----------------------------------------------------------- */

/*
 * What the ACL grants a non-owner: 0 or VV_EACCES; VV_ECORRUPT if the stored
 * blob is not normalised.  Streams over the blob (no allocation on the hot
 * path); requires strictly increasing (tag, id), which normalised blobs have
 * and which also rules out duplicates.  Order-independent form of the
 * kernel's posix_acl_permission: a matching named user wins; else any group
 * entry the caller is in makes it a group-class decision (granted when one
 * of them has all of want and the mask allows want); else other.
 */
static int acl_decide(const struct vv_ident *id, const struct vv_perm *p, unsigned want)
{
	struct vv_rbuf rb;
	struct ent e, prev = { 0, 0, 0 };
	long n = header(&rb, p->acl, p->acl_len);
	unsigned maskperm = PERM_RWX, otherperm = 0;
	bool have_user = false, grp_found = false, grp_ok = false;
	unsigned userperm = 0;
	size_t uo = 0, go = 0, nmask = 0, nother = 0, nnamed = 0;
	int r;

	if (n < 0) {
		r = VV_ECORRUPT;
		goto out;
	}
	for (long i = 0; i < n; i++) {
		if (read_ent(&rb, &e) < 0 || (i > 0 && ent_cmp(&prev, &e) >= 0)) {
			r = VV_ECORRUPT;
			goto out;
		}
		prev = e;
		switch (e.tag) {
		case VV_ACL_USER_OBJ:
			uo++;
			break;
		case VV_ACL_USER:
			nnamed++;
			if (e.id == id->uid) {
				have_user = true;
				userperm = e.perm;
			}
			break;
		case VV_ACL_GROUP_OBJ:
		case VV_ACL_GROUP:
			if (e.tag == VV_ACL_GROUP_OBJ)
				go++;
			else
				nnamed++;
			if (vv_access_in_group(id, e.tag == VV_ACL_GROUP_OBJ ? p->gid : e.id)) {
				grp_found = true;
				if ((e.perm & want) == want)
					grp_ok = true;
			}
			break;
		case VV_ACL_MASK:
			nmask++;
			maskperm = e.perm;
			break;
		case VV_ACL_OTHER:
			nother++;
			otherperm = e.perm;
			break;
		}
	}
	if (uo != 1 || go != 1 || nother != 1 || nmask > 1 || (nnamed && !nmask)) {
		r = VV_ECORRUPT;
		goto out;
	}
	if (have_user)
		r = (userperm & maskperm & want) == want ? 0 : VV_EACCES;
	else if (grp_found)
		r = grp_ok && (maskperm & want) == want ? 0 : VV_EACCES;
	else
		r = (otherperm & want) == want ? 0 : VV_EACCES;
out:
	return r;
}

/* acl_permission_check: mode bits and ACL, no privilege. */
static int dac_check(const struct vv_ident *id, const struct vv_perm *p, unsigned want)
{
	uint32_t mode = p->mode;
	int r;

	if (id->uid == p->uid) {
		r = (want & ~((mode >> 6) & PERM_RWX)) ? VV_EACCES : 0;
		goto out;
	}
	/* A stored ACL that does not parse denies everyone but the owner, even
	 * when the group class is 0 (fail closed). */
	if (p->acl && p->acl_len) {
		r = acl_decide(id, p, want);
		if (r == VV_ECORRUPT) {
			vv_log(VV_LOG_ERR, "access: stored ACL is malformed; denying");
			r = VV_EACCES;
			goto out;
		}
		/* The kernel consults the ACL only when the group class has bits:
		 * with mask::--- a named user falls through to the other bits
		 * (checked on ext4: u:1000:rwx,m::---,o::r-- lets 1000 read). */
		if (mode & S_IRWXG)
			goto out;
	}
	if (vv_access_in_group(id, p->gid))
		mode >>= 3;
	r = (want & ~(mode & PERM_RWX)) ? VV_EACCES : 0;
out:
	return r;
}

int vv_access_check(const struct vv_ident *id, const struct vv_perm *p, int mask)
{
	unsigned want = (unsigned)mask & (VV_MAY_READ | VV_MAY_WRITE | VV_MAY_EXEC);
	int r = dac_check(id, p, want);

	if (r == 0 || !is_root(id))
		goto out;
	/* Root (CAP_DAC_OVERRIDE): anything on directories; read and write on
	 * the rest; exec only when some x bit is set. */
	if (S_ISDIR(p->mode) || !(want & VV_MAY_EXEC) || (p->mode & (S_IXUSR | S_IXGRP | S_IXOTH)))
		r = 0;
out:
	return r;
}

/* ---- rules for changing things ------------------------------------------------ */

int vv_access_sticky(const struct vv_ident *id, const struct vv_perm *dir,
		     const struct vv_perm *victim)
{
	if (!(dir->mode & S_ISVTX))
		return 0;
	if (id->uid == dir->uid || is_root(id) || (victim && id->uid == victim->uid))
		return 0;
	return VV_EPERM;
}

int vv_access_may_delete(const struct vv_ident *id, const struct vv_perm *dir,
			 const struct vv_perm *victim)
{
	int r = vv_access_check(id, dir, VV_MAY_WRITE | VV_MAY_EXEC);

	if (r < 0)
		goto out;
	if (victim)
		r = vv_access_sticky(id, dir, victim);
out:
	return r;
}

int vv_access_chmod(const struct vv_ident *id, const struct vv_perm *p,
		    uint32_t newmode, uint32_t *mode_out)
{
	uint32_t m;
	int r = 0;

	if (!may_admin(id, p)) {
		r = VV_EPERM;
		goto out;
	}
	m = (p->mode & S_IFMT) | (newmode & 07777);
	if (!is_root(id) && !vv_access_in_group(id, p->gid))
		m &= ~(uint32_t)S_ISGID;
	/* A collection admin acting on someone else's file may keep its
	 * setuid bit but not add one: that would make a program run as the
	 * owner (defence in depth; mounts are nosuid). */
	if (!vv_access_owner_or_root(id, p->uid) && !(p->mode & S_ISUID))
		m &= ~(uint32_t)S_ISUID;
	*mode_out = m;
out:
	return r;
}

int vv_access_chown(const struct vv_ident *id, const struct vv_perm *p,
		    uint32_t newuid, uint32_t newgid, uint32_t *mode_out)
{
	uint32_t m = p->mode;
	int r = 0;

	/* Only root gives a file away; "chown to the current owner" is a no-op
	 * the owner may do (kernel chown_ok). */
	if (newuid != VV_ID_NONE && !is_root(id) && (id->uid != p->uid || newuid != p->uid)) {
		r = VV_EPERM;
		goto out;
	}
	if (newgid != VV_ID_NONE && !is_root(id)) {
		if (id->uid != p->uid || (newgid != p->gid && !vv_access_in_group(id, newgid))) {
			r = VV_EPERM;
			goto out;
		}
	}
	if (!S_ISDIR(m)) {
		m &= ~(uint32_t)S_ISUID;
		if ((m & S_ISGID) && ((m & S_IXGRP) || (!is_root(id) && !vv_access_in_group(id, p->gid))))
			m &= ~(uint32_t)S_ISGID;
	}
	*mode_out = m;
out:
	return r;
}

int vv_access_utimes(const struct vv_ident *id, const struct vv_perm *p, bool explicit_times)
{
	int r = 0;

	if (vv_access_owner_or_root(id, p->uid))
		goto out;
	if (explicit_times)
		r = VV_EPERM;
	else
		r = vv_access_check(id, p, VV_MAY_WRITE);
out:
	return r;
}

uint32_t vv_access_killpriv(const struct vv_ident *id, const struct vv_perm *p)
{
	uint32_t m = p->mode;

	if (!S_ISREG(m) || is_root(id))
		return m;
	m &= ~(uint32_t)S_ISUID;
	if ((m & S_ISGID) && ((m & S_IXGRP) || !vv_access_in_group(id, p->gid)))
		m &= ~(uint32_t)S_ISGID;
	return m;
}

/* ---- ACL <-> mode ---------------------------------------------------------------- */

/* posix_acl_equiv_mode: permission bits the ACL implies; true if only the
 * three base entries (a MASK alone already makes it non-equivalent). */
static bool equiv_mode(const struct ent *e, size_t n, uint32_t *perms)
{
	uint32_t u = 0, g = 0, o = 0, mask = 0;
	bool has_mask = false, equiv = true;

	for (size_t i = 0; i < n; i++) {
		switch (e[i].tag) {
		case VV_ACL_USER_OBJ: u = e[i].perm; break;
		case VV_ACL_GROUP_OBJ: g = e[i].perm; break;
		case VV_ACL_OTHER: o = e[i].perm; break;
		case VV_ACL_MASK: mask = e[i].perm; has_mask = true; equiv = false; break;
		default: equiv = false; break;
		}
	}
	*perms = (u << 6) | ((has_mask ? mask : g) << 3) | o;
	return equiv;
}

int vv_acl_to_mode(const struct vv_ident *id, const struct vv_perm *p,
		   const uint8_t *blob, size_t len, uint32_t *newmode, bool *store_acl)
{
	struct ent *e = NULL;
	size_t n;
	uint32_t perms, m;
	int r;

	if (!may_admin(id, p)) {
		r = VV_EPERM;
		goto out;
	}
	if ((r = parse(blob, len, &e, &n)) < 0)
		goto out;
	*store_acl = !equiv_mode(e, n, &perms);
	m = (p->mode & ~MODE_PERMS) | perms;
	if (!is_root(id) && !vv_access_in_group(id, p->gid))
		m &= ~(uint32_t)S_ISGID;
	*newmode = m;
out:
	free(e);
	return r;
}

int vv_acl_check_default(const struct vv_ident *id, const struct vv_perm *p,
			 const uint8_t *blob, size_t len)
{
	int r;

	if (!may_admin(id, p))
		r = VV_EPERM;
	else if (!S_ISDIR(p->mode))
		r = VV_EACCES;
	else
		r = vv_acl_valid(blob, len);
	return r;
}

int vv_acl_chmod(uint8_t *blob, size_t len, uint32_t mode)
{
	struct ent *e = NULL;
	size_t n;
	bool has_mask = false;
	int r;

	if ((r = parse(blob, len, &e, &n)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		has_mask |= e[i].tag == VV_ACL_MASK;
	/* Rewrite in place, keeping the caller's entry order: offsets of the
	 * entries are the same whatever parse() sorted. */
	for (size_t off = VV_ACL_HDR; off + VV_ACL_ENTRY <= len; off += VV_ACL_ENTRY) {
		uint16_t tag = (uint16_t)(blob[off] | (blob[off + 1] << 8));
		uint32_t perm;

		if (tag == VV_ACL_USER_OBJ)
			perm = (mode >> 6) & PERM_RWX;
		else if (tag == VV_ACL_OTHER)
			perm = mode & PERM_RWX;
		else if (tag == (has_mask ? VV_ACL_MASK : VV_ACL_GROUP_OBJ))
			perm = (mode >> 3) & PERM_RWX;
		else
			continue;
		blob[off + 2] = (uint8_t)perm;
		blob[off + 3] = 0;
	}
out:
	free(e);
	return r;
}

/* ---- grants: setfacl -m / -x of one group entry ------------------------------ */

int vv_acl_minimal(const uint8_t *from, size_t flen, uint32_t mode, uint8_t **out, size_t *outlen)
{
	struct ent base[3] = {
		{ VV_ACL_USER_OBJ, (mode >> 6) & PERM_RWX, VV_ACL_UNDEFINED_ID },
		{ VV_ACL_GROUP_OBJ, (mode >> 3) & PERM_RWX, VV_ACL_UNDEFINED_ID },
		{ VV_ACL_OTHER, mode & PERM_RWX, VV_ACL_UNDEFINED_ID },
	};
	struct ent *e = NULL;
	size_t n = 0;
	int r = 0;

	if (from && (r = parse(from, flen, &e, &n)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++)
		for (size_t b = 0; b < 3; b++)
			if (e[i].tag == base[b].tag)
				base[b].perm = e[i].perm;
	r = serialize(base, 3, out, outlen);
out:
	free(e);
	return r;
}

int vv_acl_set_group(const uint8_t *blob, size_t len, uint32_t gid, int perm,
		     uint8_t **out, size_t *outlen, uint32_t *perms, bool *minimal)
{
	struct ent *e = NULL, *ne = NULL;
	size_t n, k = 0, nnamed = 0;
	uint16_t mask = 0;
	int r;

	if (perm > (int)PERM_RWX || gid == VV_ACL_UNDEFINED_ID) {
		r = VV_EINVAL;
		goto out;
	}
	if ((r = parse(blob, len, &e, &n)) < 0)
		goto out;
	/* Room for the entry and a mask that may be new. */
	ne = calloc(n + 2, sizeof(*ne));
	if (!ne) {
		r = VV_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (e[i].tag != VV_ACL_MASK && !(e[i].tag == VV_ACL_GROUP && e[i].id == gid))
			ne[k++] = e[i];
	if (perm >= 0)
		ne[k++] = (struct ent){ VV_ACL_GROUP, (uint16_t)perm, gid };
	if (k > VV_ACL_MAX_ENTRIES - 1) {
		r = VV_E2BIG;
		goto out;
	}
	/* The mask is recomputed as setfacl does (the union of the group
	 * class), and dropped when no named entry needs it: then the ACL is
	 * only its base entries, equivalent to the mode. */
	for (size_t i = 0; i < k; i++) {
		if (named(ne[i].tag))
			nnamed++;
		if (ne[i].tag != VV_ACL_USER_OBJ && ne[i].tag != VV_ACL_OTHER)
			mask |= ne[i].perm;
	}
	if (nnamed)
		ne[k++] = (struct ent){ VV_ACL_MASK, mask, VV_ACL_UNDEFINED_ID };
	qsort(ne, k, sizeof(*ne), ent_qcmp);
	if ((r = valid_sorted(ne, k)) < 0 || (r = serialize(ne, k, out, outlen)) < 0)
		goto out;
	*minimal = equiv_mode(ne, k, perms);
out:
	free(e);
	free(ne);
	return r;
}

int vv_acl_group_perm(const uint8_t *blob, size_t len, uint32_t gid)
{
	struct ent *e = NULL;
	size_t n;
	int r;

	if (!blob || len == 0)
		return VV_ENODATA;
	if ((r = parse(blob, len, &e, &n)) < 0)
		return r;
	r = VV_ENODATA;
	for (size_t i = 0; i < n; i++)
		if (e[i].tag == VV_ACL_GROUP && e[i].id == gid)
			r = e[i].perm;
	free(e);
	return r;
}

int vv_acl_groups(const uint8_t *blob, size_t len, uint32_t *gids, uint8_t *perms, size_t max)
{
	struct ent *e = NULL;
	size_t n, k = 0;
	int r;

	if (!blob || len == 0)
		return 0;
	if ((r = parse(blob, len, &e, &n)) < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (e[i].tag != VV_ACL_GROUP)
			continue;
		if (k < max) {
			gids[k] = e[i].id;
			perms[k] = (uint8_t)e[i].perm;
		}
		k++;
	}
	free(e);
	return (int)k;
}

int vv_acl_inherit(const uint8_t *parent_default, size_t plen, uint32_t mode, uint32_t umask,
		   bool is_dir, uint32_t *mode_out, uint8_t **acc_out, size_t *acc_len,
		   uint8_t **def_out, size_t *def_len)
{
	struct ent *e = NULL, *gobj = NULL, *mobj = NULL;
	size_t n;
	uint32_t m;
	bool not_equiv = false;
	int r = 0;

	*acc_out = NULL;
	*def_out = NULL;
	*acc_len = 0;
	*def_len = 0;
	if (S_ISLNK(mode)) {
		*mode_out = mode;
		goto out;
	}
	if (!parent_default) {
		*mode_out = mode & ~(umask & MODE_PERMS);
		goto out;
	}
	if ((r = parse(parent_default, plen, &e, &n)) < 0)
		goto out;
	/* posix_acl_create_masq: each class's entry ANDed with the requested
	 * bits, and the requested bits ANDed with the entry. */
	m = mode & MODE_PERMS;
	for (size_t i = 0; i < n; i++) {
		switch (e[i].tag) {
		case VV_ACL_USER_OBJ:
			e[i].perm &= (m >> 6) & PERM_RWX;
			m &= ((uint32_t)e[i].perm << 6) | ~(uint32_t)S_IRWXU;
			break;
		case VV_ACL_OTHER:
			e[i].perm &= m & PERM_RWX;
			m &= (uint32_t)e[i].perm | ~(uint32_t)S_IRWXO;
			break;
		case VV_ACL_GROUP_OBJ:
			gobj = &e[i];
			break;
		case VV_ACL_MASK:
			mobj = &e[i];
			not_equiv = true;
			break;
		default:
			not_equiv = true;
			break;
		}
	}
	if (!mobj)
		mobj = gobj;
	mobj->perm &= (m >> 3) & PERM_RWX;
	m &= ((uint32_t)mobj->perm << 3) | ~(uint32_t)S_IRWXG;
	*mode_out = (mode & ~MODE_PERMS) | (m & MODE_PERMS);
	if (not_equiv && (r = serialize(e, n, acc_out, acc_len)) < 0)
		goto out;
	if (is_dir && (r = vv_acl_normalize(parent_default, plen, def_out, def_len)) < 0)
		goto out;
out:
	if (r < 0) {
		free(*acc_out);
		*acc_out = NULL;
		*acc_len = 0;
	}
	free(e);
	return r;
}

/* ---- text form ------------------------------------------------------------------- */

static const char *tag_name(uint16_t tag)
{
	switch (tag) {
	case VV_ACL_USER_OBJ: case VV_ACL_USER: return "user";
	case VV_ACL_GROUP_OBJ: case VV_ACL_GROUP: return "group";
	case VV_ACL_MASK: return "mask";
	default: return "other";
	}
}

int vv_acl_to_text(const uint8_t *blob, size_t len, char **out)
{
	struct vv_rbuf rb;
	struct ent e;
	long n = header(&rb, blob, len);
	/* "group:4294967294:rwx," is 21 bytes; 32 per entry is plenty. */
	size_t cap, off = 0;
	char *s = NULL;
	int r = 0;

	*out = NULL;
	if ((r = vv_acl_valid(blob, len)) < 0)
		goto out;
	cap = (size_t)n * 32 + 1;
	s = malloc(cap);
	if (!s) {
		r = VV_ENOMEM;
		goto out;
	}
	s[0] = '\0';
	for (long i = 0; i < n; i++) {
		char id[16] = "";

		if (read_ent(&rb, &e) < 0) {
			r = VV_EINVAL;
			goto out;
		}
		if (named(e.tag))
			snprintf(id, sizeof(id), "%u", (unsigned)e.id);
		off += (size_t)snprintf(s + off, cap - off, "%s%s:%s:%c%c%c", i ? "," : "",
					tag_name(e.tag), id, e.perm & 4 ? 'r' : '-',
					e.perm & 2 ? 'w' : '-', e.perm & 1 ? 'x' : '-');
	}
	*out = s;
	s = NULL;
out:
	free(s);
	return r;
}

/* One "tag:qualifier:perms" entry of length n at t. */
static int parse_text_ent(const char *t, size_t n, struct ent *e)
{
	const char *c1 = memchr(t, ':', n), *c2, *end = t + n;
	size_t tl;
	int r = VV_EINVAL;

	if (!c1)
		goto out;
	c2 = memchr(c1 + 1, ':', (size_t)(end - c1 - 1));
	if (!c2)
		goto out;
	tl = (size_t)(c1 - t);
	bool has_id = c2 > c1 + 1;
	if ((tl == 4 && !memcmp(t, "user", 4)) || (tl == 1 && t[0] == 'u'))
		e->tag = has_id ? VV_ACL_USER : VV_ACL_USER_OBJ;
	else if ((tl == 5 && !memcmp(t, "group", 5)) || (tl == 1 && t[0] == 'g'))
		e->tag = has_id ? VV_ACL_GROUP : VV_ACL_GROUP_OBJ;
	else if (((tl == 4 && !memcmp(t, "mask", 4)) || (tl == 1 && t[0] == 'm')) && !has_id)
		e->tag = VV_ACL_MASK;
	else if (((tl == 5 && !memcmp(t, "other", 5)) || (tl == 1 && t[0] == 'o')) && !has_id)
		e->tag = VV_ACL_OTHER;
	else
		goto out;
	e->id = VV_ACL_UNDEFINED_ID;
	if (has_id) {
		uint64_t v = 0;

		for (const char *q = c1 + 1; q < c2; q++) {
			if (*q < '0' || *q > '9')
				goto out;
			v = v * 10 + (uint64_t)(*q - '0');
			if (v >= VV_ACL_UNDEFINED_ID)
				goto out;
		}
		e->id = (uint32_t)v;
	}
	e->perm = 0;
	if (c2 + 1 == end)
		goto out;
	for (const char *q = c2 + 1; q < end; q++) {
		uint16_t bit = *q == 'r' ? 4 : *q == 'w' ? 2 : *q == 'x' ? 1 : 0;

		if (*q == '-')
			continue;
		if (!bit || (e->perm & bit))
			goto out;
		e->perm |= bit;
	}
	r = 0;
out:
	return r;
}

int vv_acl_from_text(const char *text, uint8_t **out, size_t *outlen)
{
	struct ent *e = NULL;
	size_t n = 0, cap = 0;
	uint8_t *raw = NULL;
	size_t rawlen;
	const char *p = text;
	int r = 0;

	*out = NULL;
	*outlen = 0;
	if (!text) {
		r = VV_EINVAL;
		goto out;
	}
	while (*p) {
		size_t l = strcspn(p, ",\n");
		size_t a = 0, b = l;

		while (a < b && (p[a] == ' ' || p[a] == '\t'))
			a++;
		while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t' || p[b - 1] == '\r'))
			b--;
		if (b > a) {
			if (n == VV_ACL_MAX_ENTRIES) {
				r = VV_EINVAL;
				goto out;
			}
			if ((r = VV_GROW(e, n, cap)) < 0)
				goto out;
			if ((r = parse_text_ent(p + a, b - a, &e[n])) < 0)
				goto out;
			n++;
		}
		p += l;
		if (*p)
			p++;
	}
	if (n == 0) {
		r = VV_EINVAL;
		goto out;
	}
	/* Serialise unsorted, then normalise: one validation path for both. */
	if ((r = serialize(e, n, &raw, &rawlen)) < 0)
		goto out;
	r = vv_acl_normalize(raw, rawlen, out, outlen);
out:
	free(raw);
	free(e);
	return r;
}
