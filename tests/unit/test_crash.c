/*
 * test_crash.c - power-loss crash safety (DESIGN invariant 4).
 *
 * A recording vv_os table passes every call through to the real OS and logs
 * each mutating operation under a "world" directory (WORLD/store is the
 * vault, WORLD/state the anchor directory): open (for the fd -> inode map,
 * O_CREAT, O_TRUNC), pwrite (with payload), ftruncate, fsync, rename,
 * unlink, mkdir, rmdir, close.  A workload drives the engine through vault.h
 * and remembers, per file, every content version and every completed fsync.
 * It runs with the trash on: removals move files to .trash, and some are
 * restored by rename (their content must survive) or purged (their chunks
 * freed, nothing still referenced: fsck finds no missing chunk).
 *
 * Then, for random cut points K, an in-memory model replays operations
 * 0..K-1 from a snapshot of WORLD taken before recording began, and
 * materialises a "power cut" copy:
 *   - file data: the content at the file's last fsync, plus an independent
 *     random subset of the later writes, each split into 4 KiB pages
 *     (page-cache writeback; torn writes), and of later truncates;
 *   - directory entries: those present at the directory's last fsync, plus
 *     a random subset of later creates/unlinks/renames (a rename in one
 *     directory is atomic; an unsynced rename's target may come with none
 *     of its unsynced data).
 * Each cut is opened with a fresh vv_vault_open (first with the cut state
 * dir: the anchor must not prevent mounting; then, if that failed, with an
 * empty state dir to keep checking the store), must pass vv_vault_fsck
 * with no damage (orphans are freed), and every file must hold, for each
 * write completed by a vv_vault_fsync before the cut, that content or a
 * newer one (byte-wise: each byte comes from the fsync'd version or a later
 * one, zero only where a later version left a hole; size is the size of one
 * of those versions).  Namespace: names untouched since the last completed
 * fsync/sync exist exactly as then.  The workload also takes and deletes
 * snapshots: every cut must fsck clean with them (their chunk references
 * counted, nothing they name missing).
 *
 * With the argument "group" the workload is instead GROUP_THREADS threads
 * each creating files (GROUP_FILES each, names g00..g63; a third of them
 * over 64 KiB, so in chunks) and fsyncing every one, so that fsyncs meet the ticker's and each other's group
 * commits (vault_commit.c); each cut must keep every file whose fsync had
 * returned, with its content.
 *
 * Both workloads run the checkpointer thread with a 16-frame bound, so
 * its background passes (writes of meta.db pages and their syncs,
 * through its own connection) are among the recorded operations cut.
 *
 * The recording table, the model and the materialisation are
 * crash_model.c's; the workloads and the checks are here.
 *
 * Env: VV_CRASH_SEED (default fixed), VV_CRASH_CUTS (default 200),
 * VV_CRASH_STEPS (workload steps, default 70), VV_CRASH_KEEP=1 keeps the
 * scratch dir, VV_CRASH_VERBOSE=1 prints every cut.
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
#include "snap_int.h"
#include "tap.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"
#include "vecvault/vault.h"

#define PASS "crash test passphrase"

static char scratch[512];
static bool verbose;

/* ---- the workload and its expectations ------------------------------------ */

#define MAXF 64
#define MAXNAMES 16

struct version { size_t start; uint8_t *data; size_t len; };
struct wfile {
	struct version *v;
	size_t nv;
	size_t *fs_end, *fs_ver;      /* completed fsyncs: log index at return, version */
	size_t nfs;
	uint64_t ino;
	bool live;
	int name;                     /* in the trash: its original name ... */
	char tname[32];               /* ... and its name in .trash/files */
};
static struct wfile wf[MAXF];
static int nwf;
/* Files in the trash (the workload runs with it on), by wf index. */
static int trashed[MAXF];
static int ntrashed;
static int n_trash, n_restore, n_purge;   /* what the workload did, for the log */
/* .trash/files (docs/format.md, "The trash"): a virtual directory. */
#define TRASH_FILES_INO ((1ULL << 60) + 1)

/* namespace of the collection: name -> file id (-1 none) */
static int ns_cur[MAXNAMES];
struct nscp { size_t end; int names[MAXNAMES]; };
static struct nscp *cps;
static size_t ncps;
struct nsev { size_t start; int name; };
static struct nsev *nsevs;
static size_t nnsevs;

static void name_of(int i, char *out, size_t cap) { snprintf(out, cap, "f%02d", i); }

static void version_add(int f, size_t start, const uint8_t *data, size_t len)
{
	struct wfile *w = &wf[f];
	w->v = xrealloc(w->v, (w->nv + 1) * sizeof(*w->v));
	w->v[w->nv].start = start;
	w->v[w->nv].data = xmalloc(len);
	if (len)
		memcpy(w->v[w->nv].data, data, len);
	w->v[w->nv].len = len;
	w->nv++;
}
static void ns_event(int name, size_t start)
{
	nsevs = xrealloc(nsevs, (nnsevs + 1) * sizeof(*nsevs));
	nsevs[nnsevs].start = start;
	nsevs[nnsevs].name = name;
	nnsevs++;
}
/* A completed vv_vault_fsync/vv_vault_sync: the whole metadata commit is
 * durable (namespace checkpoint); fsync of f also makes its data durable. */
static void durable_point(int f, size_t end)
{
	cps = xrealloc(cps, (ncps + 1) * sizeof(*cps));
	cps[ncps].end = end;
	memcpy(cps[ncps].names, ns_cur, sizeof(ns_cur));
	ncps++;
	for (int g = (f >= 0 ? f : 0); g < (f >= 0 ? f + 1 : nwf); g++) {
		struct wfile *w = &wf[g];
		if (!w->live)
			continue;
		w->fs_end = xrealloc(w->fs_end, (w->nfs + 1) * sizeof(size_t));
		w->fs_ver = xrealloc(w->fs_ver, (w->nfs + 1) * sizeof(size_t));
		w->fs_end[w->nfs] = end;
		w->fs_ver[w->nfs] = w->nv - 1;
		w->nfs++;
	}
}

static struct vv_ctx root_ctx;
static uint64_t coll_ino;

static void fill_pattern(uint8_t *b, size_t n, uint64_t *rs)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t x = (uint8_t)rng_next(rs);
		b[i] = x ? x : 0x5a;      /* never 0: zeros mean holes */
	}
}

#define CHECKW(cond, what) do { if (!(cond)) { fprintf(stderr, "workload: %s failed (%d)\n", what, (int)(r)); return -1; } } while (0)

/* One workload step on file slot/name.  Returns 0 or -1 (unexpected error). */
static int snaps_made, snaps_deleted;

static int run_workload(struct vv_vault *v, uint64_t seed, int steps)
{
	uint64_t rs = seed ^ 0x1234567;
	struct vv_attr a;
	int r;

	for (int i = 0; i < MAXNAMES; i++)
		ns_cur[i] = -1;
	r = vv_vault_mkdir(v, &root_ctx, VV_ROOT_INO, "c", 0755, &a);
	CHECKW(r == 0, "mkdir");
	coll_ino = a.ino;
	r = vv_vault_sync(v);
	CHECKW(r == 0, "sync");
	durable_point(-1, log_len());

	for (int step = 0; step < steps; step++) {
		int name = (int)rng_below(&rs, 8), f = ns_cur[name];
		char nm[16];
		uint64_t what = rng_below(&rs, 100);
		size_t start = log_len();
		struct vv_file *fh = NULL;

		name_of(name, nm, sizeof(nm));
		if (step == steps / 2 && snaps_made == 0) {
			/* every seed takes at least one snapshot (some draw none) */
			char sn[32];
			snprintf(sn, sizeof(sn), "s%d", snaps_made++);
			r = vault_snap_create(v, sn, 0, 0, NULL);
			CHECKW(r == 0, "snapshot create");
			continue;
		}
		if (what >= 94 && ntrashed > 0) {
			/* the trash: restore a removed file under its old name, or
			 * purge it (its chunks must then go, and no others) */
			int k = (int)rng_below(&rs, (uint64_t)ntrashed), tf = trashed[k];
			if (what >= 97) {
				r = vv_vault_unlink(v, &root_ctx, TRASH_FILES_INO, wf[tf].tname);
				CHECKW(r == 0, "purge");
				n_purge++;
			} else {
				char on[16];
				if (ns_cur[wf[tf].name] >= 0)
					continue;
				name_of(wf[tf].name, on, sizeof(on));
				ns_event(wf[tf].name, start);
				r = vv_vault_rename(v, &root_ctx, TRASH_FILES_INO, wf[tf].tname, coll_ino, on, 0);
				CHECKW(r == 0, "restore");
				n_restore++;
				wf[tf].live = true;
				ns_cur[wf[tf].name] = tf;
			}
			trashed[k] = trashed[--ntrashed];
			continue;
		}
		if (f < 0 || what < 12) {
			/* create (or replace by O_TRUNC) with fresh content */
			if (f < 0) {
				if (nwf == MAXF)
					continue;
				f = nwf++;
				ns_event(name, start);
				r = vv_vault_create(v, &root_ctx, coll_ino, nm, 0644, O_RDWR | O_CREAT | O_EXCL, &a, &fh);
				CHECKW(r == 0, "create");
				wf[f].ino = a.ino;
				wf[f].live = true;
				ns_cur[name] = f;
				version_add(f, start, NULL, 0);
				vv_vault_forget(v, a.ino, 1);
			} else {
				r = vv_vault_open_file(v, &root_ctx, wf[f].ino, O_RDWR | O_TRUNC, &fh, &(bool){ 0 });
				CHECKW(r == 0, "open O_TRUNC");
				version_add(f, start, NULL, 0);
			}
			size_t len = rng_below(&rs, 3) == 0 ? 1 + rng_below(&rs, 4000)
							    : 4097 + rng_below(&rs, 250000);
			uint8_t *b = xmalloc(len);
			fill_pattern(b, len, &rs);
			ssize_t w = vv_vault_write(v, &root_ctx, fh, b, len, 0);
			r = (int)w;
			CHECKW(w == (ssize_t)len, "write");
			version_add(f, start, b, len);
			free(b);
		} else if (what < 45) {
			/* overwrite in place (what < 30) or append */
			struct version *cur = &wf[f].v[wf[f].nv - 1];
			size_t off, len;
			r = vv_vault_open_file(v, &root_ctx, wf[f].ino, O_RDWR, &fh, &(bool){ 0 });
			CHECKW(r == 0, "open");
			if (what < 30 && cur->len > 0) {
				off = rng_below(&rs, cur->len);
				len = 1 + rng_below(&rs, rng_below(&rs, 2) ? 3000 : 140000);
			} else {
				off = cur->len + (rng_below(&rs, 4) == 0 ? rng_below(&rs, 70000) : 0);
				len = 1 + rng_below(&rs, rng_below(&rs, 2) ? 2000 : 100000);
			}
			uint8_t *b = xmalloc(len);
			fill_pattern(b, len, &rs);
			ssize_t w = vv_vault_write(v, &root_ctx, fh, b, len, off);
			r = (int)w;
			CHECKW(w == (ssize_t)len, "write");
			size_t nl = off + len > cur->len ? off + len : cur->len;
			uint8_t *nb = calloc(1, nl ? nl : 1);
			memcpy(nb, cur->data, cur->len);
			memcpy(nb + off, b, len);
			version_add(f, start, nb, nl);
			free(nb);
			free(b);
		} else if (what < 55) {
			/* truncate (shrink or grow) */
			struct version *cur = &wf[f].v[wf[f].nv - 1];
			struct vv_setattr sa = { .valid = VV_SET_SIZE };
			r = vv_vault_open_file(v, &root_ctx, wf[f].ino, O_RDWR, &fh, &(bool){ 0 });
			CHECKW(r == 0, "open");
			sa.size = rng_below(&rs, 3) == 0 ? cur->len + rng_below(&rs, 80000)
							 : rng_below(&rs, cur->len + 1);
			sa.fh = fh;
			r = vv_vault_setattr(v, &root_ctx, wf[f].ino, &sa, &a);
			CHECKW(r == 0, "truncate");
			uint8_t *nb = calloc(1, sa.size ? sa.size : 1);
			memcpy(nb, cur->data, cur->len < sa.size ? cur->len : sa.size);
			version_add(f, start, nb, sa.size);
			free(nb);
		} else if (what < 65) {
			/* rename over (or to a free name) */
			int to = (int)rng_below(&rs, 8);
			char tn[16];
			if (to == name)
				continue;
			name_of(to, tn, sizeof(tn));
			ns_event(name, start);
			ns_event(to, start);
			r = vv_vault_rename(v, &root_ctx, coll_ino, nm, coll_ino, tn, 0);
			CHECKW(r == 0, "rename");
			if (ns_cur[to] >= 0)
				wf[ns_cur[to]].live = false;
			ns_cur[to] = f;
			ns_cur[name] = -1;
		} else if (what < 72) {
			ns_event(name, start);
			r = vv_vault_unlink(v, &root_ctx, coll_ino, nm);
			CHECKW(r == 0, "unlink");
			wf[f].live = false;
			ns_cur[name] = -1;
			/* It went to the trash: under which name? */
			for (int k = 1; k < 100; k++) {
				char tn[32];
				struct vv_attr ta;
				if (k == 1)
					snprintf(tn, sizeof(tn), "%s", nm);
				else
					snprintf(tn, sizeof(tn), "%s.%d", nm, k);
				if (vv_vault_lookup(v, &root_ctx, TRASH_FILES_INO, tn, &ta) != 0)
					continue;
				vv_vault_forget(v, ta.ino, 1);
				if (ta.ino != wf[f].ino)
					continue;
				wf[f].name = name;
				snprintf(wf[f].tname, sizeof(wf[f].tname), "%s", tn);
				trashed[ntrashed++] = f;
				n_trash++;
				break;
			}
		} else if (what < 80) {
			r = vv_vault_sync(v);
			CHECKW(r == 0, "sync");
			durable_point(-1, log_len());
			continue;
		} else if (what >= 94) {
			/* snapshots: create (flushes and commits; not counted as a
			 * durable point here), or delete the oldest, whose chunks
			 * may be freed; every cut must still fsck clean, with no
			 * chunk missing that a snapshot or file names */
			char sn[32];
			if (what >= 98 && snaps_deleted < snaps_made) {
				snprintf(sn, sizeof(sn), "s%d", snaps_deleted++);
				r = vault_snap_delete(v, sn);
				CHECKW(r == 0, "snapshot delete");
			} else {
				snprintf(sn, sizeof(sn), "s%d", snaps_made++);
				r = vault_snap_create(v, sn, 0, 0, NULL);
				CHECKW(r == 0, "snapshot create");
			}
			continue;
		} else {
			/* fsync only */
			r = vv_vault_open_file(v, &root_ctx, wf[f].ino, O_RDWR, &fh, &(bool){ 0 });
			CHECKW(r == 0, "open");
		}
		if (fh) {
			/* fsync most of the time; sometimes leave writes buffered */
			if (rng_below(&rs, 10) < 6) {
				r = vv_vault_fsync(v, fh, false);
				CHECKW(r == 0, "fsync");
				durable_point(f, log_len());
			}
			r = vv_vault_release(v, fh);
			CHECKW(r == 0, "release");
		}
	}
	return 0;
}

/* ---- checking a cut --------------------------------------------------------- */

enum { F_OPEN, F_DAMAGE, F_JUNK, F_DATA, NFK };
static int fail_kind;
static char failmsg[512];

static void fsck_line(void *ctx, const char *line)
{
	(void)ctx;
	if (verbose)
		printf("#     fsck: %s\n", line);
}

static int read_all(struct vv_vault *v, uint64_t ino, uint8_t **out, size_t *outlen)
{
	struct vv_file *fh;
	size_t cap = 65536, len = 0;
	uint8_t *b = xmalloc(cap);
	int r = vv_vault_open_file(v, &root_ctx, ino, O_RDONLY, &fh, &(bool){ 0 });

	if (r < 0) {
		free(b);
		return r;
	}
	for (;;) {
		if (len + 65536 > cap)
			b = xrealloc(b, cap *= 2);
		ssize_t n = vv_vault_read(v, fh, b + len, 65536, len);
		if (n < 0) {
			vv_vault_release(v, fh);
			free(b);
			return (int)n;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	vv_vault_release(v, fh);
	*out = b;
	*outlen = len;
	return 0;
}

/* Does content x match "version base or later" of file f at cut K? */
static bool content_ok(int f, size_t K, const uint8_t *x, size_t xl, char *why, size_t whycap)
{
	struct wfile *w = &wf[f];
	size_t base = 0, last = 0, minlen = SIZE_MAX;
	bool size_ok = false;

	for (size_t i = 0; i < w->nfs; i++)
		if (w->fs_end[i] <= K && w->fs_ver[i] > base)
			base = w->fs_ver[i];
	for (size_t i = 0; i < w->nv; i++)
		if (w->v[i].start < K)
			last = i;
	if (last < base)
		last = base;
	for (size_t i = base; i <= last; i++) {
		if (w->v[i].len == xl)
			size_ok = true;
		if (w->v[i].len < minlen)
			minlen = w->v[i].len;
	}
	if (!size_ok) {
		snprintf(why, whycap, "size %zu is not that of versions %zu..%zu (fsync'd one: %zu bytes)",
			 xl, base, last, w->v[base].len);
		return false;
	}
	for (size_t p = 0; p < xl; p++) {
		bool good = x[p] == 0 && p >= minlen;
		for (size_t i = base; i <= last && !good; i++)
			good = p < w->v[i].len && w->v[i].data[p] == x[p];
		if (!good) {
			snprintf(why, whycap, "byte %zu (0x%02x) is from no version %zu..%zu (fsync'd: 0x%02x)",
				 p, x[p], base, last, p < w->v[base].len ? w->v[base].data[p] : 0);
			return false;
		}
	}
	return true;
}

static int dirfill(void *ctx, const struct vv_dirent *e, const struct vv_attr *attr)
{
	char (*names)[64] = ctx;
	(void)attr;
	for (int i = 0; i < 64; i++)
		if (!names[i][0]) {
			snprintf(names[i], 64, "%s", e->name);
			return 0;
		}
	return 1;
}

static bool check_namespace(struct vv_vault *v, size_t K, char *why, size_t whycap)
{
	const struct nscp *cp = NULL;
	struct vv_attr a;
	static char names[64][64];
	struct vv_dir *dh;
	int r;

	for (size_t i = 0; i < ncps; i++)
		if (cps[i].end <= K)
			cp = &cps[i];
	if ((r = vv_vault_lookup(v, &root_ctx, VV_ROOT_INO, "c", &a)) < 0) {
		if (!cp) /* collection creation not yet durable */
			return true;
		snprintf(why, whycap, "collection missing: %s", vv_strerror(r));
		return false;
	}
	vv_vault_forget(v, a.ino, 1);
	uint64_t cino = a.ino;
	if (!cp)
		return true;
	for (int nm = 0; nm < MAXNAMES; nm++) {
		bool touched = false;
		char n[16];
		name_of(nm, n, sizeof(n));
		for (size_t i = 0; i < nnsevs; i++)
			if (nsevs[i].name == nm && nsevs[i].start >= cp->end && nsevs[i].start < K)
				touched = true;
		r = vv_vault_lookup(v, &root_ctx, cino, n, &a);
		if (r == 0)
			vv_vault_forget(v, a.ino, 1);
		if (touched) {
			if (r == 0) {
				uint8_t *x;
				size_t xl;
				if ((r = read_all(v, a.ino, &x, &xl)) < 0) {
					snprintf(why, whycap, "%s: read: %s", n, vv_strerror(r));
					return false;
				}
				free(x);
			}
			continue;
		}
		int f = cp->names[nm];
		if (f < 0) {
			if (r == 0) {
				snprintf(why, whycap, "%s exists but was absent at the last durable point", n);
				return false;
			}
			continue;
		}
		if (r < 0) {
			snprintf(why, whycap, "%s missing (%s) though durable", n, vv_strerror(r));
			return false;
		}
		uint8_t *x;
		size_t xl;
		if ((r = read_all(v, a.ino, &x, &xl)) < 0) {
			snprintf(why, whycap, "%s: read: %s", n, vv_strerror(r));
			return false;
		}
		char w2[256];
		bool good = content_ok(f, K, x, xl, w2, sizeof(w2));
		free(x);
		if (!good) {
			snprintf(why, whycap, "%s (file %d): %s", n, f, w2);
			return false;
		}
	}
	/* nothing else in the collection */
	memset(names, 0, sizeof(names));
	if ((r = vv_vault_opendir(v, &root_ctx, cino, &dh)) < 0) {
		snprintf(why, whycap, "opendir: %s", vv_strerror(r));
		return false;
	}
	r = vv_vault_readdir(v, dh, 0, false, dirfill, names);
	vv_vault_releasedir(v, dh);
	if (r < 0) {
		snprintf(why, whycap, "readdir: %s", vv_strerror(r));
		return false;
	}
	for (int i = 0; i < 64 && names[i][0]; i++) {
		if (!strcmp(names[i], ".") || !strcmp(names[i], ".."))
			continue;
		if (strlen(names[i]) != 3 || names[i][0] != 'f') {
			snprintf(why, whycap, "unexpected entry '%s'", names[i]);
			return false;
		}
	}
	return true;
}

/* ---- group mode: concurrent creates with fsync ---------------------------- */

#define GROUP_THREADS 4
#define GROUP_FILES 16                 /* per thread: GROUP_THREADS * GROUP_FILES <= MAXF */
#define GROUP_BIG (200 * 1024)         /* largest file */
static bool group_mode;
static pthread_mutex_t wf_mu = PTHREAD_MUTEX_INITIALIZER;
static int group_errors;

struct group_arg { struct vv_vault *v; int t; uint64_t seed; };

static void *group_thread(void *p)
{
	struct group_arg *g = p;
	uint64_t rs = g->seed ^ (0x51ed270b7ULL * (uint64_t)(g->t + 1));
	uint8_t *buf = xmalloc(GROUP_BIG);

	for (int i = 0; i < GROUP_FILES; i++) {
		int f = g->t * GROUP_FILES + i, r;
		/* Two in three inline (at most 4 KiB), one in three in chunks
		 * (over 64 KiB): their chunk fsyncs run in the group commit,
		 * outside the vault mutex, beside other threads' commits. */
		size_t len = rng_below(&rs, 3) ? 1 + rng_below(&rs, 4095)
					       : 65537 + rng_below(&rs, GROUP_BIG - 65537);
		struct vv_file *fh = NULL;
		struct vv_attr a;
		char nm[16];

		snprintf(nm, sizeof(nm), "g%02d", f);
		fill_pattern(buf, len, &rs);
		pthread_mutex_lock(&wf_mu);
		version_add(f, log_len(), NULL, 0);
		version_add(f, log_len(), buf, len);
		pthread_mutex_unlock(&wf_mu);
		r = vv_vault_create(g->v, &root_ctx, coll_ino, nm, 0644, O_RDWR | O_CREAT | O_EXCL, &a, &fh);
		if (r == 0) {
			wf[f].ino = a.ino;
			ssize_t w = vv_vault_write(g->v, &root_ctx, fh, buf, len, 0);
			r = w == (ssize_t)len ? 0 : (w < 0 ? (int)w : VV_EIO);
		}
		if (r == 0)
			r = vv_vault_fsync(g->v, fh, false);
		if (r == 0) {
			pthread_mutex_lock(&wf_mu);
			struct wfile *w = &wf[f];
			w->fs_end = xrealloc(w->fs_end, sizeof(size_t));
			w->fs_ver = xrealloc(w->fs_ver, sizeof(size_t));
			w->fs_end[0] = log_len();
			w->fs_ver[0] = 1;
			w->nfs = 1;
			pthread_mutex_unlock(&wf_mu);
		}
		if (fh)
			vv_vault_release(g->v, fh);
		if (r == 0)
			vv_vault_forget(g->v, a.ino, 1);
		if (r < 0) {
			fprintf(stderr, "group workload: %s: %s\n", nm, vv_strerror(r));
			__atomic_add_fetch(&group_errors, 1, __ATOMIC_RELAXED);
			break;
		}
		if (rng_below(&rs, 4) == 0)
			usleep((useconds_t)rng_below(&rs, 3000));   /* let the ticker's commits interleave */
	}
	free(buf);
	return NULL;
}

static int run_group(struct vv_vault *v, uint64_t seed)
{
	struct group_arg ga[GROUP_THREADS];
	pthread_t th[GROUP_THREADS];
	struct vv_attr a;
	int r;

	r = vv_vault_mkdir(v, &root_ctx, VV_ROOT_INO, "c", 0755, &a);
	CHECKW(r == 0, "mkdir");
	coll_ino = a.ino;
	r = vv_vault_sync(v);
	CHECKW(r == 0, "sync");
	nwf = GROUP_THREADS * GROUP_FILES;
	for (int t = 0; t < GROUP_THREADS; t++) {
		ga[t] = (struct group_arg){ v, t, seed };
		pthread_create(&th[t], NULL, group_thread, &ga[t]);
	}
	for (int t = 0; t < GROUP_THREADS; t++)
		pthread_join(th[t], NULL);
	return group_errors ? -1 : 0;
}

/* Every file whose fsync returned before op K exists with its content. */
static bool check_group(struct vv_vault *v, size_t K, char *why, size_t whycap)
{
	struct vv_attr a;
	uint64_t cino;
	int r;

	if ((r = vv_vault_lookup(v, &root_ctx, VV_ROOT_INO, "c", &a)) < 0) {
		for (int f = 0; f < nwf; f++)
			if (wf[f].nfs && wf[f].fs_end[0] <= K) {
				snprintf(why, whycap, "collection missing: %s", vv_strerror(r));
				return false;
			}
		return true;
	}
	vv_vault_forget(v, a.ino, 1);
	cino = a.ino;
	for (int f = 0; f < nwf; f++) {
		char n[16], w2[256];
		uint8_t *x;
		size_t xl;
		bool good;

		if (!wf[f].nfs || wf[f].fs_end[0] > K)
			continue;
		snprintf(n, sizeof(n), "g%02d", f);
		if ((r = vv_vault_lookup(v, &root_ctx, cino, n, &a)) < 0) {
			snprintf(why, whycap, "%s missing (%s) though its fsync returned", n, vv_strerror(r));
			return false;
		}
		vv_vault_forget(v, a.ino, 1);
		if ((r = read_all(v, a.ino, &x, &xl)) < 0) {
			snprintf(why, whycap, "%s: read: %s", n, vv_strerror(r));
			return false;
		}
		good = content_ok(f, K, x, xl, w2, sizeof(w2));
		free(x);
		if (!good) {
			snprintf(why, whycap, "%s (file %d): %s", n, f, w2);
			return false;
		}
	}
	return true;
}

static void rmrf(const char *p)
{
	char cmd[PATH_MAX + 32];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p);
	if (system(cmd) != 0)
		fprintf(stderr, "rm -rf %s failed\n", p);
}

static int anchor_failures, anchor_first_k = -1;

/* Returns true when the cut at K passes. */
static bool check_cut(size_t K, uint64_t cseed)
{
	char cut[PATH_MAX], store[PATH_MAX + 8], state[PATH_MAX + 8], fresh[PATH_MAX + 8], alog[PATH_MAX + 8];
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF };
	struct vv_fsck_report rep;
	struct vv_vault *v = NULL;
	int r;

	snprintf(cut, sizeof(cut), "%s/cut", scratch);
	snprintf(store, sizeof(store), "%s/store", cut);
	snprintf(state, sizeof(state), "%s/state", cut);
	snprintf(fresh, sizeof(fresh), "%s/fresh-state", scratch);
	snprintf(alog, sizeof(alog), "%s/audit-cut.log", scratch);
	rmrf(cut);
	rmrf(fresh);
	unlink(alog);
	cut_gen++;
	materialise(mroot, cut, &cseed);
	o.audit_log = alog;
	if (getenv("VV_CRASH_SAVE")) {
		/* Debugging aid: keep a pristine copy of every cut as it was
		 * materialised, before the engine opens (and repairs) it. */
		char cmd[3 * PATH_MAX];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s/cut-%zu' && cp -a '%s' '%s/cut-%zu'",
			 getenv("VV_CRASH_SAVE"), K, cut, getenv("VV_CRASH_SAVE"), K);
		if (system(cmd) != 0)
			tap_diag("VV_CRASH_SAVE: copy failed");
	}

	o.state_dir = state;
	r = vv_vault_open(store, PASS, strlen(PASS), &o, &v);
	if (r < 0 && (r == VV_ECORRUPT || r == VV_EROLLBACK)) {
		/* maybe the anchor: note it, then check the store on its own */
		int r2;
		o.state_dir = fresh;
		r2 = vv_vault_open(store, PASS, strlen(PASS), &o, &v);
		if (r2 == 0) {
			anchor_failures++;
			if (anchor_first_k < 0)
				anchor_first_k = (int)K;
			if (verbose)
				printf("#   cut %zu: anchor refused the open (%s)\n", K, vv_strerror(r));
			r = 0;
		}
	}
	if (r < 0) {
		fail_kind = F_OPEN;
		snprintf(failmsg, sizeof(failmsg), "open failed: %s", vv_strerror(r));
		return false;
	}
	r = vv_vault_fsck(v, true, fsck_line, NULL, &rep);
	if (r < 0 || rep.damaged || rep.missing_chunks || rep.errors) {
		fail_kind = (r < 0 || rep.damaged || rep.missing_chunks) ? F_DAMAGE : F_JUNK;
		snprintf(failmsg, sizeof(failmsg),
			 "fsck: %s (damaged %llu, missing chunks %llu, errors %llu)", vv_strerror(r),
			 (unsigned long long)rep.damaged, (unsigned long long)rep.missing_chunks,
			 (unsigned long long)rep.errors);
		vv_vault_close(v);
		return false;
	}
	bool good = group_mode ? check_group(v, K, failmsg, sizeof(failmsg))
			       : check_namespace(v, K, failmsg, sizeof(failmsg));
	fail_kind = F_DATA;
	r = vv_vault_close(v);
	if (good && r < 0) {
		snprintf(failmsg, sizeof(failmsg), "close: %s", vv_strerror(r));
		good = false;
	}
	return good;
}

static bool engine_log_on;
static void log_sink(void *ctx, enum vv_log_level lvl, const char *msg)
{
	(void)ctx;
	(void)lvl;
	if (engine_log_on)
		printf("#     engine: %s\n", msg);
}

/* ---- main --------------------------------------------------------------- */

static void free_all(void)
{
	for (size_t i = 0; i < nops; i++) {
		free(oplog[i].path);
		free(oplog[i].path2);
		free(oplog[i].buf);
	}
	free(oplog);
	while (all_nodes) {
		struct mnode *n = all_nodes;
		all_nodes = n->all_next;
		for (size_t i = 0; i < n->ncur; i++)
			free(n->cur[i].name);
		for (size_t i = 0; i < n->ndur; i++)
			free(n->dur[i].name);
		for (size_t i = 0; i < n->nd; i++) {
			free(n->d[i].name);
			free(n->d[i].name2);
		}
		free(n->cur);
		free(n->dur);
		free(n->d);
		free(n->p);
		free(n->data);
		free(n->mat);
		free(n);
	}
	for (int f = 0; f < nwf; f++) {
		for (size_t i = 0; i < wf[f].nv; i++)
			free(wf[f].v[i].data);
		free(wf[f].v);
		free(wf[f].fs_end);
		free(wf[f].fs_ver);
	}
	free(cps);
	free(nsevs);
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *e = getenv(name);
	return e && *e ? strtoull(e, NULL, 0) : def;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	uint64_t seed = env_u64("VV_CRASH_SEED", 20240611);
	size_t ncuts = (size_t)env_u64("VV_CRASH_CUTS", 200);
	int steps = (int)env_u64("VV_CRASH_STEPS", 70);
	char store[PATH_MAX + 8], state[PATH_MAX + 8], alog[PATH_MAX + 16], line[128];
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF };
	struct vv_vault *v = NULL;
	uint64_t rs;
	int r;

	verbose = getenv("VV_CRASH_VERBOSE") != NULL;
	group_mode = argc > 1 && !strcmp(argv[1], "group");
	vv_log_set_sink(log_sink, NULL, VV_LOG_WARN);
	root_ctx.client = "local";
	root_ctx.comm = "test_crash";
	root_ctx.umask = 022;

	snprintf(scratch, sizeof(scratch), "%s/vv-crash.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(scratch)) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(world, sizeof(world), "%s/world", scratch);
	worldlen = strlen(world);
	snprintf(store, sizeof(store), "%s/store", world);
	snprintf(state, sizeof(state), "%s/state", world);
	snprintf(alog, sizeof(alog), "%s/audit.log", scratch);
	mkdir(world, 0700);
	mkdir(state, 0700);
	snprintf(line, sizeof(line), "seed %llu (VV_CRASH_SEED), %zu cuts (VV_CRASH_CUTS), %d steps",
		 (unsigned long long)seed, ncuts, steps);
	tap_diag(line);

	r = vv_vault_create_store(store, PASS, strlen(PASS), VV_KDF_PROFILE_TEST,
				  VV_VAULT_ALLOW_TEST_KDF, 0, 0, state);
	is_int(r, 0, "create the store");
	if (r < 0)
		return tap_done();

	/* the initial, fully durable tree */
	mroot = node_new(true);
	model_load(mroot, world);

	rec_install();
	recording = true;
	o.audit_log = alog;
	o.state_dir = state;
	o.trash_secs = 30 * 86400;      /* removals go to the trash; restores and purges */
	/* The checkpointer's passes (vault_commit.c) every 16 WAL frames, so
	 * the cuts fall during background checkpoints as well. */
	o.ckpt_frames = 16;
	r = vv_vault_open(store, PASS, strlen(PASS), &o, &v);
	is_int(r, 0, "open under the recording OS layer");
	if (r == 0) {
		uint64_t passes;
		if (group_mode)
			ok(run_group(v, seed) == 0, "group workload: concurrent creates with fsync");
		else
			ok(run_workload(v, seed, steps) == 0, "workload ran without errors");
		pthread_mutex_lock(&v->mu);
		passes = v->ckpt.passes;
		pthread_mutex_unlock(&v->mu);
		snprintf(line, sizeof(line), "%llu background checkpoint passes during the workload",
			 (unsigned long long)passes);
		tap_diag(line);
		ok(passes > 0, "the checkpointer ran during the workload (cuts fall in its passes)");
		snprintf(line, sizeof(line), "workload: %d removals to the trash, %d restored, %d purged",
			 n_trash, n_restore, n_purge);
		tap_diag(line);
		is_int(vv_vault_close(v), 0, "close");
		durable_point(-1, log_len());   /* close: everything durable */
	}
	recording = false;
	vv_os_set(NULL);
	size_t total = nops;
	snprintf(line, sizeof(line), "%zu recorded operations, %d files, %zu durable points, "
		 "%d snapshots taken, %d deleted", total, nwf, ncps, snaps_made, snaps_deleted);
	tap_diag(line);
	if (!group_mode)
		ok(snaps_made > 0, "the workload took snapshots");
	ok(total > 100, "the workload recorded operations");

	if (getenv("VV_CRASH_DUMP")) {
		const char *kn[] = { "open", "close", "pwrite", "trunc", "fsync", "rename", "unlink", "mkdir", "rmdir" };
		for (size_t i = 0; i < total; i++)
			printf("# op %zu %s fd %d fl %#x %s %s off %llu len %llu\n", i, kn[oplog[i].kind],
			       oplog[i].fd, oplog[i].flags, oplog[i].path ? oplog[i].path : "",
			       oplog[i].path2 ? oplog[i].path2 : "", (unsigned long long)oplog[i].off,
			       (unsigned long long)oplog[i].len);
	}
	/* cut points: random in [0, total], always including 0 and total */
	size_t *cutsk = xmalloc((ncuts + 2) * sizeof(size_t));
	rs = seed;
	for (size_t i = 0; i < ncuts; i++)
		cutsk[i] = (size_t)rng_below(&rs, total + 1);
	cutsk[ncuts] = 0;
	cutsk[ncuts + 1] = total;
	qsort(cutsk, ncuts + 2, sizeof(size_t), cmp_size);

	size_t applied = 0;
	int failed = 0, shown[NFK] = { 0 }, nfail[NFK] = { 0 };
	for (size_t i = 0; i < ncuts + 2; i++) {
		size_t K = cutsk[i];
		while (applied < K)
			model_apply(&oplog[applied++]);
		failmsg[0] = '\0';
		engine_log_on = verbose;
		if (!check_cut(K, seed * 1000003ULL + i)) {
			failed++;
			nfail[fail_kind]++;
			if (shown[fail_kind]++ < 4) {
				printf("# cut at op %zu/%zu (cut seed %llu): %s\n", K, total,
				       (unsigned long long)(seed * 1000003ULL + i), failmsg);
			}
		} else if (verbose) {
			printf("#   cut %zu ok\n", K);
		}
	}
	snprintf(line, sizeof(line), "%d of %zu cuts failed", failed, ncuts + 2);
	tap_diag(line);
	is_int(nfail[F_OPEN], 0, "every cut opens");
	is_int(nfail[F_DAMAGE], 0, "fsck finds no damaged blocks or missing chunks in any cut");
	is_int(nfail[F_JUNK], 0, "fsck repair leaves no structural errors (crash leftovers are freed)");
	is_int(nfail[F_DATA], 0, "every file keeps each fsync'd write (old or new content, nothing else)");
	snprintf(line, sizeof(line), "%d cuts had an anchor that refused the open (first at op %d)",
		 anchor_failures, anchor_first_k);
	tap_diag(line);
	is_int(anchor_failures, 0, "the rollback anchor never prevents mounting after a power cut");

	free(cutsk);
	free_all();
	if (!getenv("VV_CRASH_KEEP"))
		rmrf(scratch);
	else
		printf("# kept %s\n", scratch);
	return tap_done();
}
