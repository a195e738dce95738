/*
 * vault_xattr.c - extended attributes: user.*, trusted.*, security.*,
 * POSIX ACLs (system.posix_acl_access/_default, in the kernel's xattr blob
 * format) and vecvault's vector attributes.
 *
 * Rules follow the kernel's xattr_permission(): user.* only on regular files
 * and directories, read needs read permission and write needs write
 * permission; trusted.* and security.* are root's; ACLs are set by the owner,
 * root or an administrator of the node's collection (vault_grant.c; the
 * kernel itself refuses a local non-owner before we are asked, see
 * docs/access.md) and read by anyone who can reach the node.
 *
 * Vector attributes: a collection directory (directly under the root) keeps
 * its schema as user.vecvault.{dim,dtype,metric}, validated and stored in
 * canonical form; a segment file shows computed, read-only
 * user.vecvault.{format,dtype,dim,count} from its header.  Writing a
 * computed attribute's current value back (cp -a, rsync -X) is accepted
 * silently; any other value is refused.
 *
 * The root directory answers user.vecvault.vault with the store id and
 * user.vecvault.instance with vv_vault_instance(), to anyone who can reach
 * the root (no read permission needed): that is how the CLI finds the
 * control socket of a mount and makes sure it is this mount's daemon
 * (tools/admin_client.c).  They are not listed (rsync -X of the root would copy it into another vault)
 * and cannot be set or removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "snap_int.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"
#include "vecvault/vector.h"

#define ACL_ACCESS "system.posix_acl_access"
#define ACL_DEFAULT "system.posix_acl_default"
#define VEC_PREFIX "user.vecvault."
#define VAULT_ID_XATTR "user.vecvault.vault"
#define INSTANCE_XATTR "user.vecvault.instance"
#define SELINUX_XATTR "security.selinux"

enum ns { NS_USER, NS_TRUSTED, NS_SECURITY, NS_ACL_ACCESS, NS_ACL_DEFAULT, NS_OTHER };

static enum ns classify(const char *name)
{
	if (strncmp(name, "user.", 5) == 0 && name[5])
		return NS_USER;
	if (strncmp(name, "trusted.", 8) == 0 && name[8])
		return NS_TRUSTED;
	if (strncmp(name, "security.", 9) == 0 && name[9])
		return NS_SECURITY;
	if (strcmp(name, ACL_ACCESS) == 0)
		return NS_ACL_ACCESS;
	if (strcmp(name, ACL_DEFAULT) == 0)
		return NS_ACL_DEFAULT;
	return NS_OTHER;
}

static bool is_vault_id(uint64_t ino, const char *name)
{
	return ino == VV_ROOT_INO &&
	       (strcmp(name, VAULT_ID_XATTR) == 0 || strcmp(name, INSTANCE_XATTR) == 0);
}

/* The value of a vault id attribute (is_vault_id). */
static const char *vault_id_value(struct vv_vault *v, const char *name)
{
	return strcmp(name, VAULT_ID_XATTR) == 0 ? vv_store_id(v->store) : v->instance;
}

static bool is_collection(struct node *n)
{
	/* a directory in the root of the vault or of a snapshot (not
	 * .snapshots itself) */
	return S_ISDIR(n->a.mode) && vault_snap_is_root(n->a.parent) && !vault_snap_is_root(n->ino) &&
	       n->ino != VV_SNAPDIR_INO;
}

/* The primary name of n, for recognising segment files. */
static int node_name(struct vv_vault *v, struct node *n, char *buf, size_t cap)
{
	uint64_t parent;

	return vv_meta_dirent_find_ino(v->meta, n->ino, &parent, buf, cap);
}

/* Parse a segment's header (its format from its name), as the offload
 * does.  Called without v->mu. */
static int probe(struct vv_vault *v, struct node *n, const char *name, struct vv_segment_info *si)
{
	const char *why = NULL;
	int r;

	if ((r = vault_audit_gate(v)) < 0 || (r = vault_data_rdlock(v, n)) < 0)
		return r;
	r = vault_data_segment_probe(v, n, vv_segment_format_from_name(name), si, &why);
	pthread_rwlock_unlock(&n->rw);
	return r;
}

/* Is name a computed attribute of segment n?  Fills *si when it is.  Under
 * v->mu on entry and exit (dropped while reading the header). */
static bool computed(struct vv_vault *v, struct node *n, const char *name, struct vv_segment_info *si)
{
	char fname[VV_NAME_MAX + 1];
	bool known = false;
	int r;

	if (!S_ISREG(n->a.mode) || n->a.coll == v->root_coll)
		return false;
	for (const char *const *p = vv_segment_xattr_names(); *p; p++)
		if (!name || strcmp(*p, name) == 0)
			known = true;
	if (!known || node_name(v, n, fname, sizeof(fname)) < 0 || !vv_segment_name_is_segment(fname))
		return false;
	n->pins++;
	pthread_mutex_unlock(&v->mu);
	r = probe(v, n, fname, si);
	pthread_mutex_lock(&v->mu);
	n->pins--;
	return r == 0;
}

/* Is name one of the computed segment attributes, on a collection file? */
static bool reserved(struct vv_vault *v, struct node *n, const char *name)
{
	if (!S_ISREG(n->a.mode) || n->a.coll == v->root_coll)
		return false;
	for (const char *const *p = vv_segment_xattr_names(); *p; p++)
		if (strcmp(*p, name) == 0)
			return true;
	return false;
}

/* Learn, once per node, whether it holds any stored xattr (n->xattrs 1 or
 * -1; a change sets it back to 0, unknown).  Under v->mu. */
static int xattrs_learn(struct vv_vault *v, struct node *n)
{
	bool any;
	int r;

	if (n->xattrs != 0)
		return 0;
	if ((r = vv_meta_xattr_any(v->meta, n->ino, &any)) < 0)
		return r;
	n->xattrs = any ? 1 : -1;
	return 0;
}

/* security.selinux is not supported: a vault stores no SELinux labels
 * (where SELinux runs, the kernel answers the name itself from the
 * policy's label for the mount and never asks us).  get, set and remove
 * answer EOPNOTSUPP, which is also what makes `ls -l` stop asking it of
 * every file it lists: coreutils remembers per device that labels are not
 * supported, where ENODATA costs a FUSE round trip per file.  A value an
 * older version stored is kept: root reads and removes it; anyone else
 * gets the same EOPNOTSUPP (recorded as withheld).  The stored value in
 * *val (caller frees), or NULL; no query when the node is known to hold no
 * xattr.  Under v->mu. */
static int selinux_stored(struct vv_vault *v, struct node *n, uint8_t **val, size_t *len)
{
	int r;

	*val = NULL;
	*len = 0;
	if ((r = xattrs_learn(v, n)) < 0)
		return r;
	if (n->xattrs < 0)
		return 0;
	r = vv_meta_xattr_get(v->meta, n->ino, SELINUX_XATTR, val, len);
	return r == VV_ENODATA ? 0 : r;
}

#define CAPS_XATTR "security.capability"

/* The kernel removes a file's capabilities when its data changes
 * (file_remove_privs) or its owner or group does (chown_common's
 * ATTR_KILL_PRIV), but for a caller other than root it cannot see them
 * here: security.* is hidden from non-root, so it is told there are
 * none, and its removexattr would be refused anyway; a remote peer's
 * chown never passes through a kernel at all.  So the daemon drops them
 * itself, whoever writes or chowns (a no-op for root, whose change the
 * kernel already cleared).  Cheap for nearly every file: a node known to
 * hold no xattr is skipped, else one point lookup.  A failure is logged
 * and the change goes on (a capability left is what happened before
 * this check). */
void vault_xattr_killcap_by(struct vv_vault *v, const struct vv_ctx *c, struct node *n,
			    const char *by)
{
	char why[64];

	uint8_t *val = NULL;
	size_t len;
	int r;

	if (xattrs_learn(v, n) < 0 || n->xattrs < 0)
		return;
	r = vv_meta_xattr_get(v->meta, n->ino, CAPS_XATTR, &val, &len);
	free(val);
	if (r == VV_ENODATA)
		return;
	if (r == 0 && (r = vault_txn(v)) == 0 && (r = vv_meta_xattr_del(v->meta, n->ino, CAPS_XATTR)) == 0) {
		n->xattrs = 0;               /* maybe none left: ask again */
		n->a.ctime = vault_now();
		r = vault_node_save(v, n);
	}
	if (r < 0)
		vv_log(VV_LOG_WARN, "vault: inode %llu: cannot drop its security.capability on %s: "
		       "%s", (unsigned long long)n->ino, by, vv_strerror(r));
	snprintf(why, sizeof(why), CAPS_XATTR " (dropped by %s)", by);
	vault_audit(v, c, "removexattr", n->ino, 0, NULL, r, why);
}

/* Access rules shared by get/set/remove.  write: changing. */
static int xattr_perm(struct vv_vault *v, const struct vv_ctx *c, struct node *n, enum ns ns, bool write)
{
	switch (ns) {
	case NS_USER:
		if (!S_ISREG(n->a.mode) && !S_ISDIR(n->a.mode))
			return write ? VV_EPERM : VV_ENODATA;
		if (write && S_ISDIR(n->a.mode) && (n->a.mode & S_ISVTX) &&
		    c->id.uid != 0 && c->id.uid != n->a.uid)
			return VV_EPERM;
		return vault_node_check(v, c, n, write ? VV_MAY_WRITE : VV_MAY_READ);
	case NS_TRUSTED:
	case NS_SECURITY:
		if (c->id.uid != 0)
			return write ? VV_EPERM : VV_ENODATA;
		return 0;
	case NS_ACL_ACCESS:
	case NS_ACL_DEFAULT:
		if (write && !vv_access_owner_or_root(&c->id, n->a.uid) &&
		    !vault_grant_admin(v, &c->id, n))
			return VV_EPERM;
		return 0;
	default:
		return VV_ENOTSUP;
	}
}

/* Set or remove (value NULL) an ACL; keeps mode and ACL in step. */
static int set_acl(struct vv_vault *v, const struct vv_ctx *c, struct node *n, enum ns ns,
		   const uint8_t *value, size_t size)
{
	struct vv_perm p;
	uint8_t *norm = NULL;
	size_t nlen = 0;
	bool was_ok = S_ISDIR(n->a.mode) && vault_node_chain_ok(v, n);
	int r;

	vault_node_perm(v, n, &p);
	p.coll_admin = !vv_access_owner_or_root(&c->id, n->a.uid) && vault_grant_admin(v, &c->id, n);
	/* A header-only value means "no ACL" (what the kernel sends for an
	 * empty ACL). */
	if (value && size == 4)
		value = NULL;
	if (ns == NS_ACL_ACCESS) {
		uint32_t mode = n->a.mode;
		bool store = false;
		if (value && (r = vv_acl_to_mode(&c->id, &p, value, size, &mode, &store)) < 0)
			return r;
		if (store && (r = vv_acl_normalize(value, size, &norm, &nlen)) < 0)
			return r;
		if (store)
			r = vv_meta_xattr_set(v->meta, n->ino, ACL_ACCESS, norm, nlen);
		else {
			r = vv_meta_xattr_del(v->meta, n->ino, ACL_ACCESS);
			if (r == VV_ENODATA)
				r = value ? 0 : VV_ENODATA;
		}
		if (r == 0)
			n->a.mode = mode;
	} else {
		if (value && (r = vv_acl_check_default(&c->id, &p, value, size)) < 0)
			return r;
		if (!value && !S_ISDIR(n->a.mode))
			return VV_ENODATA;
		if (value && (r = vv_acl_normalize(value, size, &norm, &nlen)) < 0)
			return r;
		r = value ? vv_meta_xattr_set(v->meta, n->ino, ACL_DEFAULT, norm, nlen)
			  : vv_meta_xattr_del(v->meta, n->ino, ACL_DEFAULT);
	}
	free(norm);
	if (r < 0)
		return r;
	n->acl_loaded = false;
	n->a.ctime = vault_now();
	if ((r = vault_node_save(v, n)) < 0)
		return r;
	if (S_ISDIR(n->a.mode)) {
		v->nodes.perm_gen++;
		if (was_ok && !vault_node_chain_ok(v, n))
			vault_node_invalidate_all(v);
	}
	return 0;
}

/* XATTR_CREATE: VV_EEXIST if name exists; XATTR_REPLACE: VV_ENODATA if not. */
static int check_flags(struct vv_vault *v, uint64_t ino, const char *name, int flags)
{
	uint8_t *old = NULL;
	size_t len = 0;
	int r;

	if (!(flags & (VV_XATTR_CREATE | VV_XATTR_REPLACE)))
		return 0;
	r = vv_meta_xattr_get(v->meta, ino, name, &old, &len);
	free(old);
	if (r < 0 && r != VV_ENODATA)
		return r;
	if ((flags & VV_XATTR_CREATE) && r == 0)
		return VV_EEXIST;
	if ((flags & VV_XATTR_REPLACE) && r == VV_ENODATA)
		return VV_ENODATA;
	return 0;
}

int vv_vault_setxattr(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
		      const char *name, const void *value, size_t size, int flags)
{
	struct node *n = NULL;
	struct vv_segment_info si;
	enum ns ns = classify(name);
	char canon[64];
	int r;

	if (strlen(name) > VV_XATTR_NAME_MAX)
		return VV_ERANGE;
	if (size > VV_XATTR_SIZE_MAX)
		return VV_E2BIG;
	pthread_mutex_lock(&v->mu);
	if (trash_virt(ino)) {
		r = VV_EROFS;
		goto out;
	}
	if ((r = vault_audit_gate(v)) < 0 || (r = vault_node_get(v, ino, &n)) < 0)
		goto out;
	if (strcmp(name, SELINUX_XATTR) == 0) {
		r = VV_ENOTSUP;                          /* selinux_stored */
		goto out;
	}
	if ((r = vault_snap_ro(ino)) < 0 || (r = xattr_perm(v, c, n, ns, true)) < 0)
		goto out;
	if (vault_trash_in(v, n)) {
		r = VV_EROFS;                            /* the trash is read-only */
		goto out;
	}
	if ((r = vault_space_ok(v)) < 0 || (r = vault_txn(v)) < 0)
		goto out;
	if (ns == NS_ACL_ACCESS || ns == NS_ACL_DEFAULT) {
		if ((r = check_flags(v, ino, name, flags)) < 0)
			goto out;
		r = set_acl(v, c, n, ns, value, size);
		goto out;
	}
	if (is_vault_id(ino, name)) {
		const char *id = vault_id_value(v, name);
		r = size == strlen(id) && memcmp(value, id, size) == 0 ? 0 : VV_EPERM;
		goto out;
	}
	if (strncmp(name, VEC_PREFIX, strlen(VEC_PREFIX)) == 0) {
		if (is_collection(n)) {
			r = vv_schema_check_xattr(name, value, size, canon, sizeof(canon));
			if (r == VV_ENODATA)
				r = VV_EINVAL;
			if (r < 0)
				goto out;
			value = canon;
			size = strlen(canon);
		} else if (reserved(v, n, name)) {
			/* Computed names are never stored.  On a segment, writing
			 * back the current value (cp -a, rsync -X) is accepted and
			 * anything else refused; on a file that is not (yet) a
			 * segment, such as rsync's temporary name, the value is
			 * dropped: it is recomputed once the file is a segment. */
			if (computed(v, n, name, &si)) {
				char cur[64];
				int cl = vv_segment_xattr(&si, name, cur, sizeof(cur));
				size_t vl = size;
				if (vl && (((const char *)value)[vl - 1] == 0 ||
					   ((const char *)value)[vl - 1] == '\n'))
					vl--;
				r = (cl >= 0 && (size_t)cl == vl && memcmp(cur, value, vl) == 0) ? 0 : VV_EPERM;
			} else {
				r = 0;
			}
			goto out;
		}
	}
	if ((r = check_flags(v, ino, name, flags)) < 0 ||
	    (r = vv_meta_xattr_set(v->meta, ino, name, value, size)) < 0)
		goto out;
	n->xattrs = 1;
	n->a.ctime = vault_now();
	r = vault_node_save(v, n);
out:
	if (n && r == 0 && (ns == NS_ACL_ACCESS || ns == NS_ACL_DEFAULT))
		n->xattrs = 0;               /* stored or removed: ask again */
	vault_audit(v, c, "setxattr", ino, 0, NULL, r, name);
	vault_node_put(v, n);
	pthread_mutex_unlock(&v->mu);
	return r;
}

static ssize_t give(const void *val, size_t len, void *buf, size_t size)
{
	if (size == 0)
		return (ssize_t)len;
	if (len > size)
		return VV_ERANGE;
	memcpy(buf, val, len);
	return (ssize_t)len;
}

ssize_t vv_vault_getxattr(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
			  const char *name, void *buf, size_t size)
{
	struct node *n = NULL;
	struct vv_segment_info si;
	enum ns ns = classify(name);
	bool selinux = strcmp(name, SELINUX_XATTR) == 0;
	uint8_t *val = NULL;
	size_t len = 0;
	bool hidden = false;
	ssize_t r;

	pthread_mutex_lock(&v->mu);
	if (trash_virt(ino)) {
		/* the trash's own entries have none */
		r = selinux ? VV_ENOTSUP : VV_ENODATA;
		goto out;
	}
	if ((r = vault_node_get(v, ino, &n)) < 0)
		goto out;
	if (selinux) {
		/* Not a supported name (selinux_stored): a constant answer,
		 * not recorded, unless a stored value is withheld. */
		if ((r = selinux_stored(v, n, &val, &len)) < 0)
			goto out;
		if (val && c->id.uid == 0) {
			r = give(val, len, buf, size);
		} else {
			hidden = val != NULL;
			r = VV_ENOTSUP;
		}
		goto out;
	}
	if (is_vault_id(ino, name)) {
		const char *id = vault_id_value(v, name);
		r = give(id, strlen(id), buf, size);
		goto out;
	}
	if ((r = xattr_perm(v, c, n, ns, false)) < 0) {
		hidden = r == VV_ENODATA && (ns == NS_SECURITY || ns == NS_TRUSTED);
		/* Nothing is hidden from a node with no stored xattr at all
		 * (root would get ENODATA too): a plain "no such attribute",
		 * not recorded, as for root.  That is what ls -l by a non-root
		 * user asks of nearly every file (security.selinux). */
		if (hidden)
			(void)xattrs_learn(v, n);
		if (hidden && n->xattrs < 0)
			hidden = false;
		goto out;
	}
	if (ns == NS_USER && strncmp(name, VEC_PREFIX, strlen(VEC_PREFIX)) == 0 &&
	    computed(v, n, name, &si)) {
		char cur[64];
		int cl = vv_segment_xattr(&si, name, cur, sizeof(cur));
		r = cl < 0 ? cl : give(cur, (size_t)cl, buf, size);
		goto out;
	}
	if (ns == NS_ACL_ACCESS) {
		/* Served from the node's ACL cache (loaded for access checks). */
		const uint8_t *acl;
		size_t al;
		if ((r = vault_node_acl(v, n, &acl, &al)) < 0)
			goto out;
		r = acl ? give(acl, al, buf, size) : VV_ENODATA;
		goto out;
	}
	/* ls -l asks every file for security.* and ACLs: most have no
	 * xattrs at all, which is remembered per node. */
	if ((r = xattrs_learn(v, n)) < 0)
		goto out;
	if (n->xattrs < 0) {
		r = VV_ENODATA;
		goto out;
	}
	if ((r = vv_meta_xattr_get(v->meta, ino, name, &val, &len)) < 0)
		goto out;
	r = give(val, len, buf, size);
out:
	/* Recorded: every value (or size) served, ACLs and computed attributes
	 * included, and every refusal; not a plain "no such attribute", which
	 * ls -l asks of every file.  A root-only name answered ENODATA to
	 * someone else is a refusal in disguise: recorded as such. */
	if (hidden) {
		char why[VV_XATTR_NAME_MAX + 32];
		snprintf(why, sizeof(why), "%s (hidden from non-root)", name);
		vault_audit(v, c, "getxattr", ino, 0, NULL, (int)r, why);
	} else if (r >= 0 || (r != VV_ENODATA && r != VV_ERANGE && !(selinux && r == VV_ENOTSUP))) {
		vault_audit(v, c, "getxattr", ino, 0, NULL, r < 0 ? (int)r : 0, name);
	}
	free(val);
	vault_node_put(v, n);
	pthread_mutex_unlock(&v->mu);
	return r;
}

struct lst {
	struct vv_vault *v;
	struct node *n;
	const struct vv_ctx *c;
	char *buf;
	size_t size, len;
	bool over;
};

static int lst_add(void *ctx, const char *name)
{
	struct lst *l = ctx;
	size_t nl = strlen(name) + 1;

	if (strncmp(name, "trusted.", 8) == 0 && l->c->id.uid != 0)
		return 0;
	if (l->n && reserved(l->v, l->n, name))
		return 0;                    /* stale stored copy: listed as computed */
	if (l->size) {
		if (l->len + nl > l->size) {
			l->over = true;
			return 1;
		}
		memcpy(l->buf + l->len, name, nl);
	}
	l->len += nl;
	return 0;
}

ssize_t vv_vault_listxattr(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
			   char *buf, size_t size)
{
	struct lst l = { .c = c, .buf = buf, .size = size };
	struct vv_segment_info si;
	struct node *n = NULL;
	ssize_t r;

	pthread_mutex_lock(&v->mu);
	if (trash_virt(ino)) {
		r = 0;
		goto out;
	}
	if ((r = vault_node_get(v, ino, &n)) < 0)
		goto out;
	l.v = v;
	l.n = n;
	if (n->xattrs >= 0 && (r = vv_meta_xattr_list(v->meta, ino, lst_add, &l)) < 0)
		goto out;
	l.n = NULL;
	/* The computed names say that the file decrypts to a valid segment:
	 * listed only to those who may read it (getxattr's rule). */
	if (!l.over && vault_node_check(v, c, n, VV_MAY_READ) == 0 && computed(v, n, NULL, &si))
		for (const char *const *p = vv_segment_xattr_names(); *p && !l.over; p++)
			lst_add(&l, *p);
	r = l.over ? VV_ERANGE : (ssize_t)l.len;
out:
	if (r != VV_ERANGE)
		vault_audit(v, c, "listxattr", ino, 0, NULL, r < 0 ? (int)r : 0, NULL);
	vault_node_put(v, n);
	pthread_mutex_unlock(&v->mu);
	return r;
}

int vv_vault_removexattr(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino, const char *name)
{
	struct node *n = NULL;
	struct vv_segment_info si;
	enum ns ns = classify(name);
	int r;

	pthread_mutex_lock(&v->mu);
	if (trash_virt(ino)) {
		r = VV_EROFS;
		goto out;
	}
	if ((r = vault_audit_gate(v)) < 0 || (r = vault_node_get(v, ino, &n)) < 0 ||
	    (r = vault_snap_ro(ino)) < 0 || (r = xattr_perm(v, c, n, ns, true)) < 0)
		goto out;
	if (vault_trash_in(v, n)) {
		r = VV_EROFS;
		goto out;
	}
	if ((r = vault_txn(v)) < 0)
		goto out;
	if (ns == NS_ACL_ACCESS || ns == NS_ACL_DEFAULT) {
		r = set_acl(v, c, n, ns, NULL, 0);
		goto out;
	}
	if (is_vault_id(ino, name) ||
	    (strncmp(name, VEC_PREFIX, strlen(VEC_PREFIX)) == 0 && computed(v, n, name, &si))) {
		r = VV_EPERM;
		goto out;
	}
	if ((r = vv_meta_xattr_del(v->meta, ino, name)) < 0) {
		/* no stored label: the name is not supported (selinux_stored) */
		if (r == VV_ENODATA && strcmp(name, SELINUX_XATTR) == 0)
			r = VV_ENOTSUP;
		goto out;
	}
	n->a.ctime = vault_now();
	r = vault_node_save(v, n);
out:
	if (n)
		n->xattrs = 0;               /* maybe none left: ask again */
	vault_audit(v, c, "removexattr", ino, 0, NULL, r, name);
	vault_node_put(v, n);
	pthread_mutex_unlock(&v->mu);
	return r;
}
