/*
 * secret.c - copies of login secrets (an API key, a password) kept for a
 * connection's life: the vv:// client's for logging in again after a
 * reconnect, the server's for re-checking a key session.  Each lives in
 * pages of its own, left out of core dumps, locked when the limit allows,
 * and is wiped before it is unmapped.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "net_int.h"

char *net_secret_keep(const char *s, size_t n, size_t *cap, bool *locked)
{
	long pg = sysconf(_SC_PAGESIZE);
	size_t psz = pg > 0 ? (size_t)pg : 4096;
	char *p;

	*cap = (n + 1 + psz - 1) / psz * psz;
	p = mmap(NULL, *cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	(void)madvise(p, *cap, MADV_DONTDUMP);
	*locked = mlock(p, *cap) == 0;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void net_secret_drop(char *p, size_t cap)
{
	if (!p)
		return;
	explicit_bzero(p, cap);
	munlock(p, cap);
	munmap(p, cap);
}
