#!/usr/bin/env bash
# Regenerates the certificate fixtures of test/unit/validate_test.c with the
# openssl CLI. The tests validate at a fixed time, VAL_TEST_NOW =
# 2030-01-01T00:00:00Z, so the fixtures never rot: "valid" certificates run
# from 2020 to 2120, the deliberately bad ones are dated around that instant.
# Only the certificates are kept (*.pem); keys are thrown away.
# Usage: test/unit/data/validate/gen.sh   (rewrites the .pem files in place)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

START=20200101000000Z
END=21200101000000Z

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:"${2:-P-256}" -out "$1.key" 2>/dev/null; }
rsa_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:"$2" -out "$1.key" 2>/dev/null; }

# Every extension profile used below, in one file.
cat > ext.cnf <<'CNF'
[ca_root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ca_inter]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
authorityInfoAccess = caIssuers;URI:http://ca.example.test/root.der

[ca_inter_nolen]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ca_noca]
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ca_nobc]
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ca_nocertsign]
basicConstraints = critical, CA:TRUE
keyUsage = critical, digitalSignature, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[ca_eku_client]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = ${ENV::SAN}
authorityInfoAccess = OCSP;URI:http://ocsp.example.test/, caIssuers;URI:ldap://ldap.example.test/cn=inter, caIssuers;URI:http://ca.example.test/inter.der
crlDistributionPoints = URI:ldap://ldap.example.test/cn=crl, URI:http://crl.example.test/inter.crl

[leaf_plain]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = ${ENV::SAN}

[leaf_nosan]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid

[leaf_noeku]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
authorityKeyIdentifier = keyid
subjectAltName = ${ENV::SAN}

[leaf_client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
subjectAltName = ${ENV::SAN}

[leaf_anyeku]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = anyExtendedKeyUsage
authorityKeyIdentifier = keyid
subjectAltName = ${ENV::SAN}

[leaf_critext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
authorityKeyIdentifier = keyid
subjectAltName = ${ENV::SAN}
1.3.6.1.4.1.55615.9.9 = critical, ASN1:UTF8String:no one knows me

[leaf_selfsigned]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = ${ENV::SAN}

[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
CNF

# A minimal `openssl ca` setup per run: absolute dates are only settable there.
cat > ca.cnf <<'CNF'
[ca]
default_ca = test
[test]
database = index.txt
new_certs_dir = .
serial = serial
policy = any
unique_subject = no
copy_extensions = none
email_in_dn = no
[any]
commonName = supplied
organizationName = optional
CNF
: > index.txt
echo 1000 > serial

export SAN=DNS:unused
# sign NAME SUBJ ISSUER(or self) PROFILE START END [MD]
sign() {
  local name=$1 subj=$2 issuer=$3 profile=$4 start=$5 end=$6 md=${7:-sha256}
  openssl req -new -key "$name.key" -subj "$subj" -config ext.cnf -out "$name.csr" 2>/dev/null
  if [ "$issuer" = self ]; then
    openssl ca -batch -notext -config ca.cnf -selfsign -keyfile "$name.key" -in "$name.csr" \
      -extfile ext.cnf -extensions "$profile" -startdate "$start" -enddate "$end" -md "$md" \
      -out "$name.pem" 2>/dev/null
  else
    openssl ca -batch -notext -config ca.cnf -cert "$issuer.pem" -keyfile "$issuer.key" \
      -in "$name.csr" -extfile ext.cnf -extensions "$profile" -startdate "$start" \
      -enddate "$end" -md "$md" -out "$name.pem" 2>/dev/null
  fi
}

# Roots: the store holds root and oldroot (expired: anchor expiry is ignored).
ec_key root;    sign root "/O=Catena Tests/CN=Catena Test Root" self ca_root $START $END
ec_key other;   sign other "/O=Elsewhere/CN=Other Root" self ca_root $START $END
ec_key oldroot; sign oldroot "/O=Catena Tests/CN=Catena Old Root" self ca_root 20100101000000Z 20250101000000Z
rsa_key rsaroot 2048; sign rsaroot "/O=Catena Tests/CN=Catena RSA Root" self ca_root $START $END

# Intermediates.
ec_key inter;    sign inter "/O=Catena Tests/CN=Catena Test Intermediate" root ca_inter $START $END
# Same subject and key as inter, expired: a second, worse path.
cp inter.key inter_expired.key
sign inter_expired "/O=Catena Tests/CN=Catena Test Intermediate" root ca_inter 20100101000000Z 20250101000000Z
# Same subject as inter, another key: the leaf's AKID tells them apart.
ec_key inter_rekeyed
sign inter_rekeyed "/O=Catena Tests/CN=Catena Test Intermediate" root ca_inter $START $END
ec_key interold; sign interold "/O=Catena Tests/CN=Catena Old Intermediate" oldroot ca_inter_nolen $START $END
ec_key noca;     sign noca "/O=Catena Tests/CN=Not A CA" root ca_noca $START $END
ec_key nobc;     sign nobc "/O=Catena Tests/CN=No Basic Constraints" root ca_nobc $START $END
ec_key nocertsign; sign nocertsign "/O=Catena Tests/CN=No keyCertSign" root ca_nocertsign $START $END
ec_key ekuclient; sign ekuclient "/O=Catena Tests/CN=Client-only CA" root ca_eku_client $START $END
ec_key sub;      sign sub "/O=Catena Tests/CN=Below pathlen 0" inter ca_inter_nolen $START $END
ec_key otherinter; sign otherinter "/O=Elsewhere/CN=Other Intermediate" other ca_inter_nolen $START $END
rsa_key rsainter 2048; sign rsainter "/O=Catena Tests/CN=Catena RSA Intermediate" rsaroot ca_inter_nolen $START $END

leaf() { # leaf NAME ISSUER PROFILE SAN [START END MD KEYTYPE BITS]
  local name=$1 issuer=$2 profile=$3
  export SAN=$4
  local start=${5:-$START} end=${6:-$END} md=${7:-sha256} kt=${8:-ec} bits=${9:-2048}
  case $kt in
    rsa) rsa_key "$name" "$bits" ;;
    ec) ec_key "$name" ;;
    *) ec_key "$name" "$kt" ;;
  esac
  sign "$name" "/O=Catena Tests/CN=$name.example.test" "$issuer" "$profile" "$start" "$end" "$md"
}

VALID_SAN="DNS:www.example.test, DNS:example.test, DNS:UPPER.Example.TEST, IP:127.0.0.1, IP:::1"
leaf valid inter leaf "$VALID_SAN"
leaf expired inter leaf_plain "DNS:expired.example.test" 20200101000000Z 20251231000000Z
leaf notyet inter leaf_plain "DNS:notyet.example.test" 20400101000000Z $END
leaf soon inter leaf_plain "DNS:soon.example.test" $START 20300101003000Z
leaf selfsigned self leaf_selfsigned "DNS:selfsigned.example.test"
leaf otherleaf otherinter leaf_plain "DNS:www.example.test"
leaf wild inter leaf_plain "DNS:*.wild.example.test, DNS:f*o.example.test, DNS:*.test, DNS:a.*.example.test, DNS:*"
leaf nosan inter leaf_nosan ""
leaf rsa1024 inter leaf_plain "DNS:rsa1024.example.test" $START $END sha256 rsa 1024
leaf sha1 inter leaf_plain "DNS:sha1.example.test" $START $END sha1
leaf undernoca noca leaf_plain "DNS:undernoca.example.test"
leaf undernobc nobc leaf_plain "DNS:undernobc.example.test"
leaf undernocertsign nocertsign leaf_plain "DNS:undernocertsign.example.test"
leaf underekuclient ekuclient leaf_plain "DNS:underekuclient.example.test"
leaf undersub sub leaf_plain "DNS:undersub.example.test"
leaf clientonly inter leaf_client "DNS:clientonly.example.test"
leaf anyeku inter leaf_anyeku "DNS:anyeku.example.test"
leaf noeku inter leaf_noeku "DNS:noeku.example.test"
leaf underold interold leaf_plain "DNS:underold.example.test"
leaf rsaleaf rsainter leaf_plain "DNS:rsa.example.test" $START $END sha256 rsa 2048
leaf critext inter leaf_critext "DNS:critext.example.test"
leaf ec224 inter leaf_plain "DNS:ec224.example.test" $START $END sha256 P-224
# Expired and weak together, from an unknown root: every error is reported.
leaf manybad otherinter leaf_plain "DNS:manybad.example.test" 20200101000000Z 20251231000000Z sha1 rsa 1024

for f in *.pem; do
  # Drop `openssl ca`'s copies named by serial.
  case $f in [0-9A-F][0-9A-F][0-9A-F][0-9A-F].pem) continue ;; esac
  openssl x509 -in "$f" -out "$here/$f"
done
echo "fixtures written to $here"
