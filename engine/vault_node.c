/*
 * vault_node.c - the in-memory node table: attributes, ACL cache, lookup
 * and open references, and the "may the kernel cache this?" rule.
 *
 * Every function here runs under v->mu.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

static size_t hslot(const struct vv_vault *v, uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ULL) >> 20) & (v->nodes.hsize - 1);
}

static int grow(struct vv_vault *v)
{
	size_t nsize = v->nodes.hsize ? v->nodes.hsize * 2 : 1024;
	struct node **nt = calloc(nsize, sizeof(*nt));

	if (!nt)
		return VV_ENOMEM;
	for (size_t i = 0; i < v->nodes.hsize; i++) {
		struct node *n = v->nodes.htab[i], *next;
		for (; n; n = next) {
			size_t h = (size_t)((n->ino * 0x9E3779B97F4A7C15ULL) >> 20) & (nsize - 1);
			next = n->hnext;
			n->hnext = nt[h];
			nt[h] = n;
		}
	}
	free(v->nodes.htab);
	v->nodes.htab = nt;
	v->nodes.hsize = nsize;
	return 0;
}

static size_t idle_cost(const struct node *n)
{
	return sizeof(*n) + n->extcap * sizeof(*n->ext) + n->inlcap + n->acl_len + n->gate_len;
}

/* n is used again (or freed): out of the idle list. */
static void idle_del(struct vv_vault *v, struct node *n)
{
	if (!n->idle)
		return;
	if (n->lru_prev)
		n->lru_prev->lru_next = n->lru_next;
	else
		v->nodes.idle_head = n->lru_next;
	if (n->lru_next)
		n->lru_next->lru_prev = n->lru_prev;
	else
		v->nodes.idle_tail = n->lru_prev;
	n->lru_prev = n->lru_next = NULL;
	v->nodes.nidle--;
	v->nodes.idle_bytes -= n->lru_bytes;
	n->idle = false;
}

static struct node *find(struct vv_vault *v, uint64_t ino)
{
	if (!v->nodes.hsize)
		return NULL;
	for (struct node *n = v->nodes.htab[hslot(v, ino)]; n; n = n->hnext)
		if (n->ino == ino)
			return n;
	return NULL;
}

/* Get the node for ino with one pin taken: from the table, else built from
 * row when given (readdirplus has it already), else loaded from meta.db. */
static int get(struct vv_vault *v, uint64_t ino, const struct vv_inode_row *row, struct node **out)
{
	struct node *n = find(v, ino);
	int r;

	if (n) {
		idle_del(v, n);
		n->pins++;
		*out = n;
		return 0;
	}
	if (v->nodes.n + 1 > v->nodes.hsize / 2 && (r = grow(v)) < 0)
		return r;
	n = calloc(1, sizeof(*n));
	if (!n)
		return VV_ENOMEM;
	if (row) {
		n->a = *row;
	} else if ((r = vv_meta_inode_get(v->meta, ino, &n->a)) < 0) {
		free(n);
		return r;
	}
	n->ino = ino;
	n->data_gen = n->open_gen = vault_gen_next(v);
	n->pins = 1;
	pthread_rwlock_init(&n->rw, NULL);
	n->hnext = v->nodes.htab[hslot(v, ino)];
	v->nodes.htab[hslot(v, ino)] = n;
	v->nodes.n++;
	*out = n;
	return 0;
}

struct node *vault_node_find(struct vv_vault *v, uint64_t ino)
{
	return find(v, ino);
}

int vault_node_get(struct vv_vault *v, uint64_t ino, struct node **out)
{
	return get(v, ino, NULL, out);
}

int vault_node_get_row(struct vv_vault *v, const struct vv_inode_row *row, struct node **out)
{
	return get(v, row->ino, row, out);
}

static void unhash(struct vv_vault *v, struct node *n)
{
	struct node **pp = &v->nodes.htab[hslot(v, n->ino)];

	while (*pp && *pp != n)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = n->hnext;
	v->nodes.n--;
}

static void node_free(struct node *n)
{
	for (size_t i = 0; i < n->ndirty; i++)
		free(n->dirty[i].buf);
	free(n->dirty);
	free(n->sealing);
	free(n->ext);
	free(n->inl);
	free(n->acl);
	free(n->gate);
	free(n->lname);
	pthread_rwlock_destroy(&n->rw);
	free(n);
}

static void drop(struct vv_vault *v, struct node *n)
{
	idle_del(v, n);
	unhash(v, n);
	node_free(n);
}

void vault_node_idle_drop(struct vv_vault *v)
{
	while (v->nodes.idle_head)
		drop(v, v->nodes.idle_head);
}

/* Keep n idle, most recently used, then evict the least recently used
 * past the bounds.  The kernel forgot n's inode (no lookup), and its pages
 * with it: the open push may fill them again (vault_push.c).  And the name
 * it was looked up by: nothing keeps that name right any more (a removal
 * into the trash leaves it), so vault_node_path asks meta.db, as for a
 * node just built. */
static void idle_add(struct vv_vault *v, struct node *n)
{
	__atomic_store_n(&n->pushed, false, __ATOMIC_RELAXED);
	free(n->lname);
	n->lname = NULL;
	n->lparent = 0;
	n->lpid = 0;
	n->idle = true;
	n->lru_bytes = idle_cost(n);
	n->lru_next = NULL;
	n->lru_prev = v->nodes.idle_tail;
	if (v->nodes.idle_tail)
		v->nodes.idle_tail->lru_next = n;
	else
		v->nodes.idle_head = n;
	v->nodes.idle_tail = n;
	v->nodes.nidle++;
	v->nodes.idle_bytes += n->lru_bytes;
	while (v->nodes.idle_head &&
	       (v->nodes.nidle > v->nodes.idle_max || v->nodes.idle_bytes > v->nodes.idle_max_bytes))
		drop(v, v->nodes.idle_head);
}

/* Free every node (closing the vault: nothing is dirty any more). */
void vault_node_table_free(struct vv_vault *v)
{
	for (size_t i = 0; i < v->nodes.hsize; i++) {
		struct node *n = v->nodes.htab[i], *next;
		for (; n; n = next) {
			next = n->hnext;
			node_free(n);
		}
	}
	free(v->nodes.htab);
	v->nodes.htab = NULL;
	v->nodes.hsize = v->nodes.n = 0;
	v->nodes.idle_head = v->nodes.idle_tail = NULL;
	v->nodes.nidle = v->nodes.idle_bytes = 0;
}

/* When nothing refers to the node: keep it idle while it has links; delete
 * it for good when it has none (never idle: its row goes now). */
void vault_node_maybe_free(struct vv_vault *v, struct node *n)
{
	if (n->pins || n->nlookup || n->nopen || n->data_dirty || n->idle)
		return;
	if (n->a.nlink > 0 && !n->revoked) {
		idle_add(v, n);
		return;
	}
	if (n->a.nlink == 0) {
		int r = vault_txn(v);
		bool vault_txn_ok = r == 0;
		/* Every listener hears of it; the first error keeps the row. */
		for (size_t i = 0; vault_txn_ok && i < v->nlisteners; i++) {
			int e = v->listeners[i].deleted ? v->listeners[i].deleted(v, n) : 0;
			if (r == 0)
				r = e;
		}
		if (r == 0)
			r = vv_meta_inode_del(v->meta, n->ino);
		if (r < 0)
			vv_log(VV_LOG_ERR, "vault: cannot free inode %llu: %s (fsck will)",
			       (unsigned long long)n->ino, vv_strerror(r));
		/* its collection's key, if this was its last user, in the
		 * same transaction (crypto-shredding: vault_keys.c) */
		else if ((r = vault_coll_release(v, n->a.coll, 0)) < 0)
			vv_log(VV_LOG_WARN, "vault: key of collection %u kept: %s (the next "
			       "writable open tries again)", n->a.coll, vv_strerror(r));
	}
	unhash(v, n);
	node_free(n);
}

void vault_listen(struct vv_vault *v, const struct vault_listener *l)
{
	/* A fixed, small set of layers: more is a programming error. */
	if (v->nlisteners == VAULT_MAX_LISTENERS)
		abort();
	v->listeners[v->nlisteners++] = *l;
}

void vault_node_revoke(struct vv_vault *v, struct node *n)
{
	__atomic_store_n(&n->revoked, true, __ATOMIC_RELEASE);
	for (size_t i = 0; i < v->nlisteners; i++)
		if (v->listeners[i].revoked)
			v->listeners[i].revoked(v, n);
	/* and the kernel's page cache of it: reads must reach the daemon */
	if (v->inval)
		v->inval(v->inval_ctx, n->ino, NULL);
}

void vault_nodes_gone(struct vv_vault *v, uint64_t lo, uint64_t hi)
{
	/* their rows are gone without their nodes */
	vault_node_idle_drop(v);
	for (size_t i = 0; i < v->nlisteners; i++)
		if (v->listeners[i].gone)
			v->listeners[i].gone(v, lo, hi);
}

void vault_data_changed(struct vv_vault *v, struct node *n)
{
	for (size_t i = 0; i < v->nlisteners; i++)
		if (v->listeners[i].data_changed)
			v->listeners[i].data_changed(v, n);
}

void vault_node_put(struct vv_vault *v, struct node *n)
{
	if (!n)
		return;
	n->pins--;
	vault_node_maybe_free(v, n);
}

int vault_node_save(struct vv_vault *v, struct node *n)
{
	int r = vault_txn(v);

	return r < 0 ? r : vv_meta_inode_put(v->meta, &n->a);
}

int vault_node_acl(struct vv_vault *v, struct node *n, const uint8_t **acl, size_t *len)
{
	if (!n->acl_loaded) {
		uint8_t *b = NULL;
		size_t bl = 0;
		int r = vv_meta_xattr_get(v->meta, n->ino, "system.posix_acl_access", &b, &bl);
		if (r < 0 && r != VV_ENODATA)
			return r;
		free(n->acl);
		n->acl = r == 0 ? b : NULL;
		n->acl_len = r == 0 ? bl : 0;
		n->acl_loaded = true;
	}
	*acl = n->acl;
	*len = n->acl_len;
	return 0;
}

/* readdirplus read, in the same query as the entry, whether n has any
 * stored xattr.  `ls -l` asks every entry it lists for security.selinux and
 * system.posix_acl_access (the kernel caches neither); with this, both are
 * answered from memory instead of one query each.  Only fills what is
 * unknown: the answer is meta.db's under v->mu, the same a query would give
 * now, and what the node knows already is at least as recent. */
void vault_node_xattrs_known(struct node *n, bool any)
{
	if (n->xattrs == 0)
		n->xattrs = any ? 1 : -1;
	if (!any && !n->acl_loaded) {
		free(n->acl);
		n->acl = NULL;
		n->acl_len = 0;
		n->acl_loaded = true;
	}
}

void vault_node_perm(struct vv_vault *v, struct node *n, struct vv_perm *p)
{
	const uint8_t *acl = NULL;
	size_t len = 0;

	if (vault_node_acl(v, n, &acl, &len) < 0) {
		/* Fail closed: an unreadable ACL is treated as denying all but
		 * the owner class, through an invalid blob the check refuses. */
		static const uint8_t bad[1];
		acl = bad;
		len = 1;
	}
	p->mode = n->a.mode;
	p->uid = n->a.uid;
	p->gid = n->a.gid;
	p->acl = acl;
	p->acl_len = len;
	p->coll_admin = false;
}

int vault_node_check(struct vv_vault *v, const struct vv_ctx *c, struct node *n, int mask)
{
	struct vv_perm p;

	vault_node_perm(v, n, &p);
	return vv_access_check(&c->id, &p, mask);
}

/* May every user search directory d (mode bits and ACL entries)? */
static bool searchable_by_all(struct vv_vault *v, struct node *d)
{
	const uint8_t *acl;
	size_t len;

	if ((d->a.mode & 0111) != 0111)
		return false;
	if (vault_node_acl(v, d, &acl, &len) < 0)
		return false;
	if (acl) {
		uint32_t mask = 7;
		/* kernel xattr ACL: u32 version, then {u16 tag, u16 perm, u32 id} */
		for (size_t off = 4; off + 8 <= len; off += 8)
			if ((acl[off] | acl[off + 1] << 8) == VV_ACL_MASK)
				mask = acl[off + 2] & 7;
		for (size_t off = 4; off + 8 <= len; off += 8) {
			unsigned tag = acl[off] | acl[off + 1] << 8;
			unsigned perm = acl[off + 2] & 7;
			if (tag == VV_ACL_USER || tag == VV_ACL_GROUP || tag == VV_ACL_GROUP_OBJ)
				perm &= mask;
			if (tag != VV_ACL_MASK && !(perm & 1))
				return false;
		}
	}
	return true;
}

/* The walk up (vault_int.h struct vault_up). */
struct node *vault_up_first(struct vv_vault *v, struct vault_up *w, uint64_t from)
{
	memset(w, 0, sizeof(*w));
	w->next = w->mark = from;
	w->power = 1;
	return vault_up_next(v, w);
}

struct node *vault_up_next(struct vv_vault *v, struct vault_up *w)
{
	uint64_t cur = w->next;
	struct node *n;
	int r;

	vault_node_put(v, w->n);
	w->n = NULL;
	if (w->end != VAULT_UP_WALKING)
		return NULL;
	if (w->last) {
		w->end = VAULT_UP_ROOT;
		return NULL;
	}
	if (cur == VV_TRASH_FILES_INO) {
		w->end = VAULT_UP_TRASH;
		return NULL;
	}
	if (cur == 0 || trash_virt(cur)) {
		w->end = VAULT_UP_BROKEN;
		w->err = cur ? VV_ENOENT : w->err;   /* a virtual inode has no node */
		return NULL;
	}
	if ((r = vault_node_get(v, cur, &n)) < 0) {
		w->end = VAULT_UP_BROKEN;
		w->err = r;
		return NULL;
	}
	w->n = n;
	if (cur == VV_ROOT_INO) {
		w->last = true;
		return n;
	}
	/* Brent: the mark moves to the walk's position at each power of
	 * two; a walk that meets it again goes round a cycle. */
	w->next = n->a.parent;
	if (w->next == w->mark) {
		w->next = 0;
		w->err = VV_ELOOP;
	} else if (++w->lam == w->power) {
		w->mark = w->next;
		w->power *= 2;
		w->lam = 0;
	}
	return n;
}

void vault_up_stop(struct vv_vault *v, struct vault_up *w)
{
	vault_node_put(v, w->n);
	w->n = NULL;
}

/* The whole chain from dir up, as a path walk to dir would search it:
 * the first directory refused decides, unless the chain does not lead to
 * the root of the live tree (in the trash, unlinked, broken): ENOENT. */
int vault_node_reach(struct vv_vault *v, const struct vv_ctx *c, uint64_t dir)
{
	struct vault_up w;
	int r = 0;

	for (struct node *n = vault_up_first(v, &w, dir); n; n = vault_up_next(v, &w)) {
		if (n->a.nlink == 0) {
			vault_up_stop(v, &w);
			return VV_ENOENT;
		}
		if (r == 0)
			r = vault_node_check(v, c, n, VV_MAY_EXEC);
	}
	if (w.end == VAULT_UP_ROOT)
		return r;
	/* not in the live tree: gone (the trash, a row or node that cannot
	 * be had), or a damaged chain (parent 0, a cycle: fail closed) */
	return w.end == VAULT_UP_TRASH || (w.err && w.err != VV_ELOOP) ? VV_ENOENT : VV_EACCES;
}

/* Every directory from the root down to dir may be searched by everyone.
 * Kept per directory while perm_gen stands (every change of a directory's
 * permissions or place bumps it): the walk goes up to the first directory
 * that knows its answer, a directory no one else may search, or the root;
 * a second walk then tells the answer to those it passed. */
bool vault_node_chain_ok(struct vv_vault *v, struct node *dir)
{
	struct vault_up w;
	uint64_t gen = v->nodes.perm_gen, upto = 0;
	bool ok = false;

	if (dir->chain_gen == gen && dir->chain_gen)
		return dir->chain_ok;
	for (struct node *n = vault_up_first(v, &w, dir->ino); n; n = vault_up_next(v, &w)) {
		if (n != dir && n->chain_gen == gen && n->chain_gen) {
			ok = n->chain_ok;
			upto = n->ino;
			break;
		}
		if (!searchable_by_all(v, n)) {
			n->chain_ok = false;
			n->chain_gen = gen;
			upto = n->ino;
			break;
		}
	}
	vault_up_stop(v, &w);
	if (w.end == VAULT_UP_ROOT)
		ok = true;
	/* the directories below upto were searchable by all: they get its answer */
	for (struct node *n = vault_up_first(v, &w, dir->ino); n && n->ino != upto; n = vault_up_next(v, &w)) {
		n->chain_ok = ok;
		n->chain_gen = gen;
	}
	vault_up_stop(v, &w);
	return dir->chain_gen == gen ? dir->chain_ok : ok;
}

static void ts(int64_t ns, struct timespec *t)
{
	t->tv_sec = ns / 1000000000LL;
	t->tv_nsec = ns % 1000000000LL;
	if (t->tv_nsec < 0) {
		t->tv_nsec += 1000000000LL;
		t->tv_sec--;
	}
}

void vault_node_attr(struct vv_vault *v, struct node *n, bool cacheable, struct vv_attr *out)
{
	memset(out, 0, sizeof(*out));
	out->ino = n->ino;
	out->gen = n->a.gen;
	out->mode = n->a.mode;
	out->nlink = n->a.nlink;
	/* A removed file in the trash has no name in the tree any more: its
	 * handles see nlink 0, as after unlink (the trash entry is not a
	 * link the file's users made). */
	if (!S_ISDIR(n->a.mode) && n->a.parent == VV_TRASH_FILES_INO)
		out->nlink = 0;
	out->uid = n->a.uid;
	out->gid = n->a.gid;
	out->size = n->a.size;
	out->rdev = n->a.rdev;
	if (S_ISREG(n->a.mode)) {
		uint64_t st = n->a.stored;
		if (__atomic_load_n(&n->is_inline, __ATOMIC_RELAXED) ||
		    (!__atomic_load_n(&n->data_loaded, __ATOMIC_RELAXED) &&
		     n->a.size <= VV_INLINE_MAX && st == 0))
			st = n->a.size;
		out->blocks = (st + 511) / 512;
	} else if (S_ISDIR(n->a.mode)) {
		out->blocks = 8;
	}
	ts(n->a.atime, &out->atime);
	ts(n->a.mtime, &out->mtime);
	ts(n->a.ctime, &out->ctime);
	/* Never cached, whatever the ancestry: FIFOs and sockets, whose opens
	 * and connects the kernel does not send us, so every path walk must
	 * reach the lookup that decides them (vv_vault_lookup); and files with
	 * several names, so that each open is preceded by the lookup that
	 * tells which name it used (the audit path, vault_file_owner). */
	out->noxattr = n->xattrs < 0;
	out->cacheable = cacheable && !S_ISFIFO(n->a.mode) && !S_ISSOCK(n->a.mode) &&
			 (S_ISDIR(n->a.mode) || n->a.nlink <= 1);
}

/* Canonical path of ino ("/coll/dir/file").  Not the walk up the tree
 * (vault_up_*): it asks for names, not nodes, so it follows the name the
 * kernel looked a node up by when it has one, else meta.db's entries (a
 * file of several names: its oldest), else a trash item's row; and it
 * makes no node.  Its 4 KiB buffer is its bound. */
int vault_node_path(struct vv_vault *v, uint64_t ino, char *buf, size_t cap)
{
	uint64_t dir;

	return vault_node_path_dir(v, ino, buf, cap, &dir);
}

int vault_node_path_dir(struct vv_vault *v, uint64_t ino, char *buf, size_t cap, uint64_t *dir)
{
	char tmp[4096], name[VV_NAME_MAX + 1];
	size_t pos = sizeof(tmp) - 1, len;
	uint64_t cur = ino;
	int r = VV_ENOENT;

	/* No depth bound of its own: each step takes at least two bytes of
	 * tmp, so the buffer ends any walk, a cycle's too. */
	tmp[pos] = 0;
	*dir = 0;
	while (cur != VV_ROOT_INO) {
		struct node *n = find(v, cur);
		const char *nm = name;
		uint64_t parent;
		size_t nl;
		if (trash_virt_path(cur)) {
			/* The trash's directories: "/.trash/files/NAME..." */
			nm = trash_virt_path(cur) + 1;
			parent = VV_ROOT_INO;
		} else if (n && n->lname && n->a.nlink && (S_ISDIR(n->a.mode) || n->a.nlink == 1)) {
			/* Its only name, as the kernel knows it: no query needed.
			 * A file with several names is named by its oldest one,
			 * never by whichever another user looked up last. */
			nm = n->lname;
			parent = n->lparent;
		} else if (vv_meta_dirent_find_ino(v->meta, cur, &parent, name, sizeof(name)) < 0) {
			/* A trashed item has no entry: its row is its name.
			 * Named so only while in use (an open handle's audit
			 * path): an idle node answers as no node would. */
			if (!n || n->idle || n->a.parent != VV_TRASH_FILES_INO ||
			    vv_meta_trash_name_of(v->meta, cur, name, sizeof(name)) < 0)
				goto unknown;
			parent = VV_TRASH_FILES_INO;
		}
		nl = strlen(nm);
		if (nl + 1 > pos) {
			r = VV_ENAMETOOLONG;
			goto unknown;
		}
		pos -= nl;
		memcpy(tmp + pos, nm, nl);
		tmp[--pos] = '/';
		if (cur == ino)
			*dir = parent;
		cur = parent;
	}
	if (pos == sizeof(tmp) - 1)
		tmp[--pos] = '/';
	len = sizeof(tmp) - 1 - pos;
	if (len + 1 > cap) {
		r = VV_ENAMETOOLONG;
		goto unknown;
	}
	memcpy(buf, tmp + pos, len + 1);
	return 0;
unknown:
	snprintf(buf, cap, "<inode %llu>", (unsigned long long)ino);
	return r;
}

/* A directory stopped being searchable by everyone: the kernel may hold
 * entries below it that it would serve without asking us, so drop every
 * entry and attribute it may have cached. */
void vault_node_invalidate_all(struct vv_vault *v)
{
	if (!v->inval)
		return;
	for (size_t i = 0; i < v->nodes.hsize; i++)
		for (struct node *n = v->nodes.htab[i]; n; n = n->hnext)
			if (n->nlookup && n->ino != VV_ROOT_INO) {
				if (n->lname)
					v->inval(v->inval_ctx, n->lparent, n->lname);
				v->inval(v->inval_ctx, n->ino, NULL);
			}
}

/* Remember the name the kernel knows n by, for invalidating its entry, and
 * which thread looked it up by that name (0: not a lookup), for the audit
 * path of the open that follows (vault_file_owner). */
void vault_node_named(struct node *n, uint64_t parent, const char *name, uint32_t pid)
{
	n->lpid = pid;
	if (n->lname && n->lparent == parent && strcmp(n->lname, name) == 0)
		return;
	free(n->lname);
	n->lname = strdup(name);
	n->lparent = parent;
}
