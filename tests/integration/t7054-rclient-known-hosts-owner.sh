#!/bin/bash
# t7054-rclient-known-hosts-owner: without --pin or --ca a vv:// client
# trusts the certificate known_hosts names, so that file decides whom it
# trusts.  Run as root with a user's $HOME (sudo -E), the client used to
# take ~user/.config/vecvault/known_hosts as its own: the user could list
# their own server's fingerprint for the vault's address there (root's
# mount then trusted it), or make .config/vecvault a link to a directory
# of root's choosing (root then wrote a file named known_hosts there, e.g.
# /etc/sudoers.d, breaking sudo).  Now known_hosts, its directory and the
# directories above it under $HOME must be the user's own (or root's) and
# closed to others, or the mount is refused naming why; an explicit
# --known-hosts file the same.  Root's own $HOME still works (first use).
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse

vv_evil_init                  # $T/key, TLS pair in $T/tls (FP), cleanup
cat > "$T/evil.py" <<'PY'
import sys
import vvfake
vvfake.serve_forever(*sys.argv[2:5], vvfake.enoent)
PY
vv_evil_serve enoent
# as_home DIR CMD...: CMD (a function too) with HOME=DIR
as_home() { local h=$1; shift; HOME=$h "$@"; }

# a) uid 1000's home with its own entry for the address: the fingerprint
#    of the server it runs there
H=$T/home
mkdir -p "$H/.config/vecvault"
printf '127.0.0.1:%s sha256:%s\n' "$P" "$FP" > "$H/.config/vecvault/known_hosts"
chown -R 1000:1000 "$H"
chmod 755 "$H"
R=$T/r-a
check "root with uid 1000's HOME: refused, naming the owner" as_home "$H" refused \
	"known_hosts under \\\$HOME cannot be trusted: directory .* is owned by uid 1000" \
	"vv://127.0.0.1:$P" "$R" --key-file "$T/key"

# b) .config/vecvault a link to a directory root owns (a stand-in for
#    /etc/sudoers.d)
H2=$T/home2
mkdir -p "$H2/.config" "$T/rootdir"
ln -s "$T/rootdir" "$H2/.config/vecvault"
chown -R -h 1000:1000 "$H2"
R=$T/r-b
check "root with a HOME whose .config/vecvault is a link of uid 1000's: refused" \
	as_home "$H2" refused "cannot be trusted: directory .* is owned by uid 1000" \
	"vv://127.0.0.1:$P" "$R" --key-file "$T/key"
check "and nothing written where the link points" test ! -e "$T/rootdir/known_hosts"

# c) an explicit --known-hosts file of uid 1000's: refused too
mkdir -m 700 "$T/khd"
printf '127.0.0.1:%s sha256:%s\n' "$P" "$FP" > "$T/khd/kh"
chown 1000:1000 "$T/khd/kh"
R=$T/r-c
check "--known-hosts FILE owned by uid 1000: refused" refused \
	"known_hosts .* cannot be trusted: .*owned by uid 1000" \
	"vv://127.0.0.1:$P" "$R" --key-file "$T/key" --known-hosts "$T/khd/kh"

# d) root's own home: trust on first use as before, recorded there
RH=$T/roothome
mkdir -m 700 "$RH"
R=$T/r-d
check "root's own HOME: trusted on first use, mounted" as_home "$RH" vv_rmount \
	"vv://127.0.0.1:$P" "$R" --key-file "$T/key"
check "recorded in root's known_hosts" grep -q "^127.0.0.1:$P sha256:$FP" \
	"$RH/.config/vecvault/known_hosts"
fusermount3 -u "$R"

test_done
