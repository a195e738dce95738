/*
 * killpriv.c - ask the kernel for FUSE_HANDLE_KILLPRIV_V2, which libfuse
 * 3.14 (Debian 12) cannot request.
 *
 * Why: without it the kernel asks the daemon for security.capability
 * (GETXATTR) before *every* write(2) (file_remove_privs ->
 * cap_inode_need_killpriv; FUSE caches no xattr): a tar -x of small files
 * sent 3.4 such round trips per file out of 16 (docs/design.md, "Small
 * files").  With V2 the kernel sets SB_NOSEC and marks an inode S_NOSEC
 * once a check found neither setuid/setgid bits nor a capability; the mark
 * goes when its attributes are refreshed (every reply that carries them)
 * or a security.* xattr is set, so one check per file and open, not per
 * write.
 *
 * What it changes in what the daemon must do: nothing.  The engine already
 * clears setuid/setgid on every write by a non-root caller, on truncate and
 * on chown (FUSE_CAP_HANDLE_KILLPRIV, kept); V2's hints
 * (FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID, FUSE_OPEN_KILL_SUIDGID) only
 * say when the caller lacks CAP_FSETID, which the engine decides from the
 * uid itself.  The kernel still removes security.capability itself at the
 * first write after any attribute change (t1025).
 *
 * How: the session's I/O goes through fuse_session_custom_io (libfuse >=
 * 3.13), which only records the INIT request's unique and whether the kernel
 * offers V2 (read), and sets the flag in the INIT reply when it does
 * (writev).  Every other message passes through unchanged.  A libfuse
 * with FUSE_CAP_HANDLE_KILLPRIV_V2 asks for it in fs_init instead, and this
 * file installs nothing.
 */
#include <errno.h>
#include <linux/fuse.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fs_int.h"
#include "vecvault/log.h"

#ifndef FUSE_CAP_HANDLE_KILLPRIV_V2
static _Atomic uint64_t init_unique;     /* INIT request offering V2; 0: none */

static ssize_t kp_read(int fd, void *buf, size_t len, void *ud)
{
	ssize_t r = read(fd, buf, len);
	const struct fuse_in_header *h = buf;

	(void)ud;
	if (r >= (ssize_t)(sizeof(*h) + offsetof(struct fuse_init_in, flags) + sizeof(uint32_t)) &&
	    h->opcode == FUSE_INIT) {
		const struct fuse_init_in *in = (const void *)(h + 1);
		atomic_store(&init_unique, (in->flags & FUSE_HANDLE_KILLPRIV_V2) ? h->unique : 0);
	}
	return r;
}

static ssize_t kp_writev(int fd, struct iovec *iov, int count, void *ud)
{
	uint64_t u = atomic_load(&init_unique);

	(void)ud;
	if (u && count >= 2 && iov[0].iov_len == sizeof(struct fuse_out_header) &&
	    iov[1].iov_len >= offsetof(struct fuse_init_out, flags) + sizeof(uint32_t)) {
		const struct fuse_out_header *oh = iov[0].iov_base;
		if (oh->unique == u && oh->error == 0) {
			struct fuse_init_out *out = iov[1].iov_base;
			out->flags |= FUSE_HANDLE_KILLPRIV_V2;
			atomic_store(&init_unique, 0);
			vv_log(VV_LOG_INFO, "fs: handle_killpriv_v2 (one capability check per file, "
			       "not per write)");
		}
	}
	return writev(fd, iov, count);
}
#endif

void fs_killpriv_install(struct fuse_session *se)
{
#ifndef FUSE_CAP_HANDLE_KILLPRIV_V2
	static const struct fuse_custom_io io = { .read = kp_read, .writev = kp_writev };
	int r = fuse_session_custom_io(se, &io, fuse_session_fd(se));

	if (r != 0)
		vv_log(VV_LOG_WARN, "fs: cannot ask for FUSE_HANDLE_KILLPRIV_V2 (%s): "
		       "writes cost one more request each", strerror(-r));
#else
	(void)se;
#endif
}
