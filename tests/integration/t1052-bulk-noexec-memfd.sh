#!/bin/bash
# t1052-bulk-noexec-memfd: a memfd sealed against exec bits (F_SEAL_EXEC:
# made with MFD_NOEXEC_SEAL, as every memfd is where vm.memfd_noexec is 1)
# is a bulk-read buffer like any other: that seal only stops a chmod of
# its x bits, nothing the daemon's writes depend on.  The daemon refused
# any seal but F_SEAL_SHRINK and F_SEAL_GROW (EINVAL), so on such a
# machine `vecvault query` never had a request served and opened every
# file.  Checks, as uid 1000: a MFD_NOEXEC_SEAL memfd sealed against
# shrinking is served with the file's bytes; one also sealed against
# writes is still refused (EINVAL) with nothing written.  (main: check 1
# of 2 fails.)
. "$(dirname "$0")/test-lib.sh"
vv_need_fuse

LIB=$VV_SRC/tests/integration/lib
export LIB
vv_init "$T/s" >/dev/null 2>&1
vv_mount "$T/s" "$T/m"
chmod 755 "$T/m"
mkdir "$T/m/c"
head -c 5000 /dev/urandom > "$T/m/c/a"
chmod -R a+rX "$T/m/c"
vv_sync "$T/m"

cat > "$T/noexec.py" <<'PY'
import fcntl, os, sys
sys.path.insert(0, os.environ["LIB"])
import bulk as B
MFD_NOEXEC_SEAL = 0x0008
d = sys.argv[1]
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
want = open(d + "/a", "rb").read()
try:
    b = B.Buf(1, 1 << 16, flags=os.MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL, name="t1052")
except OSError:
    print("no MFD_NOEXEC_SEAL")
    sys.exit(0)
e, h, st, _ = B.read(fd, ["a"], buf=b)
print("noexec", e, "same" if e == "OK" and st[0] == (0, len(want)) and b.get(0, len(want)) == want
      else "DIFFERENT")
w = B.Buf(1, 1 << 16, flags=os.MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL, name="t1052w")
fcntl.fcntl(w.fd, fcntl.F_ADD_SEALS, 16)   # F_SEAL_FUTURE_WRITE (the buffer is mapped)
e, h, st, _ = B.read(fd, ["a"], buf=w)
print("write-sealed", e, "untouched" if w.m[:] == bytes(len(w.m)) else "WRITTEN")
PY
OUT=$(as_u1000 "$PY" "$T/noexec.py" "$T/m/c")
echo "$OUT" | sed 's/^/#   /'
if [ "$OUT" = "no MFD_NOEXEC_SEAL" ]; then
	echo "1..0 # SKIP the kernel has no MFD_NOEXEC_SEAL"
	vv_rc=77
	exit 77
fi
check "an exec-sealed memfd: served, the file's bytes" \
	eval 'echo "$OUT" | grep -qx "noexec OK same"'
check "an exec-sealed memfd sealed against writes too: refused, nothing written" \
	eval 'echo "$OUT" | grep -qx "write-sealed EINVAL untouched"'
test_done
