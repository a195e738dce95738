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
 *
 * This file is the VFS itself; connections are opened and closed in
 * meta_vfs_open.c, snapshot files made and checked in meta_vfs_copy.c
 * (what the three share: meta_vfs_impl_int.h).
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
#include "meta_vfs_impl_int.h"
#include "meta_vfs_int.h"
#include "os.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

static const char AD_DB[] = "vecvault meta.db page";
static const char AD_WAL[] = "vecvault meta.db wal frame";

/* The WAL index ("shared memory" to SQLite) of one database, in heap
 * memory shared by this process's connections to it (the writer and the
 * checkpointer, vv_metavfs_open_peer): no -shm file, which would be
 * unauthenticated.  Regions and locks as the unix VFS keeps them, between
 * threads instead of processes.  Held by the binding and by each open main
 * file (refs, under meta_vfs_lock); freed with the last. */
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

pthread_mutex_t meta_vfs_lock = PTHREAD_MUTEX_INITIALIZER;
struct binding *meta_vfs_bindings;

sqlite3_vfs *meta_vfs_base;
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

/* Caller holds meta_vfs_lock. */
struct binding *meta_vfs_find_path(const char *path, size_t len)
{
	for (struct binding *b = meta_vfs_bindings; b; b = b->next)
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
int meta_vfs_open_page(const struct mfile *f, uint8_t *buf, const struct region *r,
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
	rc = meta_vfs_open_page(f, page, r, f->wal ? f->pg : NULL);
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
	pthread_mutex_lock(&meta_vfs_lock);
	b = meta_vfs_find_path(f->name, strlen(f->name) - 4);
	if (b)
		b->discarded++;
	pthread_mutex_unlock(&meta_vfs_lock);
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
		pthread_mutex_lock(&meta_vfs_lock);
		meta_vfs_shm_put(f->shm);
		pthread_mutex_unlock(&meta_vfs_lock);
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

struct wshm *meta_vfs_shm_new(void)
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

/* Caller holds meta_vfs_lock. */
void meta_vfs_shm_put(struct wshm *m)
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
	pthread_mutex_lock(&meta_vfs_lock);
	b = meta_vfs_find_path(name, len);
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
	pthread_mutex_unlock(&meta_vfs_lock);
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
			pthread_mutex_lock(&meta_vfs_lock);
			meta_vfs_shm_put(f->shm);
			pthread_mutex_unlock(&meta_vfs_lock);
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
	pthread_mutex_lock(&meta_vfs_lock);
	r = meta_vfs_find_path(name, strlen(name) - 4) != NULL;
	pthread_mutex_unlock(&meta_vfs_lock);
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
	return meta_vfs_base->xFullPathname(meta_vfs_base, n, len, out);
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
static int x_sleep(sqlite3_vfs *v, int us) { return meta_vfs_base->xSleep(meta_vfs_base, us); }
static int x_time(sqlite3_vfs *v, double *t) { return meta_vfs_base->xCurrentTime(meta_vfs_base, t); }
static int x_lasterr(sqlite3_vfs *v, int n, char *msg)
{
	return meta_vfs_base->xGetLastError ? meta_vfs_base->xGetLastError(meta_vfs_base, n, msg) : 0;
}
static int x_time64(sqlite3_vfs *v, sqlite3_int64 *t)
{
	if (meta_vfs_base->iVersion >= 2 && meta_vfs_base->xCurrentTimeInt64)
		return meta_vfs_base->xCurrentTimeInt64(meta_vfs_base, t);
	double d;
	int rc = meta_vfs_base->xCurrentTime(meta_vfs_base, &d);
	*t = (sqlite3_int64)(d * 86400000.0);
	return rc;
}

sqlite3_vfs meta_vfs_sqlite = {
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
	meta_vfs_base = sqlite3_vfs_find(NULL);
	if (!meta_vfs_base)
		return;
	meta_vfs_sqlite.mxPathname = meta_vfs_base->mxPathname;
	reg_rc = sqlite3_vfs_register(&meta_vfs_sqlite, 0);
}


int meta_vfs_register(void)
{
	pthread_once(&reg_once, register_vfs);
	return reg_rc;
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
