/*
 * meta_vfs_copy.c - snapshot files of meta.db (meta_snap_file.c's): a byte copy
 * of the checkpointed main file with the tag of each page returned for the
 * record (vv_metavfs_copy), a read-only connection to such a copy that
 * checks every page against its recorded tag (vv_metavfs_open_copy), and
 * fsck's check of a copy (vv_metavfs_check_copy).  Why tags bind pages to
 * their places: the top of meta_vfs.c.
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

/* The binding of an open connection (its path, keys, page size), copied
 * out under the registry lock: keys into secure memory the caller frees. */
static int binding_of(sqlite3 *db, char **path, uint8_t **keys, uint32_t *psz)
{
	int r = VV_EINVAL;

	*path = NULL;
	*keys = NULL;
	pthread_mutex_lock(&meta_vfs_lock);
	for (struct binding *b = meta_vfs_bindings; b; b = b->next) {
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
	pthread_mutex_unlock(&meta_vfs_lock);
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
	return meta_vfs_open_page(&f, buf, &rg, NULL) == SQLITE_OK ? 0 : VV_ECORRUPT;
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
	r = meta_vfs_open_with(path, NULL, keys, tags, npages, psz, VV_METAVFS_READONLY, out);
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
			bad = acc != 0 && meta_vfs_open_page(&f, f.pg, &rg, NULL) != SQLITE_OK;
		} else {
			bad = meta_vfs_open_page(&f, f.pg, &rg, NULL) != SQLITE_OK;
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
