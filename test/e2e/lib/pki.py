"""The test PKI, made with the openssl CLI at session start.

Layout (all under Pki.dir):
  root/         cert.pem key.pem       "catena e2e Root CA" (self-signed): the trusted root
  inter/        cert.pem key.pem       "catena e2e Intermediate CA", issued by the root; issues
                index.txt crl.pem crl.der  the leaves; its `openssl ca` database doubles as the
                                        OCSP index; crl.* is its CRL (revoked.test is in it)
  untrusted/    cert.pem key.pem       "catena e2e Untrusted Root": never given to catena
  ocsp/         cert.pem key.pem       OCSP signer (EKU OCSPSigning) issued by the intermediate
  crl/          intermediate.crl (DER) and intermediate.crl.pem: what nginx serves at the CDP URL
  leaves/NAME/  cert.pem key.pem chain.pem (leaf + intermediate: what a server sends)

How to get paths in a test (fixture `pki`):
  pki.root_cert                 CA file for clients (curl --cacert, tls.ca_file of catena)
  pki.leaf("origin.test").chain  leaf + intermediate, .cert, .key, .pem_text(), .fingerprint()
  pki.untrusted_root_cert, pki.inter_cert, pki.ocsp_cert/ocsp_key, pki.ocsp_index,
  pki.crl_pem, pki.crl_der, pki.ocsp_url, pki.crl_url
  pki.issue(name, sans=[...], ...) for a new leaf; pki.revoke(name) updates the CRL and index.

Leaves prepared at start (see STANDARD_LEAVES):
  origin.test     valid; SANs DNS:origin.test, DNS:www.origin.test, IP:127.0.0.1
  expired.test    valid from 2020-01-01 to 2021-01-01
  untrusted.test  issued by the untrusted root
  wronghost.test  a valid certificate for other.test, served by the wronghost.test origin
  revoked.test    valid but revoked (CRL and OCSP index)
Every leaf issued by the intermediate carries an AIA OCSP URL (http://ocsp.test:PORT/) and a CRL
distribution point (http://crl.test:PORT/intermediate.crl); both ports are reserved at PKI time
(pki.ocsp_port, pki.crl_port) and released by whoever starts the responder / CRL server.
"""
import datetime
import hashlib
import base64
from pathlib import Path

from . import util

CA_START = "20190101000000Z"
CA_END = "20451231235959Z"

STANDARD_LEAVES = {
    # name: issue() keyword arguments
    "origin.test": dict(sans=["DNS:origin.test", "DNS:www.origin.test", "IP:127.0.0.1"]),
    "expired.test": dict(not_before="20200101000000Z", not_after="20210101000000Z"),
    "untrusted.test": dict(issuer="untrusted"),
    "wronghost.test": dict(cn="other.test", sans=["DNS:other.test"]),
    "revoked.test": dict(),
}


class PkiError(AssertionError):
    pass


def _openssl(args, cwd=None, input=None):
    r = util.run(["openssl"] + list(args), timeout=60, cwd=cwd, input=input)
    if r.returncode != 0:
        raise PkiError("openssl %s failed (%d): %s" % (" ".join(map(str, args)), r.returncode,
                                                      r.stderr.decode("utf-8", "replace")))
    return r.stdout


def _stamp(dt):
    return dt.strftime("%Y%m%d%H%M%SZ")


class Leaf:
    def __init__(self, name, d):
        self.name = name
        self.dir = Path(d)
        self.cert = self.dir / "cert.pem"
        self.key = self.dir / "key.pem"
        self.chain = self.dir / "chain.pem"

    def pem_text(self):
        return self.cert.read_text()

    def der(self):
        return pem_to_der(self.pem_text())

    def fingerprint(self):
        """SHA-256 of the DER certificate, hex lowercase."""
        return hashlib.sha256(self.der()).hexdigest()

    def __repr__(self):
        return "Leaf(%s)" % self.name


def pem_to_der(pem):
    """DER of the first certificate in a PEM text."""
    begin = "-----BEGIN CERTIFICATE-----"
    end = "-----END CERTIFICATE-----"
    i = pem.index(begin) + len(begin)
    j = pem.index(end, i)
    return base64.b64decode("".join(pem[i:j].split()))


def pem_certs(text):
    """Every PEM certificate block in text, in order."""
    out = []
    begin = "-----BEGIN CERTIFICATE-----"
    end = "-----END CERTIFICATE-----"
    pos = 0
    while True:
        i = text.find(begin, pos)
        if i < 0:
            return out
        j = text.find(end, i)
        if j < 0:
            return out
        out.append(text[i:j + len(end)] + "\n")
        pos = j + len(end)


_CA_CNF = """\
[ ca ]
default_ca = ca_default

[ ca_default ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 3650
default_crl_days = 30
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
name_opt = ca_default
cert_opt = ca_default

[ policy_any ]
organizationName = optional
organizationalUnitName = optional
commonName = supplied

[ req ]
distinguished_name = req_dn
prompt = no

[ req_dn ]
CN = unused

[ v3_root ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ v3_inter ]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ v3_ocsp ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
noCheck = ignored
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[ crl_ext ]
authorityKeyIdentifier = keyid:always
"""


class _Ca:
    """One `openssl ca` directory: cert, key, database, serial, CRL number."""

    def __init__(self, d, subject, key_alg):
        self.dir = Path(d)
        self.subject = subject
        self.key_alg = key_alg
        self.cert = self.dir / "cert.pem"
        self.key = self.dir / "key.pem"
        self.cnf = self.dir / "ca.cnf"
        self.index = self.dir / "index.txt"

    def prepare(self):
        (self.dir / "newcerts").mkdir(parents=True, exist_ok=True)
        self.index.write_text("")
        (self.dir / "index.txt.attr").write_text("unique_subject = no\n")
        (self.dir / "serial").write_text("1000\n")
        (self.dir / "crlnumber").write_text("1000\n")
        self.cnf.write_text(_CA_CNF.format(dir=self.dir))
        _genkey(self.key, self.key_alg)

    def sign(self, csr, out, extfile, extensions, start, end, md=None):
        _openssl(["ca", "-config", self.cnf, "-batch", "-notext", "-in", csr, "-out", out,
                  "-cert", self.cert, "-keyfile", self.key, "-extfile", extfile,
                  "-extensions", extensions, "-startdate", start, "-enddate", end] +
                 (["-md", md] if md else []))

    def gencrl(self, out_pem, out_der):
        _openssl(["ca", "-config", self.cnf, "-batch", "-gencrl", "-cert", self.cert,
                  "-keyfile", self.key, "-crlexts", "crl_ext", "-out", out_pem])
        _openssl(["crl", "-in", out_pem, "-outform", "DER", "-out", out_der])


def _genkey(path, alg):
    if alg == "ec":
        _openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-out", path])
    elif alg.startswith("rsa"):
        bits = alg.split(":")[1] if ":" in alg else "2048"
        _openssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:%s" % bits,
                  "-out", path])
    else:
        raise ValueError("key algorithm %r: use 'ec' or 'rsa[:bits]'" % alg)
    Path(path).chmod(0o600)


class Pki:
    def __init__(self, d, ocsp_port, crl_port):
        self.dir = Path(d)
        self.ocsp_port = ocsp_port
        self.crl_port = crl_port
        self.ocsp_url = "http://ocsp.test:%d/" % ocsp_port
        self.crl_url = "http://crl.test:%d/intermediate.crl" % crl_port
        self.root = _Ca(self.dir / "root", "/O=catena e2e/CN=catena e2e Root CA", "rsa:2048")
        self.inter = _Ca(self.dir / "inter", "/O=catena e2e/CN=catena e2e Intermediate CA",
                         "rsa:2048")
        self.untrusted = _Ca(self.dir / "untrusted", "/O=catena e2e/CN=catena e2e Untrusted Root",
                             "rsa:2048")
        self.root_cert = self.root.cert
        self.inter_cert = self.inter.cert
        self.untrusted_root_cert = self.untrusted.cert
        self.ocsp_index = self.inter.index
        self.ocsp_cert = self.dir / "ocsp" / "cert.pem"
        self.ocsp_key = self.dir / "ocsp" / "key.pem"
        self.crl_dir = self.dir / "crl"
        self.crl_pem = self.crl_dir / "intermediate.crl.pem"
        self.crl_der = self.crl_dir / "intermediate.crl"
        self._leaves = {}

    # --- building -----------------------------------------------------------

    def build(self, leaves=STANDARD_LEAVES):
        for ca in (self.root, self.inter, self.untrusted):
            ca.prepare()
        self._self_sign(self.root)
        self._self_sign(self.untrusted)
        csr = self.inter.dir / "csr.pem"
        _openssl(["req", "-new", "-config", self.inter.cnf, "-key", self.inter.key,
                  "-subj", self.inter.subject, "-out", csr])
        self.root.sign(csr, self.inter.cert, self.root.cnf, "v3_inter", CA_START, CA_END)
        (self.dir / "ocsp").mkdir(exist_ok=True)
        _genkey(self.ocsp_key, "ec")
        csr = self.dir / "ocsp" / "csr.pem"
        _openssl(["req", "-new", "-config", self.inter.cnf, "-key", self.ocsp_key,
                  "-subj", "/O=catena e2e/CN=catena e2e OCSP responder", "-out", csr])
        self.inter.sign(csr, self.ocsp_cert, self.inter.cnf, "v3_ocsp", *self._default_window())
        self.crl_dir.mkdir(exist_ok=True)
        for name, kw in leaves.items():
            self.issue(name, **kw)
        if "revoked.test" in leaves:
            self.revoke("revoked.test")
        else:
            self.update_crl()
        return self

    def _self_sign(self, ca):
        csr = ca.dir / "csr.pem"
        _openssl(["req", "-new", "-config", ca.cnf, "-key", ca.key, "-subj", ca.subject,
                  "-out", csr])
        _openssl(["ca", "-config", ca.cnf, "-batch", "-notext", "-selfsign", "-in", csr,
                  "-out", ca.cert, "-keyfile", ca.key, "-extensions", "v3_root",
                  "-startdate", CA_START, "-enddate", CA_END])

    @staticmethod
    def _default_window():
        now = datetime.datetime.now(datetime.timezone.utc)
        return (_stamp(now - datetime.timedelta(days=1)), _stamp(now + datetime.timedelta(days=365)))

    def issue(self, name, cn=None, sans=None, issuer="inter", key="ec", not_before=None,
              not_after=None, aia=True, ocsp_url=None, crl_url=None, md=None,
              eku="serverAuth", ca_issuers_url=None):
        """Issues (or re-issues) leaf `name` into leaves/NAME/ and returns its Leaf.

        cn defaults to name, sans to ["DNS:<cn>"]; issuer is "inter" (trusted chain),
        "root", "untrusted" or "self" (a self-signed leaf); dates are openssl's
        YYYYMMDDHHMMSSZ (a self-signed leaf is valid from now for a year). key: "ec" or
        "rsa[:bits]"; md: the signature digest ("sha1" for a weak one); eku: the
        extendedKeyUsage value (None: no EKU extension).
        Revocation pointers (leaves of the intermediate, with aia): ocsp_url and crl_url
        default to the PKI's (pki.ocsp_url, pki.crl_url); "" leaves that one out;
        ca_issuers_url adds an AIA caIssuers URL (where the issuer could be fetched).
        """
        self_signed = issuer == "self"
        ca = None if self_signed else \
            {"inter": self.inter, "root": self.root, "untrusted": self.untrusted}[issuer]
        cn = cn or name
        sans = sans or ["DNS:" + cn]
        d = self.dir / "leaves" / name
        d.mkdir(parents=True, exist_ok=True)
        leaf = Leaf(name, d)
        _genkey(leaf.key, key)
        csr = d / "csr.pem"
        _openssl(["req", "-new", "-config", (ca or self.inter).cnf, "-key", leaf.key,
                  "-subj", "/O=catena e2e origin/CN=%s" % cn, "-out", csr])
        usage = "digitalSignature" if key == "ec" else "digitalSignature, keyEncipherment"
        ext = ["[ leaf ]", "basicConstraints = CA:FALSE", "keyUsage = critical, " + usage,
               "subjectKeyIdentifier = hash", "subjectAltName = " + ", ".join(sans)]
        if eku:
            ext.append("extendedKeyUsage = " + eku)
        if not self_signed:
            ext.append("authorityKeyIdentifier = keyid:always")
        if aia and ca is self.inter:
            ocsp = self.ocsp_url if ocsp_url is None else ocsp_url
            crl = self.crl_url if crl_url is None else crl_url
            aia_ext = ["OCSP;URI:%s" % ocsp] if ocsp else []
            if ca_issuers_url:
                aia_ext.append("caIssuers;URI:%s" % ca_issuers_url)
            if aia_ext:
                ext.append("authorityInfoAccess = " + ", ".join(aia_ext))
            if crl:
                ext.append("crlDistributionPoints = URI:%s" % crl)
        extfile = d / "ext.cnf"
        extfile.write_text("\n".join(ext) + "\n")
        if self_signed:
            _openssl(["x509", "-req", "-in", csr, "-signkey", leaf.key, "-days", "365",
                      "-set_serial", "7", "-extfile", extfile, "-extensions", "leaf",
                      "-out", leaf.cert] + (["-" + md] if md else ["-sha256"]))
        else:
            start, end = self._default_window()
            ca.sign(csr, leaf.cert, extfile, "leaf", not_before or start, not_after or end,
                    md=md)
        chain = leaf.cert.read_text()
        if ca is self.inter:
            chain += self.inter.cert.read_text()
        leaf.chain.write_text(chain)
        self._leaves[name] = leaf
        return leaf

    def revoke(self, name, reason="keyCompromise"):
        leaf = self.leaf(name)
        _openssl(["ca", "-config", self.inter.cnf, "-batch", "-revoke", leaf.cert,
                  "-cert", self.inter.cert, "-keyfile", self.inter.key, "-crl_reason", reason])
        self.update_crl()

    def update_crl(self):
        self.inter.gencrl(self.crl_pem, self.crl_der)
        # The intermediate directory keeps a copy for tools that look there.
        (self.inter.dir / "crl.pem").write_bytes(self.crl_pem.read_bytes())
        (self.inter.dir / "crl.der").write_bytes(self.crl_der.read_bytes())

    # --- lookups ------------------------------------------------------------

    def leaf(self, name):
        try:
            return self._leaves[name]
        except KeyError:
            raise KeyError("no leaf %r in the test PKI (have: %s)" % (name, ", ".join(self._leaves)))

    def leaves(self):
        return dict(self._leaves)

    def subject_cn(self, which="inter"):
        return {"root": "catena e2e Root CA", "inter": "catena e2e Intermediate CA",
                "untrusted": "catena e2e Untrusted Root"}[which]


def build(d, ocsp_port, crl_port, leaves=STANDARD_LEAVES):
    return Pki(d, ocsp_port, crl_port).build(leaves)
