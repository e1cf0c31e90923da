#!/usr/bin/env bash
# Builds wolfSSL from Debian's own source package (Debian's security patches
# applied by dpkg-source) with the configure flags catena needs, into a static
# library under $1 (default build/wolfssl). Debian's binary libwolfssl-dev has
# no assembly (AES-GCM 35x slower) and lacks the key-log callback and custom
# certificate extensions: ../shared/notes/wolfssl.md section 0.
#
# The system's apt configuration is not touched: a private deb-src list lives
# in the output directory. The result is cached; a stamp holding the flags
# decides whether to rebuild.
set -euo pipefail

out=$(realpath -m "${1:-build/wolfssl}")
inst="$out/inst"

# Keep these in one place: the stamp below depends on them.
configure_flags=(
  --enable-static --disable-shared --enable-tls13
  --enable-aesni --enable-intelasm --enable-sp --enable-sp-asm
  --enable-certgen --enable-certreq --enable-certext --enable-keygen
  --enable-crl --enable-ocsp --enable-ocspstapling
  --enable-sni --enable-alpn --enable-session-ticket
  --enable-opensslextra --enable-opensslall
  --enable-curve25519 --enable-ed25519 --enable-chacha --enable-poly1305
  --enable-secure-renegotiation-info --enable-supportedcurves --enable-extended-master
  --disable-examples --disable-crypttests --disable-benchmark
)
# HAVE_SECRET_CALLBACK: TLS key log. The verify-callback defines match what
# Debian's own build has, so both builds behave alike for catena.
cflags="-O2 -g -fPIC -DWOLFSSL_ALT_NAMES -DWOLFSSL_CUSTOM_OID -DHAVE_OID_ENCODING \
-DWOLFSSL_ALWAYS_VERIFY_CB -DWOLFSSL_VERIFY_CB_ALL_CERTS -DKEEP_PEER_CERT \
-DSESSION_CERTS -DHAVE_SECRET_CALLBACK -DHAVE_EX_DATA"

stamp_want="${configure_flags[*]} CFLAGS=$cflags"
if [ -f "$inst/lib/libwolfssl.a" ] && [ -f "$out/stamp" ] &&
   [ "$(cat "$out/stamp")" = "$stamp_want" ]; then
  exit 0
fi

for tool in autoreconf libtoolize dpkg-source apt-get; do
  if ! command -v "$tool" >/dev/null; then
    echo "build-wolfssl: $tool is missing; run: make deps (or apt-get install autoconf automake libtool dpkg-dev)" >&2
    exit 1
  fi
done

rm -rf "$out/src" "$inst"
mkdir -p "$out/apt/lists/partial" "$out/src"

# The same mirrors and keyring as the system's binary entries, as deb-src.
uris_main=http://deb.debian.org/debian
uris_sec=http://deb.debian.org/debian-security
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  first=$(awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/debian.sources | head -1)
  [ -n "$first" ] && uris_main=$first
  sec=$(awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/debian.sources | grep security | head -1 || true)
  [ -n "$sec" ] && uris_sec=$sec
fi
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
cat > "$out/apt/catena-src.sources" <<SRC
Types: deb-src
URIs: $uris_main
Suites: $codename
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: $uris_sec
Suites: $codename-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC

apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$out/apt"
          -o "Dir::State::Lists=$out/apt/lists" -o APT::Sandbox::User=root)
echo "build-wolfssl: fetching Debian's wolfssl source package" >&2
apt-get "${apt_opts[@]}" -qq update
(cd "$out/src" && apt-get "${apt_opts[@]}" -qq source wolfssl >/dev/null)
srcdir=$(find "$out/src" -maxdepth 1 -mindepth 1 -type d -name 'wolfssl-*' | head -1)
[ -n "$srcdir" ] || { echo "build-wolfssl: no source tree unpacked" >&2; exit 1; }

echo "build-wolfssl: configuring and building $(basename "$srcdir") (about 30 s)" >&2
cd "$srcdir"
./autogen.sh >"$out/autogen.log" 2>&1
./configure --prefix="$inst" "${configure_flags[@]}" CFLAGS="$cflags" >"$out/configure.log" 2>&1 ||
  { tail -20 "$out/configure.log" >&2; exit 1; }
make -j"$(nproc)" >"$out/make.log" 2>&1 || { tail -30 "$out/make.log" >&2; exit 1; }
make install >"$out/install.log" 2>&1
printf '%s' "$stamp_want" > "$out/stamp"
echo "build-wolfssl: $inst/lib/libwolfssl.a ready" >&2
