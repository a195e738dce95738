/*
 * meta_vfs.c - the SQLite VFS that encrypts meta.db and its WAL page by page.
 *
 * SQLite sees plaintext pages; this VFS stores each page sealed with
 * XChaCha20-Poly1305 in the page's reserved bytes, masks the WAL frame
 * checksums (which SQLite computes over plaintext), and does every system
 * call through engine/os.h so the crash and fault-injection tests cover
 * meta.db as well.  Only the main database and its WAL can be opened: no
 * rollback journal, no -shm (the WAL index is heap memory: this VFS's own,
 * shared by a read-write database's writer and checkpointer connections,
 * struct wshm; SQLite's private heap under exclusive locking for read-only
 * and snapshot connections), no temp files, no mmap.  Page size and reserve come from the
 * caller (the store's conf), never from the file.
 *
 * Main database file, P = page size, page n (1-based) at (n-1)*P:
 *
 *   offset  size    field
 *   0       P-40    ciphertext of SQLite's bytes [0, P-40) of the page
 *   P-40    24      random nonce (fresh on every write)
 *   P-16    16      Poly1305 tag
 *   AD = "vecvault meta.db page" || n (u32 LE);  key = subkey 1
 *
 * WAL file (https://www.sqlite.org/fileformat2.html#walformat):
 *
 *   offset          size  field
 *   0               32    WAL header, plaintext (magic, version, page size,
 *                         checkpoint seq, salts, header checksum: no content)
 *   32 + k*(24+P)   24    frame header k:
 *                           0  4  page number (BE)        plaintext
 *                           4  4  db size after commit     plaintext
 *                           8  8  salt-1, salt-2           plaintext
 *                          16  8  checksum-1, checksum-2   XOR keyed pad
 *   56 + k*(24+P)   P     frame page, sealed as above with
 *                         AD = "vecvault meta.db wal frame" || pgno (u32 LE)
 *                              || salts (8) || frame offset (u64 LE);
 *                         key = subkey 2
 *   pad = BLAKE2b(subkey 3, "walck" || salts (8) || frame offset (u64 LE))[0..8)
 *
 * Subkeys: vv_subkey(key, id, "vvmetavf"), id 1 main pages, 2 WAL pages,
 * 3 checksum pad, 4 the whole-file MAC of a snapshot file of an older
 * build (vv_metavfs_open_copy).  The pad depends only on bytes of the same
 * frame header, so header-only reads and writes (walRewriteChecksums) can
 * apply it.
 *
 * Snapshot files (vv_metavfs_copy): a byte copy of the main file, whose
 * pages' tags (bytes [P-16, P) of each page, in page order) the copy
 * returns and the caller records.  A connection opened on such a file
 * with its tags (vv_metavfs_open_copy) compares the stored tag of every
 * page it reads with the recorded one before opening the page: page n
 * authenticates only at place n (AD), and only the page that was copied
 * there has that tag, so a page or file of another copy, a flipped byte,
 * a truncation or extension fails (SQLITE_IOERR_AUTH), page by page, with
 * nothing read up front.  Its WAL must stay empty (the copy is
 * checkpointed and read-only): any content in it is refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "buf.h"
#include "crypto_int.h"
#include "grow.h"
#include "meta_vfs_int.h"
#include "os.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

#define RESERVE VV_METAVFS_RESERVE
#define WAL_HDR 32
#define FRAME_HDR 24
#define KDF_CTX "vvmetavf"
#define STR_(x) #x
#define STR(x) STR_(x)

/* Layout of the secure key block each binding and file holds. */
enum { K_DB = 0, K_WAL = 1, K_PAD = 2, K_SNAP = 3, NKEYS = 4 };

static const char AD_DB[] = "vecvault meta.db page";
static const char AD_WAL[] = "vecvault meta.db wal frame";

/* path -> keys, for the files SQLite will ask us to open. */
struct binding {
	struct binding *next;
	char *path;             /* as the default VFS's xFullPathname spells it */
	uint8_t *keys;          /* NKEYS * VV_KEY_BYTES, secure memory */
	uint32_t psz;
	int discarded;          /* WAL frames recovery dropped as unauthentic */
	sqlite3 *db;            /* set once open; found again by vv_metavfs_close */
	bool readonly;          /* VV_METAVFS_READONLY */
	bool wal_absent;        /* readonly, and no WAL before we opened */
	bool snap;              /* a snapshot file: its WAL must stay empty */
	uint8_t *tags;          /* its recorded page tags, until the main file takes them */
	uint32_t ntags;         /* pages the record has (0: none, older snapshot) */
	struct wshm *shm;       /* the WAL index its connections share */
};

/* The WAL index ("shared memory" to SQLite) of one database, in heap
 * memory shared by this process's connections to it (the writer and the
 * checkpointer, vv_metavfs_open_peer): no -shm file, which would be
 * unauthenticated.  Regions and locks as the unix VFS keeps them, between
 * threads instead of processes.  Held by the binding and by each open main
 * file (refs, under reg_lock); freed with the last. */
#define SHM_NLOCK 8             /* SQLITE_SHM_NLOCK */
struct wshm {
	pthread_mutex_t mu;
	int refs;
	int nreg;
	size_t regcap;                  /* reg's capacity (VV_GROW) */
	int regsz;
	void **reg;
	int shared[SHM_NLOCK];  /* holders of each lock, shared */
	bool excl[SHM_NLOCK];   /* held exclusive (by one file) */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct binding *reg;

struct mfile {
	sqlite3_file base;      /* must be first */
	int fd;
	bool wal;
	bool dirsync;           /* we created it: fsync its directory at first xSync */
	uint32_t psz;
	uint8_t *keys;          /* own copy (secure memory): outlives any unbind */
	uint8_t *pg;            /* scratch for one frame (24 + P bytes) */
	char *name;             /* full path, for logs and the directory fsync */
	int64_t hoff;           /* offset of the frame header cached in hdr, or -1 */
	uint8_t hdr[FRAME_HDR]; /* last frame header written, unmasked */
	bool snap;              /* of a snapshot file (see the top) */
	uint8_t *tags;          /* main file of a snapshot: the recorded tag of each page */
	uint32_t ntags;
	struct wshm *shm;       /* main file: its database's WAL index */
	uint16_t shm_shared;    /* locks this file holds, by bit */
	uint16_t shm_excl;
};

enum { R_WALHDR, R_FHDR, R_PAGE };

/* One piece of a file in the layout above. */
struct region {
	int kind;
	int64_t start, len;
	int64_t frame;          /* WAL: offset of this frame's header */
	uint32_t pgno;          /* main db: page number */
};

static sqlite3_vfs *base_vfs;   /* the default VFS, for non-I/O methods */
static void shm_put(struct wshm *m);
static int x_shmunmap(sqlite3_file *sf, int del);

static int ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n >= m && strcmp(s + n - m, suf) == 0;
}

static uint8_t *key_of(const struct mfile *f, int which)
{
	return f->keys + (size_t)which * VV_KEY_BYTES;
}

/* Caller holds reg_lock. */
static struct binding *find_path(const char *path, size_t len)
{
	for (struct binding *b = reg; b; b = b->next)
		if (strlen(b->path) == len && memcmp(b->path, path, len) == 0)
			return b;
	return NULL;
}

static void region_at(const struct mfile *f, int64_t off, struct region *r)
{
	int64_t psz = f->psz, fsz = FRAME_HDR + psz, k;

	r->frame = -1;
	r->pgno = 0;
	if (!f->wal) {
		k = off / psz;
		r->kind = R_PAGE;
		r->start = k * psz;
		r->len = psz;
		r->pgno = (uint32_t)(k + 1);
	} else if (off < WAL_HDR) {
		r->kind = R_WALHDR;
		r->start = 0;
		r->len = WAL_HDR;
	} else {
		k = (off - WAL_HDR) / fsz;
		r->frame = WAL_HDR + k * fsz;
		if (off < r->frame + FRAME_HDR) {
			r->kind = R_FHDR;
			r->start = r->frame;
			r->len = FRAME_HDR;
		} else {
			r->kind = R_PAGE;
			r->start = r->frame + FRAME_HDR;
			r->len = psz;
		}
	}
}

/* XOR the checksum bytes of a frame header at offset fo with its pad. */
static int mask_hdr(const struct mfile *f, int64_t fo, uint8_t h[FRAME_HDR])
{
	uint8_t in[5 + 8 + 8], mac[VV_MAC_BYTES];
	int r;

	memcpy(in, "walck", 5);
	memcpy(in + 5, h + 8, 8);
	vv_put_le64(in + 13, (uint64_t)fo);
	r = vv_mac(mac, key_of(f, K_PAD), in, sizeof(in));
	if (r == 0)
		for (int i = 0; i < 8; i++)
			h[16 + i] ^= mac[i];
	vv_memzero(mac, sizeof(mac));
	return r;
}

/* AD for a page; hdr is the frame header (WAL) or NULL (main db). */
static size_t make_ad(uint8_t *ad, const struct region *r, const uint8_t *hdr)
{
	size_t n;

	if (!hdr) {
		memcpy(ad, AD_DB, sizeof(AD_DB) - 1);
		n = sizeof(AD_DB) - 1;
		vv_put_le32(ad + n, r->pgno);
		return n + 4;
	}
	memcpy(ad, AD_WAL, sizeof(AD_WAL) - 1);
	n = sizeof(AD_WAL) - 1;
	vv_put_le32(ad + n, vv_get_be32(hdr));
	memcpy(ad + n + 4, hdr + 8, 8);
	vv_put_le64(ad + n + 12, (uint64_t)r->frame);
	return n + 20;
}

/* Seal the plaintext page in buf (psz bytes) in place. */
static int seal_page(const struct mfile *f, uint8_t *buf, const struct region *r,
		     const uint8_t *hdr)
{
	uint8_t ad[64];
	size_t adlen = make_ad(ad, r, hdr);
	uint32_t body = f->psz - RESERVE;

	vv_random_bytes(buf + body, VV_XNONCE_BYTES);
	return vv_xchacha_seal(buf, buf + body + VV_XNONCE_BYTES, buf, body, ad, adlen,
			       buf + body, key_of(f, hdr ? K_WAL : K_DB));
}

/* Open the sealed page in buf in place; log and fail closed on mismatch. */
static int open_page(const struct mfile *f, uint8_t *buf, const struct region *r,
		     const uint8_t *hdr)
{
	uint8_t ad[64];
	size_t adlen = make_ad(ad, r, hdr);
	uint32_t body = f->psz - RESERVE;
	uint32_t pgno = hdr ? vv_get_be32(hdr) : r->pgno;

	if (vv_xchacha_open(buf, buf, body, buf + body + VV_XNONCE_BYTES, ad, adlen,
			    buf + body, key_of(f, hdr ? K_WAL : K_DB)) < 0) {
		vv_log(VV_LOG_ERR, "meta.db: page %u of %s (%s offset %lld) failed authentication",
		       pgno, f->name, hdr ? "WAL frame at" : "file", (long long)r->start);
		return SQLITE_IOERR_AUTH;
	}
	/* SQLite must see zeros in the reserve, whatever is stored there:
	 * it computes WAL frame checksums over whole pages, reserve
	 * included, and recovery recomputes them over what we return.  Every
	 * page buffer SQLite writes was read through here or zero-filled by
	 * the pager, so this keeps the two computations equal (x_write checks
	 * it). */
	memset(buf + body, 0, RESERVE);
	/* Page 1 carries SQLite's header: it must agree with the conf. */
	if (!hdr && r->pgno == 1) {
		uint32_t ps = (uint32_t)buf[16] << 8 | buf[17];
		if (ps == 1)
			ps = 65536;
		if (ps != f->psz || buf[20] != RESERVE) {
			vv_log(VV_LOG_ERR, "meta.db: %s has page size %u reserve %u, conf says %u/%u",
			       f->name, ps, buf[20], f->psz, RESERVE);
			return SQLITE_IOERR_AUTH;
		}
	}
	return SQLITE_OK;
}

/*
 * Load the page of region r into f->pg (plaintext in [0, P)).  *present is
 * false when the page lies past end of file (f->pg zeroed).  A page cut
 * short by end of file is an error in the main db (fail closed) and absent
 * in the WAL (a torn last frame, which SQLite's recovery ignores).
 */
static const uint8_t zero_tag[VV_TAG_BYTES];

static int load_page(struct mfile *f, const struct region *r, bool *present)
{
	int64_t at = f->wal ? r->frame : r->start;
	size_t want = f->wal ? FRAME_HDR + f->psz : f->psz;
	uint8_t *page = f->wal ? f->pg + FRAME_HDR : f->pg;
	ssize_t got = vv_os_pread_full(f->fd, f->pg, want, at);
	int rc;

	*present = false;
	if (got < 0) {
		vv_log(VV_LOG_ERR, "meta.db: read %s: %s", f->name, strerror((int)-got));
		return SQLITE_IOERR_READ;
	}
	if (f->tags && (r->pgno > f->ntags || (size_t)got < want)) {
		memset(f->pg, 0, want);
		vv_log(VV_LOG_ERR, "meta.db: snapshot file %s: page %u %s (its record has %u pages): "
		       "truncated or replaced", f->name, r->pgno,
		       r->pgno > f->ntags ? "lies past its end" : "is missing or cut short", f->ntags);
		return SQLITE_IOERR_AUTH;
	}
	if (f->tags && vv_memeq_ct(f->tags + (size_t)(r->pgno - 1) * VV_TAG_BYTES, zero_tag, VV_TAG_BYTES)) {
		memset(f->pg, 0, want);
		vv_log(VV_LOG_ERR, "meta.db: snapshot file %s: page %u was free when copied and is not "
		       "in it; no reader opens a free page (a damaged B-tree names it?)", f->name, r->pgno);
		return SQLITE_IOERR_AUTH;
	}
	if (f->tags && !vv_memeq_ct(f->pg + f->psz - VV_TAG_BYTES,
				    f->tags + (size_t)(r->pgno - 1) * VV_TAG_BYTES, VV_TAG_BYTES)) {
		memset(f->pg, 0, want);
		vv_log(VV_LOG_ERR, "meta.db: snapshot file %s: page %u is not the page its snapshot "
		       "recorded (changed, or swapped in from another copy)", f->name, r->pgno);
		return SQLITE_IOERR_AUTH;
	}
	if ((size_t)got < want) {
		memset(f->pg, 0, want);
		if (got > 0 && !f->wal) {
			vv_log(VV_LOG_ERR, "meta.db: page %u of %s is truncated", r->pgno, f->name);
			return SQLITE_IOERR_AUTH;
		}
		return SQLITE_OK;
	}
	rc = open_page(f, page, r, f->wal ? f->pg : NULL);
	if (rc != SQLITE_OK) {
		memset(f->pg, 0, want);
		return rc;
	}
	if (f->wal)
		memmove(f->pg, page, f->psz);
	*present = true;
	return SQLITE_OK;
}

/* The frame header at fo as SQLite wrote it (unmasked); absent -> zeros. */
static int load_hdr(struct mfile *f, int64_t fo, uint8_t h[FRAME_HDR], bool *present)
{
	ssize_t got;

	*present = false;
	if (f->hoff == fo) {
		memcpy(h, f->hdr, FRAME_HDR);
		*present = true;
		return SQLITE_OK;
	}
	got = vv_os_pread_full(f->fd, h, FRAME_HDR, fo);
	if (got < 0) {
		vv_log(VV_LOG_ERR, "meta.db: read %s: %s", f->name, strerror((int)-got));
		return SQLITE_IOERR_READ;
	}
	if (got < FRAME_HDR) {
		memset(h, 0, FRAME_HDR);
		return SQLITE_OK;
	}
	if (mask_hdr(f, fo, h) < 0)
		return SQLITE_IOERR_READ;
	*present = true;
	return SQLITE_OK;
}

static void note_discard(const struct mfile *f, int64_t fo)
{
	struct binding *b;

	vv_log(VV_LOG_WARN, "meta.db: %s: frame at offset %lld failed authentication; "
	       "WAL recovery ends the log there (torn write after a crash, or tampering)",
	       f->name, (long long)fo);
	pthread_mutex_lock(&reg_lock);
	b = find_path(f->name, strlen(f->name) - 4);
	if (b)
		b->discarded++;
	pthread_mutex_unlock(&reg_lock);
}

static int x_read(sqlite3_file *sf, void *out, int amt, sqlite3_int64 off)
{
	struct mfile *f = (struct mfile *)sf;
	uint8_t *dst = out, h[FRAME_HDR];
	int64_t pos = off, end = off + amt;
	bool shortr = false, present;
	int rc = SQLITE_OK;

	if (f->snap && f->wal) {
		/* Nothing of ours ever writes there (the copy is checkpointed
		 * and opened query_only), and SQLite reads a WAL only when it
		 * has content: a planted log would override the pages. */
		vv_log(VV_LOG_ERR, "meta.db: snapshot file %s has content it was never given "
		       "(a planted log?): refused", f->name);
		memset(out, 0, (size_t)amt);
		return SQLITE_IOERR_AUTH;
	}
	while (pos < end) {
		struct region r;
		int64_t n, skip;
		ssize_t got;

		region_at(f, pos, &r);
		n = (end < r.start + r.len ? end : r.start + r.len) - pos;
		skip = pos - r.start;
		switch (r.kind) {
		case R_WALHDR:
			got = vv_os_pread_full(f->fd, dst + (pos - off), (size_t)n, pos);
			if (got < 0) {
				rc = SQLITE_IOERR_READ;
				goto out;
			}
			if (got < n) {
				memset(dst + (pos - off) + got, 0, (size_t)(n - got));
				shortr = true;
			} else if (pos == 0 && n == WAL_HDR) {
				uint32_t magic = vv_get_be32(dst), ps = vv_get_be32(dst + 8);
				if ((magic & ~1u) == 0x377f0682u && ps != f->psz) {
					vv_log(VV_LOG_ERR, "meta.db: %s has page size %u, conf says %u",
					       f->name, ps, f->psz);
					rc = SQLITE_IOERR_AUTH;
					goto out;
				}
			}
			break;
		case R_FHDR:
			/* Never the cache here: reads must show what is on disk. */
			f->hoff = -1;
			if ((rc = load_hdr(f, r.start, h, &present)) != SQLITE_OK)
				goto out;
			shortr |= !present;
			memcpy(dst + (pos - off), h + skip, (size_t)n);
			break;
		case R_PAGE:
			rc = load_page(f, &r, &present);
			if (rc == SQLITE_IOERR_AUTH && f->wal && off <= r.frame) {
				/* A whole-frame read is WAL recovery.  After a
				 * crash the last frames may be torn or stale (a
				 * header over an old generation's page), and SQLite
				 * must then end the log there, as its checksums
				 * would.  Show it page number 0, which it rejects
				 * unconditionally, and count the discard so meta.c
				 * can weigh it against the commit counter. */
				memset(dst + (r.frame - off), 0, 4);
				note_discard(f, r.frame);
				present = true;
				rc = SQLITE_OK;
			}
			if (rc != SQLITE_OK)
				goto out;
			shortr |= !present;
			memcpy(dst + (pos - off), f->pg + skip, (size_t)n);
			break;
		}
		pos += n;
	}
	if (shortr)
		rc = SQLITE_IOERR_SHORT_READ;
out:
	if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ)
		memset(out, 0, (size_t)amt);
	return rc;
}

static int write_err(struct mfile *f, int e)
{
	vv_log(VV_LOG_ERR, "meta.db: write %s: %s", f->name, strerror(-e));
	return (e == -ENOSPC || e == -EDQUOT) ? SQLITE_FULL : SQLITE_IOERR_WRITE;
}

static bool zero_reserve(const uint8_t *p)
{
	uint8_t acc = 0;

	for (int i = 0; i < RESERVE; i++)
		acc |= p[i];
	return acc == 0;
}

/*
 * SQLite writes the frames that follow a frame overwritten in place (a page
 * changed again after the pager spilled it, in the same transaction) with
 * provisional headers: salts and checksums zero.  At commit,
 * walRewriteChecksums() reads those frames back and writes their headers
 * again with the real salts.  The page was sealed under the provisional
 * header's salts (they are in its AD), so before the real header replaces
 * it the page is opened with the old AD and sealed again with the new one:
 * otherwise every such page would fail authentication once committed.  Only
 * a header with zero salts over one for the same page number is such a
 * rewrite; a new frame over an earlier WAL generation's leaves it alone (its
 * page is written next).  The page's bytes never change, so a power cut
 * between the page and the header write leaves an uncommitted frame that
 * recovery drops, as SQLite's own checksums would.
 */
static int reseal_provisional(struct mfile *f, int64_t fo, const uint8_t nh[FRAME_HDR])
{
	static const uint8_t zero[8];
	struct region r = { .kind = R_PAGE, .start = fo + FRAME_HDR, .len = f->psz, .frame = fo };
	uint8_t oh[FRAME_HDR];
	bool present;
	int rc, e;

	if (!f->wal || memcmp(nh + 8, zero, 8) == 0)
		return SQLITE_OK;
	if ((rc = load_hdr(f, fo, oh, &present)) != SQLITE_OK)
		return rc;
	if (!present || memcmp(oh + 8, zero, 8) != 0 || memcmp(oh, nh, 4) != 0)
		return SQLITE_OK;
	r.pgno = vv_get_be32(oh);
	if ((rc = load_page(f, &r, &present)) != SQLITE_OK || !present)
		return rc == SQLITE_IOERR_AUTH ? SQLITE_OK : rc;   /* not a page of ours: left alone */
	if (seal_page(f, f->pg, &r, nh) < 0)
		return SQLITE_IOERR_WRITE;
	if ((e = vv_os_pwrite_full(f->fd, f->pg, f->psz, r.start)) < 0)
		return write_err(f, e);
	return SQLITE_OK;
}

static int x_write(sqlite3_file *sf, const void *in, int amt, sqlite3_int64 off)
{
	struct mfile *f = (struct mfile *)sf;
	const uint8_t *src = in;
	int64_t pos = off, end = off + amt;
	uint8_t h[FRAME_HDR];
	bool present;
	int rc = SQLITE_OK, e;

	if (f->snap) {
		vv_log(VV_LOG_ERR, "meta.db: write to snapshot file %s refused", f->name);
		return SQLITE_IOERR_WRITE;
	}
	while (pos < end) {
		struct region r;
		int64_t n, skip;
		uint8_t *page = f->pg;

		region_at(f, pos, &r);
		n = (end < r.start + r.len ? end : r.start + r.len) - pos;
		skip = pos - r.start;
		switch (r.kind) {
		case R_WALHDR:
			if ((e = vv_os_pwrite_full(f->fd, src + (pos - off), (size_t)n, pos)) < 0) {
				rc = write_err(f, e);
				goto out;
			}
			break;
		case R_FHDR:
			if (n < FRAME_HDR &&
			    (rc = load_hdr(f, r.start, h, &present)) != SQLITE_OK)
				goto out;
			memcpy(h + skip, src + (pos - off), (size_t)n);
			if (n == FRAME_HDR && (rc = reseal_provisional(f, r.start, h)) != SQLITE_OK)
				goto out;
			memcpy(f->hdr, h, FRAME_HDR);
			f->hoff = r.start;
			if (mask_hdr(f, r.start, h) < 0) {
				rc = SQLITE_IOERR_WRITE;
				goto out;
			}
			if ((e = vv_os_pwrite_full(f->fd, h, FRAME_HDR, r.start)) < 0) {
				f->hoff = -1;
				rc = write_err(f, e);
				goto out;
			}
			break;
		case R_PAGE:
			/* The page number (and salts) come from the frame header:
			 * the one just written, or the one on disk when SQLite
			 * overwrites a frame's page in place. */
			if (f->wal) {
				if ((rc = load_hdr(f, r.frame, h, &present)) != SQLITE_OK)
					goto out;
				if (!present) {
					vv_log(VV_LOG_ERR, "meta.db: %s: page write at %lld without a frame header",
					       f->name, (long long)pos);
					rc = SQLITE_IOERR_WRITE;
					goto out;
				}
			}
			if (f->wal)
				page = f->pg + FRAME_HDR;
			if (n < r.len) {
				/* Partial page: read-modify-write (SQLite does not
				 * do this today, but a torn page is worse).  The
				 * plaintext lands in pg[0, P). */
				if ((rc = load_page(f, &r, &present)) != SQLITE_OK)
					goto out;
				if (page != f->pg)
					memmove(page, f->pg, f->psz);
			}
			memcpy(page + skip, src + (pos - off), (size_t)n);
			if (f->wal && !zero_reserve(page + f->psz - RESERVE)) {
				/* The frame checksum covers these bytes: storing
				 * nonce and tag there would make recovery drop the
				 * frame silently.  Refuse loudly instead. */
				vv_log(VV_LOG_ERR, "meta.db: %s: page %u written with a non-zero reserve",
				       f->name, vv_get_be32(h));
				rc = SQLITE_IOERR_WRITE;
				goto out;
			}
			if (seal_page(f, page, &r, f->wal ? h : NULL) < 0) {
				rc = SQLITE_IOERR_WRITE;
				goto out;
			}
			if ((e = vv_os_pwrite_full(f->fd, page, f->psz, r.start)) < 0) {
				rc = write_err(f, e);
				goto out;
			}
			break;
		}
		pos += n;
	}
out:
	return rc;
}

static int x_close(sqlite3_file *sf)
{
	struct mfile *f = (struct mfile *)sf;
	int rc = SQLITE_OK;

	if (f->fd >= 0 && vv_os_close(f->fd) < 0)
		rc = SQLITE_IOERR_CLOSE;
	f->fd = -1;
	if (f->shm) {
		x_shmunmap(sf, 0);
		pthread_mutex_lock(&reg_lock);
		shm_put(f->shm);
		pthread_mutex_unlock(&reg_lock);
		f->shm = NULL;
	}
	if (f->pg) {
		vv_memzero(f->pg, FRAME_HDR + (size_t)f->psz);
		free(f->pg);
	}
	vv_secure_free(f->keys);
	free(f->name);
	free(f->tags);
	f->pg = NULL;
	f->keys = NULL;
	f->name = NULL;
	f->tags = NULL;
	return rc;
}

static int x_truncate(sqlite3_file *sf, sqlite3_int64 size)
{
	struct mfile *f = (struct mfile *)sf;

	f->hoff = -1;
	return vv_os_ftruncate(f->fd, size) < 0 ? SQLITE_IOERR_TRUNCATE : SQLITE_OK;
}

/* A file we created is durable only once its directory entry is: fsync the
 * directory at the file's first sync. */
static int sync_dir_once(struct mfile *f)
{
	char *slash;
	int e;

	if (!f->dirsync)
		return 0;
	slash = strrchr(f->name, '/');
	if (slash) {
		*slash = '\0';
		e = vv_os_fsync_dir(slash == f->name ? "/" : f->name);
		*slash = '/';
		if (e < 0)
			return e;
	}
	f->dirsync = false;
	return 0;
}

static int x_sync(sqlite3_file *sf, int flags)
{
	struct mfile *f = (struct mfile *)sf;
	int rc = SQLITE_OK;

	(void)flags;
	if (vv_os_fsync(f->fd) < 0)
		rc = SQLITE_IOERR_FSYNC;
	else if (sync_dir_once(f) < 0)
		rc = SQLITE_IOERR_DIR_FSYNC;
	if (rc != SQLITE_OK)
		vv_log(VV_LOG_ERR, "meta.db: fsync %s failed", f->name);
	return rc;
}

static int x_filesize(sqlite3_file *sf, sqlite3_int64 *size)
{
	struct mfile *f = (struct mfile *)sf;
	struct stat st;

	if (vv_os_fstat(f->fd, &st) < 0)
		return SQLITE_IOERR_FSTAT;
	if (f->tags && (uint64_t)st.st_size != (uint64_t)f->ntags * f->psz) {
		vv_log(VV_LOG_ERR, "meta.db: snapshot file %s is %lld bytes, its record says %u pages "
		       "of %u: truncated, extended or replaced", f->name, (long long)st.st_size,
		       f->ntags, f->psz);
		return SQLITE_IOERR_AUTH;
	}
	*size = st.st_size;
	return SQLITE_OK;
}

/* The store holds an flock and SQLite runs in exclusive mode. */
static int x_lock(sqlite3_file *sf, int lvl) { return SQLITE_OK; }
static int x_unlock(sqlite3_file *sf, int lvl) { return SQLITE_OK; }
static int x_reserved(sqlite3_file *sf, int *res) { *res = 0; return SQLITE_OK; }
static int x_sectorsize(sqlite3_file *sf) { return 4096; }
/* Power-safe overwrite, as SQLite's own unix VFS reports by default: a
 * write never damages bytes outside its range, even at a power cut.  Without
 * it SQLite pads each synced commit to a sector boundary and splits the page
 * write that crosses it around an fsync; a partial page cannot be sealed, and
 * reading the rest back would fail authentication against the stale frame
 * left on disk by an earlier generation of the WAL. */
static int x_devchar(sqlite3_file *sf) { return SQLITE_IOCAP_POWERSAFE_OVERWRITE; }

static int x_fcntl(sqlite3_file *sf, int op, void *arg)
{
	switch (op) {
	case SQLITE_FCNTL_MMAP_SIZE:
		/* No mmap I/O: pages must pass through xRead to be opened. */
		*(sqlite3_int64 *)arg = 0;
		return SQLITE_OK;
	case SQLITE_FCNTL_VFSNAME:
		*(char **)arg = sqlite3_mprintf("%s", VV_METAVFS_NAME);
		return SQLITE_OK;
	default:
		return SQLITE_NOTFOUND;
	}
}

/* --- the WAL index (struct wshm) ------------------------------------------------ */

static struct wshm *shm_new(void)
{
	struct wshm *m = calloc(1, sizeof(*m));

	if (m && pthread_mutex_init(&m->mu, NULL) != 0) {
		free(m);
		return NULL;
	}
	if (m)
		m->refs = 1;
	return m;
}

/* Caller holds reg_lock. */
static void shm_put(struct wshm *m)
{
	if (!m || --m->refs > 0)
		return;
	for (int i = 0; i < m->nreg; i++)
		free(m->reg[i]);
	free(m->reg);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

static int x_shmmap(sqlite3_file *sf, int pg, int pgsz, int extend, void volatile **pp)
{
	struct mfile *f = (struct mfile *)sf;
	struct wshm *m = f->shm;
	int rc = SQLITE_OK;

	*pp = NULL;
	if (!m || pg < 0 || pgsz <= 0)
		return SQLITE_IOERR_SHMMAP;
	pthread_mutex_lock(&m->mu);
	if (m->nreg && m->regsz != pgsz) {
		rc = SQLITE_IOERR_SHMMAP;
		goto out;
	}
	if (pg >= m->nreg && extend) {
		if (vv_grow(&m->reg, &m->regcap, (size_t)pg + 1, sizeof(*m->reg)) < 0) {
			rc = SQLITE_NOMEM;
			goto out;
		}
		for (; m->nreg <= pg; m->nreg++)
			if (!(m->reg[m->nreg] = calloc(1, (size_t)pgsz))) {
				rc = SQLITE_NOMEM;
				goto out;
			}
		m->regsz = pgsz;
	}
	if (pg < m->nreg)
		*pp = m->reg[pg];
out:
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static int x_shmlock(sqlite3_file *sf, int ofst, int n, int flags)
{
	struct mfile *f = (struct mfile *)sf;
	struct wshm *m = f->shm;
	uint16_t mask;
	int rc = SQLITE_OK;

	if (!m || ofst < 0 || n < 1 || ofst + n > SHM_NLOCK)
		return SQLITE_IOERR_SHMLOCK;
	mask = (uint16_t)(((1u << n) - 1) << ofst);
	pthread_mutex_lock(&m->mu);
	if (flags & SQLITE_SHM_UNLOCK) {
		for (int i = ofst; i < ofst + n; i++) {
			if (f->shm_shared & (1u << i))
				m->shared[i]--;
			if (f->shm_excl & (1u << i))
				m->excl[i] = false;
		}
		f->shm_shared &= (uint16_t)~mask;
		f->shm_excl &= (uint16_t)~mask;
	} else if (flags & SQLITE_SHM_SHARED) {
		if (!(f->shm_shared & mask)) {
			if (m->excl[ofst]) {
				rc = SQLITE_BUSY;
			} else {
				m->shared[ofst]++;
				f->shm_shared |= mask;
			}
		}
	} else {
		for (int i = ofst; i < ofst + n && rc == SQLITE_OK; i++)
			if ((m->excl[i] && !(f->shm_excl & (1u << i))) ||
			    m->shared[i] > ((f->shm_shared & (1u << i)) ? 1 : 0))
				rc = SQLITE_BUSY;
		if (rc == SQLITE_OK) {
			for (int i = ofst; i < ofst + n; i++)
				m->excl[i] = true;
			f->shm_excl |= mask;
		}
	}
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static void x_shmbarrier(sqlite3_file *sf)
{
	struct mfile *f = (struct mfile *)sf;

	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (f->shm) {
		pthread_mutex_lock(&f->shm->mu);
		pthread_mutex_unlock(&f->shm->mu);
	}
}

/* The index lives as long as its binding or a main file holds it
 * (deleteFlag needs nothing: there is no file). */
static int x_shmunmap(sqlite3_file *sf, int del)
{
	struct mfile *f = (struct mfile *)sf;

	(void)del;
	if (f->shm)
		x_shmlock(sf, 0, SHM_NLOCK, SQLITE_SHM_UNLOCK | SQLITE_SHM_EXCLUSIVE);
	return SQLITE_OK;
}

static const sqlite3_io_methods io_methods = {
	.iVersion = 2,          /* xShm* (heap memory, above); no xFetch */
	.xClose = x_close,
	.xRead = x_read,
	.xWrite = x_write,
	.xTruncate = x_truncate,
	.xSync = x_sync,
	.xFileSize = x_filesize,
	.xLock = x_lock,
	.xUnlock = x_unlock,
	.xCheckReservedLock = x_reserved,
	.xFileControl = x_fcntl,
	.xSectorSize = x_sectorsize,
	.xDeviceCharacteristics = x_devchar,
	.xShmMap = x_shmmap,
	.xShmLock = x_shmlock,
	.xShmBarrier = x_shmbarrier,
	.xShmUnmap = x_shmunmap,
};

static int x_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *sf, int flags, int *oflags)
{
	struct mfile *f = (struct mfile *)sf;
	struct binding *b;
	struct stat st;
	bool wal = (flags & SQLITE_OPEN_WAL) != 0;
	size_t len;
	int fl, fd, rc = SQLITE_CANTOPEN;

	memset(f, 0, sizeof(*f));
	f->fd = -1;
	f->hoff = -1;
	if (!name || !(flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL))) {
		vv_log(VV_LOG_WARN, "meta.db: refused to open %s (flags 0x%x): only the db and its WAL",
		       name ? name : "a temporary file", flags);
		return SQLITE_CANTOPEN;
	}
	len = strlen(name);
	if (wal) {
		if (!ends_with(name, "-wal"))
			return SQLITE_CANTOPEN;
		len -= 4;
	}
	pthread_mutex_lock(&reg_lock);
	b = find_path(name, len);
	if (b) {
		f->psz = b->psz;
		f->snap = b->snap;
		f->keys = vv_secure_alloc(NKEYS * VV_KEY_BYTES);
		if (f->keys)
			memcpy(f->keys, b->keys, NKEYS * VV_KEY_BYTES);
		if (!wal && b->shm) {
			f->shm = b->shm;
			b->shm->refs++;
		}
		if (!wal && b->ntags) {
			/* The main file takes the tags (NULL: a second open
			 * of it, which has none to check with: refused). */
			f->tags = b->tags;
			f->ntags = b->ntags;
			b->tags = NULL;
		}
	}
	pthread_mutex_unlock(&reg_lock);
	if (!b) {
		vv_log(VV_LOG_WARN, "meta.db: refused to open %s: no key bound", name);
		goto out;
	}
	if (!wal && f->ntags && !f->tags) {
		vv_log(VV_LOG_ERR, "meta.db: snapshot file %s opened twice: refused", name);
		goto out;
	}
	f->wal = wal;
	f->pg = malloc(FRAME_HDR + (size_t)f->psz);
	f->name = strdup(name);
	if (!f->keys || !f->pg || !f->name) {
		rc = SQLITE_NOMEM;
		goto out;
	}
	fl = (flags & SQLITE_OPEN_READONLY) ? O_RDONLY : O_RDWR;
	if (flags & SQLITE_OPEN_CREATE) {
		fl |= O_CREAT;
		f->dirsync = vv_os_stat(name, &st) == -ENOENT;
	}
	fd = vv_os_open(name, fl | O_NOFOLLOW, 0600);
	if (fd < 0) {
		vv_log(VV_LOG_ERR, "meta.db: open %s: %s", name, strerror(-fd));
		goto out;
	}
	f->fd = fd;
	f->base.pMethods = &io_methods;
	if (oflags)
		*oflags = flags;
	rc = SQLITE_OK;
out:
	if (rc != SQLITE_OK) {
		if (f->shm) {
			pthread_mutex_lock(&reg_lock);
			shm_put(f->shm);
			pthread_mutex_unlock(&reg_lock);
		}
		free(f->pg);
		free(f->name);
		free(f->tags);
		vv_secure_free(f->keys);
		memset(f, 0, sizeof(*f));
	}
	return rc;
}

static bool is_bound_wal(const char *name)
{
	bool r = false;

	if (!ends_with(name, "-wal"))
		return false;
	pthread_mutex_lock(&reg_lock);
	r = find_path(name, strlen(name) - 4) != NULL;
	pthread_mutex_unlock(&reg_lock);
	return r;
}

static int x_delete(sqlite3_vfs *vfs, const char *name, int syncdir)
{
	struct stat st;
	int e;

	if (!is_bound_wal(name)) {
		/* SQLite only ever deletes journals we never let it create. */
		return vv_os_stat(name, &st) == -ENOENT ? SQLITE_IOERR_DELETE_NOENT
							: SQLITE_IOERR_DELETE;
	}
	e = vv_os_unlink(name);
	if (e == -ENOENT)
		return SQLITE_IOERR_DELETE_NOENT;
	if (e < 0)
		return SQLITE_IOERR_DELETE;
	if (syncdir) {
		char *dir = strdup(name), *slash;
		if (!dir)
			return SQLITE_NOMEM;
		slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		e = slash ? vv_os_fsync_dir(slash == dir ? "/" : dir) : 0;
		free(dir);
		if (e < 0)
			return SQLITE_IOERR_DIR_FSYNC;
	}
	return SQLITE_OK;
}

static int x_access(sqlite3_vfs *vfs, const char *name, int flags, int *res)
{
	struct stat st;

	*res = 0;
	/* Neither may exist for us: a hot journal or a -shm left by another
	 * program is ignored, never trusted. */
	if (ends_with(name, "-journal") || ends_with(name, "-shm"))
		return SQLITE_OK;
	if (vv_os_stat(name, &st) < 0)
		return SQLITE_OK;
	*res = flags == SQLITE_ACCESS_EXISTS ? (!S_ISREG(st.st_mode) || st.st_size > 0) : 1;
	return SQLITE_OK;
}

static int x_fullpath(sqlite3_vfs *v, const char *n, int len, char *out)
{
	return base_vfs->xFullPathname(base_vfs, n, len, out);
}
static void *x_dlopen(sqlite3_vfs *v, const char *n) { return NULL; }
static void x_dlerror(sqlite3_vfs *v, int n, char *msg)
{
	snprintf(msg, (size_t)n, "extensions are disabled");
}
static void (*x_dlsym(sqlite3_vfs *v, void *h, const char *s))(void) { return NULL; }
static void x_dlclose(sqlite3_vfs *v, void *h) { }
static int x_random(sqlite3_vfs *v, int n, char *out)
{
	vv_random_bytes(out, (size_t)n);
	return n;
}
static int x_sleep(sqlite3_vfs *v, int us) { return base_vfs->xSleep(base_vfs, us); }
static int x_time(sqlite3_vfs *v, double *t) { return base_vfs->xCurrentTime(base_vfs, t); }
static int x_lasterr(sqlite3_vfs *v, int n, char *msg)
{
	return base_vfs->xGetLastError ? base_vfs->xGetLastError(base_vfs, n, msg) : 0;
}
static int x_time64(sqlite3_vfs *v, sqlite3_int64 *t)
{
	if (base_vfs->iVersion >= 2 && base_vfs->xCurrentTimeInt64)
		return base_vfs->xCurrentTimeInt64(base_vfs, t);
	double d;
	int rc = base_vfs->xCurrentTime(base_vfs, &d);
	*t = (sqlite3_int64)(d * 86400000.0);
	return rc;
}

static sqlite3_vfs vfs = {
	.iVersion = 2,
	.szOsFile = sizeof(struct mfile),
	.zName = VV_METAVFS_NAME,
	.xOpen = x_open,
	.xDelete = x_delete,
	.xAccess = x_access,
	.xFullPathname = x_fullpath,
	.xDlOpen = x_dlopen,
	.xDlError = x_dlerror,
	.xDlSym = x_dlsym,
	.xDlClose = x_dlclose,
	.xRandomness = x_random,
	.xSleep = x_sleep,
	.xCurrentTime = x_time,
	.xGetLastError = x_lasterr,
	.xCurrentTimeInt64 = x_time64,
};

static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static int reg_rc = SQLITE_ERROR;

static void register_vfs(void)
{
	base_vfs = sqlite3_vfs_find(NULL);
	if (!base_vfs)
		return;
	vfs.mxPathname = base_vfs->mxPathname;
	reg_rc = sqlite3_vfs_register(&vfs, 0);
}

int vv_metavfs_err(sqlite3 *db, int rc)
{
	int ext = db ? sqlite3_extended_errcode(db) : rc;

	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_NOMEM:
		return VV_ENOMEM;
	case SQLITE_FULL:
		return VV_ENOSPC;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return VV_ECORRUPT;
	case SQLITE_IOERR:
		if (rc == SQLITE_IOERR_AUTH || ext == SQLITE_IOERR_AUTH)
			return VV_ECORRUPT;
		return ext == SQLITE_IOERR_NOMEM ? VV_ENOMEM : VV_EIO;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return VV_EBUSY;
	case SQLITE_READONLY:
		return VV_EROFS;
	case SQLITE_CONSTRAINT:
		return VV_EEXIST;
	default:
		return VV_EIO;
	}
}

/* Run one statement and copy the first column of its first row, if any. */
static int pragma(sqlite3 *db, const char *sql, char *ans, size_t anslen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (ans && anslen)
		ans[0] = '\0';
	if (rc != SQLITE_OK)
		goto out;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);
		if (ans && anslen && t)
			snprintf(ans, anslen, "%s", (const char *)t);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			;
	}
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
out:
	if (rc != SQLITE_OK)
		vv_log(VV_LOG_ERR, "meta.db: \"%s\" failed: %s", sql, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc;
}

static void unbind(struct binding *b)
{
	struct binding **pp;

	if (!b)
		return;
	pthread_mutex_lock(&reg_lock);
	for (pp = &reg; *pp; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	shm_put(b->shm);
	pthread_mutex_unlock(&reg_lock);
	vv_secure_free(b->keys);
	free(b->tags);
	free(b->path);
	free(b);
}

/* key: the store's meta key (subkeys derived here); or NULL and keys: a
 * block of NKEYS subkeys to copy (a snapshot file under the same keys). */
static int bind_key(const char *full, const uint8_t key[32], const uint8_t *keys, uint32_t psz,
		    struct binding **out)
{
	struct binding *b = calloc(1, sizeof(*b));
	int r = VV_ENOMEM;

	*out = NULL;
	if (!b)
		goto out;
	b->path = strdup(full);
	b->keys = vv_secure_alloc(NKEYS * VV_KEY_BYTES);
	b->psz = psz;
	b->shm = shm_new();
	if (!b->path || !b->keys || !b->shm)
		goto out;
	if (keys)
		memcpy(b->keys, keys, NKEYS * VV_KEY_BYTES);
	for (int i = 0; !keys && i < NKEYS; i++)
		if ((r = vv_subkey(b->keys + i * VV_KEY_BYTES, key, (uint64_t)i + 1, KDF_CTX)) < 0)
			goto out;
	pthread_mutex_lock(&reg_lock);
	if (find_path(full, strlen(full))) {
		r = VV_EBUSY;
	} else {
		b->next = reg;
		reg = b;
		r = 0;
	}
	pthread_mutex_unlock(&reg_lock);
out:
	if (r < 0 && b) {
		vv_secure_free(b->keys);
		if (b->shm) {
			pthread_mutex_lock(&reg_lock);
			shm_put(b->shm);
			pthread_mutex_unlock(&reg_lock);
		}
		free(b->path);
		free(b);
	} else {
		*out = b;
	}
	return r;
}

/* After a read-only connection closed: SQLite made an empty WAL to read
 * through, and without the checkpoint at close nobody removes it.  Leave
 * the store as we found it (an empty WAL holds nothing). */
static void drop_new_wal(const struct binding *b)
{
	char *wal = NULL;
	struct stat st;

	if (!b || !b->readonly || !b->wal_absent || asprintf(&wal, "%s-wal", b->path) < 0)
		return;
	if (vv_os_stat(wal, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0)
		vv_os_unlink(wal);
	free(wal);
}

/* Existence rules for create / open; see the header. */
static int check_files(const char *full, bool create)
{
	struct stat st;
	char *wal = NULL;
	int e = vv_os_stat(full, &st), r = 0;

	if (create) {
		if (e == 0 && st.st_size > 0) {
			vv_log(VV_LOG_ERR, "meta.db: %s already exists", full);
			r = VV_EEXIST;
			goto out;
		}
		if (asprintf(&wal, "%s-wal", full) < 0) {
			wal = NULL;
			r = VV_ENOMEM;
			goto out;
		}
		if (vv_os_stat(wal, &st) == 0) {
			vv_log(VV_LOG_ERR, "meta.db: stale %s exists", wal);
			r = VV_EEXIST;
		}
		goto out;
	}
	if (e < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		vv_log(VV_LOG_ERR, "meta.db: %s is %s: an initialised vault needs it",
		       full, e < 0 ? "missing" : "empty");
		r = VV_ECORRUPT;
	}
out:
	free(wal);
	return r;
}

static int open_with(const char *path, const uint8_t key[32], const uint8_t *keys, const uint8_t *tags,
		     uint32_t ntags, uint32_t page_size, unsigned flags, sqlite3 **out);

int vv_metavfs_open(const char *path, const uint8_t key[32], uint32_t page_size,
		    unsigned flags, sqlite3 **out)
{
	if (out)
		*out = NULL;
	if (!key)
		return VV_EINVAL;
	return open_with(path, key, NULL, NULL, 0, page_size, flags, out);
}

/* keys (not key): a snapshot file, with its page tags if ntags > 0. */
static int open_with(const char *path, const uint8_t key[32], const uint8_t *keys, const uint8_t *tags,
		     uint32_t ntags, uint32_t page_size, unsigned flags, sqlite3 **out)
{
	struct binding *b = NULL;
	sqlite3 *db = NULL;
	char *full = NULL, sql[64], ans[32];
	bool create = flags & VV_METAVFS_CREATE, ro = flags & VV_METAVFS_READONLY;
	int r = VV_EINVAL, rc, n;

	if (out)
		*out = NULL;
	if (!path || (!key && !keys) || !out || page_size < 1024 || page_size > 65536 ||
	    (page_size & (page_size - 1)))
		goto out;
	if ((r = vv_crypto_init()) < 0)
		goto out;
	pthread_once(&reg_once, register_vfs);
	if (reg_rc != SQLITE_OK) {
		r = VV_EIO;
		goto out;
	}
	r = VV_ENOMEM;
	full = malloc((size_t)vfs.mxPathname + 1);
	if (!full)
		goto out;
	if (base_vfs->xFullPathname(base_vfs, path, vfs.mxPathname + 1, full) != SQLITE_OK) {
		r = VV_ENAMETOOLONG;
		goto out;
	}
	if ((r = check_files(full, create)) < 0)
		goto out;
	if ((r = bind_key(full, key, keys, page_size, &b)) < 0)
		goto out;
	if (keys) {
		b->snap = true;
		if (ntags) {
			if (!(b->tags = malloc((size_t)ntags * VV_TAG_BYTES))) {
				r = VV_ENOMEM;
				goto out;
			}
			memcpy(b->tags, tags, (size_t)ntags * VV_TAG_BYTES);
			b->ntags = ntags;
		}
	}
	if (ro && !create) {
		char *wal = NULL;
		struct stat st;
		if (asprintf(&wal, "%s-wal", full) < 0) {
			r = VV_ENOMEM;
			goto out;
		}
		b->readonly = true;
		b->wal_absent = vv_os_stat(wal, &st) == -ENOENT;
		free(wal);
	}

	rc = sqlite3_open_v2(full, &db, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0),
			     VV_METAVFS_NAME);
	if (rc != SQLITE_OK)
		goto sqlerr;
	/* SQLite checkpoints the WAL into the database when the last
	 * connection closes: not for a read-only open, which must leave a WAL
	 * from a crash as it found it. */
	if (b->readonly && sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL) !=
	    SQLITE_OK) {
		r = VV_EIO;
		goto out;
	}
	if (create) {
		/* Before anything is written: page size and the 40 bytes
		 * SQLite must leave alone for nonce and tag.  journal_mode
		 * MEMORY makes SQLite switch to WAL through mode OFF, so the
		 * one transaction that writes the header needs no journal. */
		snprintf(sql, sizeof(sql), "PRAGMA page_size=%u", page_size);
		if ((rc = pragma(db, sql, NULL, 0)) != SQLITE_OK)
			goto sqlerr;
		n = RESERVE;
		if ((rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &n)) != SQLITE_OK)
			goto sqlerr;
	}
	/* A read-write main database shares its WAL index with a second
	 * connection, the checkpointer (vv_metavfs_open_peer): normal locking
	 * through the heap index above.  Read-only and snapshot connections
	 * stay alone: exclusive locking keeps their index in SQLite's heap. */
	if ((ro || keys) &&
	    (rc = pragma(db, "PRAGMA locking_mode=EXCLUSIVE", ans, sizeof(ans))) != SQLITE_OK)
		goto sqlerr;
	if (create && (rc = pragma(db, "PRAGMA journal_mode=MEMORY", NULL, 0)) != SQLITE_OK)
		goto sqlerr;
	if ((rc = pragma(db, "PRAGMA journal_mode=WAL", ans, sizeof(ans))) != SQLITE_OK)
		goto sqlerr;
	if (strcmp(ans, "wal") != 0) {
		vv_log(VV_LOG_ERR, "meta.db: %s: journal_mode=WAL answered \"%s\"", full, ans);
		r = VV_EIO;
		goto out;
	}
	if ((rc = pragma(db, "PRAGMA temp_store=MEMORY", NULL, 0)) != SQLITE_OK ||
	    (rc = pragma(db, "PRAGMA mmap_size=0", NULL, 0)) != SQLITE_OK ||
	    (rc = pragma(db, "PRAGMA cache_size=-" STR(VV_METAVFS_CACHE_KIB), NULL, 0)) != SQLITE_OK ||
	    (rc = pragma(db, "PRAGMA foreign_keys=OFF", NULL, 0)) != SQLITE_OK ||
	    (ro && (rc = pragma(db, "PRAGMA query_only=ON", NULL, 0)) != SQLITE_OK) ||
	    (rc = pragma(db, "PRAGMA page_size", ans, sizeof(ans))) != SQLITE_OK)
		goto sqlerr;
	n = -1;
	if ((rc = sqlite3_file_control(db, "main", SQLITE_FCNTL_RESERVE_BYTES, &n)) != SQLITE_OK)
		goto sqlerr;
	if (strtoul(ans, NULL, 10) != page_size || n != RESERVE) {
		vv_log(VV_LOG_ERR, "meta.db: %s has page size %s reserve %d, conf says %u/%d",
		       full, ans, n, page_size, RESERVE);
		r = VV_ECORRUPT;
		goto out;
	}
	b->db = db;
	*out = db;
	db = NULL;
	b = NULL;
	r = 0;
	goto out;
sqlerr:
	r = vv_metavfs_err(db, rc);
	if (r == 0)
		r = VV_EIO;
	vv_log(VV_LOG_ERR, "meta.db: open %s: %s", full, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
out:
	if (db)
		sqlite3_close_v2(db);
	drop_new_wal(b);
	unbind(b);
	free(full);
	return r;
}

int vv_metavfs_close(sqlite3 *db)
{
	struct binding *b, *found = NULL;
	sqlite3_stmt *st;
	int r = 0, rc;

	if (!db)
		return 0;
	pthread_mutex_lock(&reg_lock);
	for (b = reg; b; b = b->next)
		if (b->db == db)
			found = b;
	pthread_mutex_unlock(&reg_lock);
	if (!found || !found->readonly) {
		rc = sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			vv_log(VV_LOG_ERR, "meta.db: final checkpoint: %s", sqlite3_errmsg(db));
			r = vv_metavfs_err(db, rc);
		}
	}
	while ((st = sqlite3_next_stmt(db, NULL)) != NULL)
		sqlite3_finalize(st);
	rc = sqlite3_close(db);
	if (rc != SQLITE_OK && r == 0)
		r = VV_EIO;
	drop_new_wal(found);
	unbind(found);
	return r;
}

/* The checkpointer's connection: it syncs what it copies (NORMAL: the WAL
 * before, meta.db after), checkpoints only when asked, spills nothing to
 * disk, maps nothing, caches little and writes no rows. */
static const char *const peer_pragmas[] = {
	"PRAGMA synchronous=NORMAL", "PRAGMA wal_autocheckpoint=0", "PRAGMA temp_store=MEMORY",
	"PRAGMA mmap_size=0", "PRAGMA cache_size=16", "PRAGMA query_only=ON",
};

int vv_metavfs_open_peer(sqlite3 *db, sqlite3 **out)
{
	struct binding *b, *found = NULL;
	sqlite3 *p = NULL;
	char *path = NULL, ans[32];
	int rc, r = VV_EINVAL;

	*out = NULL;
	pthread_mutex_lock(&reg_lock);
	for (b = reg; b; b = b->next)
		if (db && b->db == db)
			found = b;
	if (found && !found->readonly && !found->snap)
		path = strdup(found->path);
	pthread_mutex_unlock(&reg_lock);
	if (!found || found->readonly || found->snap)
		return VV_EINVAL;
	if (!path)
		return VV_ENOMEM;
	rc = sqlite3_open_v2(path, &p, SQLITE_OPEN_READWRITE, VV_METAVFS_NAME);
	/* Never a checkpoint at close (the writer's close makes the last), nor
	 * one SQLite starts by itself; query_only: it writes no rows. */
	if (rc == SQLITE_OK &&
	    sqlite3_db_config(p, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL) != SQLITE_OK)
		rc = SQLITE_ERROR;
	if (rc == SQLITE_OK)
		rc = pragma(p, "PRAGMA journal_mode", ans, sizeof(ans));
	if (rc == SQLITE_OK && strcmp(ans, "wal") != 0) {
		vv_log(VV_LOG_ERR, "meta.db: %s: the checkpointer found journal_mode \"%s\"", path, ans);
		r = VV_EIO;
		goto out;
	}
	for (size_t i = 0; rc == SQLITE_OK && i < sizeof(peer_pragmas) / sizeof(peer_pragmas[0]); i++)
		rc = pragma(p, peer_pragmas[i], NULL, 0);
	if (rc != SQLITE_OK) {
		r = vv_metavfs_err(p, rc);
		if (r == 0)
			r = VV_EIO;
		vv_log(VV_LOG_ERR, "meta.db: open the checkpointer's connection to %s: %s", path,
		       p ? sqlite3_errmsg(p) : sqlite3_errstr(rc));
		goto out;
	}
	*out = p;
	p = NULL;
	r = 0;
out:
	if (p)
		sqlite3_close(p);
	free(path);
	return r;
}

int vv_metavfs_close_peer(sqlite3 *peer)
{
	sqlite3_stmt *st;

	if (!peer)
		return 0;
	while ((st = sqlite3_next_stmt(peer, NULL)) != NULL)
		sqlite3_finalize(st);
	return sqlite3_close(peer) == SQLITE_OK ? 0 : VV_EIO;
}

int vv_metavfs_wal_discarded(sqlite3 *db)
{
	int n = 0;

	pthread_mutex_lock(&reg_lock);
	for (struct binding *b = reg; b; b = b->next)
		if (b->db == db)
			n = b->discarded;
	pthread_mutex_unlock(&reg_lock);
	return n;
}

int vv_metavfs_wal_fd(sqlite3 *db)
{
	sqlite3_file *jf = NULL;
	struct mfile *f;

	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &jf) != SQLITE_OK ||
	    !jf || jf->pMethods != &io_methods)
		return VV_EIO;
	f = (struct mfile *)jf;
	if (!f->wal || f->fd < 0)
		return VV_EIO;
	if (sync_dir_once(f) < 0) {
		vv_log(VV_LOG_ERR, "meta.db: fsync of the directory of %s failed", f->name);
		return VV_EIO;
	}
	return f->fd;
}

/* --- snapshot files (vv_metavfs_copy) ------------------------------------------ */

/* The binding of an open connection (its path, keys, page size), copied
 * out under the registry lock: keys into secure memory the caller frees. */
static int binding_of(sqlite3 *db, char **path, uint8_t **keys, uint32_t *psz)
{
	int r = VV_EINVAL;

	*path = NULL;
	*keys = NULL;
	pthread_mutex_lock(&reg_lock);
	for (struct binding *b = reg; b; b = b->next) {
		if (b->db != db)
			continue;
		*path = strdup(b->path);
		*keys = vv_secure_alloc(NKEYS * VV_KEY_BYTES);
		*psz = b->psz;
		r = *path && *keys ? 0 : VV_ENOMEM;
		if (r == 0)
			memcpy(*keys, b->keys, NKEYS * VV_KEY_BYTES);
		break;
	}
	pthread_mutex_unlock(&reg_lock);
	if (r < 0) {
		free(*path);
		vv_secure_free(*keys);
		*path = NULL;
		*keys = NULL;
	}
	return r;
}

#define COPY_BUF (1u << 20)     /* a multiple of every page size */
static const char MAC_CTX[] = "vecvault snapshot file";

static void mac_start(struct vv_mac_state *st, const uint8_t *keys, uint32_t tag)
{
	uint8_t t[4];

	vv_put_le32(t, tag);
	vv_mac_init(st, keys + (size_t)K_SNAP * VV_KEY_BYTES);
	vv_mac_update(st, MAC_CTX, sizeof(MAC_CTX));
	vv_mac_update(st, t, sizeof(t));
}

static void mac_end(struct vv_mac_state *st, uint64_t size, uint8_t mac[VV_MAC_BYTES])
{
	uint8_t z[8];

	vv_put_le64(z, size);
	vv_mac_update(st, z, sizeof(z));
	vv_mac_final(st, mac);
}

/*
 * Read fd from 0 to its end, writing each piece to out (>= 0), into the
 * MAC st (if any), and the tag of each page of psz bytes into tags (room
 * for ntags; more pages than that fail: the file grew while copied).
 * Pages set in the bitmap skip (1-based) are not written (holes) and get a
 * zero tag.
 */
static int pump(int fd, int out, struct vv_mac_state *st, uint8_t *tags, uint32_t ntags, uint32_t psz,
		const uint8_t *skip, uint64_t *size, const char *name)
{
	uint8_t *buf = malloc(COPY_BUF);
	int64_t off = 0;
	ssize_t n;
	int r = 0;

	if (!buf)
		return VV_ENOMEM;
	while ((n = vv_os_pread_full(fd, buf, COPY_BUF, off)) > 0) {
		if (st)
			vv_mac_update(st, buf, (size_t)n);
		for (ssize_t p = psz; tags && p <= n; p += psz) {
			uint64_t pg = (uint64_t)(off + p) / psz;       /* 1-based */
			if (pg > ntags) {
				vv_log(VV_LOG_ERR, "meta.db: %s grew while copied to %s", name, name);
				r = VV_EIO;
				goto out;
			}
			if (skip && skip[pg / 8] & (1u << (pg % 8)))
				memset(tags + (pg - 1) * VV_TAG_BYTES, 0, VV_TAG_BYTES);
			else
				memcpy(tags + (pg - 1) * VV_TAG_BYTES, buf + p - VV_TAG_BYTES, VV_TAG_BYTES);
		}
		/* The runs of pages to keep (all of them without skip). */
		for (ssize_t a = 0, b; out >= 0 && a < n; a = b) {
			uint64_t pg = (uint64_t)(off + a) / psz + 1;
			if (skip && a + (ssize_t)psz <= n && skip[pg / 8] & (1u << (pg % 8))) {
				b = a + psz;
				continue;
			}
			for (b = a + psz; b < n && !(skip && b + (ssize_t)psz <= n &&
					       skip[((uint64_t)(off + b) / psz + 1) / 8] &
					       (1u << (((uint64_t)(off + b) / psz + 1) % 8))); b += psz)
				;
			if (b > n)
				b = n;
			if ((r = vv_os_pwrite_full(out, buf + a, (size_t)(b - a), off + a)) < 0) {
				vv_log(VV_LOG_ERR, "meta.db: write %s: %s", name, strerror(-r));
				r = r == -ENOSPC ? VV_ENOSPC : VV_EIO;
				goto out;
			}
		}
		off += n;
		/* Start the disk writes while copying: the caller's fsync
		 * then waits for less. */
		if (out >= 0 && off % (8 * COPY_BUF) == 0)
			vv_os_writeback(out, off);
	}
	if (n < 0) {
		vv_log(VV_LOG_ERR, "meta.db: read for a snapshot file: %s", strerror((int)-n));
		r = VV_EIO;
	}
out:
	*size = (uint64_t)off;
	free(buf);
	return r;
}

/* Open page pg of the main file fd into buf (psz bytes). */
static int read_open(int fd, const uint8_t *keys, uint32_t psz, const char *name, uint32_t pg, uint8_t *buf)
{
	struct mfile f = { .psz = psz, .keys = (uint8_t *)keys, .name = (char *)name };
	struct region rg = { .kind = R_PAGE, .start = (int64_t)(pg - 1) * psz, .len = psz, .frame = -1,
			     .pgno = pg };

	if (vv_os_pread_full(fd, buf, psz, rg.start) != (ssize_t)psz)
		return VV_EIO;
	return open_page(&f, buf, &rg, NULL) == SQLITE_OK ? 0 : VV_ECORRUPT;
}

/*
 * The free leaf pages of the main file fd (np pages), from the freelist
 * its page 1 heads (https://www.sqlite.org/fileformat2.html#the_freelist):
 * a bitmap by page number into *skip (malloc), and their count.  Trunk
 * pages stay (few).  Anything unexpected: 0 and no bitmap (all copied).
 */
static uint32_t free_pages(int fd, const uint8_t *keys, uint32_t psz, uint32_t np, const char *name,
			   uint8_t **skip)
{
	uint8_t *pg = malloc(psz), *map = calloc((size_t)np / 8 + 1, 1);
	uint32_t trunk, total, n = 0, cap = (psz - RESERVE) / 4 - 2, guard = 0;

	*skip = NULL;
	if (!pg || !map || read_open(fd, keys, psz, name, 1, pg) < 0)
		goto none;
	trunk = vv_get_be32(pg + 32);
	total = vv_get_be32(pg + 36);
	while (trunk && n < total) {
		uint32_t leaves;
		if (trunk > np || ++guard > np || read_open(fd, keys, psz, name, trunk, pg) < 0)
			goto bad;
		leaves = vv_get_be32(pg + 4);
		if (leaves > cap)
			goto bad;
		for (uint32_t i = 0; i < leaves; i++) {
			uint32_t leaf = vv_get_be32(pg + 8 + 4 * (size_t)i);
			if (leaf < 2 || leaf > np || leaf == trunk)
				goto bad;
			if (!(map[leaf / 8] & (1u << (leaf % 8))))
				n++;
			map[leaf / 8] |= (uint8_t)(1u << (leaf % 8));
		}
		trunk = vv_get_be32(pg);
	}
	if (n == 0)
		goto none;
	vv_memzero(pg, psz);
	free(pg);
	*skip = map;
	return n;
bad:
	vv_log(VV_LOG_WARN, "meta.db: %s: its freelist does not parse (page %u); copying every page",
	       name, trunk);
none:
	if (pg)
		vv_memzero(pg, psz);
	free(pg);
	free(map);
	return 0;
}

int vv_metavfs_copy(sqlite3 *db, const char *dst, uint8_t **tags, uint32_t *npages)
{
	struct stat sb;
	uint8_t *keys = NULL, *t = NULL, *skip = NULL;
	char *src = NULL;
	uint32_t psz, np = 0, nfree;
	uint64_t size = 0;
	int in = -1, out = -1, r;

	*tags = NULL;
	*npages = 0;
	if ((r = binding_of(db, &src, &keys, &psz)) < 0)
		return r;
	if ((in = vv_os_open(src, O_RDONLY | O_NOFOLLOW, 0)) < 0) {
		vv_log(VV_LOG_ERR, "meta.db: open %s: %s", src, strerror(-in));
		r = VV_EIO;
		goto out;
	}
	if ((r = vv_os_fstat(in, &sb)) < 0) {
		r = VV_EIO;
		goto out;
	}
	if (sb.st_size == 0 || sb.st_size % psz || sb.st_size / psz > UINT32_MAX) {
		vv_log(VV_LOG_ERR, "meta.db: %s is %lld bytes, not whole pages: not checkpointed?", src,
		       (long long)sb.st_size);
		r = VV_EIO;
		goto out;
	}
	np = (uint32_t)(sb.st_size / psz);
	if (!(t = malloc((size_t)np * VV_TAG_BYTES))) {
		r = VV_ENOMEM;
		goto out;
	}
	if ((out = vv_os_open(dst, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600)) < 0) {
		vv_log(VV_LOG_ERR, "meta.db: create %s: %s", dst, strerror(-out));
		r = out == -EEXIST ? VV_EEXIST : out == -ENOSPC ? VV_ENOSPC : VV_EIO;
		goto out;
	}
	/* Free pages stay out of the copy (holes): no reader opens them. */
	nfree = free_pages(in, keys, psz, np, src, &skip);
	if ((r = pump(in, out, NULL, t, np, psz, skip, &size, dst)) < 0)
		goto out;
	if (size == (uint64_t)np * psz && (r = vv_os_ftruncate(out, (off_t)size)) < 0) {
		vv_log(VV_LOG_ERR, "meta.db: truncate %s: %s", dst, strerror(-r));
		r = r == -ENOSPC ? VV_ENOSPC : VV_EIO;
		goto out;
	}
	if (nfree)
		vv_log(VV_LOG_INFO, "meta.db: %s: %u of its %u pages free in meta.db, left out",
		       dst, nfree, np);
	if (size != (uint64_t)np * psz) {
		vv_log(VV_LOG_ERR, "meta.db: %s changed size while copied (%llu bytes, then %llu)", src,
		       (unsigned long long)sb.st_size, (unsigned long long)size);
		r = VV_EIO;
		goto out;
	}
	*tags = t;
	*npages = np;
	t = NULL;
out:
	free(skip);
	if (in >= 0)
		vv_os_close(in);
	if (out >= 0)
		vv_os_close(out);
	if (r < 0 && out >= 0)
		vv_os_unlink(dst);
	free(t);
	vv_secure_free(keys);
	free(src);
	return r;
}

int vv_metavfs_open_copy(sqlite3 *db, const char *path, uint32_t tag, const uint8_t mac[VV_MAC_BYTES],
			 const uint8_t *tags, uint32_t npages, sqlite3 **out)
{
	struct vv_mac_state st;
	uint8_t got[VV_MAC_BYTES], *keys = NULL;
	char *src = NULL;
	uint32_t psz;
	uint64_t size = 0;
	int fd = -1, r;

	*out = NULL;
	if (!tags != !npages)
		return VV_EINVAL;
	if ((r = binding_of(db, &src, &keys, &psz)) < 0)
		return r;
	if (mac) {
		/* A snapshot of an older build: its whole file, once. */
		if ((fd = vv_os_open(path, O_RDONLY | O_NOFOLLOW, 0)) < 0) {
			vv_log(VV_LOG_ERR, "meta.db: snapshot file %s: %s", path, strerror(-fd));
			r = fd == -ENOENT ? VV_ECORRUPT : VV_EIO;
			goto out;
		}
		mac_start(&st, keys, tag);
		if ((r = pump(fd, -1, &st, NULL, 0, psz, NULL, &size, path)) < 0)
			goto out;
		mac_end(&st, size, got);
		if (!vv_memeq_ct(got, mac, VV_MAC_BYTES)) {
			vv_log(VV_LOG_ERR, "meta.db: snapshot file %s does not match its record (tampered, "
			       "swapped or truncated)", path);
			r = VV_ECORRUPT;
			goto out;
		}
	} else if (tags && (r = vv_os_stat(path, &(struct stat){ 0 })) < 0) {
		/* Said at once rather than as a failed page read. */
		vv_log(VV_LOG_ERR, "meta.db: snapshot file %s: %s", path, strerror(-r));
		r = r == -ENOENT ? VV_ECORRUPT : VV_EIO;
		goto out;
	}
	r = open_with(path, NULL, keys, tags, npages, psz, VV_METAVFS_READONLY, out);
out:
	vv_memzero(&st, sizeof(st));
	vv_memzero(got, sizeof(got));
	if (fd >= 0)
		vv_os_close(fd);
	vv_secure_free(keys);
	free(src);
	return r;
}

int vv_metavfs_check_copy(sqlite3 *db, const char *path, const uint8_t *tags, uint32_t npages,
			  struct vv_metavfs_damage *dmg)
{
	static const uint8_t zero[VV_TAG_BYTES];
	struct mfile f;
	struct stat sb;
	char *src = NULL;
	int fd = -1, r;

	memset(dmg, 0, sizeof(*dmg));
	memset(&f, 0, sizeof(f));
	if (!tags || !npages)
		return VV_EINVAL;
	if ((r = binding_of(db, &src, &f.keys, &f.psz)) < 0)
		return r;
	f.name = (char *)path;
	dmg->want = (uint64_t)npages * f.psz;
	if (!(f.pg = malloc(f.psz))) {
		r = VV_ENOMEM;
		goto out;
	}
	if ((fd = vv_os_open(path, O_RDONLY | O_NOFOLLOW, 0)) < 0 || vv_os_fstat(fd, &sb) < 0) {
		dmg->missing = true;
		dmg->err = fd < 0 ? fd : -EIO;
		goto out;
	}
	dmg->size = (uint64_t)sb.st_size;
	for (uint32_t pg = 1; pg <= npages; pg++) {
		struct region rg = { .kind = R_PAGE, .start = (int64_t)(pg - 1) * f.psz, .len = f.psz,
				     .frame = -1, .pgno = pg };
		const uint8_t *want = tags + (size_t)(pg - 1) * VV_TAG_BYTES;
		ssize_t got = vv_os_pread_full(fd, f.pg, f.psz, rg.start);
		bool bad;

		if (got < 0) {
			dmg->err = (int)got;
			dmg->missing = true;
			break;
		}
		if ((size_t)got < f.psz) {
			bad = true;
		} else if (!vv_memeq_ct(f.pg + f.psz - VV_TAG_BYTES, want, VV_TAG_BYTES)) {
			bad = true;
		} else if (vv_memeq_ct(want, zero, VV_TAG_BYTES)) {
			/* A page meta.db never wrote (a free page SQLite
			 * skipped): a hole there too, never read. */
			uint8_t acc = 0;
			for (uint32_t i = 0; i < f.psz; i++)
				acc |= f.pg[i];
			bad = acc != 0 && open_page(&f, f.pg, &rg, NULL) != SQLITE_OK;
		} else {
			bad = open_page(&f, f.pg, &rg, NULL) != SQLITE_OK;
		}
		if (bad && dmg->bad++ == 0)
			dmg->first = pg;
	}
out:
	if (fd >= 0)
		vv_os_close(fd);
	if (f.pg) {
		vv_memzero(f.pg, f.psz);
		free(f.pg);
	}
	vv_secure_free(f.keys);
	free(src);
	return r;
}
