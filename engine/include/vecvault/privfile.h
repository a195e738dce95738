/*
 * privfile.h - files the daemon and the CLI keep outside STORE.
 *
 * The audit log and everything beside it (rotated files, checkpoint,
 * pre-authentication file), the rollback anchors, the daemon's log and pid
 * file live in directories we may share with others (/tmp, a world-writable
 * state directory, a path the admin typed).  Someone who can create names
 * there must not be able to make us append to, truncate or overwrite a file
 * of their choosing (a symbolic or hard link planted under our name), nor
 * hand us a file they created and can read (a pre-created 0666 log that
 * then collects names from a vault they cannot see).  The rules, stated
 * once here and in docs/security.md:
 *
 *  - never follow a symbolic link in the last component (O_NOFOLLOW);
 *  - a file we open must be a regular file with one link, owned by our
 *    effective uid, with none of the caller's `deny` mode bits set (077 for
 *    logs and anchors, 022 for the pid file, which others may read);
 *  - the directory holding it must be owned by us or root, and not writable
 *    by group or others unless sticky (otherwise they could swap names);
 *  - temporary files are created O_EXCL|O_NOFOLLOW (vv_os_write_replace).
 *
 * A file breaking a rule is refused with VV_EUNSAFE, never repaired: the
 * reason names the file and what is wrong, is logged at VV_LOG_ERR and, when
 * why is not NULL, copied there (the CLI prints it before a log sink exists).
 * Ancestors above the directory are not checked.
 */
#ifndef VECVAULT_PRIVFILE_H
#define VECVAULT_PRIVFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define VV_PRIVFILE_SECRET 077   /* deny: nobody else may read or write */
#define VV_PRIVFILE_PUBLIC 022   /* deny: others may read, not write */

/* Open path under the rules above.  flags: O_RDONLY/O_WRONLY/O_RDWR with
 * O_CREAT, O_APPEND, O_TRUNC (applied only after the checks pass).  mode is
 * the creation mode.  On success *fd_out is an O_CLOEXEC descriptor the
 * caller closes.  Errors: VV_EUNSAFE, VV_ENOENT (no O_CREAT), others. */
int vv_privfile_open(const char *path, int flags, mode_t mode, mode_t deny, int *fd_out,
		     char *why, size_t whylen) __attribute__((warn_unused_result));

/* Read a whole file (<= max bytes) opened by vv_privfile_open(O_RDONLY):
 * *out is malloc'd and NUL-terminated; caller frees.  VV_ENOENT if absent,
 * VV_EFBIG if larger than max. */
int vv_privfile_read(const char *path, size_t max, mode_t deny, void **out, size_t *outlen)
	__attribute__((warn_unused_result));

/* Replace path's content atomically (vv_os_write_replace) after checking
 * its directory; durable also fsyncs the directory. */
int vv_privfile_replace(const char *path, const void *buf, size_t n, bool durable)
	__attribute__((warn_unused_result));

/* mkdir -p dir (new directories mode 0700), then check dir itself. */
int vv_privfile_mkdir(const char *dir) __attribute__((warn_unused_result));
/* The directory part of path into out (n bytes): "." for a bare name, "/"
 * for a file in the root.  0 or VV_ENAMETOOLONG. */
int vv_privfile_dir_of(char *out, size_t n, const char *path);

/* Check the directory that holds path (see the rules above). */
int vv_privfile_check_parent(const char *path, char *why, size_t whylen)
	__attribute__((warn_unused_result));

#endif
