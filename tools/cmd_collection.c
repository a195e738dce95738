/*
 * cmd_collection.c - `vecvault collection create|show`.
 *
 *   vecvault collection create DIR/NAME --dim D [--metric l2|ip|cosine] [--dtype f32|f16|u8|i8]
 *   vecvault collection show DIR/NAME
 *
 * A collection is a directory whose schema lives in user.vecvault.* xattrs:
 * the same calls work on the vecvault mount (which validates them) and on a
 * plain directory of a filesystem with user xattrs.  Without user xattrs
 * the create fails with ENOTSUP and leaves no directory behind.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cmd.h"
#include "vecvault/error.h"
#include "vecvault/vector.h"

static const char usage[] =
	"usage: vecvault collection create DIR/NAME --dim D [--metric l2|ip|cosine] [--dtype f32|f16|u8|i8]\n"
	"       vecvault collection show DIR/NAME\n";

static int set_one(const char *path, const char *name, const char *value)
{
	char canon[32];

	if (vv_schema_check_xattr(name, value, strlen(value), canon, sizeof(canon)) < 0) {
		die_msg("collection", "invalid %s '%s'", strrchr(name, '.') + 1, value);
		return 2;
	}
	if (setxattr(path, name, canon, strlen(canon), 0) < 0) {
		if (errno == ENOTSUP)
			die_msg("collection", "%s: the filesystem does not support user xattrs (ENOTSUP); "
				"the schema cannot be stored here", path);
		else
			die_msg("collection", "%s: setting %s: %s", path, name, strerror(errno));
		return 1;
	}
	return 0;
}

static int create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dim", required_argument, NULL, 'd' }, { "metric", required_argument, NULL, 'm' },
		{ "dtype", required_argument, NULL, 't' }, { NULL, 0, NULL, 0 }
	};
	const char *dim = NULL, *metric = "l2", *dtype = NULL, *path;
	char canon[32];
	int opt, status;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'd': dim = optarg; break;
		case 'm': metric = optarg; break;
		case 't': dtype = optarg; break;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind != argc - 1 || !dim) {
		fputs(usage, stderr);
		return 2;
	}
	path = argv[optind];
	/* validate everything before creating anything */
	if (vv_schema_check_xattr("user.vecvault.dim", dim, strlen(dim), canon, sizeof(canon)) < 0) {
		die_msg("collection", "invalid --dim '%s' (1..%u)", dim, VV_VEC_MAX_DIM);
		return 2;
	}
	if (vv_schema_check_xattr("user.vecvault.metric", metric, strlen(metric), canon, sizeof(canon)) < 0) {
		die_msg("collection", "invalid --metric '%s' (l2, ip or cosine)", metric);
		return 2;
	}
	if (dtype && vv_schema_check_xattr("user.vecvault.dtype", dtype, strlen(dtype), canon,
					   sizeof(canon)) < 0) {
		die_msg("collection", "invalid --dtype '%s' (f32, f16, u8 or i8)", dtype);
		return 2;
	}
	if (mkdir(path, 0777) < 0) {
		die_msg("collection", "%s: %s", path, strerror(errno));
		return 1;
	}
	status = set_one(path, "user.vecvault.dim", dim);
	if (!status)
		status = set_one(path, "user.vecvault.metric", metric);
	if (!status && dtype)
		status = set_one(path, "user.vecvault.dtype", dtype);
	if (status)
		rmdir(path);
	return status;
}

static int show(int argc, char **argv)
{
	static const char *const names[] = { "user.vecvault.dim", "user.vecvault.dtype",
					     "user.vecvault.metric" };
	if (argc != 2) {
		fputs(usage, stderr);
		return 2;
	}
	for (size_t i = 0; i < 3; i++) {
		char v[64];
		ssize_t n = getxattr(argv[1], names[i], v, sizeof(v) - 1);
		if (n < 0 && errno != ENODATA && errno != ENOTSUP) {
			die_msg("collection", "%s: %s", argv[1], strerror(errno));
			return 1;
		}
		v[n < 0 ? 0 : n] = 0;
		printf("%s=%s\n", strrchr(names[i], '.') + 1, n < 0 ? "(unset)" : v);
	}
	return 0;
}

int cmd_collection(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "create") == 0)
		return create(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "show") == 0)
		return show(argc - 1, argv + 1);
	fputs(usage, argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
	return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}
