#!/bin/bash
# t1018-read-ahead: the daemon's read path for sequential readers (the
# kernel read-ahead window it sets, the blocks its workers decrypt ahead and
# in parallel) never changes what a read returns.  A 21 MiB file with an odd
# tail, read cold after a remount: sequentially in full, in pieces across
# every 64 KiB block and 4 MiB chunk boundary, by four readers at once,
# randomly after a sequential pass; while another handle overwrites and
# truncates it (each read returns old or new bytes of that offset, and the
# file afterwards is exactly the model); and with one chunk tampered, where
# every read succeeds with the original bytes or fails with EIO, never
# other bytes.  Also checks that the mount's read-ahead window was raised
# (when sysfs allows it).
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

S=$T/store
M=$T/mnt
vv_init "$S" >/dev/null
SIZE=$((21 * 1048576 + 12345))
head -c "$SIZE" /dev/urandom > "$T/orig"

cold() { vv_cold "$S" "$M"; }   # the next reads reach the daemon

vv_mount "$S" "$M"
cp "$T/orig" "$M/f"
sync
cold

check "sequential read, cold, is the file" cmp "$M/f" "$T/orig"
bdi=$(mountpoint -d "$M")
if [ -w "/sys/class/bdi/$bdi/read_ahead_kb" ]; then
	check "the mount's read-ahead window was raised" \
		test "$(cat "/sys/class/bdi/$bdi/read_ahead_kb")" -ge 1024
fi

cold
# Pieces around every block and chunk boundary, in file order, in sizes that
# straddle them (a sequential reader whose requests are not block-aligned).
check "reads across every block and chunk boundary" "$PY" - "$M/f" "$T/orig" <<'EOF'
import os, sys
f = os.open(sys.argv[1], os.O_RDONLY); orig = open(sys.argv[2], "rb").read()
bad = 0
for size in (1, 4095, 65537, 1048576 + 3):
    off = 0
    while off < len(orig):
        got = os.pread(f, size, off)
        if got != orig[off:off + size]: bad += 1
        off += size
        # jump to just before the next block boundary now and then
        if size == 1: off = (off // 65536 + 1) * 65536 - 1
for b in range(1, len(orig) // 65536 + 2):
    for d in (-17, -1, 0, 1):
        o = b * 65536 + d
        if 0 <= o < len(orig) and os.pread(f, 64, o) != orig[o:o + 64]: bad += 1
if os.pread(f, 4096, len(orig)) != b"": bad += 1
sys.exit(1 if bad else 0)
EOF

cold
for i in 1 2 3 4; do cmp "$M/f" "$T/orig" > "$T/cmp.$i" 2>&1 & done
rc=0
for i in 1 2 3 4; do wait %$i || rc=1; done
check "four concurrent sequential readers, cold" test "$rc" = 0

check "random reads after a sequential pass" "$PY" - "$M/f" "$T/orig" <<'EOF'
import os, random, sys
f = os.open(sys.argv[1], os.O_RDONLY); orig = open(sys.argv[2], "rb").read()
while os.read(f, 1 << 20): pass
rng = random.Random(7); bad = 0
for _ in range(3000):
    o = rng.randrange(len(orig)); n = rng.choice((1, 512, 4096, 70000, 300000))
    if os.pread(f, n, o) != orig[o:o + n]: bad += 1
sys.exit(1 if bad else 0)
EOF

# Reads racing writes and truncates through another handle.  Each write
# replaces a region with bytes of a second image (new); each truncate cuts
# the file and the next write may extend it.  A concurrent sequential reader
# must see, at every offset, the old, the new or a zero byte (zero: a
# truncate cut and a write re-extended the file past it).  After both end,
# the file must equal the writer's model.
cold
head -c "$SIZE" /dev/urandom > "$T/new"
check "reads racing writes and truncates see only old, new or cut bytes" "$PY" - "$M/f" "$T/orig" "$T/new" <<'EOF'
import os, random, sys, threading
path, orig, new = sys.argv[1], open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
model = bytearray(orig); bad = []; stop = threading.Event()
def reader():
    f = os.open(path, os.O_RDONLY)
    while not stop.is_set():
        off = 0
        while True:
            b = os.pread(f, 1 << 20, off)
            if not b: break
            for i in range(0, len(b), 4093):
                o = off + i; c = b[i]
                if o < len(orig) and c not in (orig[o], new[o], 0): bad.append(o)
            off += len(b)
    os.close(f)
t = threading.Thread(target=reader); t.start()
w = os.open(path, os.O_WRONLY); rng = random.Random(11)
for k in range(60):
    if k % 10 == 9:
        n = rng.randrange(len(orig) // 2, len(orig)); os.ftruncate(w, n); del model[n:]
    else:
        o = rng.randrange(len(orig) - 300000); n = rng.randrange(1, 300000)
        os.pwrite(w, new[o:o + n], o)
        if o > len(model): model.extend(b"\0" * (o - len(model)))
        model[o:o + n] = new[o:o + n]
    if k % 20 == 0: os.fsync(w)
os.close(w); stop.set(); t.join()
f = os.open(path, os.O_RDONLY); got = b""
while True:
    b = os.read(f, 1 << 20)
    if not b: break
    got += b
print("# bad offsets: %d, final %s" % (len(bad), "same" if got == bytes(model) else "DIFFERS"))
sys.exit(1 if bad or got != bytes(model) else 0)
EOF
vv_umount "$M"

# One chunk tampered: flip a byte in the middle of the largest chunk of f
# (rewriting above left several).  Reads are the original bytes or EIO.
vv_mount "$S" "$M" --trash-days 0     # rm frees the old chunks (no trash)
rm -f "$M/f"
cp "$T/orig" "$M/f"
vv_umount "$M"
chunk=$(find "$S/chunks" -type f -name '[0-9a-f]*' -printf '%s %p\n' | sort -n | tail -1 | cut -d' ' -f2)
"$PY" - "$chunk" <<'EOF'
import os, sys
p = sys.argv[1]; n = os.path.getsize(p)
with open(p, "r+b") as f:
    f.seek(n // 2); b = f.read(1); f.seek(n // 2); f.write(bytes([b[0] ^ 0x10]))
EOF
sync
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
vv_mount "$S" "$M"
out=$("$PY" - "$M/f" "$T/orig" <<'EOF'
import errno, os, sys
orig = open(sys.argv[2], "rb").read(); eio = wrong = 0
for rnd in range(2):           # cold (read-ahead meets the damage), then again
    f = os.open(sys.argv[1], os.O_RDONLY)
    off = 0
    while off < len(orig):
        # A read may stop short before the damage (a prefix), then fail.
        try:
            got = os.pread(f, 1 << 20, off)
        except OSError as e:
            if e.errno != errno.EIO: wrong += 1
            eio += 1
            off = (off // 65536 + 1) * 65536
            continue
        if not got or got != orig[off:off + len(got)]:
            wrong += 1
            break
        off += len(got)
    os.close(f)
print("eio=%d wrong=%d" % (eio, wrong))
EOF
)
echo "# tampered chunk: $out"
eio_no_wrong() { case $1 in "eio=0 "*) return 1 ;; *" wrong=0") return 0 ;; *) return 1 ;; esac; }
check "tampered chunk: EIO where damaged, original bytes elsewhere, never other bytes" \
	eio_no_wrong "$out"
test_done
