/*
 * user_parse.c - the text a user.* or key.* request carries, checked
 * before it reaches meta.db (user_int.h): names, uids, durations, labels,
 * CIDRs, API key tokens.  Pure: no I/O, no vault, no locks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto_int.h"
#include "user_int.h"
#include "vecvault/error.h"
#include "vecvault/users.h"

bool vv_user_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > VV_USER_NAME_MAX)
		return false;
	if (!((name[0] >= 'a' && name[0] <= 'z') || name[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

int vault_user_parse_uid(const char *s, uint32_t *uid)
{
	unsigned long long v = 0;

	if (!s || !*s || strlen(s) > 10)
		return VV_EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return VV_EINVAL;
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (v == 0 || v >= 0xFFFFFFFFull)
		return VV_EINVAL;
	*uid = (uint32_t)v;
	return 0;
}

int vault_user_parse_duration(const char *s, int64_t *ns)
{
	static const struct { char unit; int64_t secs; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 7 * 86400 },
	};
	const int64_t max = 3653LL * 86400;   /* ten years, in seconds */
	int64_t count = 0;
	size_t n = s ? strlen(s) : 0, i;

	if (n < 2 || n > 12)
		return VV_EINVAL;
	for (i = 0; i + 1 < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return VV_EINVAL;
		count = count * 10 + (s[i] - '0');
	}
	if (count == 0)
		return VV_EINVAL;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (units[i].unit != s[n - 1])
			continue;
		if (count > max / units[i].secs)
			return VV_EINVAL;
		*ns = count * units[i].secs * 1000000000LL;
		return 0;
	}
	return VV_EINVAL;
}

bool vault_user_label_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > VV_KEY_LABEL_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* ---- CIDRs ------------------------------------------------------------------ */

static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Are the bits of addr past the prefix all zero? */
static bool host_bits_zero(const uint8_t *addr, unsigned len, unsigned bits)
{
	for (unsigned i = 0; i < len * 8; i++)
		if (i >= bits && (addr[i / 8] & (0x80 >> (i % 8))))
			return false;
	return true;
}

int vault_cidr_parse(const char *s, struct vault_cidr *c)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash;
	size_t hl;
	unsigned bits, max;

	memset(c, 0, sizeof(*c));
	if (!s)
		return VV_EINVAL;
	slash = strchr(s, '/');
	hl = slash ? (size_t)(slash - s) : strlen(s);
	if (hl == 0 || hl >= sizeof(host))
		return VV_EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else {
		return VV_EINVAL;
	}
	bits = max;
	if (slash) {
		const char *p = slash + 1;

		if (!*p || strlen(p) > 3 || (p[0] == '0' && p[1]))
			return VV_EINVAL;
		bits = 0;
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				return VV_EINVAL;
			bits = bits * 10 + (unsigned)(*p - '0');
		}
		if (bits > max)
			return VV_EINVAL;
	}
	if (!host_bits_zero(c->addr, max / 8, bits))
		return VV_EINVAL;
	if (c->family == AF_INET6 && bits >= 96 && memcmp(c->addr, v4mapped, 12) == 0) {
		memmove(c->addr, c->addr + 12, 4);
		memset(c->addr + 4, 0, 12);
		c->family = AF_INET;
		bits -= 96;
	}
	c->bits = bits;
	return 0;
}

void vault_cidr_format(const struct vault_cidr *c, char *buf, size_t cap)
{
	char a[INET6_ADDRSTRLEN];

	if (!inet_ntop(c->family, c->addr, a, sizeof(a)))
		snprintf(a, sizeof(a), "?");
	snprintf(buf, cap, "%s/%u", a, c->bits);
}

bool vault_cidr_match(const struct vault_cidr *c, const struct sockaddr *peer)
{
	const uint8_t *a;
	unsigned full, rest;

	if (!peer)
		return false;
	if (peer->sa_family == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)(const void *)peer)->sin_addr;
		if (c->family != AF_INET)
			return false;
	} else if (peer->sa_family == AF_INET6) {
		a = ((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr.s6_addr;
		if (memcmp(a, v4mapped, 12) == 0) {
			a += 12;
			if (c->family != AF_INET)
				return false;
		} else if (c->family != AF_INET6) {
			return false;
		}
	} else {
		return false;
	}
	full = c->bits / 8;
	rest = c->bits % 8;
	if (memcmp(a, c->addr, full) != 0)
		return false;
	return rest == 0 || ((a[full] ^ c->addr[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

bool vault_cidr_list_match(const char *list, const struct sockaddr *peer)
{
	const char *p = list;

	if (!list || !*list)
		return true;
	while (*p) {
		char one[64];
		size_t n = strcspn(p, ",");
		struct vault_cidr c;

		if (n < sizeof(one)) {
			memcpy(one, p, n);
			one[n] = '\0';
			if (vault_cidr_parse(one, &c) == 0 && vault_cidr_match(&c, peer))
				return true;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

/* ---- tokens ----------------------------------------------------------------- */

int vault_key_token_parse(const char *tok, char id[VV_KEY_ID_CHARS + 1], uint8_t secret[32])
{
	size_t n = tok ? strnlen(tok, 128) : 0;

	memset(secret, 0, 32);
	id[0] = '\0';
	if (n != 4 + VV_KEY_ID_CHARS + 1 + VV_B64URL_LEN(32) || memcmp(tok, "vvk_", 4) != 0 ||
	    tok[4 + VV_KEY_ID_CHARS] != '_')
		return VV_EINVAL;
	for (size_t i = 0; i < VV_KEY_ID_CHARS; i++) {
		char c = tok[4 + i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return VV_EINVAL;
	}
	if (vv_b64url_decode(secret, 32, tok + 4 + VV_KEY_ID_CHARS + 1, VV_B64URL_LEN(32)) < 0)
		return VV_EINVAL;
	memcpy(id, tok + 4, VV_KEY_ID_CHARS);
	id[VV_KEY_ID_CHARS] = '\0';
	return 0;
}

int vault_key_id_of(const char *s, char id[VV_KEY_ID_CHARS + 1])
{
	size_t n = s ? strnlen(s, 128) : 0;

	id[0] = '\0';
	if (n > 4 + VV_KEY_ID_CHARS) {
		uint8_t secret[32];
		int r = vault_key_token_parse(s, id, secret);

		vv_memzero(secret, sizeof(secret));
		return r;
	}
	if (n == 4 + VV_KEY_ID_CHARS && memcmp(s, "vvk_", 4) == 0)
		s += 4;
	else if (n != VV_KEY_ID_CHARS)
		return VV_EINVAL;
	for (size_t i = 0; i < VV_KEY_ID_CHARS; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return VV_EINVAL;
	memcpy(id, s, VV_KEY_ID_CHARS);
	id[VV_KEY_ID_CHARS] = '\0';
	return 0;
}

void vault_peer_text(const struct sockaddr *peer, char *buf, size_t cap)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (peer && peer->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)peer;

		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		snprintf(buf, cap, "%s:%u", a, ntohs(in->sin_port));
	} else if (peer && peer->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)peer;

		inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		snprintf(buf, cap, "[%s]:%u", a, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, cap, "-");
	}
}
