#!/bin/bash
# scale-bench-dirs.sh - does a directory entry cost the same in a big
# directory as in a small one?  For each size N, one flat directory of N
# empty files is created and then listed cold (remount + drop_caches before
# every listing) with `ls -f`, `ls -l`, `ls -lR` and `find`; every line
# prints the cost per entry (µs/entry, median over reps) at each size and
# the growth ratio (per-entry cost at the largest size / at the smallest).
# "ls -l, no probes" is `ls -l` with an LD_PRELOAD shim (noprobe.c, built
# here when cc is present) that answers its per-file getxattr probes
# (security.selinux, system.posix_acl_*) ENOTSUP without a system call:
# the difference to "ls -l" is what those probes cost.
# A flat cost means ratio ~1.  Run on a vecvault mount, a plain directory,
# and gocryptfs when installed (skipped with a note otherwise).  Not part
# of ctest; run by hand, as root.  See tests/bench/README.md.
#
#   env: VV_BIN         vecvault binary (default: build/vecvault, then PATH)
#        SCALE_SIZES    directory sizes (default "1000 10000 80000 200000")
#        SCALE_REPS     cold listings per line and size (default 3)
#        SCALE_FS       file systems (default "vecvault plain gocryptfs")
#        BENCH_DIR      scratch directory (default /var/tmp/vv-scale-dirs.PID)
#   --quick  SCALE_SIZES="1000 10000 40000" unless set
set -eu

for a in "$@"; do
	case $a in
	--quick) : "${SCALE_SIZES:=1000 10000 40000}" ;;
	-h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "scale-bench-dirs: unknown option $a" >&2; exit 2 ;;
	esac
done
SCALE_SIZES=${SCALE_SIZES:-1000 10000 80000 200000}
SCALE_REPS=${SCALE_REPS:-3}
SCALE_FS=${SCALE_FS:-vecvault plain gocryptfs}
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH_NAME=scale-bench-dirs
FS_STRICT=1                          # a vanished mount ends the run
. "$HERE/fs-lib.sh"
bench_need_root "cold listings drop the page cache"

B=${BENCH_DIR:-/var/tmp/vv-scale-dirs.$$}
mkdir -p "$B"
B=$(cd "$B" && pwd)
RES=$B/results.tsv                   # fs line size rep us_per_entry
: > "$RES"

cleanup() {
	local rc=$?
	set +e
	unmount_all
	if [ -z "${BENCH_KEEP:-}" ]; then
		rm -rf "$B"/plain "$B"/vecvault "$B"/gocryptfs "$B"/pass "$B"/results.tsv "$B"/noprobe.so \
			"$B"/vv-state "$B"/vv-audit
		rmdir "$B" 2>/dev/null
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

printf 'scale-bench passphrase\n' > "$B/pass"
chmod 600 "$B/pass"

# cold_list FS: cold (fs-lib.sh: unmount, drop every cache, mount); then load the
# tools (ls, find and their libraries) and the mount's root again, so the
# timed command pays for the directory only, not for exec from a cold disk.
cold_list() {
	local m=$B/$1/mnt
	[ "$1" = plain ] && m=$B/$1/store
	cold "$1"
	ls -l /dev/null > /dev/null; find /dev/null > /dev/null; stat "$m" > /dev/null
}

# timed FS LINE N REP CMD...: run CMD (output discarded), record its µs.
timed() {
	local fs=$1 line=$2 n=$3 rep=$4 t0 t1
	shift 4
	t0=$(now_us)
	"$@" > /dev/null
	t1=$(now_us)
	printf '%s\t%s\t%d\t%s\t%d\n' "$fs" "$line" "$n" "$rep" $((t1 - t0)) >> "$RES"
}

# create FS N DIR: N empty files in DIR from one process, timed inside it
# (the file system's cost, not Python's start).  Names like a data set's:
# seg-000000123.npy.
create() {
	local us
	us=$($PY -c '
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
for i in range(n):
    os.close(os.open("%s/seg-%09d.npy" % (d, i), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
print(int((time.perf_counter() - t0) * 1e6))
' "$3" "$2")
	printf '%s\t%s\t%d\t%s\t%d\n' "$1" create "$2" 1 "$us" >> "$RES"
}

# ---- run --------------------------------------------------------------------
NOPROBE=""
if command -v cc >/dev/null && cc -O2 -shared -fPIC -o "$B/noprobe.so" "$HERE/noprobe.c" -ldl 2>/dev/null; then
	NOPROBE=$B/noprobe.so
else
	note "no cc: the \"ls -l, no probes\" line is skipped"
fi
FSS=""
for fs in $SCALE_FS; do
	if fs_available "$fs"; then FSS="$FSS $fs"; else note "$fs: not installed, skipped"; fi
done
[ -n "$FSS" ] || die "no file system to run"
note "sizes: $SCALE_SIZES; reps: $SCALE_REPS; file systems:$FSS; scratch: $B"
note "vecvault: $VV"

for fs in $FSS; do
	fs_setup "$fs"
	fs_mount "$fs"
	M=$B/$fs/mnt
	[ "$fs" = plain ] && M=$B/$fs/store
	# Sizes in increasing order, each in its own directory.
	for n in $SCALE_SIZES; do
		mkdir "$M/d$n"
		create "$fs" "$n" "$M/d$n"
		sync
	done
	mkdir "$M/d0"
	# Sizes interleaved within each rep, so a slow spell of a shared
	# machine does not land on one size.  d0 (empty) is the fixed cost of
	# one cold listing (first lookups, opendir, process start), taken off
	# every size's time before dividing by its entries.
	for rep in $(seq 1 "$SCALE_REPS"); do
		for n in 0 $SCALE_SIZES; do
			cold_list "$fs"; timed "$fs" "readdir (ls -f)" "$n" "$rep" ls -f "$M/d$n"
			cold_list "$fs"; timed "$fs" "ls -l" "$n" "$rep" ls -l "$M/d$n"
			if [ -n "$NOPROBE" ]; then
				cold_list "$fs"
				timed "$fs" "ls -l, no probes" "$n" "$rep" env LD_PRELOAD="$NOPROBE" ls -l "$M/d$n"
			fi
			cold_list "$fs"; timed "$fs" "ls -lR" "$n" "$rep" ls -lR "$M/d$n"
			cold_list "$fs"; timed "$fs" "find" "$n" "$rep" find "$M/d$n"
		done
	done
	total=0
	for n in $SCALE_SIZES; do total=$((total + n)); done
	for rep in $(seq 1 "$SCALE_REPS"); do
		cold_list "$fs"; timed "$fs" "find, whole tree" "$total" "$rep" find "$M"
	done
	fs_umount "$fs"
done

$PY - "$RES" "$SCALE_SIZES" <<'EOF'
import collections, statistics, sys
res, sizes = sys.argv[1], sorted(int(s) for s in sys.argv[2].split())
t = collections.defaultdict(list)          # (fs, line, n) -> [µs]
order = []
for ln in open(res):
    fs, line, n, rep, us = ln.rstrip("\n").split("\t")
    if (fs, line) not in order:
        order.append((fs, line))
    t[(fs, line, int(n))].append(int(us))
med = {k: statistics.median(v) for k, v in t.items()}
def label(n):
    return "%dk" % (n // 1000) if n % 1000 == 0 else str(n)
print("# µs per entry = (median cold time at N - median cold time of an empty directory) / N;")
print("# create: time to create the N files / N.  growth = per-entry cost at %s / at %s."
      % (label(sizes[-1]), label(sizes[0])))
print("%-10s %-17s" % ("fs", "line") + "".join("%9s" % label(n) for n in sizes) + "%9s" % "growth")
for fs, line in order:
    if line == "find, whole tree":
        n = [k[2] for k in med if k[:2] == (fs, line)][0]
        us = med[(fs, line, n)]
        print("%-10s %-17s %.2f s for %d entries (%.1f µs/entry, median, cold)"
              % (fs, line, us / 1e6, n, us / n))
        continue
    base = 0 if line == "create" else med.get((fs, line, 0), 0)
    per = []
    for n in sizes:
        v = med.get((fs, line, n))
        per.append(None if v is None else max(v - base, 0) / n)
    cells = "".join("%9s" % ("-" if p is None else "%.1f" % p) for p in per)
    g = "-"
    if per[0] and per[-1] is not None:
        g = "%.2fx" % (per[-1] / per[0])
    print("%-10s %-17s%s%9s" % (fs, line, cells, g))
EOF
