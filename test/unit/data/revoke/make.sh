#!/usr/bin/env bash
# Regenerates the revocation fixtures of test/unit/revoke_test.c and the seeds of
# test/fuzz/corpus/ocsp with the openssl CLI (offline). Keys live in a scratch
# directory and are thrown away: only certificates, OCSP responses and CRLs are kept.
# now.txt records when they were made; the tests check them at that time + 60 s,
# so the fixtures never expire. Usage: test/unit/data/revoke/make.sh
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
export OPENSSL_CONF=/dev/null
days=36500

cnf() { # cnf DIR: an `openssl ca` config for the CA in DIR
  mkdir -p "$1/new"; : >"$1/index.txt"; echo 1000 >"$1/serial"; echo 1000 >"$1/crlnumber"
  echo "unique_subject = no" >"$1/index.txt.attr"
  cat >"$1/ca.cnf" <<CNF
[ ca ]
default_ca = d
[ d ]
dir = $tmp/$1
database = \$dir/index.txt
new_certs_dir = \$dir/new
serial = \$dir/serial
crlnumber = \$dir/crlnumber
default_md = sha256
default_days = $days
policy = p
copy_extensions = none
[ p ]
commonName = supplied
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = unused
[ v3_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
[ leaf ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
authorityInfoAccess = caIssuers;URI:http://ca.rev.test/ca.der, OCSP;URI:ldap://ldap.rev.test/ocsp, OCSP;URI:http://ocsp.rev.test:8080/
crlDistributionPoints = URI:ldap://ldap.rev.test/cn=CA?certificateRevocationList, URI:http://crl.rev.test/ca.crl
[ bare ]
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
[ ocsp ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
noCheck = ignored
[ crl_ext ]
authorityKeyIdentifier = keyid:always
[ crl_idp ]
authorityKeyIdentifier = keyid:always
issuingDistributionPoint = critical, @idp
[ idp ]
fullname = URI:http://crl.rev.test/ca.crl
onlyuser = TRUE
[ crl_idp_other ]
issuingDistributionPoint = critical, @idp_other
[ idp_other ]
fullname = URI:http://crl.rev.test/part2.crl
[ crl_idp_ca ]
issuingDistributionPoint = critical, @idp_ca
[ idp_ca ]
fullname = URI:http://crl.rev.test/ca.crl
onlyCA = TRUE
[ crl_delta ]
2.5.29.27 = critical, ASN1:INTEGER:1000
CNF
}
key() { # key FILE ec|rsa|ed25519
  case $2 in
  ec) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null ;;
  ed25519) openssl genpkey -algorithm ED25519 -out "$1" 2>/dev/null ;;
  *) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null ;;
  esac
}
ca() { # ca DIR CN ec|rsa
  cnf "$1"; key "$1/key.pem" "$3"
  openssl req -new -config "$1/ca.cnf" -key "$1/key.pem" -subj "/O=catena unit/CN=$2" -out "$1/csr.pem"
  openssl ca -config "$1/ca.cnf" -batch -notext -selfsign -in "$1/csr.pem" -out "$1/cert.pem" \
    -keyfile "$1/key.pem" -extensions v3_ca -startdate 20200101000000Z 2>/dev/null
}
issue() { # issue CA NAME SERIAL EXT [ec|rsa]
  echo "$3" >"$1/serial"
  key "$tmp/$2.key" "${5:-ec}"
  openssl req -new -config "$1/ca.cnf" -key "$tmp/$2.key" -subj "/O=catena unit/CN=$2" -out "$tmp/$2.csr"
  openssl ca -config "$1/ca.cnf" -batch -notext -in "$tmp/$2.csr" -out "$tmp/$2.pem" \
    -cert "$1/cert.pem" -keyfile "$1/key.pem" -extensions "$4" -startdate 20200101000000Z 2>/dev/null
  openssl x509 -in "$tmp/$2.pem" -outform DER -out "$out/$2.der"
}
req() { # req CA OUT CERT...
  local ca=$1 o=$2; shift 2
  local args=()
  for c in "$@"; do args+=(-cert "$tmp/$c.pem"); done
  openssl ocsp -issuer "$ca/cert.pem" "${args[@]}" -no_nonce -reqout "$tmp/$o.req" >/dev/null
}
resp() { # resp CA REQ SIGNER OUT [extra args]
  local ca=$1 rq=$2 s=$3 o=$4; shift 4
  local sc=$tmp/$s.pem sk=$tmp/$s.key
  [ "$s" = "$ca" ] && { sc=$ca/cert.pem; sk=$ca/key.pem; }
  openssl ocsp -index "$ca/index.txt" -rsigner "$sc" -rkey "$sk" -CA "$ca/cert.pem" \
    -reqin "$tmp/$rq.req" -respout "$out/$o.der" "$@" >/dev/null 2>&1
}

ca ca "rev test CA" ec
ca rsaca "rev test RSA CA" rsa
ca other "rev other CA" ec
for c in ca rsaca other; do openssl x509 -in $c/cert.pem -outform DER -out "$out/$c.der"; done

issue ca good 1001 leaf
issue ca revoked 8F02 leaf   # high bit set: the DER INTEGER needs a leading zero
issue ca bare 1003 bare
issue ca responder 1004 ocsp
issue ca rogue 1005 leaf      # issued by the CA, but no OCSPSigning EKU
issue ca responder_ed 1006 ocsp ed25519
issue other other_responder 2001 ocsp
issue rsaca rsa_good 3001 leaf rsa
issue rsaca rsa_revoked 3002 leaf
# A certificate the responder has never heard of (not in the index).
key "$tmp/unknown.key" ec
openssl req -new -config ca/ca.cnf -key "$tmp/unknown.key" -subj "/O=catena unit/CN=unknown" -out "$tmp/unknown.csr"
openssl x509 -req -in "$tmp/unknown.csr" -CA ca/cert.pem -CAkey ca/key.pem -set_serial 0x5555 \
  -days $days -extfile ca/ca.cnf -extensions leaf -out "$tmp/unknown.pem" 2>/dev/null
openssl x509 -in "$tmp/unknown.pem" -outform DER -out "$out/unknown.der"

openssl ca -config ca/ca.cnf -batch -revoke "$tmp/revoked.pem" -cert ca/cert.pem -keyfile ca/key.pem \
  -crl_reason keyCompromise 2>/dev/null
openssl ca -config rsaca/ca.cnf -batch -revoke "$tmp/rsa_revoked.pem" -cert rsaca/cert.pem \
  -keyfile rsaca/key.pem -crl_reason superseded 2>/dev/null

req ca good good; req ca revoked revoked; req ca unknown unknown; req ca multi bare revoked good
req rsaca rsa_good rsa_good; req rsaca rsa_revoked rsa_revoked
cp "$tmp/good.req" "$out/req_good.der"

resp ca good ca ocsp_good_by_ca -ndays $days -resp_no_certs
resp ca good responder ocsp_good -ndays $days
resp ca good responder ocsp_good_keyid -ndays $days -resp_key_id
resp ca good responder_ed ocsp_good_ed25519 -ndays $days
resp ca good responder ocsp_good_sha1 -ndays $days -rmd sha1
resp ca good responder ocsp_good_nonext
resp ca good responder ocsp_good_1min -nmin 1
resp ca revoked responder ocsp_revoked -ndays $days
resp ca unknown responder ocsp_unknown -ndays $days
resp ca multi responder ocsp_multi -ndays $days
resp ca good rogue ocsp_by_rogue -ndays $days
resp ca good responder ocsp_badsig -ndays $days -badsig
resp rsaca rsa_good rsaca ocsp_rsa_good -ndays $days
resp rsaca rsa_revoked rsaca ocsp_rsa_revoked -ndays $days
resp rsaca rsa_good rsaca ocsp_rsa_pss -ndays $days -rsigopt rsa_padding_mode:pss
# The other CA's delegated responder, vouching for our certificate.
cp ca/index.txt other/index.txt
openssl ocsp -index other/index.txt -rsigner "$tmp/other_responder.pem" -rkey "$tmp/other_responder.key" \
  -CA ca/cert.pem -reqin "$tmp/good.req" -respout "$out/ocsp_by_other.der" -ndays $days >/dev/null 2>&1

gencrl() { # gencrl CA OUT [args]
  local c=$1 o=$2; shift 2
  openssl ca -config "$c/ca.cnf" -batch -gencrl -cert "$c/cert.pem" -keyfile "$c/key.pem" \
    -out "$tmp/$o.pem" "$@" 2>/dev/null
  openssl crl -in "$tmp/$o.pem" -outform DER -out "$out/$o.der"
}
gencrl ca crl -crldays $days -crlexts crl_ext
cp "$tmp/crl.pem" "$out/crl.pem"
gencrl ca crl_1h -crlhours 1 -crlexts crl_ext
gencrl ca crl_idp -crldays $days -crlexts crl_idp
gencrl ca crl_idp_other -crldays $days -crlexts crl_idp_other
gencrl ca crl_idp_ca -crldays $days -crlexts crl_idp_ca
gencrl ca crl_delta -crldays $days -crlexts crl_delta
gencrl rsaca crl_rsa -crldays $days -crlexts crl_ext
gencrl other crl_other -crldays $days -crlexts crl_ext
: >ca/index.txt
gencrl ca crl_empty -crldays $days -crlexts crl_ext

date -u +%s >"$out/now.txt"

# The fuzz target's fixed pair, time and seeds.
repo=$(cd "$out/../../../.." && pwd)
fz=$repo/test/fuzz/fuzz_ocsp.c
arr() { # arr NAME FILE: a C array of FILE's bytes
  printf 'static const uint8_t %s[] = {' "$1"
  od -An -v -tx1 "$2" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//; s/ /, 0x/g; s/^/0x/'
  printf '};\n'
}
{
  echo "#define FUZZ_NOW ((int64_t)$(($(cat "$out/now.txt") + 60)))"
  arr fuzz_ca_der "$out/ca.der"
  arr fuzz_good_der "$out/good.der"
  arr fuzz_revoked_der "$out/revoked.der"
} | fold -w 96 -s | sed 's/ *$//' >"$tmp/fixtures.h"
awk -v f="$tmp/fixtures.h" '
  /^\/\* BEGIN FIXTURES/ { print; while ((getline l < f) > 0) print l; skip = 1; next }
  /^\/\* END FIXTURES/ { skip = 0 }
  !skip' "$fz" >"$tmp/fz.c" && cat "$tmp/fz.c" >"$fz"
if command -v clang-format >/dev/null; then clang-format -i "$fz"; fi
corpus=$repo/test/fuzz/corpus/ocsp
mkdir -p "$corpus"
rm -f "$corpus"/*
for f in "$out"/ocsp_*.der "$out"/crl*.der "$out"/crl.pem "$out"/good.der "$out"/responder.der; do
  cp "$f" "$corpus/"
done
ls "$out"
