/*
 * cmd.h - the vecvault CLI: one cmd_<verb>() per subcommand, each in
 * tools/cmd_<verb>.c.  Each takes the arguments after the verb (argv[0] is
 * the verb) and returns the process exit status.
 */
#ifndef VV_TOOLS_CMD_H
#define VV_TOOLS_CMD_H

#include <stddef.h>
#include <stdint.h>

int cmd_init(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_mount_remote(int argc, char **argv);      /* vv://, from cmd_mount */
int cmd_passwd(int argc, char **argv);
int cmd_fsck(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_query(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_collection(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_admin(int argc, char **argv);
int cmd_role(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_allow(int argc, char **argv);
int cmd_tls(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_user(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_grant(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_grants(int argc, char **argv);
int cmd_trash(int argc, char **argv);
/* The trash of the mounted vault at where, as the caller sees it (items
 * and bytes of files): 0, or non-zero when no daemon answered. */
int trash_summary(const char *where, uint64_t *items, uint64_t *bytes);
/* The snapshots of the vault at where (a mount): how many, and the file
 * bytes they name (tools/cmd_trash.c, beside trash_summary).  0, or nonzero (nothing printed
 * but admin_call's reason). */
int snap_summary(const char *where, uint64_t *count, uint64_t *bytes);

/* Shared helpers (tools/util.c). */

/* Print "vecvault VERB: message" to stderr (printf-style). */
void die_msg(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
