#!/bin/bash
# ctl-bench.sh: the cost of one admin request on the control socket,
# against a FUSE round trip measured in the same run on the same daemon.
#
#   sudo VV_BIN=build/vecvault tests/bench/ctl-bench.sh [REPS]
#
# Reference (= 1): getxattr(MNT, "user.vecvault.vault"): the kernel never
# caches xattrs, so each one is a FUSE request answered by the daemon, with
# an audit record, like an admin request.  Lines, per operation, median of
# REPS (default 5) repetitions:
#   fuse getxattr            2000 on the mount point
#   ctl ping, one conn       2000 vault.ping on one connection
#   ctl ping, conn each      300 connect + vault.ping + close (a thread per
#                            connection: the CLI's pattern)
#   vecvault --version       30 runs: what starting the CLI costs
#   vecvault admin (CLI)     30 runs of `vecvault admin MNT vault.ping`
#                            (process start, mount lookup, ping check, request)
# Prints microseconds per operation and the ratio to the reference.
set -eu
VV_BIN=${VV_BIN:-build/vecvault}
REPS=${1:-5}
T=$(mktemp -d /tmp/vv-ctlbench.XXXXXX)
trap 'fusermount3 -u "$T/mnt" 2>/dev/null; sleep 0.5; rm -rf --one-file-system "$T"' EXIT
export VECVAULT_TEST_KDF=1 VECVAULT_STATE_DIR=$T/state VECVAULT_AUDIT_DIR=$T/audit
mkdir -m 700 "$T/state" "$T/audit"
mkdir "$T/mnt"
printf 'bench\n' > "$T/pass"
chmod 600 "$T/pass"
"$VV_BIN" init "$T/store" --passfile "$T/pass" --kdf test >/dev/null
"$VV_BIN" mount "$T/store" "$T/mnt" --passfile "$T/pass" --log "$T/log"
ID=$("$VV_BIN" info "$T/store" | awk '/^store id:/ { print $3 }')
python3 - "$T/mnt" "/run/vecvault/$ID.sock" "$VV_BIN" "$REPS" <<'PY'
import os, socket, statistics, struct, subprocess, sys, time
mnt, sock, vv, reps = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def req(verb):
    return b"VVCP\x01\x01\x00\x00" + struct.pack("<I", 3 + len(verb)) + bytes([len(verb)]) + verb.encode() + b"\x00\x00"
PING = req("vault.ping")
def recv_reply(s):
    h = b""
    while len(h) < 12: h += s.recv(12 - len(h))
    n = struct.unpack("<I", h[8:12])[0]; b = b""
    while len(b) < n: b += s.recv(n - len(b))
def fuse(n):
    for _ in range(n): os.getxattr(mnt, "user.vecvault.vault")
def one_conn(n):
    s = socket.socket(socket.AF_UNIX); s.connect(sock)
    for _ in range(n): s.sendall(PING); recv_reply(s)
    s.close()
def conn_each(n):
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX); s.connect(sock); s.sendall(PING); recv_reply(s); s.close()
def start(n):
    for _ in range(n):
        subprocess.run([vv, "--version"], stdout=subprocess.DEVNULL, check=True)
def cli(n):
    for _ in range(n):
        subprocess.run([vv, "admin", mnt, "vault.ping"], stdout=subprocess.DEVNULL, check=True)
lines = [("fuse getxattr (reference)", fuse, 2000), ("ctl ping, one conn", one_conn, 2000),
         ("ctl ping, conn each", conn_each, 300), ("vecvault --version", start, 30), ("vecvault admin (CLI)", cli, 30)]
res = {}
for r in range(reps):
    for name, fn, n in lines:
        t0 = time.perf_counter(); fn(n); dt = time.perf_counter() - t0
        res.setdefault(name, []).append(dt / n * 1e6)
ref = statistics.median(res[lines[0][0]])
print("%-28s %12s %8s" % ("line", "us/op (med)", "ratio"))
for name, _, _ in lines:
    m = statistics.median(res[name])
    print("%-28s %12.1f %8.2f" % (name, m, m / ref))
PY
