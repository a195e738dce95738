/*
 * cmd_stats.c - `vecvault stats DIR [-v]`: per-collection totals.
 *
 * DIR is one collection (it holds segments or schema xattrs) or a directory
 * of collections (a mount root).  For each collection: segments, vectors,
 * bytes (segments plus id sidecars), the schema, and every segment that a
 * query would refuse, with the reason.  Exit status 1 when any collection
 * holds such a segment, so scripts can check a collection before querying.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/xattr.h>

#include "cmd.h"
#include "vecvault/error.h"
#include "vecvault/vector.h"

/* Does dir look like a collection (a segment or a schema xattr in it)? */
static bool is_collection(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool yes = getxattr(dir, "user.vecvault.dim", NULL, 0) >= 0;

	if (!d)
		return true;    /* let the open report the error */
	while (!yes && (de = readdir(d)))
		if (vv_segment_name_is_segment(de->d_name))
			yes = true;
	closedir(d);
	return yes;
}

/* Prints one collection's line(s); returns 0 clean, 1 bad segments, 2 error. */
static int one(const char *dir, const char *label, bool verbose)
{
	struct vv_collection *c = NULL;
	char err[1024];
	uint64_t rows = 0, bytes = 0;
	const struct vv_schema *s;
	int r, status = 0;

	if ((r = vv_collection_open(dir, NULL, true, &c, err, sizeof(err))) < 0) {
		die_msg("stats", "%s", err);
		return 2;
	}
	s = vv_collection_schema(c);
	for (size_t i = 0; i < vv_collection_nsegs(c); i++) {
		const struct vv_collection_seg *g = vv_collection_seg(c, i);
		rows += g->info.count;
		bytes += g->file_size;
		if (g->has_ids)
			bytes += 8 * g->info.count;
	}
	printf("%-24s segments %zu  vectors %llu  bytes %llu  dim %u  dtype %s  metric %s  bad %zu\n",
	       label, vv_collection_nsegs(c), (unsigned long long)rows, (unsigned long long)bytes,
	       s->dim, s->dim ? vv_dtype_name(s->dtype) : "-", vv_metric_name(s->metric),
	       vv_collection_nskipped(c));
	if (verbose)
		for (size_t i = 0; i < vv_collection_nsegs(c); i++) {
			const struct vv_collection_seg *g = vv_collection_seg(c, i);
			printf("  %-22s %s %s dim %u count %llu%s\n", g->name,
			       vv_seg_format_name(g->info.format), vv_dtype_name(g->info.dtype),
			       g->info.dim, (unsigned long long)g->info.count, g->has_ids ? " ids" : "");
		}
	for (size_t i = 0; i < vv_collection_nskipped(c); i++) {
		printf("  BAD %s\n", vv_collection_skipped(c, i));
		status = 1;
	}
	vv_collection_free(c);
	return status;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "verbose", no_argument, NULL, 'v' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	bool verbose = false;
	const char *dir;
	DIR *d = NULL;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;
	int opt, status = 0;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		if (opt == 'v') {
			verbose = true;
		} else {
			fputs("usage: vecvault stats [-v] DIR\n", opt == 'h' ? stdout : stderr);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (optind != argc - 1) {
		fputs("usage: vecvault stats [-v] DIR\n", stderr);
		return 2;
	}
	dir = argv[optind];
	if (is_collection(dir))
		return one(dir, dir, verbose);
	if (!(d = opendir(dir))) {
		die_msg("stats", "%s: %s", dir, strerror(errno));
		return 2;
	}
	while ((de = readdir(d))) {
		struct stat st;
		char *p;
		char **nn;
		if (de->d_name[0] == '.')
			continue;       /* ".", "..", .trash, .snapshots */
		if (asprintf(&p, "%s/%s", dir, de->d_name) < 0)
			break;
		if (stat(p, &st) == 0 && S_ISDIR(st.st_mode) && (nn = realloc(names, (n + 1) * sizeof(*nn)))) {
			names = nn;
			names[n++] = p;
		} else {
			free(p);
		}
	}
	closedir(d);
	qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		const char *label = names[i] + strlen(dir) + 1;
		int s = one(names[i], label, verbose);
		if (s > status)
			status = s;
		free(names[i]);
	}
	free(names);
	if (n == 0)
		printf("%s: no collections\n", dir);
	{
		/* On a vecvault mount: what waits in its .trash (as this user
		 * sees it), counted as used space until it is purged. */
		struct statfs sf;
		uint64_t items, bytes;
		if (statfs(dir, &sf) == 0 && (unsigned long)sf.f_type == 0x65735546UL &&
		    trash_summary(dir, &items, &bytes) == 0)
			printf("%-24s items %llu  bytes %llu\n", ".trash", (unsigned long long)items,
			       (unsigned long long)bytes);
		if ((unsigned long)sf.f_type == 0x65735546UL && snap_summary(dir, &items, &bytes) == 0)
			printf("%-24s count %llu  file bytes %llu\n", ".snapshots", (unsigned long long)items,
			       (unsigned long long)bytes);
	}
	return status;
}
