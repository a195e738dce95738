/*
 * fs.h - the FUSE daemon: serves an open vault at a mount point.
 *
 * The only public entry of fs/.  The CLI opens the vault (in the daemon
 * process, after forking, so its keys live in that process's locked memory),
 * then hands it here; fs/ mounts, runs the multi-threaded FUSE loop until
 * unmount or a signal, unmounts and returns.  Every request becomes one
 * vv_vault_*() call (engine/include/vecvault/vault.h); fs/ decides nothing
 * itself and maps VV_E* codes to errno exactly once (vv_errno()).
 */
#ifndef VV_FS_H
#define VV_FS_H

#include <stdbool.h>
#include <stdint.h>

struct vv_vault;

struct vv_fs_opts {
	bool allow_other;            /* other users may use the mount (the
	                                daemon, not the kernel, checks access) */
	bool ro;                     /* mount read-only (open the vault with
	                                VV_VAULT_READONLY as well) */
	bool noexec;                 /* the kernel refuses execve of its files
	                                (fstab's `user` implies it) */
	bool debug;                  /* libfuse request tracing to stderr */
	bool detach_stdio;           /* after the ready byte: stdin/out/err ->
	                                /dev/null (a daemon whose parent left) */
	const char *notify_socket;   /* the service's main process under systemd
	                                (a foreground daemon): READY=1 once the
	                                mount is live, STOPPING=1 when the loop
	                                ends, to this socket address (the
	                                caller's $NOTIFY_SOCKET); NULL/"" = do
	                                not notify.  Borrowed until return */
	const char *fsname;          /* shown in /proc/mounts; NULL = "vecvault" */
	const char *ctl_socket;      /* the control socket's path (the CLI
	                                picks it: tools/env.c), bound once the
	                                mount is live and removed at unmount;
	                                NULL = no control socket.  A socket that
	                                cannot be made is logged, the mount
	                                still serves.  Borrowed until return */
	bool no_bulk;                /* answer the bulk read (knn_ioctl.h) ENOTTY,
	                                as a daemon without it (the CLI:
	                                VECVAULT_BULK=0; tests of the fallback) */
	unsigned max_idle_threads;   /* 0 = default (8) */
	unsigned attr_timeout_ms;    /* vv:// client only: how long the kernel may
	                                cache a cacheable entry's attributes and
	                                name (0 = not at all); the local mount
	                                ignores it */
	bool test_init_fail;         /* vv:// client, tests only (VECVAULT_TEST_INIT_FAIL=1
					in the mount command's environment): ask the kernel
					for a capability it lacks, so INIT fails */
	const char *test_release_gate; /* vv:// client, tests only
					(VECVAULT_TEST_RELEASE_GATE=PATH): while PATH
					exists, a release answered early waits before
					it goes to the server (t7031).  Copied */
	const char *test_send_gate;  /* vv:// client, tests only
					(VECVAULT_TEST_SEND_GATE=PATH): while PATH
					exists, a READ waits between its preparation
					for a connection and its sending (t7058).
					Copied */
};

/*
 * Mount v at mnt and serve it until unmounted (fusermount3 -u) or
 * SIGINT/SIGTERM/SIGHUP.  Once the mount is live, writes one byte 'R' to
 * ready_fd (if >= 0; the fd stays open and owned by the caller) and, with
 * o->notify_socket, READY=1 to systemd; STOPPING=1 once the loop ends.  Always
 * mounts nosuid,nodev, subtype=vecvault, never default_permissions.
 * Returns 0 after a clean unmount; 1 if the loop ended with an error after
 * the mount went live (logged); a negative VV_E* code if it never mounted:
 * VV_ESYS (libfuse's reason logged and kept for vv_fs_last_error()) or
 * VV_ENAMETOOLONG.  Does not close v.
 */
int vv_fs_run(struct vv_vault *v, const char *mnt, const struct vv_fs_opts *o,
	      int ready_fd);

/*
 * Serve v without a mount (`vecvault serve`: remote clients only): the
 * control socket (o->ctl_socket), ready_fd and o->notify_socket as
 * vv_fs_run does, then wait for SIGINT/SIGTERM/SIGHUP (blocked in the
 * calling thread and in threads it starts afterwards).  Returns 0.  Does
 * not close v.
 */
int vv_fs_run_headless(struct vv_vault *v, const struct vv_fs_opts *o, int ready_fd);

/*
 * The vv:// client (fs/remote.c): mount at mnt a FUSE file system that
 * forwards every request over the connected, authenticated client c
 * (vecvault/net.h; its reader thread started), with the server's inode
 * root shown as the mount's root (root_name, generation root_gen: the
 * collection's name under the server's root, to find it again after a
 * reconnect; NULL for the server's root).  o: allow_other, ro, noexec, fsname,
 * detach_stdio.  Ready byte and return values as vv_fs_run.  Does not
 * close c.
 */
struct vv_net_client;
int vv_fs_run_remote(struct vv_net_client *c, uint64_t root, uint64_t root_gen,
		     const char *root_name, const char *mnt, const struct vv_fs_opts *o, int ready_fd);

/* The last error libfuse reported in this process (static storage, "" if
 * none), so the CLI can show why a mount failed. */
const char *vv_fs_last_error(void);

#endif
