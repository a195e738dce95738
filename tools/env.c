/*
 * env.c - the environment variables that steer the engine, read in one
 * place (env.h says why).  Each function reads what it needs when called,
 * so tests that set a variable for one run of the CLI see it honoured.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env.h"
#include "vecvault/error.h"
#include "vecvault/vault.h"
#include "vecvault/vector.h"

bool tool_test_kdf_allowed(void)
{
	const char *e = getenv("VECVAULT_TEST_KDF");

	return e && !strcmp(e, "1");
}

int tool_state_dir(char *out, size_t outlen)
{
	const char *e = getenv("VECVAULT_STATE_DIR"), *home;
	int n;

	if (e && e[0])
		n = snprintf(out, outlen, "%s", e);
	else if (geteuid() == 0)
		n = snprintf(out, outlen, "/var/lib/vecvault");
	else if ((e = getenv("XDG_STATE_HOME")) && e[0] == '/')
		n = snprintf(out, outlen, "%s/vecvault", e);
	else {
		home = getenv("HOME");
		if (!home || home[0] != '/') {
			struct passwd *pw = getpwuid(geteuid());
			home = pw ? pw->pw_dir : NULL;
		}
		if (!home || home[0] != '/')
			return VV_ENOENT;
		n = snprintf(out, outlen, "%s/.local/state/vecvault", home);
	}
	if (n < 0 || (size_t)n >= outlen)
		return VV_ENAMETOOLONG;
	return 0;
}

int tool_audit_dir(char *out, size_t outlen)
{
	const char *env = getenv("VECVAULT_AUDIT_DIR");
	const char *xdg = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	int n;

	if (env && *env)
		n = snprintf(out, outlen, "%s", env);
	else if (geteuid() == 0)
		n = snprintf(out, outlen, "/var/log/vecvault");
	else if (xdg && *xdg == '/')
		n = snprintf(out, outlen, "%s/vecvault", xdg);
	else if (home && *home)
		n = snprintf(out, outlen, "%s/.local/state/vecvault", home);
	else
		return VV_EINVAL;
	return (n < 0 || (size_t)n >= outlen) ? VV_ENAMETOOLONG : 0;
}

void tool_env_vault_opts(struct tool_dirs *d, struct vv_vault_opts *o)
{
	o->state_dir = tool_state_dir(d->state, sizeof(d->state)) == 0 ? d->state : NULL;
	o->audit_dir = tool_audit_dir(d->audit, sizeof(d->audit)) == 0 ? d->audit : NULL;
	if (tool_test_kdf_allowed())
		o->flags |= VV_VAULT_ALLOW_TEST_KDF;
}

const char *tool_notify_socket(void)
{
	const char *e = getenv("NOTIFY_SOCKET");

	return e && e[0] ? e : NULL;
}

bool tool_env_no_bulk(void)
{
	const char *e = getenv("VECVAULT_BULK");

	return e && !strcmp(e, "0");
}

void tool_env_vector_config(void)
{
	struct vv_vector_config c = { 0 };
	const char *e;

	c.simd = getenv("VV_SIMD");
	e = getenv("VV_BLAS");
	c.no_blas = e && !strcmp(e, "0");
	e = getenv("VV_SCAN_IO");
	if (e && !strcmp(e, "read"))
		c.scan_io = VV_SCAN_IO_READ;
	else if (e && !strcmp(e, "mmap"))
		c.scan_io = VV_SCAN_IO_MMAP;
	e = getenv("VV_IO_URING");
	c.no_uring = e && !strcmp(e, "0");
	e = getenv("VV_BULK");
	c.no_bulk = e && !strcmp(e, "0");
	vv_vector_configure(&c);
}

void tool_env_search_opts(struct vv_search_opts *o)
{
	const char *e = getenv("VV_KNN_OFFLOAD");
	unsigned long long v;
	char *end;

	if (e && !strcmp(e, "0"))
		o->no_offload = true;
	e = getenv("VV_KNN_OFFLOAD_MIN");
	if (e && *e) {
		errno = 0;
		v = strtoull(e, &end, 10);
		if (!errno && !*end) {
			o->offload_min_set = true;
			o->offload_min_bytes = v;
		}
	}
}

#define CTL_ROOT_DIR "/run/vecvault"

/* $XDG_RUNTIME_DIR/vecvault, or VV_ENOENT. */
static int user_ctl_dir(char *out, size_t outlen)
{
	const char *e = getenv("XDG_RUNTIME_DIR");
	int n;

	if (!e || e[0] != '/')
		return VV_ENOENT;
	n = snprintf(out, outlen, "%s/vecvault", e);
	return (n < 0 || (size_t)n >= outlen) ? VV_ENAMETOOLONG : 0;
}

int tool_ctl_socket(const char *vault_id, char *out, size_t outlen)
{
	char dir[PATH_MAX];
	int n, r = 0;

	if (geteuid() == 0)
		snprintf(dir, sizeof(dir), "%s", CTL_ROOT_DIR);
	else if ((r = user_ctl_dir(dir, sizeof(dir))) < 0)
		return r;
	n = snprintf(out, outlen, "%s/%s.sock", dir, vault_id);
	/* sun_path holds 108 bytes with the NUL */
	if (n < 0 || (size_t)n >= outlen || n > 107)
		return VV_ENAMETOOLONG;
	return 0;
}

int tool_ctl_dirs(char (*out)[PATH_MAX], int max)
{
	int n = 0;

	if (n < max)
		snprintf(out[n++], PATH_MAX, "%s", CTL_ROOT_DIR);
	if (n < max && user_ctl_dir(out[n], PATH_MAX) == 0 && strcmp(out[n], CTL_ROOT_DIR) != 0)
		n++;
	return n;
}
