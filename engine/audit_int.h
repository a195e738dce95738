/*
 * audit_int.h - what audit.c (writing) and audit_read.c (verify, iterate)
 * share: the line grammar, the chain MAC, the rotated-file list and the
 * sidecar checkpoint.  The byte-level format is described in audit.c.
 */
#ifndef VV_AUDIT_INT_H
#define VV_AUDIT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vecvault/audit.h"

/* ,"mac":"<64 hex>"}  closes every authenticated line. */
#define AUDIT_MAC_SUFFIX_LEN (8 + 2 * VV_AUDIT_MAC_BYTES + 2)

/* Split one line (no newline) into body (the bytes the MAC covers), its
 * sequence number and its claimed MAC.  VV_ECORRUPT if it is not shaped
 * like one of our records. */
int audit_split_line(const char *line, size_t len, size_t *bodylen, uint64_t *seq,
		     uint8_t mac[VV_AUDIT_MAC_BYTES]);

/* Sequence number of a line ("{"seq":N,..."), or VV_ECORRUPT. */
int audit_line_seq(const char *line, size_t len, uint64_t *seq);

/* out = BLAKE2b-256_key(prev || body). */
int audit_chain_mac(const uint8_t *key, const uint8_t prev[VV_AUDIT_MAC_BYTES],
		    const char *body, size_t len, uint8_t out[VV_AUDIT_MAC_BYTES]);

/* The log's files, oldest first: LOG.N .. LOG.1, LOG (only those that
 * exist).  *paths is a malloc'd array of malloc'd strings; free with
 * audit_free_list(). */
int audit_list_files(const char *log_path, char ***paths, size_t *n);
void audit_free_list(char **paths, size_t n);

/* LOG.checkpoint: read and check against key.  VV_ENOENT if absent,
 * VV_ECORRUPT if malformed or its MAC is wrong. */
int audit_sidecar_read(const char *log_path, const uint8_t *key, uint64_t *seq,
		       uint8_t mac[VV_AUDIT_MAC_BYTES]);
int audit_sidecar_write(const char *log_path, const uint8_t *key, uint64_t seq,
			const uint8_t mac[VV_AUDIT_MAC_BYTES]);
/* The sidecar's one line, parsed without the key (audit_sidecar_read then
 * checks ck): the sequence number, the record MAC and the checkpoint MAC.
 * VV_ECORRUPT unless it is exactly what audit_sidecar_write prints. */
int audit_checkpoint_parse(const char *s, size_t len, uint64_t *seq,
			   uint8_t mac[VV_AUDIT_MAC_BYTES], uint8_t ck[VV_AUDIT_MAC_BYTES]);

/* Decode one JSON line into e, with strings stored in *store (malloc'd,
 * caller frees *store, even on failure).  VV_ECORRUPT on malformed input. */
int audit_parse_entry(const char *line, size_t len, struct vv_audit_entry *e, char **store);
/* Free what audit_parse_entry left in *store.  NULL ok. */
void audit_free_store(char *store);

#endif
