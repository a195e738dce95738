#!/bin/bash
# remote-nodes-bench.sh - what the nodes a vv:// session holds cost the
# server daemon (docs/remote.md "Nodes a session holds"): a vault with a
# directory of FILES empty files; one protocol session lists it with
# READDIRPLUS (a lookup reference on every entry), then SESSIONS-1 more
# sessions of the same key list it too (the same nodes, one entry more in
# each session's table).  Prints the daemon's RSS after each step, the
# bytes per node and per further session's entry, and how many entries
# the server refused (attributes withheld: the node budget).  Root; no
# timing, asserts nothing.
#
#   VV_BIN=build/vecvault tests/bench/remote-nodes-bench.sh
#   FILES=40000 SESSIONS=8 (defaults); MOUNT_OPTS="--remote-nodes 10000"
set -eu
VV_SRC=$(cd "$(dirname "$0")/../.." && pwd)
FILES=${FILES:-40000}
SESSIONS=${SESSIONS:-8}
. "$VV_SRC/tests/integration/test-lib.sh"
. "$VV_SRC/tests/integration/remote-lib.sh"
vv_need_fuse
ADDR=127.0.0.1:$(vv_free_port)
# shellcheck disable=SC2086
vv_listen_mount "mount" "$ADDR" ${MOUNT_OPTS:-}
vv_alice_coll
mkdir "$M/coll/d"
"$PY" -c "
import os
for i in range($FILES):
    os.close(os.open('$M/coll/d/f%07d' % i, os.O_CREAT | os.O_WRONLY, 0o644))"
# a daemon that holds no node yet (the one that made them keeps 32768 idle)
vv_umount "$M"
# shellcheck disable=SC2086
vv_mount "$S" "$M" --listen "$ADDR" --tls-cert "$T/tls/cert.pem" --tls-key "$T/tls/key.pem" \
	${MOUNT_OPTS:-}
DPID=$(pgrep -f "vecvault mount $S $M " | head -n 1)
echo "# $FILES files, $SESSIONS sessions, daemon pid $DPID, load $(cut -d' ' -f1 /proc/loadavg)"
rpy "
import subprocess
def rss():
    return int(subprocess.check_output(['awk', '/^VmRSS/ { print \$2 * 1024 }',
                                        '/proc/$DPID/status']))
def login():
    c = R.Client('127.0.0.1', $P)
    c.auth_key(open('$T/key').read().strip())
    return c
def plus(c):
    try:
        d = c.walk('/coll/d')
    except R.Error as e:
        print('  lookup of /coll/d refused: %s (the node budget)' % e)
        return 0
    dh = c.call('opendir', d)[0]
    off, got, bare = 0, 0, 0
    while True:
        ents = R.dirents(c.call('readdir', dh, off, 1, 1 << 20)[0], True)
        if not ents:
            break
        got += len(ents)
        bare += sum(1 for e in ents if e[4] == 0 and e[0] not in ('.', '..'))
        off = ents[-1][3]
    c.call('releasedir', dh)
    if bare:
        print('  %d of %d entries came without attributes (the node budget)' % (bare, got))
    return got
base = rss()
cs = [login()]
n = plus(cs[0])
one = rss()
print('rss before %.1f MB, after one session held %d entries %.1f MB: %.0f B per node'
      % (base / 1e6, n, one / 1e6, (one - base) / n))
for i in range(1, $SESSIONS):
    cs.append(login())
    plus(cs[-1])
more = rss()
if $SESSIONS > 1:
    print('after %d sessions: %.1f MB: %.0f B per further session entry'
          % ($SESSIONS, more / 1e6, (more - one) / (n * ($SESSIONS - 1))))
    print('  (each session also has 4 workers with 2 MiB of buffers each)')
for c in cs:
    c.close()
time.sleep(2)
print('after the sessions ended: %.1f MB' % (rss() / 1e6))
"
grep -c '"node budget' "$AUD" | sed 's/^/# budget refusal records: /' || true
test_done
