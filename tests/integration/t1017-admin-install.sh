#!/bin/bash
# t1017-admin-install: `cmake --install` puts every file where an admin
# looks for it, under one prefix (GNUInstallDirs): the binary in bin, each
# man page of docs/man in its section, the mount(8) helper in sbin, the
# systemd unit in lib/systemd/system, the example vault config in the doc
# directory; the helper and the unit name the binary of that prefix, also
# for a DESTDIR install (the staged path never leaks into them).
# `vecvault --version` lists exactly the format versions the engine's
# header defines.
. "$(dirname "$0")/test-lib.sh"

VV_BUILD=${VV_BUILD:-$VV_SRC/build}
P=$T/inst

check "cmake --install --prefix" sh -c "cmake --install '$VV_BUILD' --prefix '$P' > '$T/install.log' 2>&1"
check "bin/vecvault runs" "$P/bin/vecvault" --version
check "sbin/mount.fuse.vecvault is executable" test -x "$P/sbin/mount.fuse.vecvault"
check "lib/systemd/system/vecvault@.service" test -f "$P/lib/systemd/system/vecvault@.service"
check "the example vault config" test -f "$P/share/doc/vecvault/examples/vecvault.conf.example"
for page in "$VV_SRC"/docs/man/*.[18]; do
	sec=${page##*.}
	check "man page $(basename "$page") in man$sec" test -f "$P/share/man/man$sec/$(basename "$page")"
done
check "a mount.fuse.vecvault(8) page is among them" test -f "$P/share/man/man8/mount.fuse.vecvault.8"
check "man pages format without warnings" \
	sh -c "for f in '$P'/share/man/man*/*; do LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l \"\$f\" 2>&1 >/dev/null; done | { ! grep .; }"
check "the helper runs this prefix's binary" grep -qx "VECVAULT=$P/bin/vecvault" "$P/sbin/mount.fuse.vecvault"
check "the unit runs this prefix's binary" grep -q "^ExecStart=$P/bin/vecvault mount -f " "$P/lib/systemd/system/vecvault@.service"
check "nothing but these files was installed" \
	sh -c "cd '$P' && find . -type f | sort > '$T/files' && test \$(wc -l < '$T/files') -eq \$(( 4 + \$(ls '$VV_SRC'/docs/man/*.[18] | wc -l) ))"

check "DESTDIR install with --prefix /usr" \
	sh -c "DESTDIR='$T/stage' cmake --install '$VV_BUILD' --prefix /usr > '$T/install2.log' 2>&1"
check "DESTDIR: the helper lands in usr/sbin and runs /usr/bin/vecvault" \
	grep -qx "VECVAULT=/usr/bin/vecvault" "$T/stage/usr/sbin/mount.fuse.vecvault"
check "DESTDIR: the unit runs /usr/bin/vecvault" \
	grep -q "^ExecStart=/usr/bin/vecvault mount -f " "$T/stage/usr/lib/systemd/system/vecvault@.service"
check "DESTDIR: the staging path is in no installed text file" \
	sh -c "! grep -rlF '$T/stage' '$T/stage/usr/sbin' '$T/stage/usr/lib/systemd'"

# --version: the numbers of engine/include/vecvault/version.h and knn_ioctl.h.
hdr() { awk -v n="$1" '$1 == "#define" && $2 == n { print $3 + 0 }' "$VV_SRC/engine/include/vecvault/$2"; }
"$VV_BIN" --version > "$T/version"
check "--version names the release" grep -qE '^vecvault [0-9]+\.[0-9]+\.[0-9]+$' "$T/version"
check "--version: store conf format" grep -qE "vecvault.conf and key slots +$(hdr VV_FORMAT_CONF version.h)\$" "$T/version"
check "--version: meta.db format" grep -qE "meta.db +$(hdr VV_FORMAT_META version.h)\$" "$T/version"
check "--version: chunk format" grep -qE "chunk objects +$(hdr VV_FORMAT_CHUNK version.h)\$" "$T/version"
check "--version: audit log format" grep -qE "audit log +$(hdr VV_FORMAT_AUDIT version.h)\$" "$T/version"
check "--version: query offload ioctl" grep -qE "ioctl \(VV_IOC_KNN\) +$(hdr VV_KNN_VERSION knn_ioctl.h)\$" "$T/version"
check "-V is --version" sh -c "'$VV_BIN' -V | cmp - '$T/version'"
test_done
