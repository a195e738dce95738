#!/bin/bash
# backup-ab.sh - `vecvault backup` of two builds on the same data, their runs
# interleaved (ref, new, ref, new ...), so that both see the same load:
#
#   sudo VV_REF=/path/old/vecvault VV_BIN=/path/new/vecvault \
#        tests/bench/backup-ab.sh [SCRATCH_DIR]
#
# On a vault holding DATA_MIB MiB of segments (default 2048, in 64 MiB
# files) and FILES small files (default 2000, 1-8 KiB), REPS times (default
# 2) for each build: a first backup into a fresh repository (made by that
# build), a no-change re-run, and a restore into a new store.  The daemon
# is that build's (a create runs in it); the restore is the CLI's.  Prints
# each run, then the medians of wall and CPU (command + daemon) time and
# the ratios ref/new: above 1 the new build is faster.
set -eu
BENCH_NAME=backup-ab
HERE=$(cd "$(dirname "$0")" && pwd)
B=${1:-/tmp/vv-backup-ab}
DATA_MIB=${DATA_MIB:-2048}
FILES=${FILES:-2000}
REPS=${REPS:-2}
mkdir -p "$B"
B=$(cd "$B" && pwd)
. "$HERE/fs-lib.sh"
[ -n "${VV_REF:-}" ] && [ -x "$VV_REF" ] || die "VV_REF must name the reference build's vecvault"
NEW=$VV
backup_bench_begin

median() { bench_median; }
dcpu() { if [ -s "$B/vecvault/pid" ]; then proc_ticks "$(cat "$B/vecvault/pid")"; else echo 0; fi; }
# timed CMD...: "WALL CPU" seconds (the command's user + system time plus
# the daemon's over the same interval).
timed() {
	local t0 t1 c0 c1
	c0=$(dcpu); t0=$(now_us)
	/usr/bin/time -f '%U %S' -o "$B/cpu" "$@" >/dev/null 2>&1 || die "failed: $*"
	t1=$(now_us); c1=$(dcpu)
	awk -v w=$((t1 - t0)) -v d=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" \
		'{ printf "%.2f %.2f", w / 1e6, $1 + $2 + d / hz }' "$B/cpu"
}

backup_bench_data "$M" "$DATA_MIB" "$FILES"
fs_umount vecvault

declare -A T
for rep in $(seq 1 "$REPS"); do
	for who in ref new; do
		bin=$([ $who = ref ] && echo "$VV_REF" || echo "$NEW")
		VV=$bin fs_mount vecvault
		rm -rf "$B/repo-$who" "$B/restore-$who"
		"$bin" backup init "$B/repo-$who" --passfile "$B/rpass" >/dev/null
		a=$(timed "$bin" backup create "$M" "$B/repo-$who" --passfile "$B/rpass")
		b=$(timed "$bin" backup create "$M" "$B/repo-$who" --passfile "$B/rpass")
		fs_umount vecvault
		id=$(ls "$B/repo-$who/manifests" | head -1)
		c=$(timed "$bin" backup restore "$B/repo-$who" "$id" "$B/restore-$who" \
			--repo-passfile "$B/rpass" --passfile "$B/pass")
		rm -rf "$B/restore-$who"
		echo "$who rep $rep: first $a, no-change $b, restore $c (wall CPU s), load $(cut -d' ' -f1 /proc/loadavg)"
		T[$who-first-w]+="${a% *} "; T[$who-first-c]+="${a#* } "
		T[$who-nc-w]+="${b% *} "; T[$who-nc-c]+="${b#* } "
		T[$who-rs-w]+="${c% *} "; T[$who-rs-c]+="${c#* } "
	done
done
m() { echo "${T[$1]}" | tr ' ' '\n' | grep . | median; }
for k in first nc rs; do
	name=$(case $k in first) echo "first backup" ;; nc) echo "no-change re-run" ;; rs) echo "restore" ;; esac)
	note "$name: ref $(m ref-$k-w) s wall / $(m ref-$k-c) s CPU, new $(m new-$k-w) / $(m new-$k-c);" \
		"ref/new wall $(awk -v a="$(m ref-$k-w)" -v b="$(m new-$k-w)" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')," \
		"CPU $(awk -v a="$(m ref-$k-c)" -v b="$(m new-$k-c)" 'BEGIN { printf "%.2fx", (b > 0 ? a / b : 0) }')"
done
note "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
