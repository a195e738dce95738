/*
 * crash_model.h - between test_crash.c (the workloads and the checks of
 * each cut) and crash_model.c (the recording OS table, the model that
 * replays its log, a cut's materialisation).
 */
#ifndef VV_CRASH_MODEL_H
#define VV_CRASH_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

extern char world[1024];        /* recorded tree: WORLD/store, WORLD/state */
extern size_t worldlen;

uint64_t rng_next(uint64_t *s);
uint64_t rng_below(uint64_t *s, uint64_t n);
/* Allocations that exit(2) on failure. */
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* ---- the operation log (recorded while recording is true) ---- */

enum { OP_OPEN, OP_CLOSE, OP_PWRITE, OP_TRUNC, OP_FSYNC, OP_RENAME, OP_UNLINK, OP_MKDIR, OP_RMDIR };

struct op {
	int kind;
	int fd;                 /* OPEN (result), CLOSE, PWRITE, TRUNC, FSYNC */
	int flags;              /* OPEN */
	char *path, *path2;     /* relative to world */
	uint64_t off, len;      /* PWRITE: off/len; TRUNC: len */
	uint8_t *buf;           /* PWRITE payload */
};

extern struct op *oplog;
extern size_t nops, capops;
extern bool recording;
/* Operations logged so far. */
size_t log_len(void);
/* Install the recording table as the engine's OS layer. */
void rec_install(void);

/* ---- the file-system model ---- */

struct mnode;
struct ent { char *name; struct mnode *n; };
enum { P_WRITE, P_TRUNC };
struct piece { int kind; uint64_t off, len; const uint8_t *src; };
enum { D_ADD, D_DEL, D_REN };
struct dop { int kind; char *name, *name2; struct mnode *n; };

struct mnode {
	bool isdir;
	/* file: content at last fsync + pending pieces */
	uint8_t *data;
	size_t len, cap;
	struct piece *p;
	size_t np, capp;
	/* dir: current entries, durable entries, pending entry ops */
	struct ent *cur, *dur;
	size_t ncur, ndur, capcur, capdur;
	struct dop *d;
	size_t nd, capd;
	/* per-cut materialisation */
	unsigned gen;
	uint8_t *mat;
	size_t matlen;
	struct mnode *all_next;
};

extern struct mnode *all_nodes;     /* every node, for freeing */
extern struct mnode *mroot;
extern unsigned cut_gen;         /* bump before each materialise */
struct mnode *node_new(bool isdir);
/* Load the tree at path into dn (the state before recording began). */
void model_load(struct mnode *dn, const char *path);
/* Replay one logged operation. */
void model_apply(const struct op *o);
/* Write the power-cut copy of dn to path, choosing the unsynced changes
 * that survive from rs. */
void materialise(struct mnode *dn, const char *path, uint64_t *rs);

#endif
