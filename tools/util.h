/*
 * util.h - helpers shared by the CLI verbs: passphrases, log sinks, the
 * user-facing text for engine errors at open time.
 */
#ifndef VV_TOOLS_UTIL_H
#define VV_TOOLS_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#define TOOL_PASS_MAX 4096

/* A passphrase in locked (best effort), zeroed-on-free memory. */
struct tool_pass {
	char *buf;                   /* NUL-terminated; owned */
	size_t len;
};

/* Where a passphrase comes from: --passfile F (first line), --extpass CMD
 * (first line of its stdout, via /bin/sh -c), else the terminal without
 * echo.  confirm: on the terminal, ask twice and compare (init, passwd).
 * what: shown in the prompt ("passphrase", "new passphrase").
 * Returns 0, or -1 after printing "vecvault VERB: ..." to stderr. */
struct pass_src {
	const char *file;
	const char *cmd;
};
int tool_get_pass(const char *verb, const struct pass_src *src, const char *what,
		  bool confirm, struct tool_pass *out);
/* Zero and free; NULL buf ok. */
void tool_pass_free(struct tool_pass *p);

/* Engine log messages to stderr as "vecvault: ..." (WARN and above, or
 * everything with VECVAULT_DEBUG=1). */
void tool_log_stderr(void);
/* Daemon logging: to file (appended, 0600) when path != NULL, else syslog.
 * The file must pass vecvault/privfile.h's rules.  Returns 0 or -1 (message
 * printed, and the reason copied to why[whylen]). */
int tool_log_daemon(const char *verb, const char *path, bool debug, char *why, size_t whylen);

/* The last engine error message logged through these sinks ("" if none),
 * and a reset before a call whose reason should be reported. */
const char *tool_last_error(void);
void tool_clear_last_error(void);

/* Print the user-facing message for a failed vault/store open of store:
 * "vecvault VERB: wrong passphrase", "... STORE is in use by another
 * vecvault daemon", ... Writes into buf (for the daemon's report pipe). */
void tool_open_error(const char *store, int r, char *buf, size_t buflen);

/* argv has -h/--help anywhere before "--"? */
bool tool_want_help(int argc, char **argv);
/* The start of `vecvault NOUN SUB [options]`: --help anywhere prints
 * usage on stdout (returns 0), no SUB prints it on stderr (returns 2);
 * otherwise *sub = argv[1], optind points past it for getopt, and -1 means
 * go on.  Callers: if ((r = tool_sub_start(...)) >= 0) return r; */
int tool_sub_start(int argc, char **argv, const char *usage, const char **sub);

/* Record an admin action on a store in its audit log (default location).
 * With the store unlocked the record is chained with the audit key; when it
 * is not (a failed unlock), it goes to the pre-authentication file.  Prints
 * a warning when the log cannot be written; never fails the action. */
struct vv_store;
void tool_audit_admin(struct vv_store *s, const char *op, int result, const char *detail);

#endif
