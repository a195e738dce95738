/*
 * remote.h - what the engine knows of remote access (docs/remote.md): the
 * address whitelist of a daemon that listens for vv:// clients, its
 * counters, and the audit records of the remote listener.
 *
 * The whitelist is a list of CIDRs (IPv4 and IPv6; an IPv4 CIDR also
 * matches the IPv4-mapped IPv6 form of its addresses, and a mapped address
 * is judged as IPv4).  Default deny: an empty list admits nobody.  The
 * listener (net/server.c) asks vv_allow_match() right after accept(),
 * before a TLS byte is read; the control plane (allow.add/remove/list,
 * engine/vault_remote.c) changes it while the daemon runs.  Pure: no I/O.
 * Thread-safe (one mutex per list).
 */
#ifndef VECVAULT_REMOTE_H
#define VECVAULT_REMOTE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct vv_vault;
struct vv_allow;

#define VV_ALLOW_MAX 256             /* CIDRs in one whitelist */
#define VV_CIDR_TEXT 64              /* "ffff:...:ffff/128" and its NUL */

/* One CIDR, kept as a 16-byte IPv6 prefix (IPv4 as ::ffff:a.b.c.d/96+n). */
struct vv_cidr {
	uint8_t addr[16];
	unsigned bits;               /* 0..128 */
};

/* Parse "10.0.0.0/8", "192.168.1.7" (/32), "::1", "fd00::/8".  Host bits
 * past the prefix must be zero ("10.0.0.1/8" is refused: the admin meant
 * something else).  0 or VV_EINVAL. */
int vv_cidr_parse(const char *s, struct vv_cidr *out);
/* Write the canonical text ("10.0.0.0/8", "::1/128") into buf
 * (VV_CIDR_TEXT bytes). */
void vv_cidr_format(const struct vv_cidr *c, char *buf);
/* Does the address (sockaddr_in or sockaddr_in6) fall in c?  Other
 * families never match. */
bool vv_cidr_match(const struct vv_cidr *c, const struct sockaddr *sa);
/* "addr:port" / "[v6]:port" for a peer (mapped IPv4 shown as IPv4), into
 * buf of 64 bytes. */
void vv_sockaddr_format(const struct sockaddr *sa, char *buf);

/* Counters of a listener, for tests and `vecvault allow list`. */
struct vv_allow_stats {
	uint64_t accepted;           /* connections accept() returned */
	uint64_t refused;            /* closed before TLS: outside the whitelist */
	uint64_t handshakes;         /* TLS handshakes started */
	uint64_t authenticated;      /* sessions that passed authentication */
	uint64_t auth_failed;        /* failed authentications */
};

/* A new, empty whitelist (*out owned by the caller: vv_allow_free). */
int vv_allow_new(struct vv_allow **out);
void vv_allow_free(struct vv_allow *a);                     /* NULL ok */
/* Add (VV_EEXIST if there, VV_ENOSPC past VV_ALLOW_MAX) or remove
 * (VV_ENOENT if absent) one CIDR. */
int vv_allow_add(struct vv_allow *a, const struct vv_cidr *c);
int vv_allow_remove(struct vv_allow *a, const struct vv_cidr *c);
/* Copy up to max entries into out; returns how many there are. */
size_t vv_allow_list(struct vv_allow *a, struct vv_cidr *out, size_t max);
/* Is the peer inside some CIDR of the list? */
bool vv_allow_match(struct vv_allow *a, const struct sockaddr *sa);
/* Count one event (a field of struct vv_allow_stats, by offset) / read all. */
enum vv_allow_event { VV_ALLOW_ACCEPTED, VV_ALLOW_REFUSED, VV_ALLOW_HANDSHAKE,
		      VV_ALLOW_AUTHENTICATED, VV_ALLOW_AUTH_FAILED };
void vv_allow_count(struct vv_allow *a, enum vv_allow_event ev);
void vv_allow_stats(struct vv_allow *a, struct vv_allow_stats *out);

/* Attach the listener's whitelist to the open vault, so the control verbs
 * allow.* can change it (NULL detaches).  The list stays the caller's and
 * must outlive the attachment. */
void vv_vault_set_allow(struct vv_vault *v, struct vv_allow *a);

/* One audit record of the remote listener: op "connect", "auth",
 * "unauth", "disconnect"...; client "addr:port"; user the vault user or
 * key id tried (NULL if none); result 0 or a VV_E* code; detail free
 * text (never a secret). */
void vv_vault_audit_remote(struct vv_vault *v, const char *client, const char *user,
			   const char *op, int result, const char *detail);

struct vv_ctx;

/* One audit record of a session's request refused before any vault call
 * (an inode the session was never handed, a handle it does not hold, a
 * bad name): as the session's identity c, on ino. */
void vv_vault_audit_refused(struct vv_vault *v, const struct vv_ctx *c, const char *op,
			    uint64_t ino, int result, const char *detail);

#endif
