/* vault_files.h - files for the vault unit tests: a byte pattern and a
 * file written whole through the vault API (test_vault*, test_snap,
 * test_backup). */
#ifndef VV_TEST_VAULT_FILES_H
#define VV_TEST_VAULT_FILES_H

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>

#include "vecvault/vault.h"

/* n bytes of a pattern that differs by seed (malloc'ed; NULL on ENOMEM). */
static inline uint8_t *vt_pattern(size_t n, unsigned seed)
{
	uint8_t *b = malloc(n);

	for (size_t i = 0; b && i < n; i++)
		b[i] = (uint8_t)((i * 2654435761u + seed) >> 13);
	return b;
}

/* Create dir/name with mode as c, write data whole, close: 0 or the error;
 * *ino the new inode. */
static inline int vt_write_file(struct vv_vault *v, const struct vv_ctx *c, uint64_t dir,
				const char *name, const uint8_t *data, size_t n, uint32_t mode,
				uint64_t *ino)
{
	struct vv_attr a;
	struct vv_file *fh;
	int r = vv_vault_create(v, c, dir, name, mode, O_WRONLY, &a, &fh);
	ssize_t w;

	if (r < 0)
		return r;
	*ino = a.ino;
	w = vv_vault_write(v, c, fh, data, n, 0);
	r = vv_vault_release(v, fh);
	return w < 0 ? (int)w : r;
}

#endif
