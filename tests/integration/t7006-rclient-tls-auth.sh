#!/bin/bash
# t7006-rclient-tls-auth: how the vv:// client verifies the server and
# logs in.  --ca with the right CA mounts, a wrong CA is refused naming
# the CA; --pin with the right fingerprint mounts, a wrong one is refused
# naming both; without either, trust on first use records the server in
# $HOME/.config/vecvault/known_hosts and a changed certificate on the same
# HOST:PORT is refused loudly, naming both fingerprints and the file,
# until its line is removed; --bind picks the source address (127.0.0.2
# inside, 127.0.0.3 outside a whitelist: refused before TLS); a password
# login; a wrong key and a wrong password are refused; a key of another
# user than USER@ is refused; a readonly role is readonly on the mount;
# nothing is mounted after a refusal; bad URLs and options are refused
# with a message naming the problem.
. "$(dirname "$0")/test-lib.sh"
. "$(dirname "$0")/remote-lib.sh"
vv_need_fuse
vv_need_loopback_alias

FP2=$(vv_tls "$T/tls2")
P=$(vv_free_port)
vv_listen_mount "server on 127.0.0.1:$P, whitelist 127.0.0.1 and 127.0.0.2" "127.0.0.1:$P" \
	--allow 127.0.0.1/32 --allow 127.0.0.2/32
mkdir "$M/coll"
chown 1000:1000 "$M/coll"
echo data > "$M/coll/f"
G=vvt7006ro$$
vv_group "$G"
GID=$(getent group "$G" | cut -d: -f3)
setfacl -m "g:$GID:r-x" "$M/coll" "$M/coll/f"
"$VV_BIN" role create "$G" "$M" >/dev/null
printf 'a password for carol, long enough\n' > "$T/pw"
printf 'not the password of carol at all\n' > "$T/badpw"
chmod 600 "$T/pw" "$T/badpw"
"$VV_BIN" user add alice --uid 1000 --no-password "$M" >/dev/null
"$VV_BIN" user add carol --uid 1000 --password-file "$T/pw" "$M" >/dev/null
"$VV_BIN" user add reader --uid 3000 --role "$G" --no-password "$M" >/dev/null
vv_key_file alice "$T/key"
vv_key_file reader "$T/rkey"
sed 's/.$/x/' "$T/key" > "$T/badkey"
chmod 600 "$T/badkey"
URL="vv://127.0.0.1:$P/coll"
export HOME=$T/home
mkdir -p -m 700 "$HOME"

mounted() {
	vv_rmount "$@" || return 1
	test "$(cat "$R/f")" = data || return 1
	fusermount3 -u "$R"
}

# --- CA ---
check "--ca (the server's own self-signed certificate): mounted" mounted "$URL" "$R" \
	--key-file "$T/key" --ca "$T/tls/cert.pem"
check "--ca of another authority: refused, naming the CA" refused \
	"not valid for 127.0.0.1 under the CA .*tls2/cert.pem" "$URL" "$R" --key-file "$T/key" \
	--ca "$T/tls2/cert.pem"

# --- pin ---
check "--pin right: mounted" mounted "$URL" "$R" --key-file "$T/key" --pin "sha256:$FP"
check "--pin wrong: refused, naming both fingerprints" refused \
	"certificate is sha256:$FP, not the pinned sha256:$FP2" "$URL" "$R" --key-file "$T/key" --pin "$FP2"
check "--pin not a fingerprint: refused" refused "not a SHA-256 fingerprint" "$URL" "$R" \
	--key-file "$T/key" --pin abc

# --- trust on first use ---
check "no --ca/--pin: first use trusted and recorded" mounted "$URL" "$R" --key-file "$T/key"
KH=$HOME/.config/vecvault/known_hosts
check "known_hosts has the server's fingerprint" grep -qx "127.0.0.1:$P sha256:$FP" "$KH"
check "known_hosts is private" test "$(stat -c %a "$KH")" = 600
check "second use: the recorded certificate matches" mounted "$URL" "$R" --key-file "$T/key"
check "server restarted with another certificate on the same port" sh -c "
	fusermount3 -u '$M' && sleep 1 && '$VV_BIN' mount '$S' '$M' --passfile '$PASSFILE' \
	--log '$LOG' --listen 127.0.0.1:$P --tls-cert '$T/tls2/cert.pem' --tls-key '$T/tls2/key.pem' \
	--allow 127.0.0.1/32 --allow 127.0.0.2/32"
check "changed certificate: loud refusal naming both fingerprints and known_hosts" refused \
	"CERTIFICATE OF 127.0.0.1:$P HAS CHANGED.*sha256:$FP.*sha256:$FP2.*$KH" "$URL" "$R" \
	--key-file "$T/key"
check "known_hosts unchanged by the refusal" test "$(grep -c "127.0.0.1:$P" "$KH")" = 1
sed -i "/^127.0.0.1:$P /d" "$KH"
check "after removing its line: trusted again" mounted "$URL" "$R" --key-file "$T/key"
check "the new fingerprint is recorded" grep -qx "127.0.0.1:$P sha256:$FP2" "$KH"

# --- source address ---
check "--bind 127.0.0.2 (whitelisted): mounted" mounted "$URL" "$R" --key-file "$T/key" \
	--pin "$FP2" --bind 127.0.0.2
check "--bind 127.0.0.3 (not whitelisted): refused before TLS" refused \
	"whitelist|closed the connection" "$URL" "$R" --key-file "$T/key" --pin "$FP2" --bind 127.0.0.3
check "--bind a foreign address: refused naming it" refused "cannot bind the source address 192.0.2.1" \
	"$URL" "$R" --key-file "$T/key" --pin "$FP2" --bind 192.0.2.1

# --- login ---
check "password login as carol" mounted "vv://carol@127.0.0.1:$P/coll" "$R" \
	--password-file "$T/pw" --pin "$FP2"
check "wrong password: refused" refused "authentication refused" \
	"vv://carol@127.0.0.1:$P/coll" "$R" --password-file "$T/badpw" --pin "$FP2"
check "wrong key: refused" refused "authentication refused" "$URL" "$R" \
	--key-file "$T/badkey" --pin "$FP2"
check "alice's key with carol@: refused" refused "belongs to the vault user alice, not carol" \
	"vv://carol@127.0.0.1:$P/coll" "$R" --key-file "$T/key" --pin "$FP2"
check "--password-file without USER@: refused" refused "needs the vault user" "$URL" "$R" \
	--password-file "$T/pw" --pin "$FP2"
check "a collection that is not there: refused" refused "collection nope" \
	"vv://127.0.0.1:$P/nope" "$R" --key-file "$T/key" --pin "$FP2"
check "a URL without a port: refused" refused "is not vv://" "vv://127.0.0.1/coll" "$R" \
	--key-file "$T/key" --pin "$FP2"
check "nothing listening: refused naming the address" refused "cannot connect to 127.0.0.1:1" \
	"vv://127.0.0.1:1/coll" "$R" --key-file "$T/key" --pin "$FP2"

# --- a readonly role is readonly remotely ---
check "mount as reader (readonly role)" vv_rmount "$URL" "$R" --key-file "$T/rkey" --pin "$FP2"
check "reader reads" test "$(cat "$R/f")" = data
want root EACCES write "$R/f" x
want root EACCES create "$R/new"
check "the file is unchanged" test "$(cat "$M/coll/f")" = data
fusermount3 -u "$R"
test_done
