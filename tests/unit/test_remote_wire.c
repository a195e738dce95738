/*
 * test_remote_wire.c - the remote protocol's frames (engine/remote_wire.c):
 * every op's request and reply round-trip; headers with unknown ops,
 * flags, statuses or lengths past the limit are refused; names with '/' or
 * NUL, texts and blobs past their limits, trailing bytes and truncation at
 * every byte fail cleanly; directory entries round-trip.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "tap.h"
#include "vecvault/error.h"
#include "vecvault/remote_wire.h"

static uint8_t frame[VV_RW_HDR + VV_RW_BODY_MAX];

/* Fill m with values for every field of the op's row in direction dir. */
static void fill(struct vv_rw_msg *m, unsigned op, bool reply)
{
	static uint8_t blob[100];
	memset(m, 0, sizeof(*m));
	for (unsigned i = 0; i < VV_RW_MAX_FIELDS; i++)
		m->u[i] = 1000 + i + op;
	m->nu = VV_RW_MAX_FIELDS;
	m->s[0] = "name-a";
	m->s[1] = "name-b";
	m->s[2] = "name-c";
	m->ns = 3;
	for (size_t i = 0; i < sizeof(blob); i++)
		blob[i] = (uint8_t)(i * 7 + op);
	m->blob = blob;
	m->bloblen = reply ? 100 : 50;
	m->attr.ino = 42;
	m->attr.mode = 0100644;
	m->attr.mtime.tv_sec = -5;
	m->attr.mtime.tv_nsec = 999999999;
	m->attr.cacheable = true;
}

static int decode_frame(const uint8_t *f, size_t len, struct vv_rw_msg *m)
{
	struct vv_rw_hdr h;
	int r;

	if (len < VV_RW_HDR)
		return VV_ECORRUPT;
	if ((r = vv_rw_header(f, &h)) < 0)
		return r;
	if (h.len != len - VV_RW_HDR)
		return VV_ECORRUPT;
	return vv_rw_decode(&h, f + VV_RW_HDR, len - VV_RW_HDR, m);
}

int main(void)
{
	static struct vv_rw_msg m, d;
	struct vv_rw_hdr h;
	long n;
	int bad = 0, trunc_bad = 0;

	/* every op, both directions: encode, decode, encode again: same bytes */
	for (unsigned op = 1; op < VV_RW_OP_MAX; op++) {
		for (int reply = 0; reply < 2; reply++) {
			static uint8_t again[VV_RW_HDR + VV_RW_BODY_MAX];
			long n2;
			h = (struct vv_rw_hdr){ .id = op * 3, .op = (uint16_t)op,
						.flags = reply ? VV_RW_F_REPLY : 0 };
			fill(&m, op, reply);
			n = vv_rw_encode(&h, &m, frame, sizeof(frame));
			if (n < VV_RW_HDR || decode_frame(frame, (size_t)n, &d) != 0) {
				bad++;
				continue;
			}
			n2 = vv_rw_encode(&d.h, &d, again, sizeof(again));
			if (n2 != n || memcmp(again, frame, (size_t)n) != 0)
				bad++;
			/* every truncation fails, never crashes */
			for (long cut = VV_RW_HDR; cut < n; cut++) {
				struct vv_rw_hdr th;
				if (vv_rw_header(frame, &th) < 0 ||
				    vv_rw_decode(&th, frame + VV_RW_HDR, (size_t)(cut - VV_RW_HDR), &d) == 0)
					trunc_bad++;
			}
		}
	}
	is_int(bad, 0, "every op's request and reply round-trip byte for byte");
	is_int(trunc_bad, 0, "every truncated body is refused");

	/* a lookup keeps its fields */
	h = (struct vv_rw_hdr){ .id = 7, .op = VV_RW_LOOKUP };
	memset(&m, 0, sizeof(m));
	m.u[0] = 1;
	m.nu = 1;
	m.s[0] = "part-1.npy";
	m.ns = 1;
	n = vv_rw_encode(&h, &m, frame, sizeof(frame));
	ok(n == VV_RW_HDR + 8 + 2 + 10, "lookup frame length");
	ok(decode_frame(frame, (size_t)n, &d) == 0 && d.u[0] == 1 && !strcmp(d.s[0], "part-1.npy") &&
	   d.h.id == 7, "lookup decodes to parent 1, the name, id 7");

	/* trailing bytes */
	frame[0]++;
	frame[n] = 0;
	is_int(decode_frame(frame, (size_t)n + 1, &d), VV_ECORRUPT, "a trailing byte is refused");
	frame[0]--;

	/* names: '/' and NUL and empty refused, at encode and at decode */
	m.s[0] = "a/b";
	ok(vv_rw_encode(&h, &m, frame, sizeof(frame)) == VV_EINVAL, "encode refuses a name with '/'");
	m.s[0] = "";
	ok(vv_rw_encode(&h, &m, frame, sizeof(frame)) == VV_EINVAL, "encode refuses an empty name");
	m.s[0] = "ab";
	n = vv_rw_encode(&h, &m, frame, sizeof(frame));
	frame[VV_RW_HDR + 10 + 1] = '/';
	is_int(decode_frame(frame, (size_t)n, &d), VV_ECORRUPT, "decode refuses a name with '/'");
	frame[VV_RW_HDR + 10 + 1] = 0;
	is_int(decode_frame(frame, (size_t)n, &d), VV_ECORRUPT, "decode refuses a name with NUL");
	{
		char big[300];
		memset(big, 'x', 256);
		big[256] = 0;
		m.s[0] = big;
		ok(vv_rw_encode(&h, &m, frame, sizeof(frame)) == VV_EINVAL, "a 256-byte name is refused");
		big[255] = 0;
		ok(vv_rw_encode(&h, &m, frame, sizeof(frame)) > 0, "a 255-byte name is fine");
	}

	/* headers */
	{
		uint8_t hb[VV_RW_HDR] = { 0 };
		hb[8] = VV_RW_LOOKUP;
		ok(vv_rw_header(hb, &h) == 0, "a plain request header");
		hb[8] = 0;
		is_int(vv_rw_header(hb, &h), VV_EFORMAT, "op 0 refused");
		hb[8] = VV_RW_OP_MAX;
		is_int(vv_rw_header(hb, &h), VV_EFORMAT, "an op past the table refused");
		hb[8] = VV_RW_READ;
		hb[10] = 2;
		is_int(vv_rw_header(hb, &h), VV_EFORMAT, "unknown flag bits refused");
		hb[10] = 0;
		hb[12] = 0xfb;
		hb[13] = hb[14] = hb[15] = 0xff;
		is_int(vv_rw_header(hb, &h), VV_EFORMAT, "a request carrying a status refused");
		hb[10] = 1;
		ok(vv_rw_header(hb, &h) == 0 && h.status == -5, "a reply carries a status");
		hb[12] = 1;
		hb[13] = hb[14] = hb[15] = 0;
		is_int(vv_rw_header(hb, &h), VV_EFORMAT, "a positive status refused");
		hb[12] = 0;
		vv_put_le32(hb, VV_RW_BODY_MAX + 1);
		is_int(vv_rw_header(hb, &h), VV_E2BIG, "a body past 1 MiB + 4096 refused from the header");
		vv_put_le32(hb, VV_RW_BODY_MAX);
		ok(vv_rw_header(hb, &h) == 0, "a body of exactly the limit passes the header");
	}

	/* an error reply has an empty body */
	h = (struct vv_rw_hdr){ .id = 9, .op = VV_RW_READ, .flags = VV_RW_F_REPLY, .status = VV_EACCES };
	n = vv_rw_encode(&h, &m, frame, sizeof(frame));
	ok(n == VV_RW_HDR && decode_frame(frame, (size_t)n, &d) == 0 && d.h.status == VV_EACCES,
	   "an error reply is a bare header");

	/* the directory request over vv:// (docs/remote.md "Queries"): a knn
	 * frame on a directory handle whose blob is the 16320-byte ioctl
	 * buffer with the "VKND" magic, not an op of its own: an op past
	 * the table fails the header (checked above), and a server closes
	 * the connection on such a frame */
	{
		static uint8_t dreq[16320];
		memset(dreq, 0xa5, sizeof(dreq));
		vv_put_le32(dreq, 0x444e4b56u);
		h = (struct vv_rw_hdr){ .id = 9, .op = VV_RW_KNN };
		memset(&m, 0, sizeof(m));
		m.u[0] = 0x0000000700000003ull;   /* the server's handle: generation 7, slot 3 */
		m.nu = 1;
		m.blob = dreq;
		m.bloblen = sizeof(dreq);
		n = vv_rw_encode(&h, &m, frame, sizeof(frame));
		ok(n == VV_RW_HDR + 8 + 4 + (long)sizeof(dreq) && decode_frame(frame, (size_t)n, &d) == 0 &&
		   d.u[0] == m.u[0] && d.bloblen == sizeof(dreq) && !memcmp(d.blob, dreq, sizeof(dreq)),
		   "a knn frame carrying a directory request round-trips (handle, blob)");
	}

	/* a blob past 1 MiB */
	{
		static uint8_t data[VV_RW_DATA_MAX + 1];
		h = (struct vv_rw_hdr){ .id = 1, .op = VV_RW_WRITE };
		m.u[0] = 1;
		m.u[1] = 0;
		m.nu = 2;
		m.blob = data;
		m.bloblen = VV_RW_DATA_MAX;
		n = vv_rw_encode(&h, &m, frame, sizeof(frame));
		ok(n > 0 && decode_frame(frame, (size_t)n, &d) == 0 && d.bloblen == VV_RW_DATA_MAX,
		   "a 1 MiB write round-trips");
		m.bloblen = VV_RW_DATA_MAX + 1;
		is_int(vv_rw_encode(&h, &m, frame, sizeof(frame)), VV_EINVAL, "a write past 1 MiB is refused");
		n = VV_RW_HDR + 16 + 4 + 10;
		vv_put_le32(frame, (uint32_t)(n - VV_RW_HDR));
		vv_put_le32(frame + VV_RW_HDR + 16, VV_RW_DATA_MAX + 1);
		is_int(decode_frame(frame, (size_t)n, &d), VV_E2BIG, "a blob length past 1 MiB is refused");
		vv_put_le32(frame + VV_RW_HDR + 16, 11);
		is_int(decode_frame(frame, (size_t)n, &d), VV_ECORRUPT, "a blob longer than the body is refused");
	}

	/* attribute records: nanoseconds past a second refused */
	{
		h = (struct vv_rw_hdr){ .id = 1, .op = VV_RW_GETATTR, .flags = VV_RW_F_REPLY };
		fill(&m, VV_RW_GETATTR, true);
		n = vv_rw_encode(&h, &m, frame, sizeof(frame));
		vv_put_le32(frame + VV_RW_HDR + 64, 1000000000u);   /* atime ns */
		is_int(decode_frame(frame, (size_t)n, &d), VV_ECORRUPT, "atime nanoseconds 10^9 refused");
		m.attr.ctime.tv_nsec = 1000000000L;
		is_int(vv_rw_encode(&h, &m, frame, sizeof(frame)), VV_EINVAL, "encode refuses bad nanoseconds");
	}

	/* directory entries */
	{
		uint8_t buf[200];
		size_t len = 0, off = 0;
		struct vv_dirent e = { .ino = 5, .mode = 040000, .name = "dir", .next = 3 }, g;
		struct vv_attr a = { .ino = 5, .mode = 040755 }, ga;
		char nb[VV_NAME_MAX + 1];
		int k = 0;

		ok(vv_rw_dirent_put(buf, sizeof(buf), &len, &e, &a) == 0, "an entry with attributes fits");
		e.name = "..";
		ok(vv_rw_dirent_put(buf, sizeof(buf), &len, &e, &a) == 1, "the next one does not: 1, nothing written");
		ok(vv_rw_dirent_next(buf, len, &off, true, &g, nb, &ga) == 0 && g.ino == 5 &&
		   !strcmp(g.name, "dir") && g.next == 3 && ga.mode == 040755, "it reads back");
		ok(vv_rw_dirent_next(buf, len, &off, true, &g, nb, &ga) == 1, "then the end");
		for (size_t cut = 1; cut < len; cut++) {
			off = 0;
			if (vv_rw_dirent_next(buf, cut, &off, true, &g, nb, &ga) != VV_ECORRUPT)
				k++;
		}
		is_int(k, 0, "every truncated entry is refused");
	}
	return tap_done();
}
