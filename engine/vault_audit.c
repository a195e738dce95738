/*
 * vault_audit.c - the vault's audit records: who did what to which path,
 * with what result (docs/audit.md "What is recorded", "Paths"); the audit
 * writer's checkpoints, sealed into meta.db at the next commit; failed
 * unlocks, which have no key yet.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

/* Audit writer thread: remember the checkpoint; sealed at the next commit
 * (taking v->mu here could deadlock against a request logging a record). */
void vault_audit_checkpoint(void *ctx, uint64_t seq, const uint8_t mac[VV_AUDIT_MAC_BYTES])
{
	struct vv_vault *v = ctx;

	pthread_mutex_lock(&v->aud.ckpt_mu);
	v->aud.ckpt_have = true;
	v->aud.ckpt_seq = seq;
	memcpy(v->aud.ckpt_mac, mac, VV_AUDIT_MAC_BYTES);
	pthread_mutex_unlock(&v->aud.ckpt_mu);
}

/* vault_int.h */
void vault_audit_dir(struct vv_vault *v, uint64_t parent, char *buf)
{
	buf[0] = 0;
	if (parent != VV_ROOT_INO)
		vault_node_path(v, parent, buf, VAULT_AUDIT_DIR_MAX);
}

/* Append "/name" to the directory path buf holds (VAULT_AUDIT_DIR_MAX +
 * VV_NAME_MAX + 2 bytes). */
static void add_name(char *buf, const char *name)
{
	size_t pl = strnlen(buf, VAULT_AUDIT_DIR_MAX - 1), nl = strlen(name);

	if (nl > VV_NAME_MAX)
		nl = VV_NAME_MAX;
	buf[pl] = '/';
	memcpy(buf + pl + 1, name, nl);
	buf[pl + 1 + nl] = 0;
}

/* "/parent/path/name" of an entry into buf (VAULT_AUDIT_DIR_MAX +
 * VV_NAME_MAX + 2); under mu. */
static void parent_entry_path(struct vv_vault *v, uint64_t parent, const char *name, char *buf)
{
	vault_audit_dir(v, parent, buf);
	add_name(buf, name);
}

/* The caller's fields of a record; c NULL: the daemon or CLI itself. */
static void rec_from(struct vv_audit_rec *rec, const struct vv_ctx *c, const char *op,
		     int result, const char *detail)
{
	if (c) {
		memset(rec, 0, sizeof(*rec));
		rec->op = op;
		rec->uid = c->id.uid;
		rec->gid = c->id.gid;
		rec->pid = c->id.pid;
		rec->comm = c->comm;
		rec->user = c->user;
		rec->client = c->client ? c->client : "local";
		rec->result = result;
		rec->detail = detail;
	} else {
		/* The daemon or CLI itself: mount, close, admin actions. */
		vv_audit_rec_self(rec, op, result, detail);
	}
}

/* The audit name of an open mode (open(2) flags plus VV_OPEN_EXEC). */
static const char *mode_name(int flags)
{
	static const char *const names[4] = { "r", "w", "rw", "ioctl" };

	return (flags & VV_OPEN_EXEC) ? "x" : names[flags & O_ACCMODE];
}

void vault_audit(struct vv_vault *v, const struct vv_ctx *c, const char *op, uint64_t ino,
		 uint64_t parent, const char *name, int result, const char *detail)
{
	struct vv_audit_rec rec;
	char path[4096 + VV_NAME_MAX + 2];

	if (!v->aud.log)
		return;
	if (result == 0 && !v->aud.lookups &&
	    (strcmp(op, "lookup") == 0 || strcmp(op, "getattr") == 0))
		return;
	if (name)
		parent_entry_path(v, parent, name, path);
	else
		vault_node_path(v, ino, path, sizeof(path));
	rec_from(&rec, c, op, result, detail);
	rec.path = path;
	rec.ino = ino;
	vv_audit_log(v->aud.log, &rec);
}

/* The path c opened (or tried to open) n by: the entry this thread looked
 * up just before (for a file with several names, that tells which one),
 * else the canonical path.  Never the name another user looked up last. */
static void open_path(struct vv_vault *v, struct node *n, const struct vv_ctx *c, char *buf)
{
	if (n->lname && n->lpid && n->lpid == c->id.pid)
		parent_entry_path(v, n->lparent, n->lname, buf);
	else
		vault_node_path(v, n->ino, buf, 4096);
}

void vault_audit_open_denied(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino,
			     struct node *n, int flags, int result)
{
	struct vv_audit_rec rec;
	char path[4096 + VV_NAME_MAX + 2];

	if (!v->aud.log)
		return;
	if (n)
		open_path(v, n, c, path);
	else
		vault_node_path(v, ino, path, sizeof(path));
	rec_from(&rec, c, "open", result, NULL);
	rec.path = path;
	rec.ino = ino;
	rec.mode = mode_name(flags);
	vv_audit_log(v->aud.log, &rec);
}

int vault_audit_gate(struct vv_vault *v)
{
	if (!v->aud.required || !v->aud.log)
		return 0;
	return vv_audit_status(v->aud.log) < 0 ? VV_EAUDIT : 0;
}

void vault_file_owner(struct vv_vault *v, struct vv_file *fh, const struct vv_ctx *c)
{
	char path[4096 + VV_NAME_MAX + 2];

	if (!c)
		return;
	fh->who = *c;
	fh->who.id.groups = NULL;
	fh->who.id.ngroups = 0;
	snprintf(fh->comm, sizeof(fh->comm), "%s", c->comm ? c->comm : "");
	snprintf(fh->client, sizeof(fh->client), "%s", c->client ? c->client : "local");
	fh->who.comm = fh->comm;
	fh->who.client = fh->client;
	/* a remote opener's close record names it too (net/: "name/key-id") */
	snprintf(fh->user, sizeof(fh->user), "%s", c->user ? c->user : "");
	fh->who.user = c->user ? fh->user : NULL;
	open_path(v, fh->n, c, path);
	fh->path = strdup(path);         /* NULL: records fall back to vault_node_path */
}

void vault_file_free(struct vv_file *fh)
{
	if (!fh)
		return;
	free(fh->path);
	free(fh);
}

void vault_audit_file_why(struct vv_vault *v, const struct vv_ctx *c, const char *op,
			  struct vv_file *fh, int result, const char *detail)
{
	struct vv_audit_rec rec;
	char path[4096];

	if (!c && fh->who.client)
		c = &fh->who;
	if (!v->aud.log)
		return;
	if (!fh->path)
		vault_node_path(v, fh->n->ino, path, sizeof(path));
	if (c) {
		rec_from(&rec, c, op, result, detail);
	} else {
		/* A handle with no opener (the xattr code's probe). */
		memset(&rec, 0, sizeof(rec));
		rec.op = op;
		rec.client = "local";
		rec.result = result;
		rec.detail = detail;
	}
	rec.path = fh->path ? fh->path : path;
	rec.ino = fh->n->ino;
	rec.mode = mode_name(fh->flags);
	rec.rbytes = fh->rbytes;
	rec.wbytes = fh->wbytes;
	rec.rcount = fh->rcount;
	rec.wcount = fh->wcount;
	vv_audit_log(v->aud.log, &rec);
}

void vault_audit_name(struct vv_vault *v, const struct vv_ctx *c, const char *op, uint64_t ino,
		      const char *dir, const char *name, int result, const char *detail,
		      uint64_t rbytes)
{
	struct vv_audit_rec rec;
	char path[VAULT_AUDIT_DIR_MAX + VV_NAME_MAX + 2];

	if (!v->aud.log)
		return;
	snprintf(path, VAULT_AUDIT_DIR_MAX, "%s", dir);
	add_name(path, name);
	rec_from(&rec, c, op, result, detail);
	rec.path = path;
	rec.ino = ino;
	rec.mode = "r";
	rec.rbytes = rbytes;
	rec.rcount = result == 0 && strcmp(op, "open") != 0;
	vv_audit_log(v->aud.log, &rec);
}

void vault_audit_file(struct vv_vault *v, const struct vv_ctx *c, const char *op,
		      struct vv_file *fh, int result)
{
	vault_audit_file_why(v, c, op, fh, result, NULL);
}

void vv_vault_audit_admin(struct vv_vault *v, const char *op, int result, const char *detail)
{
	struct vv_ctx c;

	memset(&c, 0, sizeof(c));
	c.id.uid = (uint32_t)getuid();
	c.id.gid = (uint32_t)getgid();
	c.id.pid = (uint32_t)getpid();
	c.comm = "vecvault";
	c.client = "local";
	pthread_mutex_lock(&v->mu);
	vault_audit(v, &c, op, VV_ROOT_INO, 0, NULL, result, detail);
	pthread_mutex_unlock(&v->mu);
}

int vv_vault_audit_sealed(struct vv_vault *v, uint64_t *seq, uint8_t mac[32])
{
	size_t ml = 0;
	int r;

	*seq = 0;
	pthread_mutex_lock(&v->mu);
	vault_seal_checkpoint(v);
	r = vv_meta_kv_get_u64(v->meta, "audit_seq", seq);
	if (r == 0)
		r = vv_meta_kv_get_blob(v->meta, "audit_mac", mac, 32, &ml);
	pthread_mutex_unlock(&v->mu);
	if (r == VV_ENOENT || (r == 0 && ml != 32)) {
		*seq = 0;
		return 0;
	}
	return r;
}

/* A failed unlock: no key yet, so the record goes to the pre-authentication
 * file beside the audit log, imported (unauthenticated) at the next unlock. */
void vault_audit_failed_unlock(struct vv_store *s, const struct vv_vault_opts *o, int result)
{
	struct vv_audit_rec rec;
	char path[4096];

	if (o->audit_log)
		snprintf(path, sizeof(path), "%s", o->audit_log);
	else if (vv_audit_default_path(o->audit_dir, vv_store_id(s), path, sizeof(path)) < 0)
		return;
	vv_audit_rec_self(&rec, "unlock", result, o->purpose ? o->purpose : "open");
	vv_audit_preauth_append(path, &rec);
}

