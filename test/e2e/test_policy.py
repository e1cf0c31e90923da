"""Policy: CPL in a signed bundle, pushed to and pulled by nodes, deciding interception,
access and authentication; bundles refused when tampered; `catena -t` on a broken policy.

Bundles are made with catenactl (keygen, build) at test time.
"""
import json
import re
import subprocess
import time
import urllib.request

import pytest

from lib import http, intercept, util

TOKEN = "e2e-admin-token-0123456789abcdef"

BASE_POLICY = """
<proxy>
    allow
"""


class Bundles:
    """A signing key and helpers to build bundles from policy text."""

    def __init__(self, d):
        self.dir = d
        d.mkdir(parents=True, exist_ok=True)
        self.priv = d / "bundle.priv"
        self.pub = d / "bundle.pub"
        intercept.catenactl("bundle", "keygen", "--private", str(self.priv), "--public",
                            str(self.pub))
        self.n = 0

    def build(self, policy, version, categories=None, pages=None, check=True):
        self.n += 1
        src = self.dir / ("src%d" % self.n)
        src.mkdir()
        (src / "policy.cpl").write_text(policy)
        if categories is not None:
            (src / "categories.txt").write_text(categories)
        for name, text in (pages or {}).items():
            (src / "pages").mkdir(exist_ok=True)
            (src / "pages" / name).write_text(text)
        out = self.dir / ("b%d.cbdl" % self.n)
        intercept.catenactl("bundle", "build", "--dir", str(src), "--version", str(version),
                            "--key", str(self.priv), "--out", str(out),
                            *([] if check else ["--check", "no"]))
        return out


@pytest.fixture
def bundles(test_dir):
    return Bundles(test_dir / "bundles")


def _token_file(node_dir):
    p = node_dir / "admin.token"
    p.write_text(TOKEN + "\n")
    p.chmod(0o600)
    return p


def _admin(node, method, path, body=None, token=TOKEN, timeout=15):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (node.admin_port, path), data=body,
                                 method=method)
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _status(node):
    s, body = _admin(node, "GET", "/status", token=None)
    assert s == 200, body
    return json.loads(body)


@pytest.fixture
def policy_node(make_catena, keyring, origins, bundles, test_dir):
    """policy_node(name, bundle={...}) -> a node with an admin listener and token, the
    session keyring (interception decided by the policy), trusting bundles.pub."""
    def make(name, **kw):
        node_dir = test_dir / name
        node_dir.mkdir(parents=True, exist_ok=True)
        bundle = dict(kw.pop("bundle", {}))
        bundle.setdefault("keys", [str(bundles.pub)])
        bundle.setdefault("store", str(node_dir / "bundle.cbdl"))
        return make_catena(name=name, listeners=intercept.listeners_with_admin(),
                           tls=intercept.tls_section(keyring, origins.pki, intercept="none"),
                           bundle=bundle, admin={"token_file": str(_token_file(node_dir))},
                           **kw)
    return make


def _wait(pred, what, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def _issuer(node, origins, keyring, host="origin.test"):
    """The issuer CN a client sees for host through node (catena's if intercepted)."""
    s = intercept.s_client(node.port, host, origins.tls_port(host), cafile=keyring.root_cert)
    return intercept.issuer_cn(s.leaf) if s.leaf else None


INTERCEPT_ORIGIN = """
<proxy>
    allow
<ssl-intercept>
    url.host=origin.test ssl.forward_proxy(https)
    ssl.forward_proxy(no)
"""


def test_push_and_pull_same_digest(policy_node, bundles, test_dir, origins):
    """A data-center node receives the bundle by push; a branch node pulls it from the
    data center's admin endpoint; both report the same digest."""
    dc = policy_node("dc")
    b = bundles.build(BASE_POLICY, 1)
    status, body = _admin(dc, "PUT", "/bundle", b.read_bytes())
    assert status == 200, body
    digest = _status(dc)["bundle"]["digest"]
    assert digest.startswith("sha256:") and digest in body.decode(), body
    branch = policy_node("branch",
                          bundle={"pull_url": "http://127.0.0.1:%d/bundle" % dc.admin_port,
                                  "pull_interval": "1s"})
    _wait(lambda: _status(branch)["bundle"]["digest"] == digest, "the branch to pull the bundle")
    assert _status(branch)["bundle"]["version"] == 1
    branch.wait_event(r"policy %s \(pull\)" % re.escape(digest))
    # A new version pushed to the data center reaches the branch.
    b2 = bundles.build(BASE_POLICY + "\n; v2\n", 2)
    assert _admin(dc, "PUT", "/bundle", b2.read_bytes())[0] == 200
    d2 = _status(dc)["bundle"]["digest"]
    assert d2 != digest
    _wait(lambda: _status(branch)["bundle"]["digest"] == d2, "the branch to pull version 2")


def test_bundle_change_flips_site_without_breaking_open_tunnel(policy_node, bundles,
                                                               test_dir, origins, keyring):
    node = policy_node("flip")
    assert _admin(node, "PUT", "/bundle", bundles.build(BASE_POLICY, 1).read_bytes())[0] == 200
    assert _issuer(node, origins, keyring) != intercept.INTER_CN  # tunneled
    # A tunnel stays open across the change.
    with intercept.tls_tunnel(node.port, "origin.test", origins.tls_port(),
                              origins.pki.root_cert) as t:
        r = intercept.origin_get(t, "origin.test", origins.tls_port(), "/small.txt")
        assert r.status == 200
        assert _admin(node, "PUT", "/bundle",
                      bundles.build(INTERCEPT_ORIGIN, 2).read_bytes())[0] == 200
        # New connections are intercepted...
        assert _issuer(node, origins, keyring) == intercept.INTER_CN
        # ...the open tunnel still carries requests, untouched.
        r = intercept.origin_get(t, "origin.test", origins.tls_port(), "/small.txt")
        assert r.status == 200 and r.body == origins.files.path("small.txt").read_bytes()


def test_tampered_and_rolled_back_bundles_refused(policy_node, bundles, test_dir,
                                                  origins):
    node = policy_node("tamper")
    good = bundles.build(BASE_POLICY, 5).read_bytes()
    assert _admin(node, "PUT", "/bundle", good)[0] == 200
    digest = _status(node)["bundle"]["digest"]
    bad = bytearray(good)
    bad[-3] ^= 0x01  # a byte of policy.cpl
    status, body = _admin(node, "PUT", "/bundle", bytes(bad))
    assert status == 422 and b"sha256 mismatch" in body, body
    older = bundles.build(BASE_POLICY, 4).read_bytes()
    status, body = _admin(node, "PUT", "/bundle", older)
    assert status == 422 and b"older than the running 5" in body, body
    other = Bundles(test_dir / "other-key")
    status, body = _admin(node, "PUT", "/bundle", other.build(BASE_POLICY, 9).read_bytes())
    assert status == 422 and b"not a trusted key" in body, body
    assert _status(node)["bundle"]["digest"] == digest
    node.wait_event(r"bundle refused: .*sha256 mismatch")
    # No token, or a wrong one: refused before reading anything.
    assert _admin(node, "PUT", "/bundle", good, token=None)[0] == 401
    assert _admin(node, "PUT", "/bundle", good, token=TOKEN + "x")[0] == 401


def test_broken_policy_refused_with_position(make_catena, bundles, test_dir):
    # catenactl refuses to build it; nodes must refuse it too, whoever built it.
    src = bundles.dir / "broken"
    src.mkdir(parents=True)
    (src / "policy.cpl").write_text("<proxy>\n    url.host=foo allow(\n")
    r = util.run([util.catenactl_bin(), "bundle", "build", "--dir", str(src), "--version", "1",
                  "--key", str(bundles.priv), "--out", str(src / "b.cbdl")])
    assert r.returncode == 1 and re.search(r"policy\.cpl:2:\d+: ", r.stdout.decode() +
                                           r.stderr.decode()), r
    assert not (src / "b.cbdl").exists()
    b = bundles.build("<proxy>\n    url.host=foo allow(\n", 1, check=False)
    node = make_catena(start=False, bundle={"file": str(b), "keys": [str(bundles.pub)]})
    r = util.run([util.catena_bin(), "-t", "-c", str(node.conf_path)])
    err = r.stderr.decode()
    assert r.returncode == 1, r.stdout.decode() + err
    assert re.search(r"policy\.cpl:2:\d+: ", err), err


def test_pushed_bundle_survives_restart(policy_node, bundles, test_dir, origins):
    node = policy_node("keep")
    assert _admin(node, "PUT", "/bundle", bundles.build(BASE_POLICY, 3).read_bytes())[0] == 200
    digest = _status(node)["bundle"]["digest"]
    node.stop()
    node.start()
    assert _status(node)["bundle"]["digest"] == digest


CATEGORIES = """
[financial]
.origin.test
[webmail]
www.origin.test
"""

BY_CATEGORY = """
<proxy>
    allow
<ssl-intercept>
    server.certificate.hostname.category=financial ssl.forward_proxy(no)
    ssl.forward_proxy(https)
"""


def test_category_decides_interception(policy_node, bundles, test_dir, origins, keyring):
    """server.certificate.hostname.category=financial -> tunnel; others intercepted. The
    certificate's name is known only after a probe: the decision waits for it."""
    node = policy_node("cats")
    b = bundles.build(BY_CATEGORY, 1, categories=CATEGORIES)
    assert _admin(node, "PUT", "/bundle", b.read_bytes())[0] == 200
    # origin.test's certificate CN is origin.test: category financial -> tunneled.
    assert _issuer(node, origins, keyring, "origin.test") != intercept.INTER_CN


USERS_POLICY = """
<proxy>
    authenticate(corp)
<proxy>
    user=alice allow
    deny("Only alice may browse")
"""


def test_authentication_local_realm(make_catena, bundles, test_dir, origins):
    users = test_dir / "users.txt"
    h = subprocess.run(["openssl", "passwd", "-6", "s3cret"], capture_output=True, text=True,
                       check=True).stdout.strip()
    users.write_text("alice:%s\nbob:%s\n" % (h, h))
    b = bundles.build(USERS_POLICY, 1)
    node = make_catena(bundle={"file": str(b), "keys": [str(bundles.pub)]},
                       realms=({"name": "corp", "type": "local", "users_file": str(users)},))
    url = origins.echo_url("/conn")
    r = http.curl(url, proxy_port=node.port)
    assert r.status == 407, r
    assert 'Basic realm="corp"' in (r.header("Proxy-Authenticate") or ""), r.headers
    r = http.curl(url, "--proxy-user", "alice:wrong", proxy_port=node.port)
    assert r.status == 407, r
    node.wait_event(r'authentication fail for user "alice" \(realm corp\)')
    r = http.curl(url, "--proxy-user", "alice:s3cret", proxy_port=node.port).check()
    assert r.status == 200, r
    node.wait_access(cs_username="alice", sc_status="200")
    # bob authenticates, but the policy allows only alice: denied after authentication.
    r = http.curl(url, "--proxy-user", "bob:s3cret", proxy_port=node.port)
    http.assert_exception_page(r, 403, "policy_denied", body_contains=["Only alice may browse"])
    node.wait_access(cs_username="bob", sc_status="403")
