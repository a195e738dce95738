#!/bin/bash
# remote-readdir-stall-bench.sh - what 1 MiB remote READDIRPLUS requests
# cost local users of the same daemon: the latency of root's open+close of
# a small file on the local mount (every ms) during one cold listing (the
# store's pages dropped from the page cache, a new daemon: meta.db read
# from disk), then OPENS of them idle and while FLOODERS vv:// protocol
# sessions list a directory of FILES files with attributes as fast as
# they can (warm).  docs/remote.md "The session": listings are served in
# pieces, each one vault call, the vault's lock given up between them.  Two daemons in one run, interleaved (A B A B ...,
# ROUNDS each, the same store): BIN_A and BIN_B, e.g. a build before and
# after a change.  Prints per round and overall the median, p90 and max
# of OPENS opens idle and under the flood, and the ratios B/A.  Root;
# asserts nothing.  Build Release for numbers worth quoting.
#
#   BIN_A=/tmp/old/vecvault BIN_B=build/vecvault tests/bench/remote-readdir-stall-bench.sh
#   FILES=20000 FLOODERS=4 OPENS=600 ROUNDS=3 (defaults)
set -eu
VV_SRC=$(cd "$(dirname "$0")/../.." && pwd)
FILES=${FILES:-20000}
FLOODERS=${FLOODERS:-4}
OPENS=${OPENS:-600}
ROUNDS=${ROUNDS:-3}
BIN_A=${BIN_A:?BIN_A: the first vecvault binary}
BIN_B=${BIN_B:?BIN_B: the second vecvault binary}
VV_BIN=$BIN_B
. "$VV_SRC/tests/integration/test-lib.sh"
. "$VV_SRC/tests/integration/remote-lib.sh"
vv_need_fuse
ADDR=127.0.0.1:$(vv_free_port)
vv_listen_mount "mount" "$ADDR"
vv_alice_coll
mkdir "$M/coll/d"
echo x > "$M/coll/small"
"$PY" -c "
import os
for i in range($FILES):
    os.close(os.open('$M/coll/d/f%07d' % i, os.O_CREAT | os.O_WRONLY, 0o644))"
vv_umount "$M"
echo "# $FILES files, $FLOODERS flooders, $OPENS opens per phase, $ROUNDS rounds, load $(cut -d' ' -f1 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
	for which in A B; do
		bin=$BIN_A
		[ "$which" = B ] && bin=$BIN_B
		# the store's pages out of the page cache: the first listing reads
		# meta.db from disk (the daemon's own caches are new)
		"$PY" -c "
import os
for dp, dn, fn in os.walk('$S'):
    for f in fn:
        fd = os.open(os.path.join(dp, f), os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)"
		VV_BIN=$bin vv_mount "$S" "$M" --listen "$ADDR" --tls-cert "$T/tls/cert.pem" \
			--tls-key "$T/tls/key.pem"
		rpy "
import multiprocessing, statistics, threading
def login():
    c = R.Client('127.0.0.1', ${ADDR##*:})
    c.auth_key(open('$T/key').read().strip())
    return c, c.walk('/coll/d')
def listing(c, d):
    dh = c.call('opendir', d)[0]
    c.call('readdir', dh, 0, 1, 1 << 20)
    c.call('releasedir', dh)
def flood(stop):
    c, d = login()
    while not stop.is_set():
        listing(c, d)
def small():
    t = time.perf_counter()
    os.close(os.open('$M/coll/small', os.O_RDONLY))
    return (time.perf_counter() - t) * 1e3
def opens():
    out = []
    for i in range($OPENS):
        out.append(small())
        time.sleep(0.002)
    return out
def show(name, v):
    v = sorted(v)
    print('$which $r %-6s median %.3f p90 %.3f max %.1f ms' % (name, statistics.median(v),
          v[int(len(v) * 0.9)], v[-1]), flush=True)
# one cold listing, opens every ms meanwhile
small()
c, d = login()
lat, stop = [], threading.Event()
def opener():
    while not stop.is_set():
        lat.append(small())
        time.sleep(0.001)
th = threading.Thread(target=opener)
th.start()
time.sleep(0.2)
listing(c, d)
stop.set()
th.join()
show('cold', lat)
c.close()
show('idle', opens())
stop = multiprocessing.Event()
ps = [multiprocessing.Process(target=flood, args=(stop,)) for i in range($FLOODERS)]
for p in ps:
    p.start()
time.sleep(2)
show('flood', opens())
stop.set()
for p in ps:
    p.join(30)
" | tee -a "$T/res"
		vv_umount "$M"
	done
done
"$PY" - "$T/res" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for phase in ('cold', 'idle', 'flood'):
    m = {w: [float(r[4]) for r in rows if r[0] == w and r[2] == phase] for w in 'AB'}
    p = {w: [float(r[6]) for r in rows if r[0] == w and r[2] == phase] for w in 'AB'}
    ma, mb = statistics.median(m['A']), statistics.median(m['B'])
    pa, pb = statistics.median(p['A']), statistics.median(p['B'])
    xa = statistics.median([float(r[8]) for r in rows if r[0] == 'A' and r[2] == phase])
    xb = statistics.median([float(r[8]) for r in rows if r[0] == 'B' and r[2] == phase])
    print('%-5s median of medians A %.3f B %.3f ms (B/A %.2f); median p90 A %.3f B %.3f ms '
          '(B/A %.2f); median max A %.1f B %.1f ms (B/A %.2f)'
          % (phase, ma, mb, mb / ma, pa, pb, pb / pa, xa, xb, xb / xa))
PY
test_done
