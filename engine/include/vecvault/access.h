/*
 * access.h - identities, the one permission check, POSIX ACL blobs.
 *
 * The daemon mounts without default_permissions so that every decision is
 * made (and audited) here.  This module is pure: no I/O, no FUSE, no SQLite.
 * The vault layer stores mode/uid/gid and the ACL xattr blobs and asks these
 * functions for every decision; the semantics follow the Linux kernel
 * (generic_permission, posix_acl_permission, setattr_prepare,
 * setattr_should_drop_suidgid, posix_acl_chmod, posix_acl_create), checked
 * against ext4 on a 6.x kernel.  See docs/access.md.
 *
 * ACL blobs are in the kernel's xattr format (linux/posix_acl_xattr.h), the
 * bytes carried by system.posix_acl_access / system.posix_acl_default:
 *
 *   off  size  field
 *   0    4     version, u32 LE, = 2
 *   4    8*n   entries, each:
 *                0  2  tag   u16 LE (USER_OBJ 1, USER 2, GROUP_OBJ 4,
 *                                    GROUP 8, MASK 0x10, OTHER 0x20)
 *                2  2  perm  u16 LE (r 4, w 2, x 1; no other bits)
 *                4  4  id    u32 LE (uid/gid for USER/GROUP; 0xFFFFFFFF else)
 *
 * A "normalised" blob (what vv_acl_normalize returns and what the vault
 * should store and hand back on getxattr) is valid, sorted by (tag, id) and
 * has id 0xFFFFFFFF on the base entries.
 */
#ifndef VECVAULT_ACCESS_H
#define VECVAULT_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Who asks.  groups: supplementary gids (borrowed, may be NULL if ngroups 0). */
struct vv_ident {
	uint32_t uid, gid;
	uint32_t pid;
	uint32_t ngroups;
	const uint32_t *groups;
};

/* What is asked about.  mode: the full st_mode (S_IFMT bits matter: root's
 * exec rule and several setattr rules differ for directories).  acl: the
 * node's access ACL blob as stored (borrowed), or NULL/0 when it has none. */
struct vv_perm {
	uint32_t mode;
	uint32_t uid, gid;
	const uint8_t *acl;
	size_t acl_len;
	/* The caller administers the node's collection (a role it is in holds
	 * admin there; the vault decides, vault_grant.c): it may change the
	 * node's mode and ACLs as the owner may (chmod, vv_acl_to_mode,
	 * vv_acl_check_default), nothing else.  The one extension to POSIX
	 * (docs/access.md). */
	bool coll_admin;
};

enum { VV_MAY_EXEC = 1, VV_MAY_WRITE = 2, VV_MAY_READ = 4 };

/* "Leave unchanged" for vv_access_chown, as chown(2)'s -1. */
#define VV_ID_NONE 0xFFFFFFFFu

#define VV_ACL_VERSION 2u
#define VV_ACL_HDR 4u
#define VV_ACL_ENTRY 8u
/* (XATTR_SIZE_MAX - header) / entry size: the kernel cannot pass more. */
#define VV_ACL_MAX_ENTRIES 8191u
#define VV_ACL_UNDEFINED_ID 0xFFFFFFFFu

enum {
	VV_ACL_USER_OBJ = 0x01,
	VV_ACL_USER = 0x02,
	VV_ACL_GROUP_OBJ = 0x04,
	VV_ACL_GROUP = 0x08,
	VV_ACL_MASK = 0x10,
	VV_ACL_OTHER = 0x20
};

/*
 * The one decision.  mask: VV_MAY_* bits (0 is always granted).
 * Owner -> owner mode bits; else with an ACL whose group class is not empty:
 * named user -> entry & mask; owning group or named groups the caller is in
 * -> granted if one of them (masked) grants all of mask, else denied; else
 * ACL other.  Without an ACL (or with group class bits 0, like the kernel):
 * classic mode bits.  Root: read/write anything, anything on directories,
 * exec of a non-directory only if some x bit is set in mode.
 * Returns 0 or VV_EACCES (also VV_EACCES, fail closed, for a stored ACL
 * that does not parse; logged).
 */
int vv_access_check(const struct vv_ident *id, const struct vv_perm *p, int mask);

/* Is gid the caller's primary or one of its supplementary groups? */
bool vv_access_in_group(const struct vv_ident *id, uint32_t gid);

/* Is the caller root or the owner uid? */
bool vv_access_owner_or_root(const struct vv_ident *id, uint32_t uid);

/*
 * Sticky directory: may id remove/rename victim out of dir?  Only the
 * sticky part: 0 if dir is not sticky, or id owns victim or dir, or is root;
 * else VV_EPERM (what the kernel returns).  Call after the write+search check
 * on dir, or use vv_access_may_delete for both.
 */
int vv_access_sticky(const struct vv_ident *id, const struct vv_perm *dir,
		     const struct vv_perm *victim);

/* unlink/rmdir/rename-away: write+search on dir (VV_EACCES), then sticky
 * (VV_EPERM).  victim may be NULL when only the directory matters. */
int vv_access_may_delete(const struct vv_ident *id, const struct vv_perm *dir,
			 const struct vv_perm *victim);

/*
 * chmod: non-root non-owner -> VV_EPERM.  *mode_out = file type of p->mode |
 * newmode & 07777, with S_ISGID dropped when a non-root caller is not in the
 * file's group.  If the node has an ACL, also apply vv_acl_chmod to it.
 */
int vv_access_chmod(const struct vv_ident *id, const struct vv_perm *p,
		    uint32_t newmode, uint32_t *mode_out);

/*
 * chown/chgrp (newuid/newgid VV_ID_NONE = unchanged): changing the uid needs
 * root; changing the gid needs root, or the owner moving it to a group he is
 * in.  Returns 0 or VV_EPERM.  On success *mode_out is the mode after the
 * change: for non-directories S_ISUID is always cleared (even by root, even
 * for chown -1 -1), S_ISGID when group-exec is set or a non-root caller is
 * not in the current group.
 */
int vv_access_chown(const struct vv_ident *id, const struct vv_perm *p,
		    uint32_t newuid, uint32_t newgid, uint32_t *mode_out);

/*
 * utimes: explicit times need owner or root (VV_EPERM); "now" needs owner,
 * root or write permission (VV_EACCES).
 */
int vv_access_utimes(const struct vv_ident *id, const struct vv_perm *p, bool explicit_times);

/*
 * After a write or truncate: the new mode.  For a regular file and a
 * non-root caller: S_ISUID cleared; S_ISGID cleared if group-exec is set or
 * the caller is not in the file's group.  Otherwise p->mode unchanged.
 */
uint32_t vv_access_killpriv(const struct vv_ident *id, const struct vv_perm *p);

/* ---- ACL blobs --------------------------------------------------------- */

/* 0 if blob is a valid ACL (any entry order), else VV_EINVAL. */
int vv_acl_valid(const uint8_t *blob, size_t len);

/* Validate and sort into a normalised blob.  *out is malloc'd; the caller
 * frees it.  VV_EINVAL for a bad ACL, VV_ENOMEM. */
int vv_acl_normalize(const uint8_t *blob, size_t len, uint8_t **out, size_t *outlen);

/*
 * setxattr system.posix_acl_access.  Only owner or root (VV_EPERM); blob
 * must be valid (VV_EINVAL).  *newmode: p->mode with permission bits from
 * the ACL (user_obj, mask or group_obj, other), S_ISGID dropped if a non-root
 * caller is not in the file's group.  *store_acl false when the ACL is
 * equivalent to the mode (only the three base entries): store only the mode
 * and remove any stored access ACL, like ext4.  Store the blob normalised.
 */
int vv_acl_to_mode(const struct vv_ident *id, const struct vv_perm *p,
		   const uint8_t *blob, size_t len, uint32_t *newmode, bool *store_acl);

/* setxattr system.posix_acl_default: owner or root (VV_EPERM); only on a
 * directory (VV_EACCES); valid blob (VV_EINVAL). */
int vv_acl_check_default(const struct vv_ident *id, const struct vv_perm *p,
			 const uint8_t *blob, size_t len);

/* chmod on a node with an ACL: set user_obj, mask (or group_obj when there
 * is no mask) and other from mode, in place.  VV_EINVAL for a bad blob. */
int vv_acl_chmod(uint8_t *blob, size_t len, uint32_t mode);

/*
 * Create in a directory.  With a default ACL (parent_default non-NULL):
 * the access ACL = the default ACL with user_obj, mask (or group_obj) and
 * other ANDed with the requested mode's u/g/o bits, the umask NOT applied;
 * mode_out = mode with its permission bits taken from that result; no access
 * ACL when the result is equivalent to the mode; a new directory inherits
 * the default ACL as its own.  Without one: mode & ~umask, no ACLs.
 * Symlinks never get ACLs.  *acc_out / *def_out are malloc'd (caller frees)
 * or NULL with length 0.  VV_EINVAL for a bad parent default, VV_ENOMEM.
 */
int vv_acl_inherit(const uint8_t *parent_default, size_t plen, uint32_t mode, uint32_t umask,
		   bool is_dir, uint32_t *mode_out, uint8_t **acc_out, size_t *acc_len,
		   uint8_t **def_out, size_t *def_len);

/* ---- grants (setfacl -m / -x of one group entry, docs/access.md) ------- */

/* The ACL of only the three base entries: user_obj, group_obj and other
 * taken from blob `from` when given (how setfacl seeds a new default ACL
 * from the access ACL), else from mode's permission bits (a node without an
 * ACL).  *out malloc'd.  VV_EINVAL for a bad `from`, VV_ENOMEM. */
int vv_acl_minimal(const uint8_t *from, size_t flen, uint32_t mode, uint8_t **out, size_t *outlen);

/*
 * Set group:gid to perm (0..7), or remove it (perm -1), recomputing the
 * mask as the union of the group class the way setfacl does; when no named
 * entry remains the mask goes too (unlike setfacl -x, which keeps it), so
 * the result is the base entries alone and *minimal is true: the node then
 * carries no ACL of that kind.  *perms: the u/g/o permission bits the result
 * implies (group: mask, or group_obj without one), for an access ACL's mode.
 * *out malloc'd, normalised.  VV_EINVAL (bad blob or perm), VV_E2BIG (no
 * room for another entry), VV_ENOMEM.
 */
int vv_acl_set_group(const uint8_t *blob, size_t len, uint32_t gid, int perm,
		     uint8_t **out, size_t *outlen, uint32_t *perms, bool *minimal);

/* The permissions of the group:gid entry (0..7), VV_ENODATA if there is
 * none (or no ACL), VV_EINVAL for a bad blob. */
int vv_acl_group_perm(const uint8_t *blob, size_t len, uint32_t gid);

/* The named group entries, in gid order: up to max into gids/perms; returns
 * how many exist, or VV_EINVAL. */
int vv_acl_groups(const uint8_t *blob, size_t len, uint32_t *gids, uint8_t *perms, size_t max);

/* getfacl-like text "user::rw-,user:1000:r--,group::r--,mask::r--,other::---",
 * numeric ids, in blob order.  *out malloc'd, caller frees. */
int vv_acl_to_text(const uint8_t *blob, size_t len, char **out);

/* Inverse: entries separated by ',' or newlines, long or short tags
 * (u/g/m/o), perms as "rwx"/"r-x"/"r" (any order); numeric ids only.
 * Result normalised, malloc'd.  VV_EINVAL for bad text or a bad ACL. */
int vv_acl_from_text(const char *text, uint8_t **out, size_t *outlen);

#endif
