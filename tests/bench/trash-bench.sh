#!/bin/bash
# trash-bench.sh - what the recycle bin costs `rm -rf`: a tree of small
# files removed from a vecvault mount with the trash on (the default, 30
# days: every removal is a move into .trash, and the directory's rmdir
# regroups its items) and off (--trash-days 0: removals are final), same
# store, same tree, alternating, REPS times each; medians.  Goal: on/off
# within 10%.  Also the daemon's CPU time during each rm -rf (less
# sensitive to a loaded machine than the wall time), rm of the single
# files without the directories (find -type f -delete: unlinks only), the
# restore of the whole tree (trash on) and the plain file system as a
# reference.  Prints ratios, never absolute claims.
#
#   tests/bench/trash-bench.sh [FILES] [REPS]     (root; default 3000 files, 5 reps)
set -eu
BENCH_NAME=trash-bench
HERE=$(cd "$(dirname "$0")" && pwd)
B=$(mktemp -d "${TMPDIR:-/tmp}/vv-trash-bench.XXXXXX")
. "$HERE/fs-lib.sh"
FILES=${1:-3000}
REPS=${2:-5}
bench_need_root "FUSE mounts"
fs_available vecvault || die "no vecvault binary (build it, or set VV_BIN)"
printf 'bench passphrase\n' > "$B/pass"
chmod 600 "$B/pass"
trap 'unmount_all; rm -rf --one-file-system "$B"' EXIT

fs_setup vecvault
D=$B/vecvault
mount_vv() {   # DAYS
	VECVAULT_TEST_KDF=1 VECVAULT_STATE_DIR=$B/vv-state VECVAULT_AUDIT_DIR=$B/vv-audit \
		"$VV" mount "$D/store" "$D/mnt" --passfile "$B/pass" --pid-file "$D/pid" \
		--log "$D/log" --trash-days "$1"
	wait_mounted "$D/mnt" || die "vecvault did not mount"
}
# The tree: FILES files of 1-4 KiB in 20 directories, from a tarball made once.
small_tree "$B/src/tree" "$FILES"
tar -C "$B/src" -cf "$B/tree.tar" tree
mkdir -p "$B/plain"

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$(cat "$D/pid")/stat"; }
time_us() {    # CMD...: microseconds it took
	local t0 t1
	t0=$(now_us); "$@"; t1=$(now_us)
	echo $((t1 - t0))
}
restore_tree() { "$VV" trash restore "$D/mnt" "$1" >/dev/null; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

on=() off=() plain=() restore=() con=() coff=() fon=() foff=()
for r in $(seq 1 "$REPS"); do
	for mode in on off; do
		mount_vv "$([ $mode = on ] && echo 30 || echo 0)"
		mkdir "$D/mnt/c$r$mode" "$D/mnt/f$r$mode"
		tar -C "$D/mnt/c$r$mode" -xf "$B/tree.tar"
		tar -C "$D/mnt/f$r$mode" -xf "$B/tree.tar"
		sync -f "$D/mnt"
		t=$(time_us find "$D/mnt/f$r$mode/tree" -type f -delete)
		if [ $mode = on ]; then fon+=("$t"); else foff+=("$t"); fi
		sync -f "$D/mnt"
		c0=$(cpu_ticks)
		t=$(time_us rm -rf "$D/mnt/c$r$mode/tree")
		c1=$(cpu_ticks)
		if [ $mode = on ]; then con+=("$((c1 - c0))"); else coff+=("$((c1 - c0))"); fi
		rm -rf "$D/mnt/f$r$mode"
		if [ $mode = on ]; then
			on+=("$t")
			restore+=("$(time_us restore_tree "/c$r$mode/tree")")
			rm -rf "$D/mnt/c$r$mode"
			"$VV" trash purge "$D/mnt" --all >/dev/null 2>&1
		else
			off+=("$t")
			rm -rf "$D/mnt/c$r$mode"
		fi
		fs_umount vecvault
	done
	tar -C "$B/plain" -xf "$B/tree.tar"
	sync
	plain+=("$(time_us rm -rf "$B/plain/tree")")
done
m_on=$(printf '%s\n' "${on[@]}" | median)
m_off=$(printf '%s\n' "${off[@]}" | median)
m_plain=$(printf '%s\n' "${plain[@]}" | median)
m_restore=$(printf '%s\n' "${restore[@]}" | median)
m_con=$(printf '%s\n' "${con[@]}" | median)
m_coff=$(printf '%s\n' "${coff[@]}" | median)
m_fon=$(printf '%s\n' "${fon[@]}" | median)
m_foff=$(printf '%s\n' "${foff[@]}" | median)
echo "# rm -rf of $FILES files in 20 directories, $REPS reps each, medians (load $(cut -d' ' -f1 /proc/loadavg))"
echo "# trash on: ${on[*]} us; off: ${off[*]} us; plain: ${plain[*]} us"
echo "# daemon CPU ticks during rm -rf, on: ${con[*]}; off: ${coff[*]}"
echo "# files only (find -type f -delete), on: ${fon[*]} us; off: ${foff[*]} us"
awk -v a="$m_on" -v b="$m_off" -v p="$m_plain" -v rs="$m_restore" -v ca="$m_con" -v cb="$m_coff" \
    -v fa="$m_fon" -v fb="$m_foff" 'BEGIN {
	printf "rm -rf, trash on / trash off:            %.3f  (goal <= 1.10)\n", a / b
	if (cb > 0) printf "daemon CPU in rm -rf, on / off:           %.3f\n", ca / cb
	printf "rm of the files only, on / off:           %.3f\n", fa / fb
	printf "rm -rf, trash off / plain:                %.2f\n", b / p
	printf "trash restore of the tree / rm -rf (on):  %.3f\n", rs / a
}'
