/*
 * test_env.c - tools/env.c: the CLI's environment, the one place the
 * variables that steer the engine are read (the engine reads none; the
 * ctest check layout/no-env-in-engine keeps it so).  Each variable keeps
 * the name, meaning and default it had when the engine read it itself.
 */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env.h"
#include "tap.h"
#include "vecvault/audit.h"
#include "vecvault/error.h"
#include "vecvault/vault.h"
#include "vecvault/vector.h"
#include "vector_int.h"

static void clear(void)
{
	unsetenv("VECVAULT_STATE_DIR");
	unsetenv("VECVAULT_AUDIT_DIR");
	unsetenv("XDG_STATE_HOME");
	unsetenv("HOME");
	unsetenv("VECVAULT_TEST_KDF");
}

static void test_state_dir(void)
{
	char out[512];

	clear();
	setenv("VECVAULT_STATE_DIR", "/s/d", 1);
	setenv("XDG_STATE_HOME", "/x", 1);
	is_int(tool_state_dir(out, sizeof(out)), 0, "state dir");
	is_str(out, "/s/d", "VECVAULT_STATE_DIR first");
	unsetenv("VECVAULT_STATE_DIR");
	is_int(tool_state_dir(out, 4), VV_ENAMETOOLONG, "short buffer");
	if (geteuid() == 0) {
		is_int(tool_state_dir(out, sizeof(out)), 0, "root state dir");
		is_str(out, "/var/lib/vecvault", "root: /var/lib/vecvault");
		return;
	}
	is_int(tool_state_dir(out, sizeof(out)), 0, "user state dir");
	is_str(out, "/x/vecvault", "user: $XDG_STATE_HOME/vecvault");
	setenv("XDG_STATE_HOME", "rel", 1);
	setenv("HOME", "/h", 1);
	is_int(tool_state_dir(out, sizeof(out)), 0, "relative XDG_STATE_HOME skipped");
	is_str(out, "/h/.local/state/vecvault", "then $HOME/.local/state/vecvault");
	setenv("HOME", "rel", 1);
	{
		struct passwd *pw = getpwuid(geteuid());
		char want[512];
		if (pw && pw->pw_dir[0] == '/') {
			snprintf(want, sizeof(want), "%s/.local/state/vecvault", pw->pw_dir);
			is_int(tool_state_dir(out, sizeof(out)), 0, "relative HOME: passwd home");
			is_str(out, want, "the passwd entry's home");
		}
	}
	clear();
}

static void test_audit_dir(void)
{
	char out[512];

	clear();
	setenv("VECVAULT_AUDIT_DIR", "/a/d", 1);
	setenv("XDG_STATE_HOME", "/x", 1);
	is_int(tool_audit_dir(out, sizeof(out)), 0, "audit dir");
	is_str(out, "/a/d", "VECVAULT_AUDIT_DIR first");
	unsetenv("VECVAULT_AUDIT_DIR");
	if (geteuid() == 0) {
		is_int(tool_audit_dir(out, sizeof(out)), 0, "root audit dir");
		is_str(out, "/var/log/vecvault", "root: /var/log/vecvault");
		clear();
		return;
	}
	is_int(tool_audit_dir(out, sizeof(out)), 0, "user audit dir");
	is_str(out, "/x/vecvault", "user: $XDG_STATE_HOME/vecvault");
	setenv("XDG_STATE_HOME", "rel", 1);
	setenv("HOME", "/h", 1);
	is_int(tool_audit_dir(out, sizeof(out)), 0, "relative XDG_STATE_HOME skipped");
	is_str(out, "/h/.local/state/vecvault", "then $HOME/.local/state/vecvault");
	unsetenv("HOME");
	is_int(tool_audit_dir(out, sizeof(out)), VV_EINVAL, "no home: EINVAL (use --audit-log)");
	/* the engine joins it with the store id, as the default was before */
	setenv("HOME", "/h", 1);
	unsetenv("XDG_STATE_HOME");
	is_int(tool_audit_dir(out, sizeof(out)), 0, "home again");
	{
		char path[600];
		is_int(vv_audit_default_path(out, "abcd", path, sizeof(path)), 0, "joined");
		is_str(path, "/h/.local/state/vecvault/abcd/audit.log", "same default log path as before");
	}
	clear();
}

static void test_vault_opts(void)
{
	struct tool_dirs d;
	struct vv_vault_opts o;

	clear();
	setenv("VECVAULT_STATE_DIR", "/s", 1);
	setenv("VECVAULT_AUDIT_DIR", "/a", 1);
	memset(&o, 0, sizeof(o));
	o.flags = VV_VAULT_READONLY;
	tool_env_vault_opts(&d, &o);
	ok(o.state_dir && !strcmp(o.state_dir, "/s"), "state_dir from the environment");
	ok(o.audit_dir && !strcmp(o.audit_dir, "/a"), "audit_dir from the environment");
	is_int(o.flags, VV_VAULT_READONLY, "no VECVAULT_TEST_KDF: no test-KDF flag, others kept");
	setenv("VECVAULT_TEST_KDF", "0", 1);
	tool_env_vault_opts(&d, &o);
	is_int(o.flags, VV_VAULT_READONLY, "VECVAULT_TEST_KDF=0: no flag");
	ok(!tool_test_kdf_allowed(), "VECVAULT_TEST_KDF=0 is not 1");
	setenv("VECVAULT_TEST_KDF", "1", 1);
	tool_env_vault_opts(&d, &o);
	is_int(o.flags, VV_VAULT_READONLY | VV_VAULT_ALLOW_TEST_KDF, "VECVAULT_TEST_KDF=1: the explicit flag");
	ok(tool_test_kdf_allowed(), "VECVAULT_TEST_KDF=1 allowed");
	clear();
}

static void test_search_opts(void)
{
	struct vv_search_opts o;

	unsetenv("VV_KNN_OFFLOAD");
	unsetenv("VV_KNN_OFFLOAD_MIN");
	memset(&o, 0, sizeof(o));
	tool_env_search_opts(&o);
	ok(!o.no_offload && !o.offload_min_set, "unset: defaults");
	setenv("VV_KNN_OFFLOAD", "1", 1);
	setenv("VV_KNN_OFFLOAD_MIN", "12x", 1);
	tool_env_search_opts(&o);
	ok(!o.no_offload && !o.offload_min_set, "VV_KNN_OFFLOAD=1, a bad minimum: defaults");
	setenv("VV_KNN_OFFLOAD", "0", 1);
	setenv("VV_KNN_OFFLOAD_MIN", "0", 1);
	tool_env_search_opts(&o);
	ok(o.no_offload, "VV_KNN_OFFLOAD=0: no offload");
	ok(o.offload_min_set && o.offload_min_bytes == 0, "VV_KNN_OFFLOAD_MIN=0: every segment");
	unsetenv("VV_KNN_OFFLOAD");
	unsetenv("VV_KNN_OFFLOAD_MIN");
}

static void test_vector_config(void)
{
	const char *best;

	unsetenv("VV_SIMD");
	unsetenv("VV_BLAS");
	tool_env_vector_config();
	best = vv_knn_kernel_name();
	setenv("VV_SIMD", "scalar", 1);
	tool_env_vector_config();
	is_str(vv_knn_kernel_name(), "scalar", "VV_SIMD=scalar forces the scalar kernel");
	setenv("VV_SIMD", "nonsense", 1);
	tool_env_vector_config();
	is_str(vv_knn_kernel_name(), best, "an unknown VV_SIMD: the best kernel");
	unsetenv("VV_SIMD");
	setenv("VV_BLAS", "0", 1);
	tool_env_vector_config();
	ok(!vv_blas_available(), "VV_BLAS=0: no BLAS batch path");
	unsetenv("VV_BLAS");
	tool_env_vector_config();
	tap_diag(vv_blas_available() ? "BLAS: built in and on" : "BLAS: not built");
}

static void test_notify_socket(void)
{
	unsetenv("NOTIFY_SOCKET");
	ok(tool_notify_socket() == NULL, "no NOTIFY_SOCKET: do not notify");
	setenv("NOTIFY_SOCKET", "", 1);
	ok(tool_notify_socket() == NULL, "empty NOTIFY_SOCKET: do not notify");
	setenv("NOTIFY_SOCKET", "@/org/x", 1);
	ok(tool_notify_socket() && !strcmp(tool_notify_socket(), "@/org/x"), "NOTIFY_SOCKET passed as is");
	unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
	test_state_dir();
	test_audit_dir();
	test_vault_opts();
	test_search_opts();
	test_vector_config();
	test_notify_socket();
	return tap_done();
}
