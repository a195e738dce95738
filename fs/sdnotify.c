/*
 * sdnotify.c - the systemd readiness protocol, without libsystemd.
 *
 * A service of Type=notify tells systemd it is ready (and later that it is
 * stopping) by sending a datagram of "KEY=VALUE\n" lines to the AF_UNIX
 * socket named in $NOTIFY_SOCKET (read by the CLI, passed in
 * vv_fs_opts.notify_socket): a path, or an abstract-namespace name
 * when it starts with '@' (the '@' becomes a NUL byte).  systemd learns the
 * sender's pid from the socket credentials and, by default
 * (NotifyAccess=main), accepts only the service's main process; that is
 * why only a foreground daemon notifies (vv_fs_opts.notify_socket).  The
 * protocol is small and stable (sd_notify(3)), so it is written here rather
 * than taking a library dependency for one sendto().
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vecvault/error.h"
#include "vecvault/log.h"
#include "fs_int.h"

int fs_sdnotify(const char *name, const char *state)
{
	struct sockaddr_un sa;
	size_t len, n = strlen(state);
	ssize_t k;
	int fd, r = 0;

	if (!name || !name[0])
		return 0;
	len = strlen(name);
	/* Other address forms (vsock:...) are not ours to guess at. */
	if ((name[0] != '/' && name[0] != '@') || len >= sizeof(sa.sun_path)) {
		vv_log(VV_LOG_WARN, "fs: NOTIFY_SOCKET=%s is not a unix socket address; "
		       "not notifying", name);
		return VV_EINVAL;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = VV_ESYS;
		goto out;
	}
	/* An abstract name has no terminating NUL: the length says where it
	 * ends. */
	do
		k = sendto(fd, state, n, MSG_NOSIGNAL, (struct sockaddr *)&sa,
			   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	while (k < 0 && errno == EINTR);
	if (k < 0 || (size_t)k != n)
		r = VV_ESYS;
out:
	if (r < 0)
		vv_log(VV_LOG_WARN, "fs: cannot notify %s: %s", name, strerror(errno));
	if (fd >= 0)
		close(fd);
	return r;
}
