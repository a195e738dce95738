/*
 * noprobe.c - LD_PRELOAD shim for scale-bench-dirs.sh: getxattr and
 * lgetxattr of security.selinux and system.posix_acl_* fail with ENOTSUP
 * without a system call, so `ls -l` under it costs what it would if the
 * kernel cached those two answers.  The difference to a plain `ls -l` is
 * the price of the per-file xattr probes (docs/design.md, "Large
 * directories").  Build: cc -O2 -shared -fPIC -o noprobe.so noprobe.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/types.h>

typedef ssize_t (*getx_fn)(const char *, const char *, void *, size_t);

/* The probe names fail at once; anything else goes to libc's sym. */
static ssize_t pass(const char *sym, getx_fn *real, const char *path, const char *name,
		    void *value, size_t size)
{
	if (strcmp(name, "security.selinux") == 0 || strncmp(name, "system.posix_acl_", 17) == 0) {
		errno = ENOTSUP;
		return -1;
	}
	if (!*real)
		*real = (getx_fn)dlsym(RTLD_NEXT, sym);
	return (*real)(path, name, value, size);
}

ssize_t getxattr(const char *path, const char *name, void *value, size_t size)
{
	static getx_fn real;

	return pass("getxattr", &real, path, name, value, size);
}

ssize_t lgetxattr(const char *path, const char *name, void *value, size_t size)
{
	static getx_fn real;

	return pass("lgetxattr", &real, path, name, value, size);
}
