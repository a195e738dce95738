/*
 * progress.h - one progress line on stderr for long CLI operations, shown
 * only on a terminal (see progress.c for the rules).
 */
#ifndef VV_TOOLS_PROGRESS_H
#define VV_TOOLS_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct tool_progress {
	const char *verb;            /* "fsck": the line reads "vecvault fsck: ..." */
	const char *what;            /* "checking blocks" */
	bool on;                     /* stderr is a terminal */
	bool shown;                  /* something is on the line now */
	double start, delay, last;   /* CLOCK_MONOTONIC seconds */
	int pct;                     /* last drawn percentage, -1 none */
};

/* Begin; draws nothing yet.  verb and what are not copied. */
void tool_progress_start(struct tool_progress *p, const char *verb, const char *what);
/* done of total: redraw when the percentage changes, at most ~10 times a
 * second, once the delay has passed.  Not thread safe: one caller thread. */
void tool_progress_update(struct tool_progress *p, uint64_t done, uint64_t total);
/* A step with no count that is about to block (a key derivation): shown at
 * once on a terminal, since nothing can draw while it runs.  Does not
 * change what update() calls the counted work. */
void tool_progress_note(struct tool_progress *p, const char *what);
/* Clear the line, if anything was drawn.  Call before printing results. */
void tool_progress_end(struct tool_progress *p);

/* A transfer (backup create, verify --read-data, restore): objects and
 * bytes done of their totals (bytes_total 0: none or not known, then the
 * percentage and ETA go by objects), with the rate since start and the
 * time left:
 *   vecvault backup: restoring: 42% 1.2 GB/2.9 GB, 120/300 objects, 85.1 MB/s, ETA 0:21
 * Redrawn at most ~10 times a second once the delay has passed, and
 * always for the last step.  The ETA is never negative or NaN: "--:--"
 * until something is done, 0:00 when everything is. */
void tool_progress_xfer(struct tool_progress *p, uint64_t objects_done, uint64_t objects_total,
			uint64_t bytes_done, uint64_t bytes_total);
/* The one line for scripts and logs, printed whether or not stderr is a
 * terminal, after tool_progress_end:
 *   vecvault backup: restore: 300 objects, 3123456789 bytes in 36.7 s (85.1 MB/s) */
void tool_progress_summary(const struct tool_progress *p, const char *what, uint64_t objects,
			   uint64_t bytes);

/* vv_progress_fn-shaped adaptor: ctx is a struct tool_progress. */
void tool_progress_cb(void *ctx, uint64_t done, uint64_t total);

#endif
