/*
 * env.h - where the environment enters vecvault.
 *
 * The engine reads no environment (docs/design.md, "Where configuration
 * enters"): the CLI reads every variable that means something to the
 * engine here, in tools/env.c, and hands the values over as explicit
 * options.  The ctest checks layout/no-env-in-engine and layout/no-env-in-fs
 * keep it that way.
 * The variables, their meanings and defaults are the ones the README and
 * the man pages list; only the place that reads them moved here.
 */
#ifndef VV_TOOLS_ENV_H
#define VV_TOOLS_ENV_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

struct vv_vault_opts;
struct vv_search_opts;

/* VECVAULT_TEST_KDF=1: let this run pass VV_VAULT_ALLOW_TEST_KDF /
 * VV_STORE_ALLOW_TEST_KDF (test suites only). */
bool tool_test_kdf_allowed(void);

/* The per-user state directory (rollback anchors; not created here):
 * $VECVAULT_STATE_DIR if set, else /var/lib/vecvault for root, else
 * $XDG_STATE_HOME/vecvault (absolute only), else $HOME/.local/state/vecvault
 * (the passwd entry's home when $HOME is not absolute).  Returns 0,
 * VV_ENOENT (no home) or VV_ENAMETOOLONG. */
int tool_state_dir(char *out, size_t outlen);

/* The directory holding STORE-ID/audit.log by default: $VECVAULT_AUDIT_DIR
 * if set, else /var/log/vecvault for root, else $XDG_STATE_HOME/vecvault
 * (absolute only), else $HOME/.local/state/vecvault.  Returns 0, VV_EINVAL
 * (no home) or VV_ENAMETOOLONG. */
int tool_audit_dir(char *out, size_t outlen);

/* The directories a vault open needs, kept alive for vv_vault_opts. */
struct tool_dirs {
	char state[PATH_MAX];
	char audit[PATH_MAX];
};
/* Fill d and point o->state_dir / o->audit_dir at it (NULL where there is
 * no location: the engine then fails as it always did for a user without a
 * home); add VV_VAULT_ALLOW_TEST_KDF to o->flags under VECVAULT_TEST_KDF=1.
 * Leaves every other field of o alone. */
void tool_env_vault_opts(struct tool_dirs *d, struct vv_vault_opts *o);

/* Process-wide vector choices, once, before any search or mount:
 * $VV_SIMD (scalar|avx2|avx512), $VV_BLAS=0, $VV_SCAN_IO (read|mmap). */
void tool_env_vector_config(void);

/* Per-query choices: $VV_KNN_OFFLOAD=0 sets o->no_offload;
 * $VV_KNN_OFFLOAD_MIN (bytes, a decimal number) sets the offload minimum. */
void tool_env_search_opts(struct vv_search_opts *o);

/* $NOTIFY_SOCKET (systemd's readiness socket), NULL when unset or empty:
 * for vv_fs_opts.notify_socket (fs/ reads no environment either). */
const char *tool_notify_socket(void);
/* VECVAULT_BULK=0: the daemon answers no bulk read (vv_fs_opts.no_bulk). */
bool tool_env_no_bulk(void);

/* The control socket of a daemon this process starts for vault_id (a
 * store id): /run/vecvault/ID.sock as root, else
 * $XDG_RUNTIME_DIR/vecvault/ID.sock ($XDG_RUNTIME_DIR absolute only).
 * 0, VV_ENOENT (a user without $XDG_RUNTIME_DIR: no control socket) or
 * VV_ENAMETOOLONG (past a socket address's 107 bytes). */
int tool_ctl_socket(const char *vault_id, char *out, size_t outlen);

/* The directories the CLI looks in for a daemon's socket, in order: the
 * root daemons' /run/vecvault, then this user's $XDG_RUNTIME_DIR/vecvault.
 * Fills up to max of out (PATH_MAX each); returns how many. */
int tool_ctl_dirs(char (*out)[PATH_MAX], int max);

#endif
