/*
 * cmd_info.c - `vecvault info STORE`: what a store holds, without a key.
 *
 * Shows only what anyone who can read the store directory already learns
 * (DESIGN.md threat model): format, store id, page size, key slot KDF
 * parameters, and the sizes of meta.db and the chunk objects.  Reads the
 * conf without taking the store's lock, so it works on a mounted vault.
 * The conf's MAC needs the key, so these values are unauthenticated.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "admin_client.h"
#include "cmd.h"
#include "util.h"
#include "vecvault/error.h"
#include "vecvault/store.h"

static const char usage[] =
	"usage: vecvault info STORE\n"
	"Show the store's format, id, page size, key slots (KDF parameters) and the\n"
	"sizes of its metadata and chunk objects.  Needs no passphrase; the values\n"
	"are not authenticated until the vault is unlocked.  When the vault is\n"
	"mounted and you own it, also what its trash and snapshots keep (asked of\n"
	"the daemon; both are encrypted in meta.db).\n";

/* The number after "key": in the daemon's JSON reply, or 0. */
static unsigned long long jnum(const char *body, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\":", key);
	p = body ? strstr(body, k) : NULL;
	return p ? strtoull(p + strlen(k), NULL, 10) : 0;
}

/* Trash and snapshots live in the encrypted meta.db: only the daemon
 * serving the store can say (vault.space, the owner's verb). */
static void print_space(const char *store)
{
	struct vv_admin_reply rep;
	char where[4200];

	snprintf(where, sizeof(where), "store:%s", store);
	vv_admin_reply_init(&rep);
	if (admin_call(where, "vault.space", NULL, 0, &rep) != 0) {
		printf("%-14s%s\n", "trash:", "? (not mounted: the daemon knows)");
	} else if (rep.status != 0) {
		printf("%-14s? (%s)\n", "trash:", rep.msg);
	} else {
		printf("%-14s%llu items, %llu bytes\n", "trash:", jnum(rep.body, "trash_items"),
		       jnum(rep.body, "trash_bytes"));
		printf("%-14s%llu, naming %llu file bytes, %llu bytes held by them alone, %llu bytes of "
		       "metadata copies\n", "snapshots:",
		       jnum(rep.body, "snapshots"), jnum(rep.body, "snapshot_file_bytes"),
		       jnum(rep.body, "snapshot_only_bytes"), jnum(rep.body, "snapshot_meta_bytes"));
	}
	vv_admin_reply_release(&rep);
}

/* nftw has no context argument; info runs once per process. */
static uint64_t nchunks, chunk_bytes;

static int count_chunk(const char *path, const struct stat *st, int type, struct FTW *f)
{
	if (type == FTW_F && S_ISREG(st->st_mode)) {
		nchunks++;
		chunk_bytes += (uint64_t)st->st_size;
	}
	return 0;
}

static void print_size(const char *label, const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0)
		printf("%-14s%llu bytes\n", label, (unsigned long long)st.st_size);
	else if (errno != ENOENT)
		printf("%-14s? (%s)\n", label, strerror(errno));
}

int cmd_info(int argc, char **argv)
{
	struct vv_store_info in;
	struct vv_store *s = NULL;
	char path[4096], when[64], msg[1024];
	const char *store;
	struct tm tm;
	time_t t;
	int r, ret = 1;

	if (tool_want_help(argc, argv)) {
		fputs(usage, stdout);
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-') {
		fputs(usage, stderr);
		return 2;
	}
	store = argv[1];
	if ((r = vv_store_open(store, VV_STORE_NOLOCK, &s)) < 0) {
		tool_open_error(store, r, msg, sizeof(msg));
		die_msg("info", "%s", msg);
		goto out;
	}
	if ((r = vv_store_info(s, &in)) < 0) {
		die_msg("info", "%s (%s)", store, vv_strerror(r));
		goto out;
	}
	t = (time_t)in.created;
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	printf("%-14s%s\n", "store:", vv_store_dir(s));
	printf("%-14s%d\n", "format:", in.version);
	printf("%-14s%s\n", "store id:", in.store_id);
	printf("%-14s%u\n", "page size:", in.page_size);
	printf("%-14s%s\n", "created:", when);
	printf("%-14s%d\n", "key slots:", in.nslots);
	for (int i = 0; i < in.nslots; i++)
		printf("  slot %-6d argon2id ops=%llu mem=%llu KiB\n", in.slots[i].index,
		       (unsigned long long)in.slots[i].opslimit,
		       (unsigned long long)(in.slots[i].memlimit / 1024));
	if (vv_store_path(s, "meta.db", path, sizeof(path)) == 0)
		print_size("meta.db:", path);
	if (vv_store_path(s, "meta.db-wal", path, sizeof(path)) == 0)
		print_size("meta.db-wal:", path);
	if (vv_store_path(s, VV_STORE_CHUNKS_DIR, path, sizeof(path)) == 0) {
		nchunks = chunk_bytes = 0;
		if (nftw(path, count_chunk, 16, FTW_PHYS) < 0 && errno != ENOENT)
			printf("%-14s? (%s)\n", "chunks:", strerror(errno));
		else
			printf("%-14s%llu objects, %llu bytes\n", "chunks:",
			       (unsigned long long)nchunks, (unsigned long long)chunk_bytes);
	}
	print_space(store);
	ret = 0;
out:
	vv_store_close(s);
	return ret;
}
