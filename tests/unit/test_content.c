/*
 * test_content.c - encrypted chunk objects: round trips, every tamper case
 * failing closed, sync ordering through a recording OS table, ENOSPC, many
 * reader threads, listing, extent blobs, and a throughput report.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "content_int.h"
#include "crypto_int.h"
#include "os.h"
#include "os_fault.h"
#include "tap.h"
#include "vecvault/error.h"

static const char MARKER[] = "VECVAULT-PLAINTEXT-MARKER";

static uint8_t key1[32], key2[32];
static uint8_t obj_a[16], obj_b[16], obj_c[16];

/* Deterministic block contents so readers can check without a copy. */
static void fill(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static char *mktmp(void)
{
	const char *t = getenv("TMPDIR");
	char *d;

	if (asprintf(&d, "%s/vvcontent.XXXXXX", t ? t : "/tmp") < 0 || !mkdtemp(d))
		abort();
	return d;
}

static void rmrf(const char *d)
{
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	if (system(cmd) != 0)
		fprintf(stderr, "rm failed\n");
}

static void path_of(char *out, size_t cap, const char *store, const uint8_t id[32])
{
	char hex[65];
	vv_hex_encode(hex, id, 32);
	snprintf(out, cap, "%s/chunks/%.2s/%s", store, hex, hex);
}

static void flip(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t b;
	if (fd < 0 || pread(fd, &b, 1, off) != 1)
		abort();
	b ^= 0x04;
	if (pwrite(fd, &b, 1, off) != 1)
		abort();
	close(fd);
}

/* Read expecting VV_ECORRUPT and a zeroed buffer. */
static void expect_corrupt(struct vv_content *c, const uint8_t *key, const uint8_t *objid,
			   const struct vv_extent *e, const char *msg)
{
	static uint8_t out[VV_BLOCK_SIZE];
	char m[200];
	int r;

	memset(out, 0xAA, sizeof(out));
	r = vv_content_read_block(c, key, objid, e, out);
	snprintf(m, sizeof(m), "%s -> ECORRUPT", msg);
	is_int(r, VV_ECORRUPT, m);
	snprintf(m, sizeof(m), "%s -> output zeroed", msg);
	ok(all_zero(out, e->len), m);
}

/* ---- listing ------------------------------------------------------------------ */

struct listing { uint8_t ids[64][32]; uint64_t sizes[64]; int n; int junk; };

static int list_cb(void *ctx, const uint8_t id[32], uint64_t size)
{
	struct listing *l = ctx;
	if (l->n < 64) {
		memcpy(l->ids[l->n], id, 32);
		l->sizes[l->n] = size;
	}
	l->n++;
	return 0;
}

static int junk_cb(void *ctx, const char *rel)
{
	struct listing *l = ctx;
	(void)rel;
	l->junk++;
	return 0;
}

static int listed(const struct listing *l, const uint8_t id[32])
{
	for (int i = 0; i < l->n && i < 64; i++)
		if (!memcmp(l->ids[i], id, 32))
			return 1;
	return 0;
}

/* Count every file under STORE/chunks (any name). */
static int count_files(const char *store)
{
	char p[4200];
	int n = 0;
	DIR *d, *s;
	struct dirent *de, *se;

	snprintf(p, sizeof(p), "%s/chunks", store);
	if (!(d = opendir(p)))
		return -1;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' && (!de->d_name[1] || de->d_name[1] == '.'))
			continue;
		snprintf(p, sizeof(p), "%s/chunks/%s", store, de->d_name);
		if (!(s = opendir(p))) {
			n++;
			continue;
		}
		while ((se = readdir(s)))
			if (strcmp(se->d_name, ".") && strcmp(se->d_name, ".."))
				n++;
		closedir(s);
	}
	closedir(d);
	return n;
}

/* ---- tests ----------------------------------------------------------------- */

static uint8_t *blk[4];
static const uint32_t blen[4] = { VV_BLOCK_SIZE, 1000, 1, VV_BLOCK_SIZE };

static void write_sample(struct vv_content *c, const uint8_t *key, struct vv_extent *ext)
{
	struct vv_block_in in[4] = {
		{ obj_a, 0, blk[0], blen[0] },
		{ obj_a, 1, blk[1], blen[1] },
		{ obj_b, 0, blk[2], blen[2] },
		{ obj_c, 5, blk[3], blen[3] },
	};
	is_int(vv_content_write_chunk(c, key, in, 4, ext), 0, "write a chunk of 4 blocks of 3 files");
}

static const uint8_t *objs_of[4] = { obj_a, obj_a, obj_b, obj_c };

static void test_roundtrip_and_tamper(void)
{
	char *store = mktmp();
	struct vv_content *c = NULL;
	struct vv_extent ext[4], ext2[4], e;
	static uint8_t out[VV_BLOCK_SIZE];
	char p1[4200], p2[4200], p3[4300];
	int good = 1;

	is_int(vv_content_open(store, VV_CONTENT_DEFAULT_CACHE, &c), 0, "open");
	write_sample(c, key1, ext);
	ok(ext[0].slot == 0 && ext[3].slot == 3 && ext[0].off == VV_CHUNK_HDR_BYTES &&
	   ext[1].off == VV_CHUNK_HDR_BYTES + VV_BLOCK_SIZE + 16 && ext[2].fblock == 0 &&
	   ext[3].fblock == 5 && !memcmp(ext[0].chunk_id, ext[3].chunk_id, 32),
	   "extents describe one chunk, slots in order");

	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < 4; i++) {
			memset(out, 0, sizeof(out));
			if (vv_content_read_block(c, key1, objs_of[i], &ext[i], out) != 0 ||
			    memcmp(out, blk[i], blen[i]) != 0)
				good = 0;
		}
		vv_content_cache_drop(c);
	}
	ok(good, "round trip of full, short and 1-byte blocks, cold and warm");

	memset(out, 0, sizeof(out));
	is_int(vv_content_read_range(c, key1, obj_a, &ext[0], 8192, 4096, out), 0, "read_range cold");
	ok(!memcmp(out, blk[0] + 8192, 4096), "read_range content");
	is_int(vv_content_read_range(c, key1, obj_a, &ext[0], 60000, 5536, out), 0, "read_range warm to end");
	ok(!memcmp(out, blk[0] + 60000, 5536), "read_range warm content");
	is_int(vv_content_read_range(c, key1, obj_a, &ext[0], 60000, 5537, out), VV_EINVAL,
	       "read_range past block end -> EINVAL");

	path_of(p1, sizeof(p1), store, ext[0].chunk_id);

	/* Wrong identities, with the cache warm (must not bypass AD checks)
	 * and cold. */
	for (int pass = 0; pass < 2; pass++) {
		const char *w = pass ? " (cold)" : " (warm cache)";
		char m[120];
		if (!pass)
			(void)vv_content_read_block(c, key1, obj_a, &ext[0], out);
		else
			vv_content_cache_drop(c);
		snprintf(m, sizeof(m), "another objid%s", w);
		expect_corrupt(c, key1, obj_b, &ext[0], m);
		e = ext[0];
		e.fblock = 7;
		snprintf(m, sizeof(m), "another fblock%s", w);
		expect_corrupt(c, key1, obj_a, &e, m);
		e = ext[0];
		e.slot = 3;
		snprintf(m, sizeof(m), "another slot number%s", w);
		expect_corrupt(c, key1, obj_a, &e, m);
		e = ext[3];              /* slot 3's bytes presented as file a block 0 */
		e.fblock = 0;
		snprintf(m, sizeof(m), "another slot's extent%s", w);
		expect_corrupt(c, key1, obj_a, &e, m);
		snprintf(m, sizeof(m), "wrong collection key%s", w);
		expect_corrupt(c, key2, obj_a, &ext[0], m);
		e = ext[1];
		e.len = 999;
		snprintf(m, sizeof(m), "shorter length%s", w);
		expect_corrupt(c, key1, obj_a, &e, m);
	}
	is_int(vv_content_read_block(c, key1, obj_a, &ext[0], out), 0, "right identity still reads");

	/* Bytes changed on disk. */
	flip(p1, ext[1].off + 10);
	vv_content_cache_drop(c);
	expect_corrupt(c, key1, obj_a, &ext[1], "bit flip in ciphertext");
	flip(p1, ext[1].off + 10);
	flip(p1, ext[1].off + ext[1].len + 5);
	vv_content_cache_drop(c);
	expect_corrupt(c, key1, obj_a, &ext[1], "bit flip in tag");
	flip(p1, ext[1].off + ext[1].len + 5);
	flip(p1, 0);
	vv_content_cache_drop(c);
	expect_corrupt(c, key1, obj_a, &ext[1], "changed version byte");
	flip(p1, 0);
	flip(p1, 7);
	vv_content_cache_drop(c);
	expect_corrupt(c, key1, obj_a, &ext[1], "changed reserved header byte");
	flip(p1, 7);
	vv_content_cache_drop(c);
	is_int(vv_content_read_block(c, key1, obj_a, &ext[1], out), 0, "restored bytes read again");

	/* Truncated chunk. */
	{
		uint64_t size = 0;
		is_int(vv_content_chunk_size(c, ext[0].chunk_id, &size), 0, "chunk_size");
		is_int(size, vv_content_extent_end(&ext[3]), "chunk size = end of last extent");
		if (truncate(p1, (off_t)ext[3].off + 100) != 0)
			abort();
		vv_content_cache_drop(c);
		expect_corrupt(c, key1, obj_c, &ext[3], "truncated chunk");
		is_int(vv_content_read_block(c, key1, obj_a, &ext[0], out), 0,
		       "blocks before the cut still read");
	}

	/* Swap two chunks' names: an extent then points into another chunk. */
	write_sample(c, key1, ext2);
	path_of(p2, sizeof(p2), store, ext2[0].chunk_id);
	snprintf(p3, sizeof(p3), "%s.swap", p1);
	ok(!rename(p1, p3) && !rename(p2, p1) && !rename(p3, p2), "swapped two chunk files");
	vv_content_cache_drop(c);
	expect_corrupt(c, key1, obj_a, &ext2[0], "extent into another chunk (swapped names)");
	expect_corrupt(c, key1, obj_b, &ext2[2], "extent into another chunk, small block");

	/* Missing chunk. */
	e = ext[0];
	vv_random_bytes(e.chunk_id, 32);
	memset(out, 0xAA, sizeof(out));
	is_int(vv_content_read_block(c, key1, obj_a, &e, out), VV_EIO, "missing chunk -> EIO");
	ok(all_zero(out, e.len), "missing chunk -> output zeroed");

	/* Malformed extents. */
	e = ext2[0];
	e.len = 0;
	is_int(vv_content_read_block(c, key1, obj_a, &e, out), VV_EINVAL, "len 0 -> EINVAL");
	e.len = VV_BLOCK_SIZE + 1;
	is_int(vv_content_read_block(c, key1, obj_a, &e, out), VV_EINVAL, "len > block -> EINVAL");
	e = ext2[0];
	e.slot = VV_CHUNK_MAX_BLOCKS;
	is_int(vv_content_read_block(c, key1, obj_a, &e, out), VV_EINVAL, "slot too big -> EINVAL");
	{
		struct vv_block_in bad = { obj_a, 0, blk[0], VV_BLOCK_SIZE + 1 };
		struct vv_extent be;
		is_int(vv_content_write_chunk(c, key1, &bad, 1, &be), VV_EINVAL, "write block too big -> EINVAL");
		is_int(vv_content_write_chunk(c, key1, &bad, 0, &be), VV_EINVAL, "write 0 blocks -> EINVAL");
	}

	/* Unlink. */
	is_int(vv_content_unlink(c, ext2[0].chunk_id), 0, "unlink");
	is_int(vv_content_unlink(c, ext2[0].chunk_id), VV_ENOENT, "unlink again -> ENOENT");
	is_int(vv_content_read_block(c, key1, obj_a, &ext2[0], out), VV_EIO, "read unlinked -> EIO");

	vv_content_close(c);
	rmrf(store);
	free(store);
}

static void test_no_plaintext(void)
{
	char *store = mktmp();
	struct vv_content *c = NULL;
	struct vv_block_in in[8];
	struct vv_extent ext[8];
	static uint8_t data[8][VV_BLOCK_SIZE];
	uint8_t *file = NULL;
	size_t flen = 0, ml = strlen(MARKER);
	char p[4200];
	int found = 0;
	FILE *f;

	for (int i = 0; i < 8; i++) {
		for (size_t o = 0; o + ml <= VV_BLOCK_SIZE; o += ml)
			memcpy(data[i] + o, MARKER, ml);
		in[i] = (struct vv_block_in){ obj_a, (uint64_t)i, data[i], VV_BLOCK_SIZE };
	}
	is_int(vv_content_open(store, 0, &c), 0, "open without cache");
	is_int(vv_content_write_chunk(c, key1, in, 8, ext), 0, "write marker blocks");
	path_of(p, sizeof(p), store, ext[0].chunk_id);
	if ((f = fopen(p, "rb"))) {
		file = malloc(8 * (VV_BLOCK_SIZE + 16) + 16);
		flen = fread(file, 1, 8 * (VV_BLOCK_SIZE + 16) + 16, f);
		fclose(f);
	}
	ok(flen == 8 * (VV_BLOCK_SIZE + 16) + 16, "chunk size is header + blocks + tags");
	for (size_t i = 0; file && i + 16 <= flen; i++)
		if (!memcmp(file + i, "VECVAULT", 8) || !memcmp(file + i, "vecvault", 8) ||
		    !memcmp(file + i, obj_a, 16))
			found++;
	ok(!found, "no plaintext marker, domain string or object id in the chunk file");
	ok(file && file[0] == 1 && all_zero(file + 1, 15), "header is version 1 + zero reserved");
	{
		static uint8_t out[VV_BLOCK_SIZE];
		is_int(vv_content_read_block(c, key1, obj_a, &ext[7], out), 0, "uncached read");
		ok(!memcmp(out, data[7], VV_BLOCK_SIZE), "uncached read content");
	}
	free(file);
	vv_content_close(c);
	rmrf(store);
	free(store);
}

static void test_sync(void)
{
	char *store = mktmp();
	struct vv_content *c = NULL;
	struct vv_extent e1[4], e2[4];
	char p1[4200], p2[4200], d1[4200], d2[4200], chunks[4200];
	int before, after_dirs_ok;

	os_fault_install();

	is_int(vv_content_open(store, VV_CONTENT_DEFAULT_CACHE, &c), 0, "open with recording OS");
	write_sample(c, key1, e1);
	write_sample(c, key1, e2);
	path_of(p1, sizeof(p1), store, e1[0].chunk_id);
	path_of(p2, sizeof(p2), store, e2[0].chunk_id);
	snprintf(d1, sizeof(d1), "%.*s", (int)(strrchr(p1, '/') - p1), p1);
	snprintf(d2, sizeof(d2), "%.*s", (int)(strrchr(p2, '/') - p2), p2);
	snprintf(chunks, sizeof(chunks), "%s/chunks", store);
	is_int(os_fault_fsyncs(), 0, "write_chunk does not fsync");
	before = os_fault_fsyncs();
	is_int(vv_content_sync(c), 0, "sync");
	is_int(os_fault_fsync_count(p1), 1, "first chunk fsynced once");
	is_int(os_fault_fsync_count(p2), 1, "second chunk fsynced once");
	is_int(os_fault_fsync_count(d1), strcmp(d1, d2) ? 1 : 1, "its chunks/XX dir fsynced once");
	is_int(os_fault_fsync_count(d2), 1, "other chunks/XX dir fsynced once");
	is_int(os_fault_fsync_count(chunks), 1, "chunks/ fsynced (new subdirs)");
	is_int(os_fault_fsync_count(store), 1, "STORE fsynced (new chunks/)");
	after_dirs_ok = os_fault_fsync_seq(p1) < os_fault_fsync_seq(d1) && os_fault_fsync_seq(p2) < os_fault_fsync_seq(d2) &&
			os_fault_fsync_seq(d1) < os_fault_fsync_seq(chunks) && os_fault_fsync_seq(chunks) < os_fault_fsync_seq(store);
	ok(after_dirs_ok, "files before their dirs, dirs before parents");
	before = os_fault_fsyncs();
	is_int(vv_content_sync(c), 0, "second sync");
	is_int(os_fault_fsyncs() - before, 0, "nothing pending -> no fsync");

	/* A failed fsync keeps the chunk pending. */
	write_sample(c, key1, e1);
	path_of(p1, sizeof(p1), store, e1[0].chunk_id);
	os_fault_set(OSF_FSYNC, (struct os_fault){ .err = EIO });
	is_int(vv_content_sync(c), VV_EIO, "fsync EIO -> sync EIO");
	os_fault_clear(OSF_FSYNC);
	is_int(os_fault_fsync_count(p1), 0, "(not recorded while failing)");
	is_int(vv_content_sync(c), 0, "sync retried");
	is_int(os_fault_fsync_count(p1), 1, "chunk still pending after failure, fsynced on retry");

	/* Full disk. */
	{
		struct listing l;
		struct vv_extent e[4];
		int nbefore = count_files(store);
		/* writes to chunk files get half their bytes in, then ENOSPC */
		os_fault_set(OSF_PWRITE, (struct os_fault){ .err = ENOSPC, .path_has = "/chunks/", .partial = true });
		is_int(vv_content_write_chunk(c, key1,
			(struct vv_block_in[]){ { obj_a, 0, blk[0], blen[0] }, { obj_a, 1, blk[3], blen[3] } },
			2, e), VV_ENOSPC, "ENOSPC mid-chunk -> VV_ENOSPC");
		os_fault_clear(OSF_PWRITE);
		is_int(count_files(store), nbefore, "no file left behind (final or temp)");
		memset(&l, 0, sizeof(l));
		is_int(vv_content_list_all(c, list_cb, junk_cb, &l), 0, "list after ENOSPC");
		is_int(l.n, 3, "only the 3 complete chunks listed");
		is_int(l.junk, 0, "no junk");
	}
	/* The full-disk floor: a chunk that would leave less free than the
	 * floor is refused before a byte is written (no write call at all:
	 * a write that failed half way would hold the space the vault's
	 * commits need until it is unlinked). */
	{
		struct statvfs sv;
		struct vv_extent e[1];
		struct vv_block_in one = { obj_a, 0, blk[0], blen[0] };
		uint64_t fb = statvfs(store, &sv) == 0 ? (uint64_t)sv.f_bavail * sv.f_frsize : 0;
		int nbefore = count_files(store);

		ok(fb > 0, "statvfs of the store");
		vv_content_set_floor(c, fb + (1ull << 30));
		os_fault_set(OSF_PWRITE, (struct os_fault){ .err = EIO, .path_has = "/chunks/" });
		is_int(vv_content_write_chunk(c, key1, &one, 1, e), VV_ENOSPC,
		       "free space below the floor -> VV_ENOSPC");
		os_fault_clear(OSF_PWRITE);
		is_int(count_files(store), nbefore, "floor: no file left behind");
		ok(all_zero((uint8_t *)e, sizeof(e)), "floor: extent zeroed");
		vv_content_set_floor(c, fb > (64ull << 20) ? fb - (64ull << 20) : 1);
		is_int(vv_content_write_chunk(c, key1, &one, 1, e), fb > (64ull << 20) ? 0 : VV_ENOSPC,
		       "free space above floor + chunk -> written");
		vv_content_set_floor(c, 0);
		is_int(vv_content_write_chunk(c, key1, &one, 1, e), 0, "floor 0: no check");
	}
	vv_content_close(c);
	os_fault_uninstall();
	rmrf(store);
	free(store);
}

/* ---- O_DIRECT chunk writes ------------------------------------------------- */

/* Write a full chunk (64 blocks, so an unaligned tail follows the O_DIRECT
 * part), read every block back and check the file's exact size. */
static void direct_roundtrip(struct vv_content *c, const char *store, const char *what)
{
	struct vv_block_in in[VV_CHUNK_MAX_BLOCKS];
	struct vv_extent e[VV_CHUNK_MAX_BLOCKS];
	static uint8_t out[VV_BLOCK_SIZE];
	uint64_t want = VV_CHUNK_HDR_BYTES, size = 0;
	char m[200], p[4200];
	struct stat st;
	int bad = 0;

	for (int i = 0; i < VV_CHUNK_MAX_BLOCKS; i++) {
		in[i] = (struct vv_block_in){ obj_a, (uint64_t)i, blk[i % 4], blen[i % 4] };
		want += blen[i % 4] + 16;
	}
	snprintf(m, sizeof(m), "%s: write a 64-block chunk", what);
	is_int(vv_content_write_chunk(c, key1, in, VV_CHUNK_MAX_BLOCKS, e), 0, m);
	vv_content_cache_drop(c);                /* read from the file, not the cache */
	for (int i = 0; i < VV_CHUNK_MAX_BLOCKS; i++)
		if (vv_content_read_block(c, key1, obj_a, &e[i], out) != 0 ||
		    memcmp(out, blk[i % 4], blen[i % 4]) != 0)
			bad++;
	snprintf(m, sizeof(m), "%s: every block reads back (the tail too)", what);
	is_int(bad, 0, m);
	path_of(p, sizeof(p), store, e[0].chunk_id);
	if (stat(p, &st) == 0)
		size = (uint64_t)st.st_size;
	snprintf(m, sizeof(m), "%s: the chunk file is exactly its image (no padding)", what);
	is_int((long long)size, (long long)want, m);
	is_int((long long)vv_content_extent_end(&e[VV_CHUNK_MAX_BLOCKS - 1]), (long long)want,
	       "(its last extent ends there)");
	snprintf(m, sizeof(m), "%s: sync", what);
	is_int(vv_content_sync(c), 0, m);
}

static void test_direct(void)
{
	char *store = mktmp();
	struct vv_content *c = NULL;
	struct vv_extent e[2];
	int nbefore;

	/* The store's file system takes O_DIRECT (ext4, tmpfs since 6.6). */
	os_fault_install();
	is_int(vv_content_open(store, VV_CONTENT_DEFAULT_CACHE, &c), 0, "open");
	ok(vv_content_direct_io(c), "O_DIRECT wanted at open");
	direct_roundtrip(c, store, "O_DIRECT");
	if (!vv_content_direct_io(c))
		tap_diag("(this store's file system refuses O_DIRECT: the fallback ran)");
	is_int(vv_content_write_chunk(c, key1, (struct vv_block_in[]){ { obj_b, 0, blk[1], blen[1] } },
				      1, e), 0, "a small chunk (page cache only)");
	vv_content_close(c);
	c = NULL;

	/* Refused at open, after the file was created (what the kernel does
	 * on file systems without direct I/O): the chunk is written through the
	 * page cache, the refusal is remembered, no temp file stays. */
	is_int(vv_content_open(store, VV_CONTENT_DEFAULT_CACHE, &c), 0, "open again");
	os_fault_set(OSF_OPEN, (struct os_fault){ .err = EINVAL, .flags_has = O_DIRECT, .after = true });
	direct_roundtrip(c, store, "open refuses O_DIRECT");
	ok(!vv_content_direct_io(c), "the refusal is remembered");
	/* Any O_DIRECT open would now fail the write: none is tried. */
	os_fault_set(OSF_OPEN, (struct os_fault){ .err = EIO, .flags_has = O_DIRECT });
	direct_roundtrip(c, store, "after the refusal (no O_DIRECT open tried)");
	os_fault_clear(OSF_OPEN);
	vv_content_close(c);
	c = NULL;

	/* Refused at the first write (open accepted it). */
	is_int(vv_content_open(store, VV_CONTENT_DEFAULT_CACHE, &c), 0, "open again");
	os_fault_set(OSF_PWRITE, (struct os_fault){ .err = EINVAL, .flags_has = O_DIRECT });
	direct_roundtrip(c, store, "write refuses O_DIRECT");
	ok(!vv_content_direct_io(c), "the refusal is remembered");
	os_fault_clear(OSF_PWRITE);
	vv_content_close(c);
	c = NULL;

	/* A real error on the O_DIRECT write is the chunk's error: nothing
	 * falls back, nothing stays behind, O_DIRECT stays on. */
	is_int(vv_content_open(store, VV_CONTENT_DEFAULT_CACHE, &c), 0, "open again");
	nbefore = count_files(store);
	os_fault_set(OSF_PWRITE, (struct os_fault){ .err = ENOSPC, .flags_has = O_DIRECT });
	{
		struct vv_block_in in[VV_CHUNK_MAX_BLOCKS];
		struct vv_extent ee[VV_CHUNK_MAX_BLOCKS];
		for (int i = 0; i < VV_CHUNK_MAX_BLOCKS; i++)
			in[i] = (struct vv_block_in){ obj_a, (uint64_t)i, blk[0], VV_BLOCK_SIZE };
		is_int(vv_content_write_chunk(c, key1, in, VV_CHUNK_MAX_BLOCKS, ee), VV_ENOSPC,
		       "ENOSPC on the O_DIRECT write -> VV_ENOSPC");
	}
	os_fault_clear(OSF_PWRITE);
	is_int(count_files(store), nbefore, "no file left behind (final or temp)");
	ok(vv_content_direct_io(c), "ENOSPC is not a refusal of O_DIRECT");
	vv_content_close(c);
	os_fault_uninstall();
	rmrf(store);
	free(store);
}

static void test_list_and_blobs(void)
{
	char *store = mktmp();
	struct vv_content *c = NULL;
	struct vv_extent e[3][4];
	struct listing l;
	char p[4200];
	int all = 1;

	is_int(vv_content_open(store, VV_CONTENT_DEFAULT_CACHE, &c), 0, "open for list");
	for (int i = 0; i < 3; i++)
		write_sample(c, key1, e[i]);
	snprintf(p, sizeof(p), "%s/chunks/zz", store);
	mkdir(p, 0700);
	path_of(p, sizeof(p), store, e[0][0].chunk_id);
	strcpy(strrchr(p, '/') + 1, ".tmp-deadbeef");
	close(open(p, O_CREAT | O_WRONLY, 0600));
	strcpy(strrchr(p, '/') + 1, "notachunk");
	close(open(p, O_CREAT | O_WRONLY, 0600));
	memset(&l, 0, sizeof(l));
	is_int(vv_content_list_all(c, list_cb, junk_cb, &l), 0, "list_all");
	is_int(l.n, 3, "exactly the 3 written chunks");
	for (int i = 0; i < 3; i++)
		all &= listed(&l, e[i][0].chunk_id);
	ok(all, "each written chunk listed");
	ok(l.sizes[0] == vv_content_extent_end(&e[0][3]), "listed size");
	is_int(l.junk, 3, "3 junk names reported");
	memset(&l, 0, sizeof(l));
	is_int(vv_content_list(c, list_cb, &l), 0, "list (junk only logged)");
	is_int(l.n, 3, "list finds 3");

	/* Extent blobs. */
	{
		uint8_t blob[1024];
		struct vv_extent back[8];
		size_t len = 0, n = 0;
		is_int(vv_extent_packed_size(4), 5 + 4 * 52, "packed size");
		is_int(vv_extent_pack(e[1], 4, blob, sizeof(blob), &len), 0, "pack");
		is_int(len, vv_extent_packed_size(4), "pack length");
		is_int(vv_extent_unpack(blob, len, back, 8, &n), 0, "unpack");
		int same = n == 4;
		for (size_t i = 0; same && i < 4; i++)   /* field by field: padding */
			same = back[i].fblock == e[1][i].fblock && back[i].off == e[1][i].off &&
			       back[i].len == e[1][i].len && back[i].slot == e[1][i].slot &&
			       !memcmp(back[i].chunk_id, e[1][i].chunk_id, 32);
		ok(same, "unpack round trip");
		is_int(vv_extent_unpack(blob, len - 1, back, 8, &n), VV_ECORRUPT, "truncated blob");
		is_int(vv_extent_unpack(blob, len, back, 3, &n), VV_ERANGE, "too many for caller");
		is_int(vv_extent_pack(e[1], 4, blob, 50, &len), VV_ERANGE, "pack into small buffer");
		blob[1] = 5;
		is_int(vv_extent_unpack(blob, vv_extent_packed_size(4), back, 8, &n), VV_ECORRUPT, "count mismatch");
		blob[1] = 4;
		blob[5 + 8 + 32 + 4 + 2] = 0x02;     /* len of entry 0 -> 0x2xxxx > block */
		is_int(vv_extent_unpack(blob, vv_extent_packed_size(4), back, 8, &n), VV_ECORRUPT, "len out of range");
		blob[0] = 2;
		is_int(vv_extent_unpack(blob, vv_extent_packed_size(4), back, 8, &n), VV_ECORRUPT, "bad version");
		is_int(vv_extent_unpack(blob, 0, back, 8, &n), VV_ECORRUPT, "empty blob");
	}
	vv_content_close(c);
	rmrf(store);
	free(store);
}

/* ---- concurrent readers --------------------------------------------------------- */

#define CFILE_BLOCKS 512
static struct vv_extent cext[CFILE_BLOCKS];
static struct vv_content *cc;

static void *reader(void *arg)
{
	uintptr_t id = (uintptr_t)arg;
	uint64_t x = 0x1234567 + id * 7919;
	uint8_t *out = malloc(VV_BLOCK_SIZE), *want = malloc(VV_BLOCK_SIZE);
	uintptr_t bad = 0;

	for (int i = 0; i < 200; i++) {
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		uint32_t b = (uint32_t)(x % CFILE_BLOCKS);
		fill(want, cext[b].len, b);
		if (i % 3 == 0) {
			uint32_t from = (uint32_t)(x >> 20) % cext[b].len;
			uint32_t n = cext[b].len - from < 4096 ? cext[b].len - from : 4096;
			if (vv_content_read_range(cc, key1, obj_a, &cext[b], from, n, out) != 0 ||
			    memcmp(out, want + from, n))
				bad++;
		} else if (vv_content_read_block(cc, key1, obj_a, &cext[b], out) != 0 ||
			   memcmp(out, want, cext[b].len)) {
			bad++;
		}
	}
	free(out);
	free(want);
	return (void *)bad;
}

/* Write the 512 blocks of cext (8 chunks) with a cache of cache bytes, run
 * four threads of fn, and check that none counted a bad read. */
static void run_readers(size_t cache, void *(*fn)(void *), const char *what)
{
	char *store = mktmp();
	static uint8_t data[64][VV_BLOCK_SIZE];
	struct vv_block_in in[64];
	pthread_t t[4];
	uintptr_t bad = 0;
	int wr = 0;

	is_int(vv_content_open(store, cache, &cc), 0, "open for threads");
	for (int ch = 0; ch < CFILE_BLOCKS / 64; ch++) {
		for (int i = 0; i < 64; i++) {
			uint64_t fb = (uint64_t)ch * 64 + (uint64_t)i;
			uint32_t len = fb % 17 == 16 ? (uint32_t)(fb * 37 % VV_BLOCK_SIZE + 1) : VV_BLOCK_SIZE;
			fill(data[i], len, fb);
			in[i] = (struct vv_block_in){ obj_a, fb, data[i], len };
		}
		wr |= vv_content_write_chunk(cc, key1, in, 64, &cext[ch * 64]);
	}
	is_int(wr, 0, "write 512 blocks in 8 chunks");
	for (uintptr_t i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, fn, (void *)i);
	for (int i = 0; i < 4; i++) {
		void *rv;
		pthread_join(t[i], &rv);
		bad += (uintptr_t)rv;
	}
	is_int(bad, 0, what);
	vv_content_close(cc);
	cc = NULL;
	rmrf(store);
	free(store);
}

static void test_threads(void)
{
	/* A small cache (4 MiB for 32 MiB of data) so eviction races too. */
	run_readers(4u << 20, reader, "4 threads x 200 random reads, all correct");
}

/* ---- read-ahead (vv_content_prefetch) ------------------------------------------------ */

/* Blocks read after a prefetch are exactly what a plain read gives, and a
 * tampered block is an error, never other bytes, whether the worker or the
 * reader met it first. */
static void test_prefetch(void)
{
	char *store = mktmp(), path[4200];
	static uint8_t data[64][VV_BLOCK_SIZE];
	struct vv_block_in in[64];
	struct vv_extent e[3][64];
	uint8_t *out = malloc(VV_BLOCK_SIZE), *want = malloc(VV_BLOCK_SIZE);
	struct vv_content *c = NULL;
	int wr = 0, bad = 0, r;

	is_int(vv_content_open(store, 16u << 20, &c), 0, "open for prefetch");
	for (int ch = 0; ch < 3; ch++) {
		for (int i = 0; i < 64; i++) {
			uint64_t fb = (uint64_t)ch * 64 + (uint64_t)i;
			uint32_t len = i == 63 ? 777 : VV_BLOCK_SIZE;
			fill(data[i], len, fb + 500);
			in[i] = (struct vv_block_in){ obj_a, fb, data[i], len };
		}
		wr |= vv_content_write_chunk(c, key1, in, 64, e[ch]);
	}
	is_int(wr, 0, "three chunks written");

	r = vv_content_prefetch(c, key1, obj_a, e[0], 64, NULL);
	ok(r > 0 && r <= 64, "prefetch queues the blocks of a chunk");
	for (int i = 0; i < 64; i++) {
		fill(want, e[0][i].len, (uint64_t)i + 500);
		if (vv_content_read_block(c, key1, obj_a, &e[0][i], out) != 0 ||
		    memcmp(out, want, e[0][i].len))
			bad++;
	}
	is_int(bad, 0, "blocks read after prefetch are the written bytes");
	/* Use-once: a prefetched block read to its end leaves the cache (its
	 * buffer is reused); one read only in part stays, and is not queued
	 * again. */
	is_int(vv_content_prefetch(c, key1, obj_a, e[0], 64, NULL), 64,
	       "prefetched blocks read to their end are dropped (queued again)");
	bad = 0;
	for (int i = 0; i < 64; i++) {
		uint32_t half = e[0][i].len / 2;
		fill(want, e[0][i].len, (uint64_t)i + 500);
		if (vv_content_read_range(c, key1, obj_a, &e[0][i], 0, half, out) != 0 ||
		    memcmp(out, want, half))
			bad++;
	}
	is_int(bad, 0, "first halves of prefetched blocks right");
	is_int(vv_content_prefetch(c, key1, obj_a, e[0], 64, NULL), 0,
	       "blocks read in part stay cached and are not queued again");

	/* vv_content_read_take: at the use-once point the block's buffer is
	 * handed over (no copy), with the right bytes; elsewhere it copies. */
	{
		uint8_t *tk = NULL;
		int taken = 0, copied = 0;
		bad = 0;
		for (int i = 0; i < 64; i++) {
			uint32_t half = e[0][i].len / 2, rest = e[0][i].len - half;
			fill(want, e[0][i].len, (uint64_t)i + 500);
			memset(out, 0xAA, VV_BLOCK_SIZE);
			if (vv_content_read_take(c, key1, obj_a, &e[0][i], half, rest, out, &tk) != 0) {
				bad++;
				continue;
			}
			if (tk) {
				taken++;
				bad += memcmp(tk + half, want + half, rest) != 0;
				vv_content_buf_put(c, tk);
			} else {
				bad += memcmp(out, want + half, rest) != 0;
			}
		}
		is_int(bad, 0, "read_take: second halves right, handed over or copied");
		is_int(taken, 64, "read_take: prefetched blocks read to their end are handed over");
		/* Now gone from the cache: a take decrypts and copies. */
		fill(want, e[0][5].len, 5 + 500);
		r = vv_content_read_take(c, key1, obj_a, &e[0][5], 0, e[0][5].len, out, &tk);
		ok(r == 0 && !tk && memcmp(out, want, e[0][5].len) == 0,
		   "read_take of a block not prefetched copies (nothing handed over)");
		r = vv_content_read_take(c, key1, obj_a, &e[0][5], 0, e[0][5].len, out, &tk);
		ok(r == 0 && !tk && memcmp(out, want, e[0][5].len) == 0,
		   "read_take of a block a reader cached copies and keeps it");
		copied = vv_content_prefetch(c, key1, obj_a, &e[0][5], 1, NULL);
		is_int(copied, 0, "a block a reader decrypted stays cached after reads to its end");
		/* Wrong object id: an error, zeros, nothing handed over. */
		vv_content_prefetch(c, key1, obj_a, &e[0][7], 1, NULL);
		r = vv_content_read_take(c, key1, obj_b, &e[0][7], 0, e[0][7].len, out, &tk);
		ok(r == VV_ECORRUPT && !tk, "read_take with the wrong object id: VV_ECORRUPT, nothing handed over");
	}

	/* Prefetch under the wrong object id or key: nothing authenticates, nothing
	 * is cached, and the right reader still gets the right bytes. */
	vv_content_prefetch(c, key1, obj_b, e[1], 32, NULL);
	vv_content_prefetch(c, key2, obj_a, e[1] + 32, 32, NULL);
	bad = 0;
	for (int i = 0; i < 64; i++) {
		fill(want, e[1][i].len, 64 + (uint64_t)i + 500);
		if (vv_content_read_block(c, key1, obj_a, &e[1][i], out) != 0 ||
		    memcmp(out, want, e[1][i].len))
			bad++;
	}
	is_int(bad, 0, "prefetch with a wrong object id or key leaves reads right");
	expect_corrupt(c, key1, obj_b, &e[1][3], "read with the wrong object id after prefetch");

	/* A tampered block in a prefetched chunk: EIO-class error and zeros for
	 * that block, the others right; again after a second prefetch. */
	path_of(path, sizeof(path), store, e[2][0].chunk_id);
	flip(path, (off_t)e[2][10].off + 100);
	vv_content_cache_drop(c);
	for (int pass = 0; pass < 2; pass++) {
		vv_content_prefetch(c, key1, obj_a, e[2], 64, NULL);
		bad = 0;
		for (int i = 0; i < 64; i++) {
			if (i == 10)
				continue;
			fill(want, e[2][i].len, 128 + (uint64_t)i + 500);
			if (vv_content_read_block(c, key1, obj_a, &e[2][i], out) != 0 ||
			    memcmp(out, want, e[2][i].len))
				bad++;
		}
		is_int(bad, 0, pass ? "untampered blocks right (second prefetch)"
				    : "untampered blocks of a tampered chunk right after prefetch");
		expect_corrupt(c, key1, obj_a, &e[2][10],
			       pass ? "tampered block after a second prefetch"
				    : "tampered block after prefetch");
	}

	/* More blocks than the queue holds: *covered says how far it got (a
	 * prefix), never more than was asked, at least what was queued. */
	{
		static struct vv_extent all[192];
		size_t covered = 999;
		memcpy(all, e[0], sizeof(e[0]));
		memcpy(all + 64, e[1], sizeof(e[1]));
		memcpy(all + 128, e[2], sizeof(e[2]));
		vv_content_cache_drop(c);
		r = vv_content_prefetch(c, key1, obj_a, all, 192, &covered);
		ok(r >= 0 && covered <= 192 && (size_t)r <= covered && covered >= 1,
		   "prefetch past the queue's bound: covered is a prefix, at least the queued");
		vv_content_cache_drop(c);
		covered = 999;
		is_int(vv_content_prefetch(c, key1, obj_a, all, 0, &covered), 0, "prefetch of nothing");
		is_int((int)covered, 0, "prefetch of nothing covers nothing");
	}

	/* Close with blocks still queued: they are cancelled (ASan checks the
	 * rest), and unlinking a chunk while its blocks load is safe. */
	vv_content_cache_drop(c);
	vv_content_prefetch(c, key1, obj_a, e[0], 64, NULL);
	vv_content_prefetch(c, key1, obj_a, e[1], 64, NULL);
	is_int(vv_content_unlink(c, e[1][0].chunk_id), 0, "unlink a chunk while it is prefetched");
	expect_corrupt(c, key1, obj_a, &e[2][10], "tampered block, with the queue busy");
	vv_content_close(c);
	ok(1, "close with prefetches queued");
	rmrf(store);
	free(store);
	free(out);
	free(want);
}

/* Readers that prefetch ahead of themselves while others drop the cache
 * and unlink chunks: every read that succeeds has the written bytes. */
static void *pf_reader(void *arg)
{
	uintptr_t id = (uintptr_t)arg, bad = 0;
	uint8_t *out = malloc(VV_BLOCK_SIZE), *want = malloc(VV_BLOCK_SIZE);

	for (int pass = 0; pass < 3; pass++) {
		for (uint32_t b = (uint32_t)id * 37 % CFILE_BLOCKS, k = 0; k < 160; k++) {
			uint32_t fb = (b + k) % CFILE_BLOCKS;
			if (k % 16 == 0)
				vv_content_prefetch(cc, key1, obj_a, &cext[fb],
						    fb + 32 <= CFILE_BLOCKS ? 32 : CFILE_BLOCKS - fb, NULL);
			fill(want, cext[fb].len, fb);
			if (vv_content_read_block(cc, key1, obj_a, &cext[fb], out) != 0 ||
			    memcmp(out, want, cext[fb].len))
				bad++;
		}
		if (id == 0)
			vv_content_cache_drop(cc);
	}
	free(out);
	free(want);
	return (void *)bad;
}

static void test_prefetch_threads(void)
{
	/* 2 MiB of cache for 32 MiB: loading entries meet eviction. */
	run_readers(2u << 20, pf_reader,
		    "4 prefetching readers, cache drops and eviction: all reads right");
}

/* ---- throughput (reported, never asserted) ------------------------------------------ */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void bench(void)
{
	const char *env = getenv("VV_BENCH_MB");
	size_t mb = env ? strtoul(env, NULL, 10) : 256, nch = mb / 4;
	char *store = mktmp();
	struct vv_content *c = NULL;
	static uint8_t data[VV_BLOCK_SIZE];
	struct vv_block_in in[64];
	struct vv_extent *ext = calloc(nch * 64 + 1, sizeof(*ext));
	uint8_t *out = malloc(VV_BLOCK_SIZE);
	char msg[200];
	double t0, t1, t2, t3;
	int r = 0;

	if (!nch || !ext)
		goto out;
	fill(data, sizeof(data), 42);
	vv_content_open(store, VV_CONTENT_DEFAULT_CACHE, &c);
	for (int i = 0; i < 64; i++)
		in[i] = (struct vv_block_in){ obj_a, (uint64_t)i, data, VV_BLOCK_SIZE };
	t0 = now();
	for (size_t ch = 0; ch < nch && r == 0; ch++) {
		for (int i = 0; i < 64; i++)
			in[i].fblock = ch * 64 + (uint64_t)i;
		r = vv_content_write_chunk(c, key1, in, 64, &ext[ch * 64]);
	}
	t1 = now();
	vv_content_cache_drop(c);
	for (size_t i = 0; i < nch * 64 && r == 0; i++)
		r = vv_content_read_block(c, key1, obj_a, &ext[i], out);
	t2 = now();
	/* Again: still all misses (LRU, data > cache), but the heap and the
	 * page cache are now warm, as in a long-running daemon. */
	vv_content_cache_drop(c);
	for (size_t i = 0; i < nch * 64 && r == 0; i++)
		r = vv_content_read_block(c, key1, obj_a, &ext[i], out);
	t3 = now();
	is_int(r, 0, "benchmark ran");
	snprintf(msg, sizeof(msg), "write_chunk %zu MiB: %.0f MB/s; read_block cold cache: %.0f MB/s, "
		 "second pass %.0f MB/s", mb, mb * 1.048576 / (t1 - t0), mb * 1.048576 / (t2 - t1),
		 mb * 1.048576 / (t3 - t2));
	tap_diag(msg);
	vv_content_close(c);
out:
	rmrf(store);
	free(store);
	free(ext);
	free(out);
}

int main(void)
{
	if (vv_crypto_init() < 0)
		tap_skip_all("crypto init failed");
	vv_random_bytes(key1, 32);
	vv_random_bytes(key2, 32);
	vv_random_bytes(obj_a, 16);
	vv_random_bytes(obj_b, 16);
	vv_random_bytes(obj_c, 16);
	for (int i = 0; i < 4; i++) {
		blk[i] = malloc(VV_BLOCK_SIZE);
		fill(blk[i], VV_BLOCK_SIZE, 1000 + (uint64_t)i);
	}
	test_roundtrip_and_tamper();
	test_prefetch();
	test_prefetch_threads();
	test_no_plaintext();
	test_sync();
	test_direct();
	test_list_and_blobs();
	test_threads();
	bench();
	for (int i = 0; i < 4; i++)
		free(blk[i]);
	return tap_done();
}
