/*
 * fuzz_bulk.c - libFuzzer target for the bulk read (knn_ioctl.h "the bulk
 * read"): the check the daemon runs before it takes the caller's memfd or
 * looks up a name (engine/knn_ioc.c vv_bulk_request_check).
 *
 * Untrusted bytes: the VV_IOC_BULK_READ ioctl buffer, header and names,
 * from any process that can open a directory through the mount.  The
 * input's first VV_KNN_IOC_BYTES are copied over a zeroed struct
 * vv_bulk_ioc (run with -max_len=16320).  Invariants asserted (abort() on
 * violation):
 *   - the check equals an independent model of the documented rules
 *     (fields, then the span in 128 bits, then the names area split with
 *     memchr);
 *   - anything accepted has nnames names inside the area, the area inside
 *     the payload, its slots' span within VV_BULK_SPAN_MAX and not
 *     wrapping, and its stats fit the reply.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vecvault/error.h"
#include "vecvault/knn_ioctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int model(const struct vv_bulk_ioc *io)
{
	const struct vv_bulk_hdr *h = &io->h;
	unsigned __int128 span = (unsigned __int128)h->nnames * h->slot;
	const uint8_t *p, *end;
	uint32_t n = 0;

	if (h->magic != VV_BULK_MAGIC || h->version != VV_BULK_VERSION || h->flags || h->pad ||
	    h->memfd < 0)
		return VV_EINVAL;
	if (h->nnames == 0 || h->nnames > 256 || h->slot < 4096 || h->slot > (4u << 20))
		return VV_EINVAL;
	if (h->names_len > VV_BULK_PAYLOAD || span > (64u << 20) ||
	    (unsigned __int128)h->off + span > UINT64_MAX)
		return VV_E2BIG;
	p = io->u;
	end = p + h->names_len;
	while (p < end) {
		const uint8_t *z = memchr(p, 0, (size_t)(end - p));
		size_t len;
		if (!z)
			return VV_EINVAL;
		len = (size_t)(z - p);
		if (len == 0 || len > 255 || memchr(p, '/', len) ||
		    (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
			return VV_EINVAL;
		if (++n > h->nnames)
			return VV_EINVAL;
		p = z + 1;
	}
	return n == h->nnames ? 0 : VV_EINVAL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vv_bulk_ioc *io = calloc(1, sizeof(*io));
	int r, m;

	if (!io)
		return 0;
	memcpy(io, data, size < sizeof(*io) ? size : sizeof(*io));
	r = vv_bulk_request_check(io);
	m = model(io);
	if (r != m)
		abort();
	if (r == 0) {
		const struct vv_bulk_hdr *h = &io->h;
		if (h->names_len > VV_BULK_PAYLOAD || h->nnames == 0 || h->nnames > VV_BULK_MAX_NAMES ||
		    (uint64_t)h->nnames * h->slot > VV_BULK_SPAN_MAX ||
		    h->off > UINT64_MAX - (uint64_t)h->nnames * h->slot ||
		    h->nnames * sizeof(struct vv_bulk_stat) > VV_BULK_PAYLOAD ||
		    io->u[h->names_len - 1] != 0)
			abort();
	}
	free(io);
	return 0;
}
