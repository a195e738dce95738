/*
 * crash_model.c - test_crash's power-cut machinery: a recording vv_os
 * table that logs every mutating call made under WORLD, an in-memory model
 * of the files and directories that replays a prefix of that log, and the
 * materialisation of one "power cut" copy (what test_crash.c's opening
 * comment describes; the workload and the checks of each cut are there).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crash_model.h"
#include "os.h"

#define PAGE 4096
#define MAXFD 65536

char world[1024];      /* recorded tree: WORLD/store, WORLD/state */
size_t worldlen;

/* ---- rng ----------------------------------------------------------------- */

uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}
uint64_t rng_below(uint64_t *s, uint64_t n) { return n ? rng_next(s) % n : 0; }

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		perror("malloc");
		exit(2);
	}
	return p;
}
void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		perror("realloc");
		exit(2);
	}
	return p;
}
char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		exit(2);
	return p;
}

/* ---- the operation log ------------------------------------------------- */

struct op *oplog;
size_t nops, capops;
static pthread_mutex_t rec_mu = PTHREAD_MUTEX_INITIALIZER;
static bool tracked[MAXFD];
bool recording;

size_t log_len(void)
{
	size_t n;

	pthread_mutex_lock(&rec_mu);
	n = nops;
	pthread_mutex_unlock(&rec_mu);
	return n;
}

/* Path relative to world, or NULL when outside it. */
static const char *rel(const char *p)
{
	if (strncmp(p, world, worldlen) != 0)
		return NULL;
	if (p[worldlen] == '\0')
		return "";
	if (p[worldlen] != '/')
		return NULL;
	return p + worldlen + 1;
}

static struct op *op_add(int kind)
{
	if (nops == capops) {
		capops = capops ? capops * 2 : 4096;
		oplog = xrealloc(oplog, capops * sizeof(*oplog));
	}
	memset(&oplog[nops], 0, sizeof(oplog[nops]));
	oplog[nops].kind = kind;
	return &oplog[nops++];
}

static int c_open(const char *p, int fl, mode_t m)
{
	const char *r;
	int fd;

	pthread_mutex_lock(&rec_mu);
	fd = vv_os_real.open(p, fl, m);
	if (fd >= 0 && recording && fd < MAXFD && (r = rel(p))) {
		struct op *o = op_add(OP_OPEN);
		o->fd = fd;
		o->flags = fl;
		o->path = xstrdup(r);
		tracked[fd] = true;
	}
	pthread_mutex_unlock(&rec_mu);
	return fd;
}
static int c_close(int fd)
{
	int r;

	pthread_mutex_lock(&rec_mu);
	r = vv_os_real.close(fd);
	if (fd >= 0 && fd < MAXFD && tracked[fd]) {
		tracked[fd] = false;
		op_add(OP_CLOSE)->fd = fd;
	}
	pthread_mutex_unlock(&rec_mu);
	return r;
}
static ssize_t c_pwrite(int fd, const void *b, size_t n, off_t off)
{
	ssize_t r;

	pthread_mutex_lock(&rec_mu);
	r = vv_os_real.pwrite(fd, b, n, off);
	if (r > 0 && fd < MAXFD && tracked[fd]) {
		struct op *o = op_add(OP_PWRITE);
		o->fd = fd;
		o->off = (uint64_t)off;
		o->len = (uint64_t)r;
		o->buf = xmalloc((size_t)r);
		memcpy(o->buf, b, (size_t)r);
	}
	pthread_mutex_unlock(&rec_mu);
	return r;
}
static int c_ftruncate(int fd, off_t len)
{
	int r;

	pthread_mutex_lock(&rec_mu);
	r = vv_os_real.ftruncate(fd, len);
	if (r == 0 && fd < MAXFD && tracked[fd]) {
		struct op *o = op_add(OP_TRUNC);
		o->fd = fd;
		o->len = (uint64_t)len;
	}
	pthread_mutex_unlock(&rec_mu);
	return r;
}
static int c_fsync(int fd)
{
	int r;

	pthread_mutex_lock(&rec_mu);
	r = vv_os_real.fsync(fd);
	if (r == 0 && fd < MAXFD && tracked[fd])
		op_add(OP_FSYNC)->fd = fd;
	pthread_mutex_unlock(&rec_mu);
	return r;
}
static int c_path1(int kind, const char *p, mode_t m)
{
	const char *rp;
	int r;

	pthread_mutex_lock(&rec_mu);
	r = kind == OP_UNLINK ? vv_os_real.unlink(p)
	  : kind == OP_MKDIR  ? vv_os_real.mkdir(p, m)
			      : vv_os_real.rmdir(p);
	if (r == 0 && recording && (rp = rel(p)))
		op_add(kind)->path = xstrdup(rp);
	pthread_mutex_unlock(&rec_mu);
	return r;
}
static int c_unlink(const char *p) { return c_path1(OP_UNLINK, p, 0); }
static int c_mkdir(const char *p, mode_t m) { return c_path1(OP_MKDIR, p, m); }
static int c_rmdir(const char *p) { return c_path1(OP_RMDIR, p, 0); }
static int c_rename(const char *a, const char *b)
{
	const char *ra, *rb;
	int r;

	pthread_mutex_lock(&rec_mu);
	r = vv_os_real.rename(a, b);
	ra = rel(a);
	rb = rel(b);
	if (r == 0 && recording && (ra || rb)) {
		if (!ra || !rb) {
			fprintf(stderr, "rename across the world boundary: %s -> %s\n", a, b);
			exit(2);
		}
		struct op *o = op_add(OP_RENAME);
		o->path = xstrdup(ra);
		o->path2 = xstrdup(rb);
	}
	pthread_mutex_unlock(&rec_mu);
	return r;
}
static int c_fallocate(int fd, int mode, off_t o, off_t l)
{
	/* KEEP_SIZE only allocates past the end (the WAL's headroom): no byte
	 * and no size changes, so a power cut has nothing of it to lose. */
	if (fd < MAXFD && tracked[fd] && !(mode & FALLOC_FL_KEEP_SIZE)) {
		/* not modelled: would change sizes behind the model's back */
		fprintf(stderr, "fallocate on a recorded file: not modelled\n");
		exit(2);
	}
	return vv_os_real.fallocate(fd, mode, o, l);
}

static struct vv_os_ops rec_ops;

void rec_install(void)
{
	rec_ops = vv_os_real;
	rec_ops.open = c_open;
	rec_ops.close = c_close;
	rec_ops.pwrite = c_pwrite;
	rec_ops.ftruncate = c_ftruncate;
	rec_ops.fsync = c_fsync;
	rec_ops.unlink = c_unlink;
	rec_ops.rename = c_rename;
	rec_ops.mkdir = c_mkdir;
	rec_ops.rmdir = c_rmdir;
	rec_ops.fallocate = c_fallocate;
	vv_os_set(&rec_ops);
}

/* ---- the file-system model ----------------------------------------------- */

struct mnode *all_nodes;
struct mnode *mroot;
static struct mnode *fdmap[MAXFD];

struct mnode *node_new(bool isdir)
{
	struct mnode *n = calloc(1, sizeof(*n));
	if (!n)
		exit(2);
	n->isdir = isdir;
	n->all_next = all_nodes;
	all_nodes = n;
	return n;
}

static void buf_setlen(uint8_t **b, size_t *len, size_t *cap, size_t nl)
{
	if (nl > *cap) {
		size_t c = *cap ? *cap : 4096;
		while (c < nl)
			c *= 2;
		*b = xrealloc(*b, c);
		*cap = c;
	}
	if (nl > *len)
		memset(*b + *len, 0, nl - *len);
	*len = nl;
}

static void apply_piece(uint8_t **b, size_t *len, size_t *cap, const struct piece *p)
{
	if (p->kind == P_TRUNC) {
		buf_setlen(b, len, cap, p->len);
		return;
	}
	if (p->off + p->len > *len)
		buf_setlen(b, len, cap, p->off + p->len);
	memcpy(*b + p->off, p->src, p->len);
}

static void piece_add(struct mnode *n, struct piece pc)
{
	if (n->np == n->capp) {
		n->capp = n->capp ? n->capp * 2 : 16;
		n->p = xrealloc(n->p, n->capp * sizeof(*n->p));
	}
	n->p[n->np++] = pc;
}

static struct ent *ent_find(struct ent *e, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(e[i].name, name) == 0)
			return &e[i];
	return NULL;
}
static void ent_set(struct ent **e, size_t *n, size_t *cap, const char *name, struct mnode *m)
{
	struct ent *x = ent_find(*e, *n, name);
	if (x) {
		x->n = m;
		return;
	}
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		*e = xrealloc(*e, *cap * sizeof(**e));
	}
	(*e)[*n].name = xstrdup(name);
	(*e)[*n].n = m;
	(*n)++;
}
static void ent_del(struct ent *e, size_t *n, const char *name)
{
	struct ent *x = ent_find(e, *n, name);
	if (!x)
		return;
	free(x->name);
	*x = e[--(*n)];
}
static void ent_copy(struct ent **dst, size_t *nd, size_t *capd, const struct ent *src, size_t ns)
{
	for (size_t i = 0; i < *nd; i++)
		free((*dst)[i].name);
	*nd = 0;
	for (size_t i = 0; i < ns; i++)
		ent_set(dst, nd, capd, src[i].name, src[i].n);
}

static void dop_add(struct mnode *dir, int kind, const char *name, const char *name2, struct mnode *n)
{
	if (dir->nd == dir->capd) {
		dir->capd = dir->capd ? dir->capd * 2 : 16;
		dir->d = xrealloc(dir->d, dir->capd * sizeof(*dir->d));
	}
	dir->d[dir->nd].kind = kind;
	dir->d[dir->nd].name = xstrdup(name);
	dir->d[dir->nd].name2 = name2 ? xstrdup(name2) : NULL;
	dir->d[dir->nd].n = n;
	dir->nd++;
}

/* Split rel path into parent node (current namespace) and last component. */
static struct mnode *resolve_parent(const char *rp, char *last, size_t lastcap)
{
	char tmp[PATH_MAX], *save = NULL, *tok, *next;
	struct mnode *d = mroot;

	snprintf(tmp, sizeof(tmp), "%s", rp);
	tok = strtok_r(tmp, "/", &save);
	if (!tok)
		return NULL;
	while ((next = strtok_r(NULL, "/", &save))) {
		struct ent *e = ent_find(d->cur, d->ncur, tok);
		if (!e || !e->n->isdir)
			return NULL;
		d = e->n;
		tok = next;
	}
	snprintf(last, lastcap, "%s", tok);
	return d;
}
static struct mnode *resolve(const char *rp)
{
	char last[NAME_MAX + 1];
	struct mnode *d;
	struct ent *e;

	if (!rp[0])
		return mroot;
	if (!(d = resolve_parent(rp, last, sizeof(last))))
		return NULL;
	e = ent_find(d->cur, d->ncur, last);
	return e ? e->n : NULL;
}

static _Noreturn void model_die(const struct op *o, const char *why)
{
	fprintf(stderr, "model: %s (op kind %d path %s)\n", why, o->kind, o->path ? o->path : "-");
	exit(2);
}

void model_apply(const struct op *o)
{
	char last[NAME_MAX + 1], last2[NAME_MAX + 1];
	struct mnode *n, *d, *d2;

	switch (o->kind) {
	case OP_OPEN:
		n = resolve(o->path);
		if (!n) {
			if (!(o->flags & O_CREAT))
				model_die(o, "open of an unknown path");
			if (!(d = resolve_parent(o->path, last, sizeof(last))))
				model_die(o, "create in an unknown dir");
			n = node_new(false);
			ent_set(&d->cur, &d->ncur, &d->capcur, last, n);
			dop_add(d, D_ADD, last, NULL, n);
		} else if ((o->flags & O_TRUNC) && !n->isdir) {
			piece_add(n, (struct piece){ P_TRUNC, 0, 0, NULL });
		}
		fdmap[o->fd] = n;
		break;
	case OP_CLOSE:
		fdmap[o->fd] = NULL;
		break;
	case OP_PWRITE:
		if (!(n = fdmap[o->fd]) || n->isdir)
			model_die(o, "pwrite on an unknown fd");
		/* page-cache writeback: each 4 KiB page of the write on its own */
		for (uint64_t pos = o->off; pos < o->off + o->len;) {
			uint64_t end = (pos / PAGE + 1) * PAGE;
			if (end > o->off + o->len)
				end = o->off + o->len;
			piece_add(n, (struct piece){ P_WRITE, pos, end - pos, o->buf + (pos - o->off) });
			pos = end;
		}
		break;
	case OP_TRUNC:
		if (!(n = fdmap[o->fd]) || n->isdir)
			model_die(o, "ftruncate on an unknown fd");
		piece_add(n, (struct piece){ P_TRUNC, 0, o->len, NULL });
		break;
	case OP_FSYNC:
		if (!(n = fdmap[o->fd]))
			model_die(o, "fsync on an unknown fd");
		if (n->isdir) {
			ent_copy(&n->dur, &n->ndur, &n->capdur, n->cur, n->ncur);
			for (size_t i = 0; i < n->nd; i++) {
				free(n->d[i].name);
				free(n->d[i].name2);
			}
			n->nd = 0;
		} else {
			for (size_t i = 0; i < n->np; i++)
				apply_piece(&n->data, &n->len, &n->cap, &n->p[i]);
			n->np = 0;
		}
		break;
	case OP_UNLINK:
	case OP_RMDIR:
		if (!(d = resolve_parent(o->path, last, sizeof(last))) ||
		    !ent_find(d->cur, d->ncur, last))
			model_die(o, "unlink of an unknown path");
		ent_del(d->cur, &d->ncur, last);
		dop_add(d, D_DEL, last, NULL, NULL);
		break;
	case OP_MKDIR:
		if (!(d = resolve_parent(o->path, last, sizeof(last))))
			model_die(o, "mkdir in an unknown dir");
		n = node_new(true);
		ent_set(&d->cur, &d->ncur, &d->capcur, last, n);
		dop_add(d, D_ADD, last, NULL, n);
		break;
	case OP_RENAME:
		if (!(d = resolve_parent(o->path, last, sizeof(last))) ||
		    !(d2 = resolve_parent(o->path2, last2, sizeof(last2))))
			model_die(o, "rename of an unknown path");
		{
			struct ent *e = ent_find(d->cur, d->ncur, last);
			if (!e)
				model_die(o, "rename of a missing entry");
			n = e->n;
		}
		ent_del(d->cur, &d->ncur, last);
		ent_set(&d2->cur, &d2->ncur, &d2->capcur, last2, n);
		if (d == d2) {
			dop_add(d, D_REN, last, last2, n);
		} else {
			dop_add(d, D_DEL, last, NULL, NULL);
			dop_add(d2, D_ADD, last2, NULL, n);
		}
		break;
	}
}

/* Load the initial (fully durable) tree from disk. */
void model_load(struct mnode *dn, const char *path)
{
	DIR *dir = opendir(path);
	struct dirent *de;

	if (!dir) {
		perror(path);
		exit(2);
	}
	while ((de = readdir(dir))) {
		char p[PATH_MAX];
		struct stat st;
		struct mnode *n;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		if (lstat(p, &st) < 0)
			exit(2);
		n = node_new(S_ISDIR(st.st_mode));
		if (n->isdir) {
			model_load(n, p);
		} else {
			FILE *f = fopen(p, "rb");
			if (!f)
				exit(2);
			buf_setlen(&n->data, &n->len, &n->cap, (size_t)st.st_size);
			if (st.st_size && fread(n->data, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
				exit(2);
			fclose(f);
		}
		ent_set(&dn->cur, &dn->ncur, &dn->capcur, de->d_name, n);
	}
	closedir(dir);
	ent_copy(&dn->dur, &dn->ndur, &dn->capdur, dn->cur, dn->ncur);
}

unsigned cut_gen;

void materialise(struct mnode *dn, const char *path, uint64_t *rs)
{
	struct ent *v = NULL;
	size_t nv = 0, capv = 0;

	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		perror(path);
		exit(2);
	}
	/* durable entries + a random subset of the later entry operations */
	ent_copy(&v, &nv, &capv, dn->dur, dn->ndur);
	for (size_t i = 0; i < dn->nd; i++) {
		const struct dop *o = &dn->d[i];
		struct ent *e;
		if (rng_below(rs, 2) == 0)
			continue;
		switch (o->kind) {
		case D_ADD:
			ent_set(&v, &nv, &capv, o->name, o->n);
			break;
		case D_DEL:
			ent_del(v, &nv, o->name);
			break;
		case D_REN:
			e = ent_find(v, nv, o->name);
			if (e && e->n == o->n) {
				ent_del(v, &nv, o->name);
				ent_set(&v, &nv, &capv, o->name2, o->n);
			}
			break;
		}
	}
	for (size_t i = 0; i < nv; i++) {
		char p[PATH_MAX];
		struct mnode *n = v[i].n;

		snprintf(p, sizeof(p), "%s/%s", path, v[i].name);
		if (n->isdir) {
			materialise(n, p, rs);
		} else {
			if (n->gen != cut_gen) {
				size_t cap = n->len;
				free(n->mat);
				n->mat = xmalloc(n->len);
				if (n->len)
					memcpy(n->mat, n->data, n->len);
				n->matlen = n->len;
				for (size_t k = 0; k < n->np; k++)
					if (rng_below(rs, 2))
						apply_piece(&n->mat, &n->matlen, &cap, &n->p[k]);
				n->gen = cut_gen;
			}
			int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			if (fd < 0 || (n->matlen && write(fd, n->mat, n->matlen) != (ssize_t)n->matlen)) {
				perror(p);
				exit(2);
			}
			close(fd);
		}
		free(v[i].name);
	}
	free(v);
}
