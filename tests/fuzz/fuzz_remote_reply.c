/*
 * fuzz_remote_reply.c - libFuzzer target for the remote protocol's
 * replies (the client's side: bytes from a server): vv_rw_header, vv_rw_decode (engine/remote_wire.c), and
 * vv_rw_dirent_next over READDIR blobs.
 * The invariants: remote_frame_fuzz.h.
 */
#include "remote_frame_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_frame(data, size, true);
}
