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

/* vv_progress_fn-shaped adaptor: ctx is a struct tool_progress. */
void tool_progress_cb(void *ctx, uint64_t done, uint64_t total);

#endif
