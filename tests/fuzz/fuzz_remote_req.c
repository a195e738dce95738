/*
 * fuzz_remote_req.c - libFuzzer target for the remote protocol's
 * requests (the server's side: bytes from a peer that may not be
 * authenticated yet): vv_rw_header, vv_rw_decode (engine/remote_wire.c).
 * The invariants: remote_frame_fuzz.h.
 */
#include "remote_frame_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_frame(data, size, false);
}
