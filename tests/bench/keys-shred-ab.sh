#!/bin/bash
# keys-shred-ab.sh - what shredding dropped collection keys on disk costs
# (secure_delete=ON and the settle after a drop's commit, docs/design.md
# "Collections and keys"): old binary (A) against new (B), and optionally
# a third (C, e.g. a build with secure_delete=FAST), Release builds, runs
# interleaved (the order rotates each round), a fresh store and daemon
# for each.  Phases: seconds and the daemon's write_bytes (/proc/PID/io);
# medians and ratios against A at the end.
#   small         create+unlink 10,000 100-byte files, synced
#   inline        create+unlink 2,000 32 KiB files (inline rows on
#                 overflow pages: what secure_delete zeroes), synced
#   rmdir100      rm -r of 100 collections (a small file each), one sync
#   rmdir100sync  the same with a sync after each rmdir (a settle per drop)
#
#   VV_A=/old/vecvault VV_B=/new/vecvault [VV_C=/third/vecvault] tests/bench/keys-shred-ab.sh [ROUNDS]   (root; default 9)
set -eu
A=${VV_A:?set VV_A to the old vecvault binary}
B=${VV_B:?set VV_B to the new vecvault binary}
C=${VV_C:-}
ROUNDS=${1:-9}
W=${W:-/var/tmp/keys-shred-ab}
rm -rf $W; mkdir -p $W/state $W/audit
export VECVAULT_TEST_KDF=1 VECVAULT_STATE_DIR=$W/state VECVAULT_AUDIT_DIR=$W/audit
printf 'bench pass\n' > $W/pass; chmod 600 $W/pass
one() {   # one BIN TAG
	local bin=$1 tag=$2
	local s=$W/s-$tag m=$W/m-$tag
	rm -rf $s; mkdir -p $m
	$bin init $s --passfile $W/pass --kdf test >/dev/null 2>&1
	$bin mount $s $m --passfile $W/pass --trash-days 0 --pid-file $W/pid-$tag --log $W/log-$tag
	local p=$(cat $W/pid-$tag)
	mkdir $m/c
	/usr/bin/python3 - "$m" "$tag" "$p" <<'PY'
import os, sys, time
m, tag, pid = sys.argv[1], sys.argv[2], sys.argv[3]
def sync():
    fd = os.open(m, os.O_RDONLY | os.O_DIRECTORY); os.fsync(fd); os.close(fd)
def wb():
    for l in open(f"/proc/{pid}/io"):
        if l.startswith("write_bytes:"): return int(l.split()[1])
out = [tag]
def phase(name, fn):
    sync(); w = wb(); t = time.monotonic(); fn(); sync()
    out.append(f"{name} {time.monotonic() - t:.3f} {name}_MB {(wb() - w) / 1e6:.1f}")
def small():
    for i in range(10000):
        fd = os.open(f"{m}/c/f{i}", os.O_WRONLY | os.O_CREAT, 0o644); os.write(fd, b"x" * 100); os.close(fd)
    for i in range(10000):
        os.unlink(f"{m}/c/f{i}")
blob = os.urandom(32768)
def inline():
    for i in range(2000):
        fd = os.open(f"{m}/c/g{i}", os.O_WRONLY | os.O_CREAT, 0o644); os.write(fd, blob); os.close(fd)
    for i in range(2000):
        os.unlink(f"{m}/c/g{i}")
def mk(p):
    for i in range(100):
        os.mkdir(f"{m}/{p}{i}")
        with open(f"{m}/{p}{i}/f", "wb") as f: f.write(b"y" * 100)
    sync()
def rm(p, each):
    for i in range(100):
        os.unlink(f"{m}/{p}{i}/f"); os.rmdir(f"{m}/{p}{i}")
        if each: sync()
phase("small", small)
phase("inline", inline)
mk("k"); phase("rmdir100", lambda: rm("k", False))
mk("j"); phase("rmdir100sync", lambda: rm("j", True))
print(" ".join(out), flush=True)
PY
	fusermount3 -u $m
	while kill -0 $p 2>/dev/null; do sleep 0.05; done
	rm -rf $s
}
for r in $(seq "$ROUNDS"); do
	if [ -n "$C" ]; then
		case $((r % 3)) in
		1) one $A A; one $B B; one $C C ;;
		2) one $B B; one $C C; one $A A ;;
		0) one $C C; one $A A; one $B B ;;
		esac
	elif [ $((r % 2)) = 1 ]; then one $A A; one $B B
	else one $B B; one $A A; fi
done | tee "$W.out"
# medians and ratios against A
/usr/bin/python3 - "$W.out" <<'PY'
import sys, statistics as st
d = {}
for l in open(sys.argv[1]):
    p = l.split()
    for i in range(1, len(p), 2):
        d.setdefault(p[0], {}).setdefault(p[i], []).append(float(p[i + 1]))
for k in d["A"]:
    med = {t: st.median(d[t][k]) for t in sorted(d)}
    print("%-16s " % k + "  ".join("%s %.3f" % (t, v) for t, v in med.items()) + "   " +
          "  ".join("%s/A %.2f" % (t, med[t] / med["A"]) for t in med if t != "A" and med["A"]))
PY
