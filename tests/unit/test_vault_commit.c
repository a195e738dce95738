/*
 * test_vault_commit.c - the vault's write-back and commit path without
 * FUSE: several sealer threads repointing extents in queue order (a failed
 * chunk write held while later jobs of the same blocks queue), and the
 * checkpointer (vault_commit.c): commits never checkpoint, passes keep the
 * WAL small, one pass per bound of frames.  Each test has a store of its
 * own (side_store).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "os.h"
#include "os_fault.h"
#include "tap.h"
#include "vault_files.h"
#include "vault_unit.h"
#include "vecvault/error.h"
#include "vecvault/vault.h"
#include "vault_int.h"

/* --- the checkpointer (vault_commit.c) ------------------------------------------ */

struct ckpt_gate {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool inside, open;
};

/* Runs inside a pass, holding meta's checkpoint lock: stays there until
 * the test opens the gate. */
static void ckpt_gate_hook(void *arg)
{
	struct ckpt_gate *g = arg;

	pthread_mutex_lock(&g->mu);
	g->inside = true;
	pthread_cond_broadcast(&g->cv);
	while (!g->open)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b = NULL;
	long n;

	*len = 0;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (b = malloc((size_t)n + 1)) && fread(b, 1, (size_t)n, f) == (size_t)n)
		*len = (size_t)n;
	fclose(f);
	return b;
}

/* Files f<base>..f<base+n-1> of a few hundred bytes, a sync every 10. */
static int ckpt_files(struct vv_vault *v, uint64_t dir, int base, int n)
{
	char name[32], data[300];
	uint64_t ino;
	int r = 0;

	for (int i = base; r == 0 && i < base + n; i++) {
		snprintf(name, sizeof(name), "f%05d", i);
		memset(data, 'a' + i % 26, sizeof(data));
		r = vt_write_file(v, &root_c, dir, name, (const uint8_t *)data, sizeof(data), 0644, &ino);
		if (r == 0 && i % 10 == 9)
			r = vv_vault_sync(v);
	}
	return r;
}

/* A store of its own for one test: TOP/NAMEstore with its anchors in
 * TOP/NAMEstate (paths into st and sa, 400 bytes each), created and opened
 * with o (o->state_dir set here); NULL when either fails (reported). */
static struct vv_vault *side_store(const char *name, char st[400], char sa[400],
				   struct vv_vault_opts *o)
{
	struct vv_vault *v = NULL;

	snprintf(st, 400, "%s/%sstore", top, name);
	snprintf(sa, 400, "%s/%sstate", top, name);
	mkdir(sa, 0700);
	o->state_dir = sa;
	is_int(vv_vault_create_store(st, PASS, strlen(PASS), VV_KDF_PROFILE_TEST,
				     VV_VAULT_ALLOW_TEST_KDF, 0, 0, sa), 0, "a store of its own");
	is_int(vv_vault_open(st, PASS, strlen(PASS), o, &v), 0, "open it");
	return v;
}

/* --- several sealers: extents repointed in queue order ---------------------- */

#define SW_MB 4                      /* one job: 64 blocks of 64 KiB */

struct sw_arg {
	struct vv_vault *v;
	struct vv_file *fh;
	unsigned region, rounds;
	int err;
};

/* Byte i of round r of a region: differs by round and by region. */
static uint8_t sw_byte(unsigned region, unsigned round, size_t i)
{
	return (uint8_t)(i * 7 + region * 31 + round * 101 + (i >> 16));
}

static void sw_fill(uint8_t *b, unsigned region, unsigned round)
{
	for (size_t i = 0; i < (size_t)SW_MB << 20; i++)
		b[i] = sw_byte(region, round, i);
}

static bool sw_check(const uint8_t *b, unsigned region, unsigned round)
{
	for (size_t i = 0; i < (size_t)SW_MB << 20; i++)
		if (b[i] != sw_byte(region, round, i))
			return false;
	return true;
}

/* rounds full rewrites of one 4 MiB region, 1 MiB a write: every 4th write
 * fills the write buffer and queues a job, so the region's jobs queue up
 * behind each other on several sealers. */
static void *sw_writer(void *p)
{
	struct sw_arg *a = p;
	uint8_t *b = malloc((size_t)SW_MB << 20);
	uint64_t base = (uint64_t)a->region * (SW_MB << 20);

	for (unsigned r = 0; b && r < a->rounds && !a->err; r++) {
		sw_fill(b, a->region, r);
		for (unsigned m = 0; m < SW_MB; m++) {
			ssize_t w = vv_vault_write(a->v, &root_c, a->fh, b + ((size_t)m << 20), 1 << 20,
						   base + ((uint64_t)m << 20));
			if (w != 1 << 20) {
				a->err = w < 0 ? (int)w : -1;
				break;
			}
		}
	}
	if (!b)
		a->err = VV_ENOMEM;
	free(b);
	return NULL;
}

/* Each region of ino holds its last round's bytes. */
static bool sw_regions_ok(struct vv_vault *v, uint64_t ino, unsigned nreg, unsigned round)
{
	uint8_t *b = malloc((size_t)SW_MB << 20);
	struct vv_file *fh;
	bool kc, good = b != NULL;

	if (!good || vv_vault_open_file(v, &root_c, ino, O_RDONLY, &fh, &kc) < 0) {
		free(b);
		return false;
	}
	for (unsigned g = 0; good && g < nreg; g++)
		good = vv_vault_read(v, fh, b, (size_t)SW_MB << 20, (uint64_t)g * (SW_MB << 20)) ==
			       (ssize_t)SW_MB << 20 && sw_check(b, g, round - 1);
	vv_vault_release(v, fh);
	free(b);
	return good;
}

static void test_sealers(void)
{
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT,
				   .state_dir = state, .sealers = 4 };
	struct sw_arg wa[3];
	pthread_t th[3];
	char st[400], sa[400];
	struct vv_vault *v = NULL;
	struct vv_file *fh;
	struct vv_attr a, d;
	int hold;
	bool at_write;
	uint64_t ino;
	int r;

	v = side_store("sw", st, sa, &o);
	if (!v)
		return;
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "sw", 0755, &d), 0, "sealers: a collection");

	/* One writer, twelve jobs of the same 64 blocks in flight on four
	 * sealers: the last one queued must be the one that stays. */
	r = vv_vault_create(v, &root_c, d.ino, "one", 0644, O_RDWR, &a, &fh);
	is_int(r, 0, "sealers: create one");
	ino = a.ino;
	wa[0] = (struct sw_arg){ .v = v, .fh = fh, .region = 0, .rounds = 12 };
	sw_writer(&wa[0]);
	is_int(wa[0].err, 0, "sealers: twelve rewrites of 4 MiB");
	is_int(vv_vault_fsync(v, fh, false), 0, "sealers: fsync");
	vv_vault_release(v, fh);
	ok(sw_regions_ok(v, ino, 1, 12), "sealers: the newest rewrite is what reads back");

	/* Three threads rewrite three regions of one file at once. */
	r = vv_vault_create(v, &root_c, d.ino, "shared", 0644, O_RDWR, &a, &fh);
	is_int(r, 0, "sealers: create shared");
	ino = a.ino;
	for (int i = 0; i < 3; i++) {
		wa[i] = (struct sw_arg){ .v = v, .fh = fh, .region = (unsigned)i, .rounds = 6 };
		pthread_create(&th[i], NULL, sw_writer, &wa[i]);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		is_int(wa[i].err, 0, "sealers: a concurrent writer's writes");
	}
	is_int(vv_vault_fsync(v, fh, false), 0, "sealers: fsync the shared file");
	vv_vault_release(v, fh);
	ok(sw_regions_ok(v, ino, 3, 6), "sealers: every region holds its writer's last round");

	/* One job's chunk write fails among later jobs of the same blocks that
	 * succeed: the error reaches fsync, and the failed (older) blocks are
	 * not sealed again over the newer ones. */
	os_fault_install();
	r = vv_vault_create(v, &root_c, d.ino, "fault", 0644, O_RDWR, &a, &fh);
	is_int(r, 0, "sealers: create fault");
	ino = a.ino;
	/* The failing write is held until three more jobs of the same blocks
	 * are queued behind it (four jobs: the sealers take them all, so the
	 * writer is never throttled while the test holds the first). */
	hold = 1;
	os_fault_set(OSF_PWRITE, (struct os_fault){ .err = EIO, .path_has = "/chunks/", .times = 1,
						    .hold = &hold });
	wa[0] = (struct sw_arg){ .v = v, .fh = fh, .region = 0, .rounds = 4 };
	sw_writer(&wa[0]);
	__atomic_store_n(&hold, 0, __ATOMIC_RELEASE);
	/* A background flush meanwhile (the ticker's every 2 s, which under
	 * load fell between the failed job and the fsync below; vv_vault_sync
	 * takes the same path): the first waits for the failed job, the second
	 * retries its blocks.  Neither may take the writer's error. */
	is_int(vv_vault_sync(v), 0, "sealers: a background flush meanwhile");
	is_int(vv_vault_sync(v), 0, "sealers: another retries the failed blocks");
	/* (the failure may come back at a write already: a delayed write error) */
	r = wa[0].err ? wa[0].err : vv_vault_fsync(v, fh, false);
	is_int(r, VV_EIO, "sealers: the failed chunk write reaches the writer (EIO)");
	os_fault_clear(OSF_PWRITE);
	at_write = wa[0].err != 0;
	if (at_write) {                        /* finish the rounds the error cut short */
		wa[0].err = 0;
		sw_writer(&wa[0]);
		is_int(wa[0].err, 0, "sealers: writes go on after the reported error");
	}
	is_int(vv_vault_fsync(v, fh, false), 0, "sealers: then fsync succeeds");
	/* close reports a failed write(2) again (the handle keeps it), an
	 * error fsync already reported not */
	is_int(vv_vault_flush(v, fh), at_write ? VV_EIO : 0, "sealers: close reports the handle's error once");
	is_int(vv_vault_flush(v, fh), 0, "sealers: and then nothing");
	vv_vault_release(v, fh);
	ok(sw_regions_ok(v, ino, 1, 4), "sealers: the newest rewrite survives a failed older job");
	os_fault_uninstall();

	/* The extent maps as committed: the same after a reopen. */
	is_int(vv_vault_close(v), 0, "sealers: close");
	v = NULL;
	is_int(vv_vault_open(st, PASS, strlen(PASS), &o, &v), 0, "sealers: reopen");
	if (v) {
		ok(sw_regions_ok(v, ino, 1, 4), "sealers: after reopen, still the newest rewrite");
		vv_vault_close(v);
	}
}

/* Commits never checkpoint (SQLite did, inside the commit that passed
 * 1000 frames, under the vault lock): with a pass held inside its
 * checkpoint, commits go on and meta.db is not written by any of them;
 * once it goes on, passes and the finishing step keep the WAL small (it
 * starts over), and everything is there after a reopen. */
static void test_checkpointer(void)
{
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT,
				   .state_dir = state, .ckpt_frames = 20 };
	struct ckpt_gate g = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };
	char st[400], sa[400], db[420], wal[420];
	struct vv_vault *v = NULL;
	struct vv_attr d, a;
	uint8_t *b0, *b1;
	size_t l0, l1;
	struct stat sb;
	uint64_t passes, finishes;
	int r, base = 0;

	if (!(v = side_store("ck", st, sa, &o)))      /* a 20-frame bound */
		return;
	snprintf(db, sizeof(db), "%s/meta.db", st);
	snprintf(wal, sizeof(wal), "%s/meta.db-wal", st);
	ok(v->ckpt.run, "ckpt: the checkpointer thread runs");
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "c", 0755, &d), 0, "ckpt: mkdir");
	pthread_mutex_lock(&v->mu);
	v->ckpt.test_hook = ckpt_gate_hook;
	v->ckpt.test_ctx = &g;
	pthread_mutex_unlock(&v->mu);
	/* Until a pass is held inside its checkpoint. */
	r = 0;
	for (int round = 0; r == 0 && round < 200; round++) {
		pthread_mutex_lock(&g.mu);
		bool in = g.inside;
		pthread_mutex_unlock(&g.mu);
		if (in)
			break;
		r = ckpt_files(v, d.ino, base, 20);
		base += 20;
	}
	pthread_mutex_lock(&g.mu);
	ok(g.inside, "ckpt: a pass started once the WAL passed the bound");
	pthread_mutex_unlock(&g.mu);
	is_int(r, 0, "ckpt: files written and synced");
	b0 = slurp(db, &l0);
	r = ckpt_files(v, d.ino, base, 1000);
	base += 1000;
	is_int(r, 0, "ckpt: 1000 files and 100 syncs while the pass is held in its checkpoint");
	b1 = slurp(db, &l1);
	ok(b0 && b1 && l0 == l1 && memcmp(b0, b1, l0) == 0,
	   "ckpt: no commit wrote meta.db (none ran a checkpoint)");
	/* past SQLite's automatic checkpoint, which the commits ran before */
	ok(vv_meta_wal_frames(v->meta) > 1000, "ckpt: the WAL grew past 1000 frames meanwhile");
	printf("# %u frames in the WAL\n", vv_meta_wal_frames(v->meta));
	free(b0);
	free(b1);
	pthread_mutex_lock(&g.mu);
	g.open = true;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	r = ckpt_files(v, d.ino, base, 1500);
	base += 1500;
	is_int(r, 0, "ckpt: 1500 more files with the checkpointer free");
	pthread_mutex_lock(&v->mu);
	passes = v->ckpt.passes;
	finishes = v->ckpt.finishes;
	pthread_mutex_unlock(&v->mu);
	ok(passes > 2 && finishes > 0, "ckpt: passes ran and caught up");
	ok(vv_meta_wal_frames(v->meta) < 400, "ckpt: the WAL started over");
	printf("# %u frames in the WAL\n", vv_meta_wal_frames(v->meta));
	printf("# %llu passes, %llu finishing steps (%llu copied frames under the lock)\n",
	       (unsigned long long)passes, (unsigned long long)finishes,
	       (unsigned long long)v->ckpt.finishes_locked);
	b1 = slurp(db, &l1);
	ok(b1 && l1 > l0, "ckpt: the passes wrote meta.db");
	free(b1);
	/* Its largest: the 1000 files of the held pass (SQLite's
	 * journal_size_limit truncates it to 4 MiB when it starts over). */
	ok(stat(wal, &sb) == 0 && sb.st_size <= (4 << 20), "ckpt: the WAL file within its limit");
	printf("# WAL %lld bytes\n", (long long)sb.st_size);
	is_int(vv_vault_close(v), 0, "ckpt: close");
	v = NULL;
	is_int(vv_vault_open(st, PASS, strlen(PASS), &o, &v), 0, "ckpt: reopen");
	if (!v)
		return;
	is_int(vv_vault_lookup(v, &root_c, d.ino, "f00000", &a), 0, "ckpt: the first file is there");
	{
		char name[32];
		snprintf(name, sizeof(name), "f%05d", base - 1);
		is_int(vv_vault_lookup(v, &root_c, d.ino, name, &a), 0, "ckpt: the last file is there");
		is_int((int)a.size, 300, "ckpt: with its size");
	}
	is_int(vv_vault_close(v), 0, "ckpt: close again");
}

/* Past the bound, a pass follows only another bound's worth of frames
 * (or a pause in the commits), not every commit: each pass copies the
 * same hot pages again, with two fsyncs (a pass per commit cost a tar -x
 * 11% more daemon CPU).  Many small commits, each synced: the passes
 * stay near (frames committed) / bound, plus one per pause the ticker
 * saw (at most one per 200 ms tick); one per commit would be hundreds. */
static void test_ckpt_cadence(void)
{
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT,
				   .ckpt_frames = 100 };
	char st[400], sa[400];
	struct vv_vault *v = NULL;
	struct vv_attr d;
	struct timespec t0, t1;
	uint64_t total = 0, passes, ticks;
	uint32_t prev = 0, f;
	int r = 0, commits = 0;

	if (!(v = side_store("cad", st, sa, &o)))
		return;
	is_int(vv_vault_mkdir(v, &root_c, VV_ROOT_INO, "c", 0755, &d), 0, "cadence: mkdir");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; r == 0 && i < 600; i++) {
		char name[32], data[200];
		uint64_t ino;
		snprintf(name, sizeof(name), "f%05d", i);
		memset(data, 'a' + i % 26, sizeof(data));
		r = vt_write_file(v, &root_c, d.ino, name, (const uint8_t *)data, sizeof(data), 0644, &ino);
		if (r == 0)
			r = vv_vault_sync(v);
		pthread_mutex_lock(&v->mu);
		f = vv_meta_wal_frames(v->meta);
		pthread_mutex_unlock(&v->mu);
		total += f >= prev ? f - prev : f;      /* smaller: the log started over */
		prev = f;
		commits++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	is_int(r, 0, "cadence: 600 files, each synced");
	pthread_mutex_lock(&v->mu);
	passes = v->ckpt.passes;
	pthread_mutex_unlock(&v->mu);
	ticks = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000) / 200 + 1;
	printf("# %d commits, %llu frames, %llu passes, %llu ticker ticks at most\n", commits,
	       (unsigned long long)total, (unsigned long long)passes, (unsigned long long)ticks);
	ok(total > 1000, "cadence: the commits wrote over 10 bounds of frames");
	ok(passes >= total / 100 / 2, "cadence: passes ran");
	/* Measured: 57-60 passes for 4945 frames on a quiet machine (a pass
	 * that is still running when the next bound is reached is followed
	 * by one more, and syncs that wrote nothing count as pauses), 233
	 * with a pass kicked after every commit past the bound.  The margin
	 * is half a pass per bound: quiet runs must not fail it, the old
	 * cadence does by far. */
	ok(passes <= total / 100 * 3 / 2 + 2 + ticks && passes < (uint64_t)commits / 4,
	   "cadence: a pass per bound of frames (or pause), not per commit");
	is_int(vv_vault_close(v), 0, "cadence: close");
}

int main(void)
{
	vu_setup(false);
	test_checkpointer();
	test_ckpt_cadence();
	test_sealers();
	vu_cleanup();
	return tap_done();
}
