/*
 * remote_allow.c - CIDR whitelists of the remote listener (remote.h).
 *
 * Every address is handled in one form, the 16 bytes of IPv6: an IPv4
 * address or CIDR becomes its IPv4-mapped form (::ffff:a.b.c.d, prefix
 * 96 + n).  So a mapped peer address on a dual-stack socket is judged by
 * the IPv4 rules, and "::/0" (which is explicit, as 0.0.0.0/0 is) admits
 * both families.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vecvault/error.h"
#include "vecvault/remote.h"

struct vv_allow {
	pthread_mutex_t mu;
	size_t n;
	struct vv_cidr c[VV_ALLOW_MAX];
	_Atomic uint64_t ev[5];
};

static const uint8_t mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

int vv_cidr_parse(const char *s, struct vv_cidr *out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	struct vv_cidr c;
	unsigned long bits, maxbits;
	struct in_addr a4;
	char *end;

	if (hl == 0 || hl >= sizeof(host))
		return VV_EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	memset(&c, 0, sizeof(c));
	if (inet_pton(AF_INET, host, &a4) == 1) {
		memcpy(c.addr, mapped_prefix, 12);
		memcpy(c.addr + 12, &a4, 4);
		maxbits = 32;
	} else if (inet_pton(AF_INET6, host, c.addr) == 1) {
		maxbits = 128;
	} else {
		return VV_EINVAL;
	}
	bits = maxbits;
	if (slash) {
		if (slash[1] < '0' || slash[1] > '9')
			return VV_EINVAL;
		bits = strtoul(slash + 1, &end, 10);
		if (*end || bits > maxbits || end - (slash + 1) > 3)
			return VV_EINVAL;
	}
	c.bits = (unsigned)(maxbits == 32 ? 96 + bits : bits);
	/* host bits past the prefix must be zero */
	for (unsigned i = c.bits; i < 128; i++)
		if (c.addr[i / 8] & (0x80 >> (i % 8)))
			return VV_EINVAL;
	*out = c;
	return 0;
}

void vv_cidr_format(const struct vv_cidr *c, char *buf)
{
	char a[INET6_ADDRSTRLEN];

	if (c->bits >= 96 && memcmp(c->addr, mapped_prefix, 12) == 0) {
		inet_ntop(AF_INET, c->addr + 12, a, sizeof(a));
		snprintf(buf, VV_CIDR_TEXT, "%s/%u", a, c->bits - 96);
	} else {
		inet_ntop(AF_INET6, c->addr, a, sizeof(a));
		snprintf(buf, VV_CIDR_TEXT, "%s/%u", a, c->bits);
	}
}

/* The 16-byte form of a peer address; false for other families. */
static bool addr16(const struct sockaddr *sa, uint8_t out[16])
{
	if (!sa)
		return false;
	if (sa->sa_family == AF_INET) {
		memcpy(out, mapped_prefix, 12);
		memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return true;
	}
	return false;
}

bool vv_cidr_match(const struct vv_cidr *c, const struct sockaddr *sa)
{
	uint8_t a[16];
	unsigned full = c->bits / 8, rest = c->bits % 8;

	if (!addr16(sa, a))
		return false;
	if (memcmp(a, c->addr, full) != 0)
		return false;
	if (rest) {
		uint8_t m = (uint8_t)(0xff << (8 - rest));
		if ((a[full] & m) != (c->addr[full] & m))
			return false;
	}
	return true;
}

void vv_sockaddr_format(const struct sockaddr *sa, char *buf)
{
	uint8_t a[16];
	char t[INET6_ADDRSTRLEN];
	unsigned port = 0;

	if (!addr16(sa, a)) {
		snprintf(buf, 64, "unknown");
		return;
	}
	port = sa->sa_family == AF_INET ? ntohs(((const struct sockaddr_in *)sa)->sin_port)
					: ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	if (memcmp(a, mapped_prefix, 12) == 0) {
		inet_ntop(AF_INET, a + 12, t, sizeof(t));
		snprintf(buf, 64, "%s:%u", t, port);
	} else {
		inet_ntop(AF_INET6, a, t, sizeof(t));
		snprintf(buf, 64, "[%s]:%u", t, port);
	}
}

int vv_allow_new(struct vv_allow **out)
{
	struct vv_allow *a = calloc(1, sizeof(*a));

	if (!a)
		return VV_ENOMEM;
	pthread_mutex_init(&a->mu, NULL);
	*out = a;
	return 0;
}

void vv_allow_free(struct vv_allow *a)
{
	if (!a)
		return;
	pthread_mutex_destroy(&a->mu);
	free(a);
}

static bool same(const struct vv_cidr *x, const struct vv_cidr *y)
{
	return x->bits == y->bits && memcmp(x->addr, y->addr, 16) == 0;
}

int vv_allow_add(struct vv_allow *a, const struct vv_cidr *c)
{
	int r = 0;

	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->n; i++)
		if (same(&a->c[i], c)) {
			r = VV_EEXIST;
			goto out;
		}
	if (a->n == VV_ALLOW_MAX) {
		r = VV_ENOSPC;
		goto out;
	}
	a->c[a->n++] = *c;
out:
	pthread_mutex_unlock(&a->mu);
	return r;
}

int vv_allow_remove(struct vv_allow *a, const struct vv_cidr *c)
{
	int r = VV_ENOENT;

	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->n; i++)
		if (same(&a->c[i], c)) {
			memmove(&a->c[i], &a->c[i + 1], (a->n - i - 1) * sizeof(a->c[0]));
			a->n--;
			r = 0;
			break;
		}
	pthread_mutex_unlock(&a->mu);
	return r;
}

size_t vv_allow_list(struct vv_allow *a, struct vv_cidr *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&a->mu);
	n = a->n;
	memcpy(out, a->c, (n < max ? n : max) * sizeof(a->c[0]));
	pthread_mutex_unlock(&a->mu);
	return n;
}

bool vv_allow_match(struct vv_allow *a, const struct sockaddr *sa)
{
	bool hit = false;

	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->n && !hit; i++)
		hit = vv_cidr_match(&a->c[i], sa);
	pthread_mutex_unlock(&a->mu);
	return hit;
}

void vv_allow_count(struct vv_allow *a, enum vv_allow_event ev)
{
	if ((unsigned)ev < 5)
		atomic_fetch_add(&a->ev[ev], 1);
}

void vv_allow_stats(struct vv_allow *a, struct vv_allow_stats *out)
{
	out->accepted = atomic_load(&a->ev[VV_ALLOW_ACCEPTED]);
	out->refused = atomic_load(&a->ev[VV_ALLOW_REFUSED]);
	out->handshakes = atomic_load(&a->ev[VV_ALLOW_HANDSHAKE]);
	out->authenticated = atomic_load(&a->ev[VV_ALLOW_AUTHENTICATED]);
	out->auth_failed = atomic_load(&a->ev[VV_ALLOW_AUTH_FAILED]);
}
