/*
 * daemon.c - session, mount, multi-threaded loop, unmount (vv_fs_run).
 *
 * Mount options are fixed here, not taken from the user: nosuid and nodev
 * always (a vault's content must not gain privileges on this host), never
 * default_permissions (the daemon decides and audits every access), and
 * max_read of 1 MiB to match max_write and the 64 KiB AEAD block multiple.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vecvault/error.h"
#include "vecvault/log.h"
#include "fs_int.h"

#define DEFAULT_IDLE_THREADS 8
#define MAX_IO (1u << 20)

static char last_err[512];

const char *vv_fs_last_error(void)
{
	return last_err;
}

/* libfuse's messages go to the engine's log sink; errors are also kept so
 * the CLI can tell the user why a mount failed. */
static void fuse_log_sink(enum fuse_log_level level, const char *fmt, va_list ap)
{
	enum vv_log_level l = VV_LOG_DEBUG;
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	if (level <= FUSE_LOG_ERR) {
		l = VV_LOG_ERR;
		snprintf(last_err, sizeof(last_err), "%s", msg);
	} else if (level == FUSE_LOG_WARNING) {
		l = VV_LOG_WARN;
	} else if (level <= FUSE_LOG_INFO) {
		l = VV_LOG_INFO;
	}
	vv_log(l, "fuse: %s", msg);
}

/* Append s to the option string, escaping what libfuse's option parser
 * treats specially (',' separates options, '\' escapes). */
static int opt_append(char *out, size_t outlen, const char *s, bool escape)
{
	size_t n = strlen(out);

	for (; *s; s++) {
		if (escape && (*s == ',' || *s == '\\')) {
			if (n + 1 >= outlen)
				return VV_ENAMETOOLONG;
			out[n++] = '\\';
		}
		if (n + 1 >= outlen)
			return VV_ENAMETOOLONG;
		out[n++] = *s;
	}
	out[n] = '\0';
	return 0;
}

static int build_opts(const struct vv_fs_opts *o, char *out, size_t outlen)
{
	int r;

	out[0] = '\0';
	snprintf(out, outlen, "nosuid,nodev,subtype=vecvault,max_read=%u,fsname=", MAX_IO);
	if ((r = opt_append(out, outlen, o->fsname ? o->fsname : "vecvault", true)) < 0)
		goto out;
	if (o->allow_other && (r = opt_append(out, outlen, ",allow_other", false)) < 0)
		goto out;
	if (o->ro && (r = opt_append(out, outlen, ",ro", false)) < 0)
		goto out;
	if (o->noexec && (r = opt_append(out, outlen, ",noexec", false)) < 0)
		goto out;
	if (o->debug && (r = opt_append(out, outlen, ",debug", false)) < 0)
		goto out;
out:
	return r;
}

static void send_ready(int fd)
{
	ssize_t n;

	if (fd < 0)
		return;
	do
		n = write(fd, "R", 1);
	while (n < 0 && errno == EINTR);
}

static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return;
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

int vv_fs_run(struct vv_vault *v, const char *mnt, const struct vv_fs_opts *o,
	      int ready_fd)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config cfg;
	struct fuse_session *se = NULL;
	static const struct vv_fs_opts defaults;
	struct vv_fs fs;
	struct ctl ctl;
	char opts[4096], why[512], real_mnt[PATH_MAX];
	bool mounted = false, handlers = false;
	int r;

	if (!o)
		o = &defaults;
	memset(&fs, 0, sizeof(fs));
	fs.v = v;
	fs.o = o;
	fs_ident_cache_init(&fs.ident);
	fs_notifier_init(&fs.notify);
	fs_bulk_maps_init(&fs.maps);
	fs_ctl_init(&ctl);
	last_err[0] = '\0';
	fuse_set_log_func(fuse_log_sink);

	if ((r = build_opts(o, opts, sizeof(opts))) < 0) {
		snprintf(last_err, sizeof(last_err), "file system name too long");
		goto out;
	}
	r = VV_ENOMEM;
	if (fuse_opt_add_arg(&args, "vecvault") || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, opts))
		goto out;

	/* Before mounting: afterwards resolving it would ask this daemon. */
	if (!realpath(mnt, real_mnt))
		real_mnt[0] = '\0';
	r = VV_ESYS;
	se = fuse_session_new(&args, &vv_fs_ops, sizeof(vv_fs_ops), &fs);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	handlers = true;
	if (fuse_session_mount(se, mnt) != 0) {
		if (!last_err[0])
			snprintf(last_err, sizeof(last_err), "cannot mount on %s", mnt);
		goto out;
	}
	mounted = true;
	fs_ra_find(&fs.ra, real_mnt[0] ? real_mnt : NULL);
	if ((r = fs_notifier_start(&fs.notify, se)) < 0)
		goto out;
	vv_vault_set_inval(v, fs_notifier_queue, &fs.notify);
	vv_vault_set_inval_wait(v, fs_notifier_wait);
	vv_log(VV_LOG_INFO, "fs: mounted on %s", mnt);
	/* Admin requests need a live mount (they may invalidate its caches);
	 * without the socket the files are still served, and the log says
	 * why administration is unavailable. */
	if (o->ctl_socket && fs_ctl_start(&ctl, v, o->ctl_socket, why, sizeof(why)) < 0)
		vv_log(VV_LOG_ERR, "fs: no control socket, admin requests unavailable: %s", why);

	send_ready(ready_fd);
	if (o->notify_socket) {
		char st[PATH_MAX + 32];

		/* The kernel queues requests until the loop below answers INIT,
		 * so the mount is usable from here on. */
		snprintf(st, sizeof(st), "READY=1\nSTATUS=serving %s", mnt);
		fs_sdnotify(o->notify_socket, st);
	}
	if (o->detach_stdio)
		detach_stdio();

	memset(&cfg, 0, sizeof(cfg));
	cfg.clone_fd = 1;
	cfg.max_idle_threads = o->max_idle_threads ? o->max_idle_threads
						   : DEFAULT_IDLE_THREADS;
	r = fuse_session_loop_mt(se, &cfg);
	/* A signal ends the loop with its number; that is a clean stop. */
	if (r < 0) {
		vv_log(VV_LOG_ERR, "fs: session loop: %s", strerror(-r));
		r = 1;
	} else {
		r = 0;
	}
	vv_log(VV_LOG_INFO, "fs: unmounting %s", mnt);
	/* Before the final commit, which may take a while: systemd then
	 * shows the unit as deactivating rather than hung. */
	if (o->notify_socket)
		fs_sdnotify(o->notify_socket, "STOPPING=1\nSTATUS=unmounting, closing the vault");
out:
	/* Requests in flight on the control socket finish while the vault and
	 * the session are whole; the socket goes before the mount does. */
	fs_ctl_stop(&ctl);
	/* Offload requests still queued get their reply while the session
	 * exists; running scans end (bounded) before it goes. */
	vv_vault_knn_drain(v);
	/* No handler runs any more: nobody calls the callback after this. */
	vv_vault_set_inval_wait(v, NULL);
	vv_vault_set_inval(v, NULL, NULL);
	if (mounted)
		fuse_session_unmount(se);
	fs_notifier_release(&fs.notify);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	fs_bulk_maps_release(&fs.maps);
	fs_ident_cache_release(&fs.ident);
	return r;
}

int vv_fs_run_headless(struct vv_vault *v, const struct vv_fs_opts *o, int ready_fd)
{
	static const struct vv_fs_opts defaults;
	struct ctl ctl;
	sigset_t set, old;
	char why[512];
	int sig = 0;

	if (!o)
		o = &defaults;
	fs_ctl_init(&ctl);
	/* The signals that unmount a mount end this daemon: taken by
	 * sigwait below, in this thread only (the others inherit the mask). */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	if (o->ctl_socket && fs_ctl_start(&ctl, v, o->ctl_socket, why, sizeof(why)) < 0)
		vv_log(VV_LOG_ERR, "fs: no control socket, admin requests unavailable: %s", why);
	send_ready(ready_fd);
	if (o->notify_socket)
		fs_sdnotify(o->notify_socket, "READY=1\nSTATUS=serving remote clients");
	if (o->detach_stdio)
		detach_stdio();
	while (sigwait(&set, &sig) != 0)
		;
	vv_log(VV_LOG_INFO, "fs: signal %d: stopping", sig);
	if (o->notify_socket)
		fs_sdnotify(o->notify_socket, "STOPPING=1\nSTATUS=closing the vault");
	fs_ctl_stop(&ctl);
	vv_vault_knn_drain(v);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
}
