#!/bin/bash
# backup-bench.sh - what `vecvault backup` costs (docs/design.md "Backups"),
# against restic backing up the plaintext mount when restic is installed
# (Debian `restic`; without it that half is skipped with a note).
#
#   sudo tests/bench/backup-bench.sh [SCRATCH_DIR]
#
# On a vault holding DATA_MIB MiB of segments (default 2048, in 64 MiB
# files) and FILES small files (default 2000, 1-8 KiB), in one run:
#   1. first backup           (vecvault backup create / restic backup MNT)
#   2. a no-change re-run
#   3. a run after rewriting 1% of the small files and one segment
#   4. a full restore         (backup restore to a new store / restic restore)
# Prints each time (median of REPS, default 1, fresh repositories each rep
# for 1 and 4), wall and CPU (the command's plus the daemon's), the
# repository sizes, and the ratios restic/vecvault of both.
# Goals: first backup >= 3x faster than restic, no-change re-run >= 10x,
# restore >= 2x, repository no larger than restic's + 5%.  Ratios are of
# numbers measured in the same run; absolute times here are noisy.
set -eu
BENCH_NAME=backup-bench
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:-/tmp/vv-backup-bench}
DATA_MIB=${DATA_MIB:-2048}
FILES=${FILES:-2000}
REPS=${REPS:-1}
mkdir -p "$B"
B=$(cd "$B" && pwd)
. "$HERE/fs-lib.sh"
export RESTIC_PASSWORD_FILE=$B/rpass
backup_bench_begin

median() { bench_median; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1e6 }'; }
# timed CMD...: "WALL CPU" seconds; CPU = the command's user + system time
# plus the vecvault daemon's over the same interval (a vecvault create runs
# in the daemon; restic reads the mount, which the daemon serves): CPU time
# is steadier than wall time on a loaded machine.
dcpu() { proc_ticks "$(cat "$B/vecvault/pid")"; }
timed() {
	local t0 t1 c0 c1 cc
	c0=$(dcpu); t0=$(now_us)
	/usr/bin/time -f '%U %S' -o "$B/cpu" "$@" >/dev/null 2>&1
	t1=$(now_us); c1=$(dcpu)
	cc=$(awk -v d=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", $1 + $2 + d / hz }' "$B/cpu")
	echo "$(secs "$t0" "$t1")/$cc"
}
size() { du -sb "$1" | awk '{ print $1 }'; }

backup_bench_data "$M" "$DATA_MIB" "$FILES"

change() {   # rewrite 1% of the small files and one segment
	$PY - "$M/small" "$FILES" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(0, n, 100):
    open(f"{d}/{i // 100}/f{i}", "wb").write(os.urandom(4096))
PY
	head -c $((64 << 20)) /dev/urandom > "$M/segs/s1.bin"
	sync -f "$M"
}

declare -A T
for rep in $(seq 1 "$REPS"); do
	rm -rf "$B/vrepo" "$B/vrestore"
	"$VV" backup init "$B/vrepo" --passfile "$B/rpass" >/dev/null
	T[v1]+="$(timed "$VV" backup create "$M" "$B/vrepo" --passfile "$B/rpass") "
	T[v2]+="$(timed "$VV" backup create "$M" "$B/vrepo" --passfile "$B/rpass") "
	change
	T[v3]+="$(timed "$VV" backup create "$M" "$B/vrepo" --passfile "$B/rpass") "
	id=$("$VV" backup list "$B/vrepo" --passfile "$B/rpass" | tail -1 | awk '{ print $1 }')
	T[v4]+="$(timed "$VV" backup restore "$B/vrepo" "$id" "$B/vrestore" --repo-passfile "$B/rpass" --passfile "$B/pass") "
done
vsize=$(size "$B/vrepo")
# m KEY [cpu]: the median wall (or CPU) seconds of a line.
m() { echo "${T[$1]}" | tr ' ' '\n' | grep . | awk -F/ -v f=$([ "${2:-}" = cpu ] && echo 2 || echo 1) '{ print $f }' | median; }
note "vecvault: first $(m v1) s, no-change $(m v2) s, after 1% change $(m v3) s, restore $(m v4) s, repository $vsize bytes"
note "vecvault CPU: first $(m v1 cpu) s, no-change $(m v2 cpu) s, after 1% change $(m v3 cpu) s, restore $(m v4 cpu) s"
note "vecvault: no-change re-run / first backup = $(awk -v a="$(m v2)" -v b="$(m v1)" 'BEGIN { printf "%.3f", a / b }')"

if ! command -v restic >/dev/null; then
	note "restic is not installed (Debian: restic): the comparison is skipped"
	exit 0
fi
for rep in $(seq 1 "$REPS"); do
	rm -rf "$B/rrepo" "$B/rrestore"
	restic init --repo "$B/rrepo" >/dev/null 2>&1
	T[r1]+="$(timed restic --repo "$B/rrepo" backup "$M" --exclude "$M/.snapshots") "
	T[r2]+="$(timed restic --repo "$B/rrepo" backup "$M" --exclude "$M/.snapshots") "
	change
	T[r3]+="$(timed restic --repo "$B/rrepo" backup "$M" --exclude "$M/.snapshots") "
	T[r4]+="$(timed restic --repo "$B/rrepo" restore latest --target "$B/rrestore") "
done
rsize=$(size "$B/rrepo")
note "restic: first $(m r1) s, no-change $(m r2) s, after 1% change $(m r3) s, restore $(m r4) s, repository $rsize bytes"
note "restic CPU (with the daemon serving its reads): first $(m r1 cpu) s, no-change $(m r2 cpu) s, after 1% change $(m r3 cpu) s, restore $(m r4 cpu) s"
names=(x "first backup" "no-change re-run" "after 1% change" "restore")
for k in 1 2 3 4; do
	note "restic/vecvault ${names[$k]}: wall $(awk -v a="$(m r$k)" -v b="$(m v$k)" 'BEGIN { printf "%.2fx", a / b }'), CPU $(awk -v a="$(m r$k cpu)" -v b="$(m v$k cpu)" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')"
done
note "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
note "repository size vecvault/restic: $(awk -v a="$vsize" -v b="$rsize" 'BEGIN { printf "%.3f", a / b }')"
