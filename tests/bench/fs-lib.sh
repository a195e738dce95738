# fs-lib.sh - what the file-system benchmarks share (fs-bench.sh,
# scale-bench-dirs.sh): the vecvault binary, the peers' stores and mounts
# under one scratch directory, cold remounts.  Source it after setting:
#
#   BENCH_NAME   the script's name, for messages
#   B            the scratch directory (absolute); each FS lives in $B/<fs>
#                with mnt/ and store/, the shared passphrase in $B/pass
#   HERE         the script's directory (passthrough.c is built from it)
#
# File systems: plain (the store directory itself), passthrough (a
# do-nothing FUSE, built here), vecvault, gocryptfs, securefs.  MNTS lists
# the mount points fs_setup made, for the script's cleanup.  FS_STRICT=1:
# a mount that vanished before unmount is an error (default: noted, and the
# next fs_mount mounts it again).

SRC=$(cd "$HERE/../.." && pwd)
PY=/usr/bin/python3
VV=${VV_BIN:-}
if [ -z "$VV" ]; then
	if [ -x "$SRC/build/vecvault" ]; then VV=$SRC/build/vecvault; else VV=$(command -v vecvault || true); fi
fi
MNTS=""

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
note() { echo "# $*"; }

# bench_need_root WHY: cold lines drop the page cache; FUSE is needed.
bench_need_root() {
	[ "$(id -u)" = 0 ] || die "run as root ($1)"
	[ -c /dev/fuse ] && command -v fusermount3 >/dev/null || die "needs /dev/fuse and fusermount3"
}

wait_mounted() {   # MNT: poll up to 30 s for the mount to appear
	local i=0
	until mountpoint -q "$1"; do
		i=$((i + 1)); [ $i -le 300 ] || return 1; sleep 0.1
	done
}

vv_wait() {        # [FS]: wait for an unmounted vecvault daemon to exit
	local pid i=0 d=$B/${1:-vecvault}
	[ -s "$d/pid" ] || return 0
	pid=$(cat "$d/pid" 2>/dev/null) || return 0
	while kill -0 "$pid" 2>/dev/null; do
		i=$((i + 1)); [ $i -le 600 ] || return 1; sleep 0.1
	done
}

# unmount_all: every mount fs_setup made (for the script's cleanup).
unmount_all() {
	local m
	for m in $MNTS; do
		if mountpoint -q "$m"; then fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m"; fi
	done
	vv_wait
	vv_wait vvref
}

fs_available() {
	case $1 in
	plain) return 0 ;;
	passthrough) command -v cc >/dev/null && pkg-config --exists fuse3 ;;
	vecvault) [ -n "$VV" ] && [ -x "$VV" ] ;;
	vvref) [ -n "${VV_REF:-}" ] && [ -x "$VV_REF" ] ;;
	gocryptfs) command -v gocryptfs >/dev/null ;;
	securefs) command -v securefs >/dev/null ;;
	*) return 1 ;;
	esac
}

fs_setup() {       # FS: a fresh store (once per run)
	local d=$B/$1
	rm -rf "$d"; mkdir -p "$d/mnt" "$d/store"
	MNTS="$MNTS $d/mnt"
	case $1 in
	passthrough)
		cc -O2 -o "$B/pt" "$HERE/passthrough.c" $(pkg-config --cflags --libs fuse3) ;;
	vecvault)
		mkdir -p -m 700 "$B/vv-state" "$B/vv-audit"
		VECVAULT_TEST_KDF=1 "$VV" init "$d/store" --passfile "$B/pass" --kdf test >/dev/null ;;
	vvref)
		mkdir -p -m 700 "$d/vv-state" "$d/vv-audit"
		VECVAULT_TEST_KDF=1 "$VV_REF" init "$d/store" --passfile "$B/pass" --kdf test >/dev/null ;;
	gocryptfs)
		gocryptfs -init -q -nosyslog -scryptn 10 -passfile "$B/pass" "$d/store" >/dev/null ;;
	securefs)
		securefs create --keyfile "$B/pass" --pbkdf pkcs5-pbkdf2-hmac-sha256 -r 1000 \
			"$d/store" >/dev/null 2>&1 ;;
	esac
}

fs_mount() {
	local d=$B/$1
	case $1 in
	plain) return 0 ;;
	passthrough) "$B/pt" "$d/store" "$d/mnt" ;;
	vecvault)
		VECVAULT_TEST_KDF=1 VECVAULT_STATE_DIR=$B/vv-state VECVAULT_AUDIT_DIR=$B/vv-audit \
			"$VV" mount "$d/store" "$d/mnt" --passfile "$B/pass" \
			--pid-file "$d/pid" --log "$d/log" ;;
	vvref)
		VECVAULT_TEST_KDF=1 VECVAULT_STATE_DIR=$d/vv-state VECVAULT_AUDIT_DIR=$d/vv-audit \
			"$VV_REF" mount "$d/store" "$d/mnt" --passfile "$B/pass" \
			--pid-file "$d/pid" --log "$d/log" ;;
	gocryptfs) gocryptfs -q -nosyslog -passfile "$B/pass" "$d/store" "$d/mnt" 2>> "$d/log" ;;
	securefs) securefs mount -b --log "$d/log" --keyfile "$B/pass" "$d/store" "$d/mnt" \
			>/dev/null 2>&1 ;;
	esac
	wait_mounted "$d/mnt" || die "$1 did not mount"
}

fs_umount() {
	local d=$B/$1
	[ "$1" = plain ] && return 0
	if ! mountpoint -q "$d/mnt"; then
		[ "${FS_STRICT:-0}" = 1 ] && die "$1: mount vanished (daemon died?)"
		note "$1: mount vanished before unmount (daemon died?); remounting"
		return 0
	fi
	fusermount3 -u "$d/mnt"
	case $1 in vecvault | vvref) vv_wait "$1" || die "$1 daemon did not exit" ;; esac
	return 0
}

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# Cold: unmount, drop every cache (ours too: the daemon restarts), mount.
cold() {
	fs_umount "$1"
	drop_caches
	fs_mount "$1"
}

# proc_ticks PID: its CPU time so far (utime + stime, all threads) in
# clock ticks (1/100 s); nothing when the process is gone.
proc_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null; }
now_ms() { date +%s%3N; }
now_us() { local t; t=$(date +%s%N); echo $((t / 1000)); }

# bench_tree DIR FILES: fs-bench's small-file tree (tar -x, ls -lR, rm -rf,
# rsync; tar-ab.sh): FILES files, ~30 per directory, two levels, sizes
# skewed small (60% <= 4 KiB, 30% <= 32 KiB, 10% <= 128 KiB), fixed seed.
bench_tree() {
	"$PY" - "$1" "$2" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
ndirs = max(1, n // 30)
top = max(1, int(ndirs ** 0.5))
for i in range(n):
    d = i % ndirs
    p = os.path.join(root, "d%03d" % (d % top), "s%04d" % d)
    os.makedirs(p, exist_ok=True)
    r = rng.random()
    size = rng.randint(0, 4096) if r < 0.6 else rng.randint(4097, 32768) if r < 0.9 else rng.randint(32769, 131072)
    with open(os.path.join(p, "f%05d.dat" % i), "wb") as f:
        f.write(rng.randbytes(size))
PY
}

# small_tree DIR FILES: FILES files of 1-4 KiB of random bytes spread over
# 20 directories d00..d19 under DIR (made if missing): the tree the trash
# benchmarks remove (trash-bench.sh, trash-callgrind.sh).
small_tree() {
	mkdir -p "$1"
	"$PY" - "$1" "$2" <<'PY'
import os, sys
top, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(top, "d%02d" % (i % 20))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(os.urandom(1024 + (i * 37) % 3072))
PY
}

# ---- what the backup benchmarks share (backup-bench.sh, backup-ab.sh) ----

# backup_bench_begin: root and FUSE checked, the unmount trap set, the
# passphrases ($B/pass for the vault, $B/rpass for the repositories), a
# fresh vault mounted at $M.
backup_bench_begin() {
	bench_need_root "mounts FUSE"
	trap unmount_all EXIT
	printf 'backup bench passphrase\n' > "$B/pass"
	printf 'backup bench repository\n' > "$B/rpass"
	chmod 600 "$B/pass" "$B/rpass"
	fs_setup vecvault
	fs_mount vecvault
	M=$B/vecvault/mnt
}

# backup_bench_data MNT MIB FILES: MIB MiB of random segments in 64 MiB
# files (MNT/segs/sN.bin) and FILES small files of 1-8 KiB, 100 a
# directory (MNT/small/D/fN), then synced.
backup_bench_data() {
	note "data: $2 MiB of segments in 64 MiB files + $3 small files"
	mkdir -p "$1/segs" "$1/small"
	for i in $(seq 1 $(($2 / 64))); do head -c $((64 << 20)) /dev/urandom > "$1/segs/s$i.bin"; done
	"$PY" - "$1/small" "$3" <<'PY'
import os, sys, random
d, n = sys.argv[1], int(sys.argv[2]); r = random.Random(1)
for i in range(n):
    os.makedirs(f"{d}/{i // 100}", exist_ok=True)
    open(f"{d}/{i // 100}/f{i}", "wb").write(os.urandom(r.randint(1024, 8192)))
PY
	sync -f "$1"
}

# bench_median: the median of the numbers on stdin, one a line.
bench_median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
