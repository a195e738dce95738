/*
 * admin_client.h - the CLI's side of the control plane: find the daemon
 * that serves a vault, send it one admin request, show the reply.
 *
 * Every admin verb of the CLI (role, grant, user, trash, snapshot, ...)
 * is a request on the daemon's control socket (fs/ctl.c); the CLI never
 * opens STORE while the vault is mounted.  How the daemon is found:
 *   - from a path: the vecvault mount holding it (/proc/self/mountinfo,
 *     fstype fuse.vecvault), whose root tells which vault it is (the
 *     xattr user.vecvault.vault, readable by anyone who reaches the root);
 *   - from "store:STORE": the store id in STORE/vecvault.conf (public, no
 *     passphrase);
 *   - from "id:ID": any daemon serving vault ID (backup forget finds the
 *     vaults of a repository's backups so);
 * then the socket ID.sock in /run/vecvault (root's daemons), then in
 * $XDG_RUNTIME_DIR/vecvault (this user's).  A socket is used only when it
 * is owned by root or by the caller, and only after its daemon answers
 * "vault.ping" with the expected vault id, so a socket planted by another
 * user or a stale one never receives a request.
 */
#ifndef VV_TOOLS_ADMIN_CLIENT_H
#define VV_TOOLS_ADMIN_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "vecvault/admin.h"

/* Exit statuses of admin_run and the admin verbs. */
#define ADMIN_EXIT_OK 0
#define ADMIN_EXIT_FAILED 1      /* refused or failed: the message says why */
#define ADMIN_EXIT_NODAEMON 2    /* nothing serves that vault */

/* Send verb+args to the daemon serving `where` (a mount point or any path
 * inside a mount, or "store:" STORE); print the reply body on stdout and
 * the message on stderr ("vecvault: " prefix); return the CLI exit status:
 * 0 done, 1 refused or failed, 2 no daemon serves it (the message says so
 * clearly, e.g. "vault at X is not mounted"). */
int admin_run(const char *where, const char *verb, const struct vv_admin_arg *args, size_t nargs);

/* The same without printing the reply: *rep (vv_admin_reply_init'ed by
 * the caller, released by the caller) gets status, message and body.
 * Returns 0 when a reply arrived (whatever its status), or 2 with the
 * reason printed ("vecvault: ..."). */
int admin_call(const char *where, const char *verb, const struct vv_admin_arg *args,
	       size_t nargs, struct vv_admin_reply *rep);

/* How far a long verb has come (progress frames, admin_wire.h). */
typedef void (*admin_progress_fn)(void *ctx, const struct vv_admin_progress *p);

/* admin_call for a verb that reports progress: the request must carry
 * ("progress", "1"); fn(ctx, p) sees every progress frame before the
 * reply.  fn NULL: frames are read and dropped. */
int admin_call_progress(const char *where, const char *verb, const struct vv_admin_arg *args,
			size_t nargs, struct vv_admin_reply *rep, admin_progress_fn fn, void *ctx);

/* admin_run with progress: fn as above; before(ctx) (may be NULL) runs
 * once the reply is in, before anything is printed (to clear a progress
 * line). */
int admin_run_progress(const char *where, const char *verb, const struct vv_admin_arg *args,
		       size_t nargs, admin_progress_fn fn, void (*before)(void *ctx), void *ctx);

/* The `where` of admin_run for a verb's MNT argument or --store STORE
 * (STORE wins; neither: "." , the mount holding the working directory),
 * into out.  0, or -1 when it does not fit. */
int admin_where(const char *mnt, const char *store, char *out, size_t cap);

/* Split a path under a mount (/vv/products/a.npy) into the mount point
 * (/vv) and the vault path (/products/a.npy).  0 or -1 with a message
 * printed. */
int admin_vault_path(const char *path, char *mnt, size_t mntcap, char *vpath, size_t vpcap);

/* Is path in a mounted vault (a fuse.vecvault mount at or above it)?
 * Quiet: for commands that only add something when it is. */
bool admin_in_vault(const char *path);

/* Is there a control socket for vault id (32 hex) in /run/vecvault or
 * $XDG_RUNTIME_DIR/vecvault?  Only a hint that a daemon may serve it:
 * admin_call("id:" ID) checks the socket and its daemon. */
bool admin_id_served(const char *id);

#endif
