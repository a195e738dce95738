/*
 * users.h - vault users and API keys: who a remote client is.
 *
 * A vault user (DESIGN.md "Identities, roles and privileges") is a name,
 * the uid it acts as, the roles (registered POSIX groups) it holds, an
 * optional Argon2id password hash and any number of API keys.  Users and
 * keys are managed through the control plane (admin verbs user.* and key.*,
 * vault_user.c); this header is what the remote server calls to turn a
 * client's credentials into an identity for the one access check.
 *
 * An API key is shown once as
 *
 *   vvk_<id>_<secret>      id: 16 lower-case hex digits (public, 64 random bits)
 *                          secret: 32 random bytes, base64url without padding
 *                          (43 characters); 64 characters in all
 *
 * and only the id and SHA-256 of the secret are stored (meta.db, encrypted
 * at rest), with a label, creation time, optional expiry, last use and an
 * optional list of CIDRs the key may be used from.
 *
 * Both calls answer VV_EACCES for every refusal (unknown user or key, wrong
 * password or secret, expired, revoked, address outside the key's CIDRs,
 * no password set, malformed token), so a client learns nothing from the
 * answer; the audit record (op "auth") says which it was.  A password
 * check is one Argon2id evaluation (64 MiB): at most 2 run at once in the
 * process; others wait (up to 10 s, at most 64 waiting) and are otherwise
 * refused with VV_EBUSY, audited, whatever the credentials.  Secrets are
 * compared in constant time and an unknown user costs the same Argon2id
 * evaluation as a known one.  Never logged: the password, the secret.
 * Thread-safe; the password hash runs without the vault's lock held.
 */
#ifndef VECVAULT_USERS_H
#define VECVAULT_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "vecvault/access.h"

struct vv_vault;

#define VV_AUTH_MAX_GROUPS 64        /* roles a user may hold */
#define VV_KEY_TOKEN_CHARS 64        /* "vvk_" + 16 + "_" + 43 */

/* An authenticated identity, owning its group list (no pointers inside:
 * copy it freely, keep it for the session). */
struct vv_auth {
	char user[33];               /* the vault user's name */
	char key_id[17];             /* the API key's id, "" after a password login */
	uint32_t uid;                /* the uid the user acts as */
	uint32_t gid;                /* its local account's primary group, else 65534 */
	uint32_t ngroups;            /* the gids of its roles registered now */
	uint32_t groups[VV_AUTH_MAX_GROUPS];
	int64_t user_id;             /* the user's row: a user deleted and made
				      * again under the same name is another */
	uint8_t pw_stamp[32];        /* after a password login: a digest of the
				      * stored hash (salted), to notice a change */
};

/*
 * Authenticate an API key token from a client at peer (the TCP peer's
 * sockaddr_in/sockaddr_in6; IPv4-mapped IPv6 is judged as IPv4; NULL or
 * another family matches no CIDR, so a key with CIDRs is then refused).
 * 0 with *out filled and the key's last use updated, or VV_EACCES.  Other
 * codes only for failures of the vault itself (VV_EIO, VV_EAUDIT...).
 */
int vv_vault_auth_key(struct vv_vault *v, const char *token, const struct sockaddr *peer,
		      struct vv_auth *out);

/* Authenticate a user by password (passlen bytes, need not be
 * NUL-terminated).  Same contract as vv_vault_auth_key. */
int vv_vault_auth_password(struct vv_vault *v, const char *user, const char *pass,
			   size_t passlen, const struct sockaddr *peer, struct vv_auth *out);

/*
 * Is a password session's login still good?  was: what
 * vv_vault_auth_password gave at the session's start.  The user must
 * still exist (the same row, not a new user of that name) with the same
 * password (a `vecvault user passwd` since, even to the same password,
 * ends it); the password itself is not evaluated again.  0 with *out the
 * user as now (uid, roles: the caller compares), VV_EACCES with an audit
 * record when the login no longer holds, other codes when the vault
 * cannot tell (VV_EIO...: try again later).  For the remote server's
 * once-a-second recheck; quiet when the answer is yes.
 */
int vv_vault_auth_password_recheck(struct vv_vault *v, const struct vv_auth *was,
				   const struct sockaddr *peer, struct vv_auth *out);

/*
 * Authenticate a client certificate the TLS layer already verified
 * against the server's --client-ca: its subject CN (user) must name an
 * existing vault user, who is then the identity (uid, roles) exactly as
 * after a key login.  fp: the certificate's SHA-256 (hex), for the audit
 * record.  quiet: audit only a refusal (the server's once-a-second
 * recheck of a live session).  Same contract as vv_vault_auth_key.
 */
int vv_vault_auth_cert(struct vv_vault *v, const char *user, const char *fp,
		       const struct sockaddr *peer, bool quiet, struct vv_auth *out);

/*
 * May a connection from peer proceed to the TLS handshake on the strength
 * of an API key?  True when some active key (not revoked, not expired)
 * lists a CIDR that holds peer: DESIGN.md's listener admits an address
 * inside its --allow CIDRs "and the keys' own CIDRs" before reading a TLS
 * byte.  A key without CIDRs widens nothing.  Not audited (the listener
 * records what it closes).  Asked for every connection from outside
 * --allow, so answered from memory: the keys' CIDRs are read from meta.db
 * (under the vault's lock) only after a key was created or revoked or a
 * user deleted, at most 4096 of them (more: meta.db is asked each time);
 * a read that fails answers false.  Thread-safe.
 */
bool vv_vault_keys_admit(struct vv_vault *v, const struct sockaddr *peer);

/*
 * The logins of a connection the listener admitted only because
 * vv_vault_keys_admit said yes (peer outside every --allow CIDR): only
 * an API key whose own CIDRs hold peer may log in there.
 * vv_vault_auth_key_cidr is vv_vault_auth_key that also refuses a key
 * listing no CIDRs ("address admitted for a key only: this key lists no
 * CIDRs"); the listener's once-a-second recheck of such a session uses it
 * too.  vv_vault_auth_not_key records the refusal of any other login
 * (what: "password", "certificate sha256:..."; user: a verified name, the
 * certificate's CN, or NULL) without evaluating it: an `auth` record
 * "WHAT: address admitted for a key only", and VV_EACCES (or the audit
 * log's failure).
 */
int vv_vault_auth_key_cidr(struct vv_vault *v, const char *token, const struct sockaddr *peer,
			   struct vv_auth *out);
int vv_vault_auth_not_key(struct vv_vault *v, const char *what, const char *user,
			  const struct sockaddr *peer);

/* Is name a vault user's name: 1 to 32 of a-z 0-9 _ -, the first a letter
 * or _?  The one rule: `user add` refuses others, and a vv:// client
 * refuses a server whose AUTH reply names anything else (it would reach
 * the user's terminal and log). */
bool vv_user_name_ok(const char *name);

/* The identity for vv_access_check and the vault calls: id->groups
 * borrows a->groups, so a must outlive id. */
void vv_auth_ident(const struct vv_auth *a, uint32_t pid, struct vv_ident *id);

#endif
