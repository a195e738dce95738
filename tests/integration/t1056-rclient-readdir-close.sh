#!/bin/bash
# t1056-rclient-readdir-close: directories listed and closed at once, on
# several threads, through a vv:// mount.  The client's readdir used its
# handle after the reply, when the kernel may already have closed the
# directory on another FUSE thread (a heap use-after-free: ASan stopped
# the client in t7005's rm -r, and every later call got ENOTCONN).  Each
# listing must be whole, the client must stay up.  Main passes without a
# sanitizer (the freed bytes are only read); built with -DVV_SANITIZE=ON
# it failed 2 of 5 checks in each of 4 runs (ASan stops the client), and
# sanitizer/reports with the report.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_listen_mount "server: mount --listen"
vv_alice_coll
"$PY" -c "
import os
for d in range(40):
    os.mkdir('$M/coll/d%02d' % d)
    for f in range(20):
        open('$M/coll/d%02d/f%02d' % (d, f), 'w').close()"
chown -R 1000:1000 "$M/coll"
check "mount vv://alice@127.0.0.1:P/coll" vv_rmount "vv://alice@127.0.0.1:$P/coll" "$R" \
	--key-file "$T/key" --pin "$FP"

# four processes, each listing the 40 directories 10 times (opendir,
# readdirplus, closedir: the release follows the last reply at once),
# the first of each round through a walk that prefetches the rest
cat > "$T/lister.py" <<PY
import os, sys
bad = 0
for rnd in range(10):
    for d in range(40):
        try:
            n = len(os.listdir('$R/d%02d' % d))
        except OSError as e:
            print('# d%02d: %s' % (d, e))
            bad += 1
            continue
        if n != 20:
            print('# d%02d: %d names' % (d, n))
            bad += 1
    if rnd % 3 == 0:
        for _ in os.walk('$R'):
            pass
sys.exit(1 if bad else 0)
PY
pids=()
for i in 1 2 3 4; do
	"$PY" "$T/lister.py" > "$T/lister.$i" 2>&1 &
	pids+=($!)
done
fails=0
for pid in "${pids[@]}"; do
	wait "$pid" || fails=$((fails + 1))
done
cat "$T"/lister.? | head -n 20
check "1,600 listings on four threads: each whole" test "$fails" = 0
check "the client is still up" test "$(ls "$R" | wc -l)" = 40
check "unmounted" fusermount3 -u "$R"

test_done
