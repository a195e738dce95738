/* vault_unit.h - what the vault unit tests (test_vault.c, test_vault_knn.c,
 * test_vault_commit.c) share: a scratch directory with a test-KDF store and
 * its anchors, the contexts of root and nobody, and opening and reading
 * through the vault API.  One binary per file, each with its own store. */
#ifndef VV_TEST_VAULT_UNIT_H
#define VV_TEST_VAULT_UNIT_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tap.h"
#include "vecvault/error.h"
#include "vecvault/vault.h"

#define PASS "vault unit test"

static char top[256], store[300], state[300];   /* state: the anchors (vv_vault_opts) */
static const struct vv_ctx root_c = { .id = { .uid = 0, .gid = 0 }, .umask = 022, .comm = "test" };
static const struct vv_ctx nobody_c = { .id = { .uid = 65534, .gid = 65534 }, .umask = 022,
					.comm = "test" };

/* Make TMPDIR/vv-vault-XXXXXX (skips every check when it cannot) and, when
 * with_store, the store TOP/store with its anchors in TOP/state; a store
 * that cannot be made ends the run ("Bail out!", exit 1). */
static inline void vu_setup(bool with_store)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int r;

	snprintf(top, sizeof(top), "%s/vv-vault-XXXXXX", tmp);
	if (!mkdtemp(top))
		tap_skip_all("cannot make a temp dir");
	snprintf(store, sizeof(store), "%s/store", top);
	snprintf(state, sizeof(state), "%s/state", top);
	if (!with_store)
		return;
	r = vv_vault_create_store(store, PASS, strlen(PASS), VV_KDF_PROFILE_TEST,
				  VV_VAULT_ALLOW_TEST_KDF, 0, 0, state);
	if (r < 0) {
		printf("Bail out! cannot create the store %s: %s\n", store, vv_strerror(r));
		exit(1);
	}
}

/* Remove TOP and everything under it. */
static inline void vu_cleanup(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top);
	if (system(cmd) != 0)
		tap_diag("cleanup failed");
}

/* --- helpers ------------------------------------------------------------------ */
static inline struct vv_vault *open_vault(void)
{
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT,
				   .state_dir = state };
	struct vv_vault *v = NULL;
	int r = vv_vault_open(store, PASS, strlen(PASS), &o, &v);

	if (r < 0)
		printf("# open: %s\n", vv_strerror(r));
	return v;
}

static inline struct vv_vault *open_vault_knn(bool off, size_t cap)
{
	struct vv_vault_opts o = { .flags = VV_VAULT_ALLOW_TEST_KDF | VV_VAULT_NO_AUDIT, .knn_off = off,
				   .knn_cache_bytes = cap, .state_dir = state };
	struct vv_vault *v = NULL;
	int r = vv_vault_open(store, PASS, strlen(PASS), &o, &v);

	if (r < 0)
		printf("# open: %s\n", vv_strerror(r));
	return v;
}

static inline int read_all(struct vv_vault *v, uint64_t ino, uint8_t *buf, size_t n)
{
	struct vv_file *fh;
	bool kc;
	ssize_t got;
	int r = vv_vault_open_file(v, &root_c, ino, O_RDONLY, &fh, &kc);

	if (r < 0)
		return r;
	got = vv_vault_read(v, fh, buf, n, 0);
	vv_vault_release(v, fh);
	return (int)got;
}

static inline int count_entry(void *ctx, const struct vv_dirent *e, const struct vv_attr *a)
{
	(*(int *)ctx)++;
	return 0;
}

#endif
