/*
 * user_int.h - vault users and API keys inside the engine (vault_user.c,
 * user_parse.c).  The public side is vecvault/users.h; the admin verbs are
 * vault_user_verbs (admin_int.h).
 *
 * The parsers are pure (no I/O, no vault) so unit tests and a fuzzer can
 * run them: every piece of text a request carries (names, uids, durations,
 * CIDRs, labels, tokens) is checked here before it reaches meta.db.
 */
#ifndef VV_USER_INT_H
#define VV_USER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "meta_int.h"

/* The uids given to users made without a uid, unless the vault's kv
 * records users.uid_first / users.uid_last (verb user.uids): just below
 * 2^31, above systemd's container range (524288-1879048191), below its
 * "foreign" range and the signed limit. */
#define VV_USER_UID_FIRST 2100000000u
#define VV_USER_UID_LAST 2100999999u

#define VV_KEY_MAX_CIDRS 32
#define VV_PASSWORD_MIN 8

/* User names: vv_user_name_ok (vecvault/users.h), the one rule. */
/* A uid given as decimal text: 1..4294967294 (not root, not -1). */
int vault_user_parse_uid(const char *s, uint32_t *uid);
/* "90d", "12h", "30m", "45s", "2w": a positive count and one unit, at most
 * ten years, into ns.  VV_EINVAL otherwise. */
int vault_user_parse_duration(const char *s, int64_t *ns);
/* A label: 1..VV_KEY_LABEL_MAX bytes of printable text (UTF-8 allowed, no
 * control characters). */
bool vault_user_label_ok(const char *s);

/* An IPv4 or IPv6 network.  IPv4-mapped IPv6 networks (::ffff:a.b.c.d/n,
 * n >= 96) are kept as the IPv4 network they cover. */
struct vault_cidr {
	int family;                      /* AF_INET or AF_INET6 */
	uint8_t addr[16];                /* network address, host bits zero */
	unsigned bits;
};
/* "10.0.0.0/8", "2001:db8::/32", or an address alone (/32, /128).  Host
 * bits must be zero (VV_EINVAL: "10.0.0.1/8" is more likely a typo than
 * a network). */
int vault_cidr_parse(const char *s, struct vault_cidr *c);
/* Canonical text (inet_ntop + "/bits"); 64 bytes always suffice. */
void vault_cidr_format(const struct vault_cidr *c, char *buf, size_t cap);
/* Does the peer address fall in c?  IPv4-mapped IPv6 peers are IPv4. */
bool vault_cidr_match(const struct vault_cidr *c, const struct sockaddr *peer);
/* Does peer fall in any CIDR of a stored comma-separated list?  An empty
 * list allows every address; an unparsable entry matches nothing. */
bool vault_cidr_list_match(const char *list, const struct sockaddr *peer);

/* Split "vvk_<16 hex>_<43 base64url>" into id and the 32-byte secret.
 * VV_EINVAL for anything else (the secret is then zeroed). */
int vault_key_token_parse(const char *tok, char id[VV_KEY_ID_CHARS + 1], uint8_t secret[32]);

/* The public id of an API key named by its id (16 lower-case hex digits),
 * "vvk_<id>" or its well-formed full token "vvk_<id>_<secret>" (the secret
 * is not kept).  0, or VV_EINVAL for anything else (id is then ""). */
int vault_key_id_of(const char *s, char id[VV_KEY_ID_CHARS + 1]);

/* "addr:port" / "[addr]:port" of a peer for audit records; "-" for none. */
void vault_peer_text(const struct sockaddr *peer, char *buf, size_t cap);

/* The process-wide cap on concurrent password checks (vault_user.c, "the
 * Argon2id gate"): at most max at once, at most queue waiting, each for
 * wait_ms.  Defaults 2, 64, 10000; tests change them.  peak: the most that
 * ran at once since the last set. */
void vault_auth_gate_set(unsigned max, unsigned queue, unsigned wait_ms);
unsigned vault_auth_gate_peak(void);

/* Tests: the clock that decides key expiry and stamps times (NULL: the
 * real one). */
void vault_user_clock(int64_t (*now)(void));

/* One CIDR of an active API key as vv_vault_keys_admit holds it (v->admit),
 * with the key's expiry (0: none). */
struct vault_admit_cidr {
	struct vault_cidr c;
	int64_t expires;
};
/* Tests: how many CIDRs the admission table holds at most (0: the default,
 * 4096), and how many times it was read from meta.db since the last set. */
void vault_admit_max_set(size_t max);
unsigned vault_admit_reads(void);

#endif
