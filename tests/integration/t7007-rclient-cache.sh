#!/bin/bash
# t7007-rclient-cache: the vv:// client keeps file contents in the page
# cache while the server reports them unchanged (the OPEN reply's data
# generation), and a change is seen on the next open, without waiting:
# made on the server's own mount, by another vv:// client, or through this
# mount.  A re-read of an unchanged file reads nothing from the server
# (its close record says rbytes=0); the server's own mount sees remote
# changes at once as well (its long attribute cache is invalidated).
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

R2=$T/r2
vv_listen_mount server
vv_alice_coll
"$VV_BIN" user add bob --uid 1000 --no-password "$M" >/dev/null
vv_key_file bob "$T/bkey"
check "client 1 (alice)" vv_rmount "vv://127.0.0.1:$P/coll" "$R" --key-file "$T/key" --pin "$FP"
check "client 2 (bob)" vv_rmount "vv://127.0.0.1:$P/coll" "$R2" --key-file "$T/bkey" --pin "$FP"

head -c 300000 /dev/urandom > "$T/v1"
cp "$T/v1" "$M/coll/f"
chown 1000:1000 "$M/coll/f"
check "first read through vv://" cmp "$T/v1" "$R/f"
# closes by alice of /coll/f that read nothing from the server
cached_closes() {
	vv_audit_q "$AUD" count op=close path=/coll/f "user=alice/$KID" rbytes=0
}
N0=$(cached_closes)
check "re-read: same bytes" cmp "$T/v1" "$R/f"
check "re-read: served from the page cache (a close with rbytes=0)" \
	sh -c "for i in \$(seq 1 300); do [ \$($PY $VV_SRC/tests/integration/lib/auditq.py '$AUD' count op=close path=/coll/f user=alice/$KID rbytes=0) -gt $N0 ] && exit 0; sleep 0.1; done; exit 1"
# The client raises its mount's read-ahead window at the first open, as a
# local mount does (fs/readahead.c): 1 MiB reads, several in flight.
bdi=$(mountpoint -d "$R")
if [ -w "/sys/class/bdi/$bdi/read_ahead_kb" ]; then
	check "the vv:// mount's read-ahead window was raised" \
		test "$(cat "/sys/class/bdi/$bdi/read_ahead_kb")" -ge 1024
fi
head -c 9437185 /dev/urandom > "$T/big"
cp "$T/big" "$M/coll/big"
chown 1000:1000 "$M/coll/big"
sync
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
check "9 MiB + 1 read cold through vv:// in large requests: the file" cmp "$T/big" "$R/big"

# changed on the server's mount: seen on the next open, also a shorter file
head -c 100000 /dev/urandom > "$T/v2"
cp "$T/v2" "$M/coll/f"
check "changed on the server's mount: the next open sees it" cmp "$T/v2" "$R/f"
head -c 400000 /dev/urandom > "$T/v3"
cp "$T/v3" "$M/coll/f"
check "changed again, longer: seen" cmp "$T/v3" "$R/f"

# changed by another client
cmp "$T/v3" "$R2/f" >/dev/null
printf 'written by bob\n' | dd of="$R2/f" bs=1 seek=1000 conv=notrunc status=none
cp "$T/v3" "$T/v4"
printf 'written by bob\n' | dd of="$T/v4" bs=1 seek=1000 conv=notrunc status=none
check "changed by another vv:// client: seen by client 1" cmp "$T/v4" "$R/f"
check "... and by the server's mount" cmp "$T/v4" "$M/coll/f"

# changed through this mount, then by the server's mount, in place
printf 'by alice' | dd of="$R/f" bs=1 seek=5 conv=notrunc status=none
printf 'by alice' | dd of="$T/v4" bs=1 seek=5 conv=notrunc status=none
check "changed through this mount: seen here" cmp "$T/v4" "$R/f"
check "... by client 2" cmp "$T/v4" "$R2/f"
check "... by the server's mount" cmp "$T/v4" "$M/coll/f"
printf 'local!' | dd of="$M/coll/f" bs=1 seek=7 conv=notrunc status=none
printf 'local!' | dd of="$T/v4" bs=1 seek=7 conv=notrunc status=none
check "changed in place on the server (same size): seen by both clients" \
	sh -c "cmp '$T/v4' '$R/f' && cmp '$T/v4' '$R2/f'"
# a file open for a long time: a reader that keeps it open sees its
# own earlier pages, a new open sees the change
check "open-before-change handle still reads; a new open sees the change" "$PY" - "$R/f" "$M/coll/f" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
a = os.pread(fd, 100, 0)
with open(sys.argv[2], 'r+b') as f:
    f.write(b'Z' * 100)
with open(sys.argv[1], 'rb') as f:
    assert f.read(100) == b'Z' * 100
os.close(fd)
PY
fusermount3 -u "$R2"
fusermount3 -u "$R"
test_done
