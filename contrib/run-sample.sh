#!/usr/bin/env bash
# `make run`: starts catena in the foreground with the sample config
# (etc/catena.conf: loopback listener on 127.0.0.1:3128, system resolvers).
# On first start it makes a CA for interception under run/: a root
# (run/ca/root) and an intermediate that signs emulated certificates
# (run/keyring, which the sample config names). Key files are 0600.
set -euo pipefail
build=${1:-build}
conf=${2:-etc/catena.conf}
mkdir -p run
chmod 700 run
if [ ! -f run/keyring/cert.pem ]; then
  if [ ! -f run/ca/root/cert.pem ]; then
    mkdir -p run/ca
    "$build/catenactl" ca init --dir run/ca/root --cn "catena sample root CA"
  fi
  "$build/catenactl" ca intermediate --parent run/ca/root --dir run/keyring \
    --cn "catena sample intermediate CA"
fi
cat <<MSG
catena: starting with $conf (Ctrl-C to stop)
  try:   curl -x http://127.0.0.1:3128 http://example.com/
  trust: run/ca/root/cert.pem is the root CA desktops would install
MSG
exec "$build/catena" -c "$conf"
