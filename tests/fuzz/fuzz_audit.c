/*
 * fuzz_audit.c - libFuzzer target for the audit log reader's grammar
 * (engine/audit_read.c): one record line as `vecvault audit verify` splits
 * it (audit_split_line, audit_line_seq) and as `vecvault audit show`
 * decodes it (audit_parse_entry), and the LOG.checkpoint sidecar line
 * (audit_checkpoint_parse, the part of audit_sidecar_read before the key).
 *
 * Untrusted bytes: every line of the log, its rotated files and the
 * checkpoint; anyone who can write the log directory chooses them, and a
 * malformed line must be a finding, never a crash.  The input is one line
 * (its newline, if any, included: the checkpoint keeps it, records do not).
 * Invariants asserted (abort() on violation):
 *   - a split record has its body followed by exactly the 75-byte
 *     ,"mac":"<64 hex>"} suffix, and the sequence number from the split
 *     equals the one read from the body alone;
 *   - re-sealing the body with a computed chain MAC splits back to the
 *     same body, seq and that MAC (what verify relies on);
 *   - a decoded entry leaves every string NUL-terminated in its store
 *     (ASan sees a read past it), and absent ids stay -1;
 *   - an accepted checkpoint is byte for byte what audit_sidecar_write
 *     prints for the seq and MACs it yielded (one spelling only).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_int.h"
#include "crypto_int.h"
#include "vecvault/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void record(const char *line, size_t size)
{
	static const uint8_t key[VV_AUDIT_KEY_BYTES] = { 1, 2, 3 };
	uint8_t mac[VV_AUDIT_MAC_BYTES], calc[VV_AUDIT_MAC_BYTES], mac2[VV_AUDIT_MAC_BYTES];
	uint8_t prev[VV_AUDIT_MAC_BYTES] = { 0 };
	char hex[2 * VV_AUDIT_MAC_BYTES + 1];
	uint64_t seq, s2;
	size_t bl, bl2;
	char *re;

	if (audit_split_line(line, size, &bl, &seq, mac) != 0)
		return;
	if (bl + AUDIT_MAC_SUFFIX_LEN != size || audit_line_seq(line, bl, &s2) != 0 || s2 != seq)
		abort();
	if (audit_chain_mac(key, prev, line, bl, calc) != 0)
		abort();
	if (!(re = malloc(size)))
		return;
	vv_hex_encode(hex, calc, VV_AUDIT_MAC_BYTES);
	memcpy(re, line, bl);
	memcpy(re + bl, ",\"mac\":\"", 8);
	memcpy(re + bl + 8, hex, 2 * VV_AUDIT_MAC_BYTES);
	memcpy(re + bl + 8 + 2 * VV_AUDIT_MAC_BYTES, "\"}", 2);
	if (audit_split_line(re, size, &bl2, &s2, mac2) != 0 || bl2 != bl || s2 != seq ||
	    memcmp(mac2, calc, sizeof(calc)) != 0)
		abort();
	free(re);
}

static void entry(const char *line, size_t size)
{
	struct vv_audit_entry e;
	char *store = NULL;
	int r = audit_parse_entry(line, size, &e, &store);

	if (r == 0) {
		const char *s[] = { e.time, e.op, e.path, e.comm, e.user, e.client, e.result,
				    e.mode, e.detail };
		size_t n = 0;
		for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
			if (s[i])
				n += strlen(s[i]);
		if (n > size)
			abort();
	} else if (r != VV_ECORRUPT && r != VV_ENOMEM) {
		abort();
	}
	audit_free_store(store);
}

static void checkpoint(const char *line, size_t size)
{
	uint8_t mac[VV_AUDIT_MAC_BYTES], ck[VV_AUDIT_MAC_BYTES];
	char h1[65], h2[65], out[256];
	uint64_t seq;
	int n;

	if (audit_checkpoint_parse(line, size, &seq, mac, ck) != 0)
		return;
	vv_hex_encode(h1, mac, VV_AUDIT_MAC_BYTES);
	vv_hex_encode(h2, ck, VV_AUDIT_MAC_BYTES);
	n = snprintf(out, sizeof(out), "{\"seq\":%llu,\"mac\":\"%s\",\"ck\":\"%s\"}\n",
		     (unsigned long long)seq, h1, h2);
	if (n < 0 || (size_t)n != size || memcmp(out, line, size) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly size bytes, so ASan catches any read past it. */
	char *line = malloc(size ? size : 1);

	if (!line)
		return 0;
	memcpy(line, data, size);
	record(line, size);
	entry(line, size);
	checkpoint(line, size);
	free(line);
	return 0;
}
