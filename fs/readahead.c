/*
 * readahead.c - the kernel's read-ahead window for this mount.
 *
 * A FUSE mount's backing device info starts with the kernel's default
 * read-ahead of 128 KiB, and the FUSE INIT reply can only lower it
 * (max_readahead is min'ed with it).  A sequential reader then reaches the
 * daemon as one 128 KiB request after another: eight round trips per MiB,
 * each a context switch and a wake-up, while a request may carry 1 MiB
 * (max_read).  The window is a per-mount setting,
 * /sys/class/bdi/<major>:<minor>/read_ahead_kb, which root may raise; with
 * RA_KB the kernel sends 1 MiB reads and keeps several in flight, and the
 * engine's read-ahead (vault_data.c) decrypts in parallel behind them.
 *
 * When: the INIT reply would undo an earlier write, so it is done at the
 * first open, which always follows INIT.  Which device: the mount's line in
 * /proc/self/mountinfo, read right after mount(2) (a stat of the mount
 * point would be a request to this very daemon, which does not serve yet).
 * Without root or sysfs nothing changes but speed: logged, not an error.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vecvault/log.h"
#include "fs_int.h"

#define RA_KB 4096                   /* one chunk object: 4 MiB */

/* Undo mountinfo's octal escapes (\040 for a space, ...) in place. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

void fs_ra_find(struct fs_ra *ra, const char *real_mnt)
{
	char line[PATH_MAX * 2 + 256], mp[PATH_MAX * 2];
	unsigned maj, min;
	FILE *f;

	ra->bdi[0] = '\0';
	if (!real_mnt || !(f = fopen("/proc/self/mountinfo", "re")))
		return;
	/* The last line for the mount point is the newest mount: ours. */
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*u %*u %u:%u %*s %2047s", &maj, &min, mp) != 3)
			continue;
		unescape(mp);
		if (strcmp(mp, real_mnt) == 0)
			snprintf(ra->bdi, sizeof(ra->bdi), "%u:%u", maj, min);
	}
	fclose(f);
}

void fs_ra_apply(struct fs_ra *ra)
{
	char path[96];
	FILE *f;

	if (__atomic_exchange_n(&ra->done, true, __ATOMIC_ACQ_REL) || !ra->bdi[0])
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", ra->bdi);
	if (!(f = fopen(path, "we")) || fprintf(f, "%d\n", RA_KB) < 0 || fclose(f) != 0) {
		if (f)
			fclose(f);
		vv_log(VV_LOG_INFO, "fs: cannot raise read-ahead (%s): kernel default stays", path);
		return;
	}
	vv_log(VV_LOG_INFO, "fs: read-ahead %d KiB (bdi %s)", RA_KB, ra->bdi);
}
