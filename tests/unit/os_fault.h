/*
 * os_fault.h - the one OS fault table of the unit tests (engine/os.h).
 *
 * os_fault_install() puts a table in force that passes every call to the
 * real one, except where a fault is set: a call of that kind, on a file
 * whose path contains the fault's substring (NULL: any file), returns
 * -err; a partial pwrite fault first writes half of any request longer
 * than one byte (a filling disk), so only the last byte fails; flags_has
 * narrows a fault to opens with those flags and writes through them.  It also
 * counts calls by kind, remembers which path each descriptor was opened
 * by, and logs successful fsyncs in order (crash-ordering checks).
 * test_crash keeps its own recording table: it replays power cuts.
 *
 * Not thread-safe to reconfigure while engine threads run, except that
 * faults are read atomically enough for one flag flip (an int store).
 */
#ifndef VV_TEST_OS_FAULT_H
#define VV_TEST_OS_FAULT_H

#include <stdbool.h>

/* OSF_FSTAT and OSF_FLOCK match path_has against the path the descriptor
 * was opened by, or for one not opened through the table (openat) the
 * path /proc/self/fd names. */
enum os_fault_op { OSF_OPEN, OSF_PWRITE, OSF_FSYNC, OSF_RENAME, OSF_FSTAT, OSF_FLOCK, OSF_NOPS };

struct os_fault {
	int err;                     /* positive errno; 0: no fault */
	const char *path_has;        /* only paths containing this; NULL: all */
	bool partial;                /* pwrite: half of a larger request gets in */
	int flags_has;               /* only opens with all these flags, and pwrites on
				      * descriptors so opened (O_DIRECT); 0: any */
	bool after;                  /* open: the file is opened (created) first, then
				      * the call fails, as open(O_CREAT|O_DIRECT) does
				      * where O_DIRECT is refused */
	unsigned times;              /* fail only this many matching calls, then the
				      * fault clears itself (one failed job among
				      * many); 0: every matching call */
	int *hold;                   /* a failing call first waits while *hold is
				      * nonzero (the test holds a job mid-seal) */
};

void os_fault_install(void);     /* resets faults, counters and the fsync log */
void os_fault_uninstall(void);   /* the real table again */
void os_fault_set(enum os_fault_op op, struct os_fault f);
void os_fault_clear(enum os_fault_op op);
unsigned long os_fault_calls(enum os_fault_op op);   /* since install */
/* Successful fsyncs of path since install: how many; the order number of
 * the first (1, 2, ... across all paths; 0 if none).  Total of all paths. */
int os_fault_fsync_count(const char *path);
int os_fault_fsync_seq(const char *path);
int os_fault_fsyncs(void);

#endif
