/*
 * fuzz_user.c - libFuzzer target for the text a remote client or an admin
 * request hands the users feature (engine/user_parse.c).
 *
 * Untrusted bytes: an API key token as a network client will send it
 * (vault_key_token_parse, the first thing the remote server runs on it),
 * and the CIDRs, durations, names and uids of user.* / key.* requests.
 * Byte 0 picks the parser; the rest is the text (cut at the first NUL).
 * Invariants asserted (abort() on violation):
 *   - token: accepted only at exactly 64 characters with the vvk_ prefix,
 *     and rebuilding "vvk_" id "_" base64url(secret) gives back the input
 *     (one spelling per key); refused leaves a zero secret;
 *   - CIDR: accepted ones have host bits zero, and their canonical text
 *     parses back to the same network; matching a peer never crashes;
 *   - duration: positive and at most ten years; uid: 1..2^32-2; a valid
 *     name is 1..32 bytes of [a-z0-9_-].
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto_int.h"
#include "user_int.h"
#include "vecvault/users.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_token(const char *s)
{
	char id[VV_KEY_ID_CHARS + 1], back[VV_KEY_TOKEN_CHARS + 1];
	uint8_t sec[32], zero[32] = { 0 };

	if (vault_key_token_parse(s, id, sec) < 0) {
		if (memcmp(sec, zero, 32) != 0)
			abort();
		return;
	}
	if (strlen(s) != VV_KEY_TOKEN_CHARS || strncmp(s, "vvk_", 4) != 0)
		abort();
	memcpy(back, "vvk_", 4);
	memcpy(back + 4, id, VV_KEY_ID_CHARS);
	back[4 + VV_KEY_ID_CHARS] = '_';
	vv_b64url_encode(back + 5 + VV_KEY_ID_CHARS, sec, 32);
	if (strcmp(back, s) != 0)
		abort();
}

static void check_cidr(const char *s)
{
	struct vault_cidr c, c2;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	char text[64];

	if (vault_cidr_parse(s, &c) < 0)
		return;
	if ((c.family == AF_INET && c.bits > 32) || (c.family == AF_INET6 && c.bits > 128) ||
	    (c.family != AF_INET && c.family != AF_INET6))
		abort();
	vault_cidr_format(&c, text, sizeof(text));
	if (vault_cidr_parse(text, &c2) < 0 || memcmp(&c, &c2, sizeof(c)) != 0)
		abort();
	/* The network address itself is inside the network. */
	memset(&in, 0, sizeof(in));
	memset(&in6, 0, sizeof(in6));
	in.sin_family = AF_INET;
	in6.sin6_family = AF_INET6;
	if (c.family == AF_INET) {
		memcpy(&in.sin_addr, c.addr, 4);
		if (!vault_cidr_match(&c, (struct sockaddr *)&in))
			abort();
	} else {
		memcpy(&in6.sin6_addr, c.addr, 16);
		if (!vault_cidr_match(&c, (struct sockaddr *)&in6))
			abort();
	}
	(void)vault_cidr_list_match(s, (struct sockaddr *)&in6);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	int64_t ns;
	uint32_t uid;

	if (size < 1 || size > 4096)
		return 0;
	if (!(s = malloc(size)))
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 4) {
	case 0:
		check_token(s);
		break;
	case 1:
		check_cidr(s);
		break;
	case 2:
		if (vault_user_parse_duration(s, &ns) == 0 &&
		    (ns <= 0 || ns > 3653LL * 86400 * 1000000000LL))
			abort();
		break;
	default:
		if (vault_user_parse_uid(s, &uid) == 0 && (uid == 0 || uid == 0xFFFFFFFFu))
			abort();
		if (vv_user_name_ok(s) && (strlen(s) == 0 || strlen(s) > 32 ||
					      strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
					      strlen(s)))
			abort();
		break;
	}
	free(s);
	return 0;
}
