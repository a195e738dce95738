/*
 * vault_ns.c - the namespace: lookup, getattr, setattr, creating, linking,
 * removing and renaming entries, directory listing, access(2).
 *
 * Each operation decides access for the caller through the one check in
 * access.c (vv_access_*), records denials (and changes) in the audit log,
 * and changes meta.db inside the vault's open transaction.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto_int.h"
#include "snap_int.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

static int check_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || strchr(name, '/'))
		return VV_EINVAL;
	if (n > VV_NAME_MAX)
		return VV_ENAMETOOLONG;
	return 0;
}

/* Pinned directory node for ino, or VV_ENOTDIR. */
static int get_dir(struct vv_vault *v, uint64_t ino, struct node **out)
{
	int r = vault_node_get(v, ino, out);

	if (r == 0 && !S_ISDIR((*out)->a.mode)) {
		vault_node_put(v, *out);
		*out = NULL;
		r = VV_ENOTDIR;
	}
	/* A removed tree's parts join it before anyone looks inside. */
	if (r == 0 && (*out)->a.parent == VV_TRASH_FILES_INO && (r = vault_trash_settle(v, *out)) < 0) {
		vault_node_put(v, *out);
		*out = NULL;
	}
	return r;
}

static void touch_dir(struct node *d, int64_t now)
{
	d->a.mtime = d->a.ctime = now;
}

/* The collection a new entry in dir would belong to; for a directory made
 * directly under the root, a new collection (coll 0 here = "make one"). */
static uint32_t coll_for(struct vv_vault *v, struct node *dir, bool is_dir)
{
	if (dir->ino == VV_ROOT_INO)
		return is_dir ? 0 : v->root_coll;
	return dir->a.coll;
}

/*
 * FIFOs and unix sockets: without default_permissions the kernel neither
 * checks their modes nor sends us their opens and connects, so the only
 * place the daemon can decide is the lookup that every path walk to them
 * makes (their entries are never cached, vault_node_attr; readdirplus never
 * instantiates them, rd_plus).  The lookup needs read and write permission
 * (or ownership: the owner may chmod anyway), as an open for either end
 * could follow.  Stricter than POSIX: a user who may only read cannot open
 * such a file at all, nor stat, rename or unlink it by its name
 * (docs/access.md).
 */
int vault_special_lookup_check(struct vv_vault *v, const struct vv_ctx *c, struct node *n)
{
	if (vv_access_owner_or_root(&c->id, n->a.uid))
		return 0;
	return vault_node_check(v, c, n, VV_MAY_READ | VV_MAY_WRITE);
}

int vv_vault_lookup(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent,
		    const char *name, struct vv_attr *out)
{
	struct node *d = NULL, *n = NULL;
	uint64_t ino = 0;
	int r;

	pthread_mutex_lock(&v->mu);
	if (trash_virt(parent)) {
		r = vault_audit_gate(v);
		if (r == 0)
			r = vault_trash_lookup(v, c, parent, name, out);
		pthread_mutex_unlock(&v->mu);
		return r;
	}
	if ((r = vault_audit_gate(v)) < 0 || (r = get_dir(v, parent, &d)) < 0)
		goto out;
	if ((r = vault_node_check(v, c, d, VV_MAY_EXEC)) < 0)
		goto out;
	if ((r = check_name(name)) < 0)
		goto out;
	if (strcmp(name, ".") == 0)
		ino = parent;
	else if (strcmp(name, "..") == 0)
		ino = d->a.parent;
	else if ((r = vv_meta_dirent_get(v->meta, parent, name, &ino)) < 0) {
		/* .trash: found by lookup, never listed (a real entry of that
		 * name, made by an older build, hides it). */
		if (r == VV_ENOENT && parent == VV_ROOT_INO && strcmp(name, ".trash") == 0) {
			r = vault_trash_lookup(v, c, parent, name, out);
			goto out;
		}
		if (r == VV_ENOENT) {
			memset(out, 0, sizeof(*out));
			/* .snapshots gains names without a request there */
			out->cacheable = parent != VV_SNAPDIR_INO && vault_node_chain_ok(v, d);
		}
		goto out;
	}
	if (trash_virt(ino)) {                       /* ".." of a trashed directory */
		r = vault_trash_lookup(v, c, VV_TRASH_FILES_INO, ".", out);
		goto out;
	}
	if ((r = vault_node_get(v, ino, &n)) < 0)
		goto out;
	if ((S_ISFIFO(n->a.mode) || S_ISSOCK(n->a.mode)) && (r = vault_special_lookup_check(v, c, n)) < 0)
		goto out;
	n->nlookup++;
	vault_node_named(n, parent, name, c->id.pid);
	vault_node_attr(v, n, vault_node_chain_ok(v, d), out);
out:
	if (r != VV_ENOENT)
		vault_audit(v, c, "lookup", ino, parent, name, r, NULL);
	vault_node_put(v, n);
	vault_node_put(v, d);
	pthread_mutex_unlock(&v->mu);
	return r;
}

void vv_vault_forget(struct vv_vault *v, uint64_t ino, uint64_t nlookup)
{
	struct node *n;

	if (ino == VV_ROOT_INO)
		return;
	pthread_mutex_lock(&v->mu);
	if (vault_node_get(v, ino, &n) == 0) {
		n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
		vault_node_put(v, n);
	}
	pthread_mutex_unlock(&v->mu);
}

/* Cacheability of n's attributes: through its primary parent. */
static bool cacheable(struct vv_vault *v, struct node *n)
{
	struct node *p;
	bool ok;

	if (n->ino == VV_ROOT_INO)
		return true;
	if (vault_node_get(v, n->a.parent, &p) < 0)
		return false;
	ok = S_ISDIR(p->a.mode) && vault_node_chain_ok(v, p);
	vault_node_put(v, p);
	return ok;
}

int vv_vault_getattr(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
		     struct vv_attr *out)
{
	struct node *n = NULL;
	int r;

	pthread_mutex_lock(&v->mu);
	if (trash_virt(ino))
		r = vault_trash_getattr(v, c, ino, out);
	else if ((r = vault_node_get(v, ino, &n)) == 0)
		vault_node_attr(v, n, cacheable(v, n), out);
	vault_node_put(v, n);
	pthread_mutex_unlock(&v->mu);
	return r;
}

/* newmode equals oldmode with some of S_ISUID/S_ISGID cleared (and no other change). */
static bool only_drops_privs(uint32_t oldmode, uint32_t newmode)
{
	uint32_t o = oldmode & 07777, n = newmode & 07777;

	return o != n && (n & ~o) == 0 && ((o ^ n) & ~(uint32_t)(S_ISUID | S_ISGID)) == 0;
}

/* A directory's permissions changed: if it may have been searchable by all
 * before and is not now, the kernel must forget what it cached below it. */
static void perm_changed(struct vv_vault *v, struct node *n, bool was_ok)
{
	if (!S_ISDIR(n->a.mode))
		return;
	v->nodes.perm_gen++;
	if (was_ok && !vault_node_chain_ok(v, n))
		vault_node_invalidate_all(v);
}

int vv_vault_setattr(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
		     const struct vv_setattr *sa, struct vv_attr *out)
{
	struct node *n = NULL;
	struct vv_perm p;
	bool was_ok = false, locked_rw = false;
	int64_t now = vault_now();
	uint32_t mode;
	int r;

	pthread_mutex_lock(&v->mu);
	if (trash_virt(ino)) {
		r = VV_EROFS;
		goto out;
	}
	if ((r = vault_audit_gate(v)) < 0 || (r = vault_node_get(v, ino, &n)) < 0 ||
	    (r = vault_snap_ro(ino)) < 0)
		goto out;
	if (vault_trash_in(v, n)) {
		r = VV_EROFS;                            /* the trash is read-only */
		goto out;
	}
	if (sa->valid & VV_SET_SIZE) {
		/* Data lock first (lock order), then re-take the metadata lock. */
		pthread_mutex_unlock(&v->mu);
		pthread_rwlock_wrlock(&n->rw);
		locked_rw = true;
		pthread_mutex_lock(&v->mu);
	}
	if (S_ISDIR(n->a.mode))
		was_ok = vault_node_chain_ok(v, n);
	vault_node_perm(v, n, &p);
	if ((r = vault_txn(v)) < 0)
		goto out;
	/* "Kill setuid/setgid" on its own is what the kernel sends after a
	 * writer's write: a remote peer may send it bare, so it needs what a
	 * write needs (with a size or an owner change, their checks decide). */
	if ((sa->valid & VV_SET_KILL_SUIDGID) &&
	    !(sa->valid & (VV_SET_MODE | VV_SET_UID | VV_SET_GID | VV_SET_SIZE)) &&
	    !vv_access_owner_or_root(&c->id, n->a.uid) &&
	    !(sa->fh && sa->fh->n == n && file_may_write(sa->fh)) &&
	    (r = vv_access_check(&c->id, &p, VV_MAY_WRITE)) < 0)
		goto out;

	if (sa->valid & VV_SET_MODE) {
		/* An administrator of the collection may chmod as the owner
		 * (docs/access.md "Grants"). */
		if (!vv_access_owner_or_root(&c->id, n->a.uid))
			p.coll_admin = vault_grant_admin(v, &c->id, n);
		/* The kernel clears setuid/setgid after a non-owner's write or
		 * truncate by sending that chmod in the writer's name (it does so
		 * itself when HANDLE_KILLPRIV is not negotiated): allow a mode
		 * change that only drops those bits to anyone who may write. */
		if (!vv_access_owner_or_root(&c->id, n->a.uid) && !p.coll_admin && S_ISREG(n->a.mode) &&
		    only_drops_privs(n->a.mode, sa->mode)) {
			if ((r = vv_access_check(&c->id, &p, VV_MAY_WRITE)) < 0)
				goto out;
			mode = (n->a.mode & S_IFMT) | (sa->mode & 07777);
		} else if ((r = vv_access_chmod(&c->id, &p, sa->mode, &mode)) < 0) {
			goto out;
		}
		if (n->acl) {
			if ((r = vv_acl_chmod(n->acl, n->acl_len, mode)) < 0 ||
			    (r = vv_meta_xattr_set(v->meta, ino, "system.posix_acl_access", n->acl, n->acl_len)) < 0)
				goto out;
		}
		n->a.mode = mode;
		n->a.ctime = now;
		vault_node_perm(v, n, &p);
	}
	if (sa->valid & (VV_SET_UID | VV_SET_GID)) {
		uint32_t nu = (sa->valid & VV_SET_UID) ? sa->uid : VV_ID_NONE;
		uint32_t ng = (sa->valid & VV_SET_GID) ? sa->gid : VV_ID_NONE;
		if ((r = vv_access_chown(&c->id, &p, nu, ng, &mode)) < 0)
			goto out;
		if (nu != VV_ID_NONE)
			n->a.uid = nu;
		if (ng != VV_ID_NONE)
			n->a.gid = ng;
		n->a.mode = mode;
		n->a.ctime = now;
		vault_node_perm(v, n, &p);
		/* as chown_common asks (ATTR_KILL_PRIV): not for directories */
		if (!S_ISDIR(n->a.mode))
			vault_xattr_killcap_by(v, c, n, "a chown");
	}
	if (sa->valid & VV_SET_SIZE) {
		if (!S_ISREG(n->a.mode)) {
			r = S_ISDIR(n->a.mode) ? VV_EISDIR : VV_EINVAL;
			goto out;
		}
		if (sa->size > VV_MAX_FILE_SIZE) {
			r = VV_EFBIG;
			goto out;
		}
		/* ftruncate through a handle opened for writing needs no check:
		 * a handle of this very file (a remote peer names both). */
		if (!(sa->fh && sa->fh->n == n && file_may_write(sa->fh)) &&
		    (r = vv_access_check(&c->id, &p, VV_MAY_WRITE)) < 0)
			goto out;
		pthread_mutex_unlock(&v->mu);
		r = vault_data_truncate(v, n, sa->size);
		pthread_mutex_lock(&v->mu);
		if (r < 0)
			goto out;
		vault_xattr_killcap(v, c, n);
		n->a.mode = vv_access_killpriv(&c->id, &p);
		n->a.mtime = n->a.ctime = now;
	}
	if (sa->valid & (VV_SET_ATIME | VV_SET_MTIME | VV_SET_ATIME_NOW | VV_SET_MTIME_NOW)) {
		bool expl = (sa->valid & (VV_SET_ATIME | VV_SET_MTIME)) &&
			    !((sa->valid & VV_SET_ATIME) && (sa->valid & VV_SET_ATIME_NOW)) &&
			    !((sa->valid & VV_SET_MTIME) && (sa->valid & VV_SET_MTIME_NOW));
		if ((r = vv_access_utimes(&c->id, &p, expl)) < 0)
			goto out;
		if (sa->valid & VV_SET_ATIME_NOW)
			n->a.atime = now;
		else if (sa->valid & VV_SET_ATIME)
			n->a.atime = (int64_t)sa->atime.tv_sec * 1000000000LL + sa->atime.tv_nsec;
		if (sa->valid & VV_SET_MTIME_NOW)
			n->a.mtime = now;
		else if (sa->valid & VV_SET_MTIME)
			n->a.mtime = (int64_t)sa->mtime.tv_sec * 1000000000LL + sa->mtime.tv_nsec;
		n->a.ctime = now;
	}
	if (sa->valid & VV_SET_CTIME) {
		/* Only a kernel keeping times itself (writeback cache, off
		 * here) sends a ctime; whoever sends one sets a time of their
		 * choosing, as utimensat with explicit times: the owner's
		 * right (else anyone could forge the ctime alone). */
		if ((r = vv_access_utimes(&c->id, &p, true)) < 0)
			goto out;
		n->a.ctime = (int64_t)sa->ctime.tv_sec * 1000000000LL + sa->ctime.tv_nsec;
	}
	if ((sa->valid & VV_SET_KILL_SUIDGID) && !(sa->valid & VV_SET_MODE))
		n->a.mode = vv_access_killpriv(&c->id, &p);
	if ((r = vault_node_save(v, n)) < 0)
		goto out;
	if (sa->valid & (VV_SET_MODE | VV_SET_UID | VV_SET_GID))
		perm_changed(v, n, was_ok);
	vault_node_attr(v, n, cacheable(v, n), out);
out:
	vault_audit(v, c, (sa->valid & VV_SET_SIZE) ? "truncate" :
		    (sa->valid & VV_SET_MODE) ? "chmod" :
		    (sa->valid & (VV_SET_UID | VV_SET_GID)) ? "chown" : "setattr",
		    ino, 0, NULL, r, NULL);
	if (locked_rw) {
		pthread_mutex_unlock(&v->mu);
		pthread_rwlock_unlock(&n->rw);
		pthread_mutex_lock(&v->mu);
	}
	vault_node_put(v, n);
	pthread_mutex_unlock(&v->mu);
	return r;
}

int vv_vault_readlink(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
		      char *buf, size_t buflen)
{
	struct node *n = NULL;
	uint8_t *data = NULL;
	size_t len = 0;
	int r;

	pthread_mutex_lock(&v->mu);
	if (trash_virt(ino)) {
		r = VV_EINVAL;
		goto out;
	}
	if ((r = vault_node_get(v, ino, &n)) < 0)
		goto out;
	if (!S_ISLNK(n->a.mode)) {
		r = VV_EINVAL;
		goto out;
	}
	if ((r = vv_meta_inode_get_data(v->meta, ino, &data, &len)) < 0)
		goto out;
	if (len > buflen) {
		r = VV_ERANGE;
		goto out;
	}
	memcpy(buf, data, len);
	r = (int)len;
out:
	vault_audit(v, c, "readlink", ino, 0, NULL, r < 0 ? r : 0, NULL);
	free(data);
	vault_node_put(v, n);
	pthread_mutex_unlock(&v->mu);
	return r;
}

/* Create an entry name in parent: regular file, directory, symlink or
 * special file.  Under v->mu.  On success *nout is pinned, with one lookup
 * reference taken, and *out filled. */
static int make(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent, const char *name,
		uint32_t mode, uint64_t rdev, const char *target, struct vv_attr *out,
		struct node **nout)
{
	struct node *d = NULL, *n = NULL;
	struct vv_inode_row row;
	uint8_t *pdef = NULL, *acc = NULL, *def = NULL;
	size_t pdlen = 0, acclen = 0, deflen = 0;
	bool is_dir = S_ISDIR(mode);
	uint64_t ino = 0, existing;
	int64_t now = vault_now();
	uint32_t m;
	int r;

	*nout = NULL;
	if (trash_virt(parent)) {
		r = VV_EROFS;
		goto out;
	}
	if ((r = vault_audit_gate(v)) < 0 || (r = get_dir(v, parent, &d)) < 0 ||
	    (r = vault_snap_ro(parent)) < 0)
		goto out;
	if ((r = vault_node_check(v, c, d, VV_MAY_WRITE | VV_MAY_EXEC)) < 0)
		goto out;
	if ((r = check_name(name)) < 0)
		goto out;
	if (vault_trash_reserved(parent, name)) {
		r = VV_EEXIST;                           /* .trash, .snapshots */
		goto out;
	}
	if (vault_trash_in(v, d)) {
		r = VV_EROFS;
		goto out;
	}
	/* vfs_mknod's CAP_MKNOD: the kernel refuses a local caller before we
	 * see it, a remote one only reaches here. */
	if ((S_ISCHR(mode) || S_ISBLK(mode)) && c->id.uid != 0) {
		r = VV_EPERM;
		goto out;
	}
	if (d->a.nlink == 0) {
		r = VV_ENOENT;               /* creating in a removed directory */
		goto out;
	}
	if ((r = vault_space_ok(v)) < 0)
		goto out;
	if (is_dir && d->a.nlink >= VV_MAX_LINKS) {
		r = VV_EMLINK;
		goto out;
	}
	r = vv_meta_dirent_get(v->meta, parent, name, &existing);
	if (r == 0) {
		r = VV_EEXIST;
		goto out;
	}
	if (r != VV_ENOENT)
		goto out;
	if ((r = vault_txn(v)) < 0)
		goto out;
	if (S_ISLNK(mode)) {
		m = S_IFLNK | 0777;
	} else {
		r = vv_meta_xattr_get(v->meta, parent, "system.posix_acl_default", &pdef, &pdlen);
		if (r < 0 && r != VV_ENODATA)
			goto out;
		if ((r = vv_acl_inherit(pdef, pdlen, mode & 07777, c->umask, is_dir, &m, &acc, &acclen,
					&def, &deflen)) < 0)
			goto out;
		m = (mode & S_IFMT) | (m & 07777);
	}
	memset(&row, 0, sizeof(row));
	if ((r = vv_meta_next_ino(v->meta, &ino)) < 0)
		goto out;
	row.ino = ino;
	row.gen = 1;
	row.uid = c->id.uid;
	row.gid = c->id.gid;
	if (d->a.mode & S_ISGID) {
		row.gid = d->a.gid;
		if (is_dir)
			m |= S_ISGID;
	}
	if (!is_dir && (m & S_ISGID) && c->id.uid != 0 && !vv_access_in_group(&c->id, row.gid))
		m &= ~(uint32_t)S_ISGID;
	row.mode = m;
	row.nlink = is_dir ? 2 : 1;
	row.rdev = rdev;
	row.atime = row.mtime = row.ctime = now;
	row.parent = parent;
	row.coll = coll_for(v, d, is_dir);
	if (row.coll == 0 && (r = vault_coll_new(v, &row.coll)) < 0)
		goto out;
	vv_random_bytes(row.objid, sizeof(row.objid));
	if (target)
		row.size = strlen(target);
	if ((r = vv_meta_inode_put(v->meta, &row)) < 0 ||
	    (target && (r = vv_meta_inode_set_data(v->meta, ino, target, strlen(target))) < 0) ||
	    (r = vv_meta_dirent_add(v->meta, parent, name, ino, m)) < 0 ||
	    (acc && (r = vv_meta_xattr_set(v->meta, ino, "system.posix_acl_access", acc, acclen)) < 0) ||
	    (def && (r = vv_meta_xattr_set(v->meta, ino, "system.posix_acl_default", def, deflen)) < 0))
		goto out;
	if (is_dir)
		d->a.nlink++;
	touch_dir(d, now);
	if ((r = vault_node_save(v, d)) < 0)
		goto out;
	if ((r = vault_node_get(v, ino, &n)) < 0)
		goto out;
	if (S_ISREG(m)) {
		node_set_data(&n->data_loaded, true);
		node_set_data(&n->is_inline, true);
	}
	n->xattrs = (acc || def) ? 1 : -1;
	n->nlookup++;
	vault_node_named(n, parent, name, c->id.pid);
	vault_node_attr(v, n, vault_node_chain_ok(v, d), out);
	*nout = n;
	n = NULL;
out:
	free(pdef);
	free(acc);
	free(def);
	vault_node_put(v, n);
	vault_node_put(v, d);
	return r;
}

static int make_op(struct vv_vault *v, const struct vv_ctx *c, const char *op, uint64_t parent,
		   const char *name, uint32_t mode, uint64_t rdev, const char *target,
		   struct vv_attr *out)
{
	struct node *n = NULL;
	int r;

	pthread_mutex_lock(&v->mu);
	r = make(v, c, parent, name, mode, rdev, target, out, &n);
	vault_audit(v, c, op, n ? n->ino : 0, parent, name, r, NULL);
	vault_node_put(v, n);
	pthread_mutex_unlock(&v->mu);
	return r;
}

int vv_vault_mknod(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent,
		   const char *name, uint32_t mode, uint64_t rdev, struct vv_attr *out)
{
	if (!S_ISREG(mode) && !S_ISFIFO(mode) && !S_ISSOCK(mode) && !S_ISCHR(mode) && !S_ISBLK(mode))
		return VV_EINVAL;
	if (S_ISREG(mode))
		rdev = 0;
	return make_op(v, c, "mknod", parent, name, mode, rdev, NULL, out);
}

int vv_vault_mkdir(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent,
		   const char *name, uint32_t mode, struct vv_attr *out)
{
	return make_op(v, c, "mkdir", parent, name, S_IFDIR | (mode & 07777), 0, NULL, out);
}

int vv_vault_symlink(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent,
		     const char *name, const char *target, struct vv_attr *out)
{
	size_t tl = strlen(target);

	if (tl == 0)
		return VV_ENOENT;
	if (tl > VV_SYMLINK_MAX)
		return VV_ENAMETOOLONG;
	return make_op(v, c, "symlink", parent, name, S_IFLNK | 0777, 0, target, out);
}

int vv_vault_create(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent,
		    const char *name, uint32_t mode, int flags, struct vv_attr *out,
		    struct vv_file **fh)
{
	struct node *n = NULL;
	struct vv_file *f;
	int r;

	*fh = NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return VV_ENOMEM;
	pthread_mutex_lock(&v->mu);
	r = make(v, c, parent, name, S_IFREG | (mode & 07777), 0, NULL, out, &n);
	if (r == 0) {
		f->n = n;
		f->flags = flags;
		vault_file_owner(v, f, c);
		vault_data_file_track(v, f);
		node_opened(n, flags);
		n->open_gen = n->data_gen;
		*fh = f;
		f = NULL;
	}
	vault_audit(v, c, "create", n ? n->ino : 0, parent, name, r, NULL);
	vault_node_put(v, n);
	pthread_mutex_unlock(&v->mu);
	vault_file_free(f);
	return r;
}

static bool same_coll_ok(struct vv_vault *v, struct node *n, struct node *olddir, struct node *newdir)
{
	bool is_dir = S_ISDIR(n->a.mode);

	if (newdir->ino == VV_ROOT_INO) {
		if (is_dir)
			return olddir->ino == VV_ROOT_INO;   /* renaming a collection */
		return n->a.coll == v->root_coll;
	}
	if (is_dir && olddir->ino == VV_ROOT_INO)
		return false;                            /* a collection into another */
	return n->a.coll == newdir->a.coll;
}

/*
 * fs.protected_hardlinks (the kernel's may_linkat): the owner of the source,
 * or root (CAP_FOWNER), may link anything; anyone else only a regular file
 * that is neither setuid nor setgid-executable and that they may both read
 * and write.  Otherwise a user could plant a name of their choosing for a
 * file they cannot use, in any directory they can write.
 */
static int link_source_ok(struct vv_vault *v, const struct vv_ctx *c, struct node *n)
{
	uint32_t m = n->a.mode;

	if (vv_access_owner_or_root(&c->id, n->a.uid))
		return 0;
	if (!S_ISREG(m) || (m & S_ISUID) || (m & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		return VV_EPERM;
	return vault_node_check(v, c, n, VV_MAY_READ | VV_MAY_WRITE) < 0 ? VV_EPERM : 0;
}

int vv_vault_link(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
		  uint64_t newparent, const char *newname, struct vv_attr *out)
{
	struct node *n = NULL, *d = NULL, *od = NULL;
	uint64_t existing;
	int r;

	pthread_mutex_lock(&v->mu);
	if (trash_virt(ino) || trash_virt(newparent)) {
		r = trash_virt(newparent) ? VV_EROFS : VV_EPERM;
		goto out;
	}
	if ((r = vault_audit_gate(v)) < 0 || (r = vault_node_get(v, ino, &n)) < 0 ||
	    (r = get_dir(v, newparent, &d)) < 0 || (r = vault_snap_ro(ino)) < 0 ||
	    (r = vault_snap_ro(newparent)) < 0)
		goto out;
	if (S_ISDIR(n->a.mode)) {
		r = VV_EPERM;
		goto out;
	}
	/* No second name for a trashed file (restore is mv), none in the trash. */
	if (vault_trash_in(v, n) || vault_trash_in(v, d)) {
		r = vault_trash_in(v, d) ? VV_EROFS : VV_EPERM;
		goto out;
	}
	if (vault_trash_reserved(newparent, newname)) {
		r = VV_EEXIST;
		goto out;
	}
	/* The kernel's order: may_linkat() before the directory's check. */
	if ((r = link_source_ok(v, c, n)) < 0)
		goto out;
	if ((r = vault_node_check(v, c, d, VV_MAY_WRITE | VV_MAY_EXEC)) < 0 || (r = check_name(newname)) < 0)
		goto out;
	/* No name in a removed directory (make() refuses one too): the file,
	 * its other names gone, would be reachable by no path.  The kernel
	 * stops a local link there and vv_vault_reach a remote one; the
	 * vault does not count on either. */
	if (n->a.nlink == 0 || d->a.nlink == 0) {
		r = VV_ENOENT;
		goto out;
	}
	if (n->a.nlink >= VV_MAX_LINKS) {
		r = VV_EMLINK;
		goto out;
	}
	if ((r = vault_space_ok(v)) < 0)
		goto out;
	if ((r = vault_node_get(v, n->a.parent, &od)) < 0)
		goto out;
	if (!same_coll_ok(v, n, od, d)) {
		r = VV_EXDEV;
		goto out;
	}
	r = vv_meta_dirent_get(v->meta, newparent, newname, &existing);
	if (r == 0) {
		r = VV_EEXIST;
		goto out;
	}
	if (r != VV_ENOENT || (r = vault_txn(v)) < 0)
		goto out;
	if ((r = vv_meta_dirent_add(v->meta, newparent, newname, ino, n->a.mode)) < 0)
		goto out;
	n->a.nlink++;
	n->a.ctime = vault_now();
	touch_dir(d, n->a.ctime);
	if ((r = vault_node_save(v, n)) < 0 || (r = vault_node_save(v, d)) < 0)
		goto out;
	n->nlookup++;
	vault_node_named(n, newparent, newname, 0);
	vault_node_attr(v, n, vault_node_chain_ok(v, d), out);
out:
	vault_audit(v, c, "link", ino, newparent, newname, r, NULL);
	vault_node_put(v, od);
	vault_node_put(v, d);
	vault_node_put(v, n);
	pthread_mutex_unlock(&v->mu);
	return r;
}

/* Remove entry name from d (checks done); drops the victim's link. */
static int drop_entry(struct vv_vault *v, struct node *d, const char *name, struct node *n, int64_t now)
{
	int r;

	if ((r = vault_txn(v)) < 0 || (r = vv_meta_dirent_del(v->meta, d->ino, name)) < 0)
		return r;
	if (n->lname && n->lparent == d->ino && strcmp(n->lname, name) == 0) {
		free(n->lname);              /* that name is gone */
		n->lname = NULL;
	}
	if (S_ISDIR(n->a.mode)) {
		n->a.nlink = 0;
		if (d->a.nlink > 2)
			d->a.nlink--;
	} else if (n->a.nlink > 0) {
		n->a.nlink--;
	}
	n->a.ctime = now;
	touch_dir(d, now);
	if ((r = vault_node_save(v, d)) < 0 || (r = vault_node_save(v, n)) < 0)
		return r;
	if (n->a.parent == d->ino && n->a.nlink > 0) {
		/* Hard link: keep the primary parent pointing at a live entry. */
		uint64_t p;
		char nm[VV_NAME_MAX + 1];
		if (vv_meta_dirent_find_ino(v->meta, n->ino, &p, nm, sizeof(nm)) == 0) {
			n->a.parent = p;
			r = vault_node_save(v, n);
		}
	}
	return r;
}

static int remove_op(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent,
		     const char *name, bool dir)
{
	struct node *d = NULL, *n = NULL;
	struct vv_perm pd, pn;
	const char *op = dir ? "rmdir" : "unlink";
	char tname[VV_NAME_MAX + 1] = "";
	uint64_t ino = 0;
	bool intrash = false;
	int r;

	pthread_mutex_lock(&v->mu);
	if (trash_virt(parent)) {
		r = vault_audit_gate(v);
		if (r == 0)
			r = vault_trash_unlink(v, c, parent, name, dir);
		pthread_mutex_unlock(&v->mu);
		return r;
	}
	if ((r = vault_audit_gate(v)) < 0 || (r = get_dir(v, parent, &d)) < 0 ||
	    (r = vault_snap_ro(parent)) < 0 || (r = check_name(name)) < 0)
		goto out;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		r = dir ? (strcmp(name, ".") == 0 ? VV_EINVAL : VV_ENOTEMPTY) : VV_EISDIR;
		goto out;
	}
	if ((r = vault_node_check(v, c, d, VV_MAY_EXEC)) < 0)
		goto out;
	if ((r = vv_meta_dirent_get(v->meta, parent, name, &ino)) < 0) {
		if (r == VV_ENOENT && vault_trash_reserved(parent, name))
			r = VV_EPERM;                    /* rm -r /vv/.trash */
		goto out;
	}
	if ((r = vault_node_get(v, ino, &n)) < 0)
		goto out;
	if (vv_snap_ino(ino)) {
		r = VV_EPERM;                /* the root's .snapshots: docs/design.md "Snapshots" */
		goto out;
	}
	vault_node_perm(v, d, &pd);
	vault_node_perm(v, n, &pn);
	if ((r = vv_access_may_delete(&c->id, &pd, &pn)) < 0)
		goto out;
	if (dir) {
		bool empty;
		if (!S_ISDIR(n->a.mode)) {
			r = VV_ENOTDIR;
			goto out;
		}
		if ((r = vv_meta_dir_empty(v->meta, ino, &empty)) < 0)
			goto out;
		if (!empty) {
			r = VV_ENOTEMPTY;
			goto out;
		}
	} else if (S_ISDIR(n->a.mode)) {
		r = VV_EISDIR;
		goto out;
	}
	/* Inside a trashed tree, removal is the purge; elsewhere the last
	 * name goes to the trash, unless the trash is off or the disk full. */
	intrash = vault_trash_in(v, d);
	if (!intrash && vault_trash_wanted(v, n)) {
		op = "trash";
		r = vault_trash_move(v, c, d, name, n, vault_now(), tname);
		goto out;
	}
	if (intrash || (v->trash.keep_ns > 0 && (dir || n->a.nlink <= 1)))
		op = "purge";
	if ((r = drop_entry(v, d, name, n, vault_now())) < 0)
		goto out;
	/* A collection's directory gone for good: its key goes unless
	 * something else needs it (the directory, whose row the kernel may
	 * still hold, needs none).  An error keeps the key. */
	if (dir && parent == VV_ROOT_INO)
		vault_coll_release(v, n->a.coll, n->ino);
out:
	vault_audit(v, c, op, ino, parent, name, r, tname[0] ? tname : NULL);
	vault_node_put(v, n);
	vault_node_put(v, d);
	pthread_mutex_unlock(&v->mu);
	return r;
}

int vv_vault_unlink(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent, const char *name)
{
	return remove_op(v, c, parent, name, false);
}

int vv_vault_rmdir(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent, const char *name)
{
	return remove_op(v, c, parent, name, true);
}

/* Is a an ancestor of (or equal to) directory b?  The rename's loop
 * check: exact at any depth (the walk has no bound to stop short at). */
static int is_ancestor(struct vv_vault *v, uint64_t a, uint64_t b, bool *yes)
{
	struct vault_up w;

	*yes = false;
	for (struct node *n = vault_up_first(v, &w, b); n; n = vault_up_next(v, &w))
		if (n->ino == a) {
			vault_up_stop(v, &w);
			*yes = true;
			return 0;
		}
	if (w.end == VAULT_UP_ROOT)
		return 0;
	return w.err ? w.err : VV_ENOENT;
}

/*
 * Entries moved by a rename to another directory (n from od to nd, and
 * with RENAME_EXCHANGE t from nd to od): the kernel moves its cached
 * dentries (d_move, d_exchange) keeping the timeouts their old places got,
 * and checks no search permission on a cached path.  So:
 *  - a directory that changed parent (either side of an exchange) has a
 *    new ancestry: every decision cached below it may be wrong (chain_ok
 *    by perm_gen, the kernel's entries all dropped);
 *  - a non-directory moved out of a directory searchable by everyone
 *    (its entry may have a long timeout) into one that is not must lose
 *    its entry, or another user would still open the file by its new path
 *    without any lookup (t1035).  Out of a directory not searchable by
 *    everyone its entry had timeout 0, and keeps it.
 * The queued invalidations make the FUSE layer bump the kernel's dentry
 * epoch before it replies (notify.c).  Under v->mu.
 */
static void moved_across(struct vv_vault *v, struct node *n, struct node *od, struct node *nd,
			 struct node *t, uint64_t parent, const char *name, uint64_t newparent,
			 const char *newname)
{
	if (S_ISDIR(n->a.mode) || (t && S_ISDIR(t->a.mode))) {
		v->nodes.perm_gen++;
		vault_node_invalidate_all(v);
		return;
	}
	if (vault_node_chain_ok(v, od) != vault_node_chain_ok(v, nd)) {
		if (!vault_node_chain_ok(v, nd))
			vv_vault_inval(v, newparent, newname);
		else if (t)
			vv_vault_inval(v, parent, name);
	}
}

int vv_vault_rename(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent,
		    const char *name, uint64_t newparent, const char *newname, unsigned flags)
{
	struct node *od = NULL, *nd = NULL, *n = NULL, *t = NULL;
	struct vv_perm pod, pnd, pn, pt;
	uint64_t ino = 0, tino = 0;
	int64_t now = vault_now();
	bool anc;
	int r;

	pthread_mutex_lock(&v->mu);
	if (trash_virt(parent) || trash_virt(newparent)) {
		/* Out of .trash/files is a restore; into the trash, never. */
		r = vault_audit_gate(v);
		if (r == 0 && trash_virt(parent))
			r = vault_trash_rename(v, c, parent, name, newparent, newname, flags);
		else if (r == 0)
			r = VV_EROFS;
		if (r == VV_EROFS && !trash_virt(parent))
			vault_audit(v, c, "rename", 0, parent, name, r, newname);
		pthread_mutex_unlock(&v->mu);
		return r;
	}
	if ((r = vault_audit_gate(v)) < 0)
		goto out;
	if ((flags & ~(VV_RENAME_NOREPLACE | VV_RENAME_EXCHANGE)) ||
	    ((flags & VV_RENAME_NOREPLACE) && (flags & VV_RENAME_EXCHANGE))) {
		r = VV_EINVAL;
		goto out;
	}
	if ((r = get_dir(v, parent, &od)) < 0 || (r = get_dir(v, newparent, &nd)) < 0 ||
	    (r = vault_snap_ro(parent)) < 0 || (r = vault_snap_ro(newparent)) < 0 ||
	    (r = check_name(name)) < 0 || (r = check_name(newname)) < 0)
		goto out;
	if (!strcmp(name, ".") || !strcmp(name, "..") || !strcmp(newname, ".") || !strcmp(newname, "..")) {
		r = VV_EBUSY;
		goto out;
	}
	if (vault_trash_reserved(newparent, newname) || vault_trash_reserved(parent, name)) {
		r = VV_EPERM;                /* .trash, .snapshots: never replaced or moved */
		goto out;
	}
	/* Nothing moves into the trash or within it (out of a trashed tree
	 * is allowed, with the checks of any rename). */
	if (vault_trash_in(v, nd) || ((flags & VV_RENAME_EXCHANGE) && vault_trash_in(v, od))) {
		r = VV_EROFS;
		goto out;
	}
	if ((r = vault_node_check(v, c, od, VV_MAY_EXEC)) < 0 || (r = vault_node_check(v, c, nd, VV_MAY_EXEC)) < 0)
		goto out;
	if ((r = vv_meta_dirent_get(v->meta, parent, name, &ino)) < 0 || (r = vault_node_get(v, ino, &n)) < 0)
		goto out;
	r = vv_meta_dirent_get(v->meta, newparent, newname, &tino);
	if (r == 0) {
		if ((r = vault_node_get(v, tino, &t)) < 0)
			goto out;
	} else if (r != VV_ENOENT) {
		goto out;
	}
	r = 0;
	if (vv_snap_ino(ino) || (t && vv_snap_ino(tino))) {
		r = VV_EPERM;                /* the root's .snapshots */
		goto out;
	}
	if ((flags & VV_RENAME_EXCHANGE) && !t) {
		r = VV_ENOENT;
		goto out;
	}
	if ((flags & VV_RENAME_NOREPLACE) && t) {
		r = VV_EEXIST;
		goto out;
	}
	vault_node_perm(v, od, &pod);
	vault_node_perm(v, nd, &pnd);
	vault_node_perm(v, n, &pn);
	if ((r = vv_access_may_delete(&c->id, &pod, &pn)) < 0)
		goto out;
	if (t) {
		vault_node_perm(v, t, &pt);
		if ((r = vv_access_may_delete(&c->id, &pnd, &pt)) < 0)
			goto out;
	} else if ((r = vv_access_check(&c->id, &pnd, VV_MAY_WRITE | VV_MAY_EXEC)) < 0) {
		goto out;
	}
	/* Moving a directory to another parent rewrites its "..". */
	if (S_ISDIR(n->a.mode) && parent != newparent &&
	    (r = vv_access_check(&c->id, &pn, VV_MAY_WRITE)) < 0)
		goto out;
	if ((flags & VV_RENAME_EXCHANGE) && t && S_ISDIR(t->a.mode) && parent != newparent &&
	    (r = vv_access_check(&c->id, &pt, VV_MAY_WRITE)) < 0)
		goto out;
	if (t && t->ino == n->ino)
		goto out;                               /* same file: nothing to do */
	if (!same_coll_ok(v, n, od, nd) ||
	    ((flags & VV_RENAME_EXCHANGE) && !same_coll_ok(v, t, nd, od))) {
		r = VV_EXDEV;
		goto out;
	}
	if (S_ISDIR(n->a.mode)) {
		if ((r = is_ancestor(v, n->ino, newparent, &anc)) < 0)
			goto out;
		if (anc) {
			r = VV_EINVAL;
			goto out;
		}
	}
	if ((flags & VV_RENAME_EXCHANGE) && S_ISDIR(t->a.mode)) {
		if ((r = is_ancestor(v, t->ino, parent, &anc)) < 0)
			goto out;
		if (anc) {
			r = VV_EINVAL;
			goto out;
		}
	}
	if ((r = vault_txn(v)) < 0)
		goto out;

	if (flags & VV_RENAME_EXCHANGE) {
		if ((r = vv_meta_dirent_set_ino(v->meta, parent, name, t->ino, t->a.mode)) < 0 ||
		    (r = vv_meta_dirent_set_ino(v->meta, newparent, newname, n->ino, n->a.mode)) < 0)
			goto out;
		if (parent != newparent && S_ISDIR(n->a.mode) != S_ISDIR(t->a.mode)) {
			if (S_ISDIR(n->a.mode)) {
				od->a.nlink--;
				nd->a.nlink++;
			} else {
				nd->a.nlink--;
				od->a.nlink++;
			}
		}
		if (n->a.parent == parent)
			n->a.parent = newparent;
		if (t->a.parent == newparent)
			t->a.parent = parent;
		t->a.ctime = now;
		if ((r = vault_node_save(v, t)) < 0)
			goto out;
		vault_node_named(t, parent, name, 0);
	} else {
		if (t) {
			if (S_ISDIR(n->a.mode) && !S_ISDIR(t->a.mode)) {
				r = VV_ENOTDIR;
				goto out;
			}
			if (!S_ISDIR(n->a.mode) && S_ISDIR(t->a.mode)) {
				r = VV_EISDIR;
				goto out;
			}
			if (S_ISDIR(t->a.mode)) {
				bool empty;
				if ((r = vv_meta_dir_empty(v->meta, t->ino, &empty)) < 0)
					goto out;
				if (!empty) {
					r = VV_ENOTEMPTY;
					goto out;
				}
			}
			if ((r = drop_entry(v, nd, newname, t, now)) < 0)
				goto out;
		}
		if ((r = vv_meta_dirent_move(v->meta, parent, name, newparent, newname)) < 0)
			goto out;
		if (S_ISDIR(n->a.mode) && parent != newparent) {
			od->a.nlink--;
			nd->a.nlink++;
		}
		if (n->a.parent == parent || S_ISDIR(n->a.mode))
			n->a.parent = newparent;
	}
	n->a.ctime = now;
	touch_dir(od, now);
	touch_dir(nd, now);
	if ((r = vault_node_save(v, n)) < 0 || (r = vault_node_save(v, od)) < 0 || (r = vault_node_save(v, nd)) < 0)
		goto out;
	vault_node_named(n, newparent, newname, 0);
	if (parent != newparent)
		moved_across(v, n, od, nd, (flags & VV_RENAME_EXCHANGE) ? t : NULL, parent, name,
			     newparent, newname);
out:
	vault_audit(v, c, "rename", ino, parent, name, r, newname);
	vault_node_put(v, t);
	vault_node_put(v, n);
	vault_node_put(v, nd);
	vault_node_put(v, od);
	pthread_mutex_unlock(&v->mu);
	return r;
}

/* --- directories ---------------------------------------------------------- */

/* A directory of the live tree: linked, and its ancestry reaches the
 * root without passing .trash/files, an unlinked directory or a snapshot
 * (a walk that fails says no). */
static bool live_dir(struct vv_vault *v, struct node *n)
{
	struct vault_up w;

	for (struct node *p = vault_up_first(v, &w, n->ino); p; p = vault_up_next(v, &w))
		if (vv_snap_ino(p->ino) || p->a.nlink == 0) {
			vault_up_stop(v, &w);
			return false;
		}
	return w.end == VAULT_UP_ROOT;
}

bool vv_vault_dir_cacheable(const struct vv_dir *dh)
{
	return dh && dh->cache;
}

int vv_vault_opendir(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino, struct vv_dir **dh)
{
	struct node *n = NULL;
	struct vv_dir *d;
	int r;

	*dh = NULL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return VV_ENOMEM;
	/* Keep who opened it: the trash view is the opener's, and readdirplus
	 * hands out attributes (lookup references) only to an opener who may
	 * search the directory (vv_vault_readdir). */
	d->id = c->id;
	d->id.groups = NULL;
	if (c->id.ngroups) {
		uint32_t *g = malloc(c->id.ngroups * sizeof(*g));
		if (!g) {
			free(d);
			return VV_ENOMEM;
		}
		memcpy(g, c->id.groups, c->id.ngroups * sizeof(*g));
		d->id.groups = g;
	}
	pthread_mutex_lock(&v->mu);
	if (trash_virt(ino)) {
		if ((r = vault_audit_gate(v)) < 0)
			goto out;
		if (!trash_virt_path(ino)) {
			r = VV_ENOTDIR;
			goto out;
		}
		d->virt = ino;
		*dh = d;
		d = NULL;
		goto out;
	}
	if ((r = vault_audit_gate(v)) < 0 || (r = get_dir(v, ino, &n)) < 0)
		goto out;
	if ((r = vault_node_check(v, c, n, VV_MAY_READ)) < 0)
		goto out;
	__atomic_fetch_add(&n->nopen, 1, __ATOMIC_RELAXED);
	d->n = n;
	d->cache = live_dir(v, n);
	*dh = d;
	d = NULL;
out:
	vault_audit(v, c, "opendir", ino, 0, NULL, r, NULL);
	vault_node_put(v, n);
	pthread_mutex_unlock(&v->mu);
	if (d)
		free((void *)d->id.groups);
	free(d);
	return r;
}

struct rd {
	struct vv_vault *v;
	struct node *dir;
	bool full;
	vv_fill_fn fill;
	void *ctx;
	int err;
	int count;                   /* entries listed in this page */
	uint64_t last;               /* cookie of the last one */
	bool xattrs;                 /* plus: the current entry has stored xattrs */
};

/* One entry for the fill callback; row (readdirplus) gives its attributes. */
static int rd_entry(struct rd *s, uint64_t cookie, const char *name, uint64_t ino, uint32_t mode,
		    const struct vv_inode_row *row)
{
	struct vv_dirent e = { .ino = ino, .mode = mode, .name = name, .next = cookie + 2 };
	struct vv_attr a, *ap = NULL;
	struct node *n = NULL;
	int r;

	s->count++;
	s->last = cookie;
	if (row) {
		if ((r = vault_node_get_row(s->v, row, &n)) < 0) {
			s->err = r;
			return 1;
		}
		vault_node_xattrs_known(n, s->xattrs);
		vault_node_attr(s->v, n, vault_node_chain_ok(s->v, s->dir), &a);
		ap = &a;
	}
	r = s->fill(s->ctx, &e, ap);
	if (r == 0 && n) {
		n->nlookup++;
		vault_node_named(n, s->dir->ino, name, 0);
	}
	vault_node_put(s->v, n);
	if (r < 0)
		s->err = r;
	if (r != 0) {
		s->full = true;
		return 1;
	}
	return 0;
}

static int rd_one(void *ctx, uint64_t cookie, const char *name, uint64_t ino, uint32_t mode)
{
	return rd_entry(ctx, cookie, name, ino, mode, NULL);
}

static int rd_plus(void *ctx, uint64_t cookie, const char *name, const struct vv_inode_row *row,
		   bool xattrs)
{
	/* No attributes (so no kernel entry) for FIFOs and sockets: only a
	 * lookup may let a caller reach them (special_lookup_check). */
	bool special = S_ISFIFO(row->mode) || S_ISSOCK(row->mode);
	struct rd *s = ctx;

	s->xattrs = xattrs;
	return rd_entry(s, cookie, name, row->ino, row->mode, special ? NULL : row);
}

int vv_vault_readdir(struct vv_vault *v, struct vv_dir *dh, uint64_t off, bool plus,
		     vv_fill_fn fill, void *ctx)
{
	struct rd s = { .v = v, .dir = dh->n, .fill = fill, .ctx = ctx };
	struct vv_ctx opener = { .id = dh->id };
	bool attrs = plus;
	int r = 0;

	pthread_mutex_lock(&v->mu);
	if (dh->virt) {
		r = vault_trash_readdir(v, dh, off, plus, fill, ctx);
		goto out;
	}
	/* Entries' attributes are what a lookup would give: none to an opener
	 * who may read the names but not search the directory (a remote
	 * session could otherwise use the inodes without the walk). */
	if (plus && vault_node_check(v, &opener, dh->n, VV_MAY_EXEC) < 0)
		attrs = false;
	if (off == 0) {
		struct vv_dirent e = { .ino = dh->n->ino, .mode = S_IFDIR, .name = ".", .next = 1 };
		struct vv_attr a;
		vault_node_attr(v, dh->n, false, &a);
		if (fill(ctx, &e, plus ? &a : NULL) != 0)
			goto out;
		off = 1;
	}
	if (off == 1) {
		struct vv_dirent e = { .ino = dh->n->a.parent, .mode = S_IFDIR, .name = "..", .next = 2 };
		struct vv_attr a;
		memset(&a, 0, sizeof(a));
		a.ino = dh->n->a.parent;
		a.mode = S_IFDIR;
		if (fill(ctx, &e, plus ? &a : NULL) != 0)
			goto out;
		off = 2;
	}
	while (!s.full && !s.err) {
		s.count = 0;
		r = attrs ? vv_meta_dirent_list_plus(v->meta, dh->n->ino, off - 2, 256, rd_plus, &s)
			 : vv_meta_dirent_list(v->meta, dh->n->ino, off - 2, 256, rd_one, &s);
		if (r < 0)
			break;
		r = 0;
		if (s.count < 256)
			break;
		off = s.last + 2;
	}
	if (s.err)
		r = s.err;
out:
	pthread_mutex_unlock(&v->mu);
	return r;
}

int vv_vault_releasedir(struct vv_vault *v, struct vv_dir *dh)
{
	if (!dh)
		return 0;
	if (dh->n) {
		pthread_mutex_lock(&v->mu);
		__atomic_fetch_sub(&dh->n->nopen, 1, __ATOMIC_RELAXED);
		vault_node_maybe_free(v, dh->n);
		pthread_mutex_unlock(&v->mu);
	}
	free((void *)dh->id.groups);
	free(dh);
	return 0;
}

/* access(2)'s mask as the audit detail: "F", or some of "rwx". */
static const char *mask_name(int mask)
{
	static const char *const names[8] = { "F", "x", "w", "wx", "r", "rx", "rw", "rwx" };

	return names[mask & 7];
}

int vv_vault_access(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino, int mask)
{
	struct node *n = NULL;
	int r, m = 0;

	if (mask & R_OK)
		m |= VV_MAY_READ;
	if (mask & W_OK)
		m |= VV_MAY_WRITE;
	if (mask & X_OK)
		m |= VV_MAY_EXEC;
	pthread_mutex_lock(&v->mu);
	if (trash_virt(ino)) {
		struct vv_attr a;
		r = vault_trash_getattr(v, c, ino, &a);
		if (r == 0 && (m & VV_MAY_WRITE))
			r = VV_EROFS;
		else if (r == 0 && (m & VV_MAY_EXEC) && !S_ISDIR(a.mode))
			r = VV_EACCES;
	} else if ((r = vault_node_get(v, ino, &n)) == 0 &&
		   (!(m & VV_MAY_WRITE) || (r = vault_snap_ro(ino)) == 0)) {
		/* X_OK answers what exec would: a non-directory runs only for
		 * a caller who may also read it (access.md "Exec needs read") */
		r = vault_node_check(v, c, n, (m & VV_MAY_EXEC) && !S_ISDIR(n->a.mode) ?
				     m | VV_MAY_READ : m);
		if (r == 0 && (m & VV_MAY_WRITE) && vault_trash_in(v, n))
			r = VV_EROFS;
	}
	vault_audit(v, c, "access", ino, 0, NULL, r, mask_name(mask));
	vault_node_put(v, n);
	pthread_mutex_unlock(&v->mu);
	return r;
}

/* May c search every directory above n up to the root (n itself needs no
 * right)?  Takes over the caller's reference on n.  Unlike
 * vault_node_reach it stops at the first directory every user may search
 * from (chain_ok: the kernel's own walk checks no more either), and a
 * walk that ends in the trash passes when the trash shows c the item it
 * ends at, as a lookup of it there would (vault_trash_item_visible): the
 * item's gate, not the directories it was removed from, decides who may
 * still reach it.  Under v->mu. */
static int reach_up(struct vv_vault *v, const struct vv_ctx *c, struct node *n)
{
	struct vault_up w;
	struct node *top = n;
	int r = 0;

	if (n->ino == VV_ROOT_INO)
		goto out;
	for (struct node *d = vault_up_first(v, &w, n->a.parent); d; d = vault_up_next(v, &w)) {
		if (vault_node_chain_ok(v, d) || (r = vault_node_check(v, c, d, VV_MAY_EXEC)) < 0) {
			vault_up_stop(v, &w);
			goto out;
		}
		if (top != n)
			vault_node_put(v, top);
		top = d;
		top->pins++;                 /* the item, if the walk ends in the trash */
	}
	if (w.end == VAULT_UP_TRASH)
		r = vault_trash_item_visible(v, &c->id, top) ? 0 : VV_EACCES;
	else if (w.end != VAULT_UP_ROOT)
		r = w.err && w.err != VV_ELOOP ? w.err : VV_EACCES;
out:
	if (top != n)
		vault_node_put(v, top);
	vault_node_put(v, n);
	return r;
}

/* A file with several names is reached through any of them, as a local
 * walk to one of its paths would: c must be able to search one of its
 * directories and every directory above that one.  Its recorded parent
 * is only one of them; all (up to REACH_PARENTS) are tried. */
#define REACH_PARENTS 64

static int reach_linked(struct vv_vault *v, const struct vv_ctx *c, struct node *n)
{
	uint64_t p[REACH_PARENTS];
	size_t np = 0;
	int r;

	/* A snapshot is immutable (modes, ACLs and names): a node of it
	 * stays reachable by the session a lookup handed it to, through the
	 * path that lookup walked, which its one recorded parent may not be. */
	if (vv_snap_ino(n->ino)) {
		vault_node_put(v, n);
		return 0;
	}
	r = vv_meta_dirent_parents(v->meta, n->ino, p, REACH_PARENTS, &np);
	vault_node_put(v, n);
	if (r < 0)
		return r;
	r = VV_EACCES;                       /* no name left: none reaches it */
	for (size_t i = 0; i < np && r == VV_EACCES; i++) {
		struct node *d;
		if ((r = vault_node_get(v, p[i], &d)) < 0) {
			r = r == VV_ENOENT ? VV_EACCES : r;
			continue;
		}
		/* d must be searchable itself, then everything above it */
		if (vault_node_chain_ok(v, d)) {
			vault_node_put(v, d);
			r = 0;                   /* every user may search from d up */
		} else if ((r = vault_node_check(v, c, d, VV_MAY_EXEC)) < 0) {
			vault_node_put(v, d);
		} else {
			r = reach_up(v, c, d);
		}
	}
	return r;
}

int vv_vault_reach(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino)
{
	struct node *n = NULL;
	int r = 0;

	if (ino == VV_ROOT_INO || trash_virt(ino))
		return 0;
	pthread_mutex_lock(&v->mu);
	if ((r = vault_node_get(v, ino, &n)) == 0)
		r = !S_ISDIR(n->a.mode) && n->a.nlink > 1 ? reach_linked(v, c, n) : reach_up(v, c, n);
	pthread_mutex_unlock(&v->mu);
	return r;
}
