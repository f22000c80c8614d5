#!/usr/bin/python3
"""End-to-end checks of cledger-attestd against the conformance table of
shared/spec/attestation-api.md §12 (A1-A21) plus admission, errors, persistence and the
token's signature. Real processes, real TLS, real evidence from tests/data/attestation-vectors.

usage: attestd_e2e.py BIN_DIR WORK_DIR    (exit 0 when every check passes)
"""
import base64
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
import datetime

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tally import Tally  # noqa: E402
from badcert import bad_dates_cert  # noqa: E402
from netutil import free_port  # noqa: E402

BIN, WORK = sys.argv[1], sys.argv[2]
SRC = os.environ.get("CLEDGER_SOURCE_DIR") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VEC = os.path.join(SRC, "tests", "data", "attestation-vectors")
T = Tally("attestd e2e")
check = T.check


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64u_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def vec(path):
    with open(os.path.join(VEC, path), "rb") as f:
        return f.read()


# ---- administrators: an RSA key, its JWKS, and bearer tokens --------------------------------
ISS, AUD = "https://login.cledger.test/tenant", "https://attest.azure.net"
admin_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk_of(key, kid):
    n = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
            "n": b64u(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")), "e": b64u(n.e.to_bytes(3, "big"))}


def make_jwt(key, kid="admin-1", iss=ISS, aud=AUD, exp_in=600, sub="test-admin"):
    now = int(time.time())
    h = b64u(json.dumps({"alg": "RS256", "kid": kid, "typ": "JWT"}).encode())
    p = b64u(json.dumps({"iss": iss, "aud": aud, "iat": now, "nbf": now - 5, "exp": now + exp_in,
                         "sub": sub}).encode())
    sig = key.sign((h + "." + p).encode(), padding.PKCS1v15(), hashes.SHA256())
    return h + "." + p + "." + b64u(sig)


JWKS = os.path.join(WORK, "jwks.json")
with open(JWKS, "w") as f:
    json.dump({"keys": [jwk_of(admin_key, "admin-1")]}, f)
BEARER = make_jwt(admin_key)


def self_signed(key, cn, days_from=-1, days_to=30):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now + datetime.timedelta(days=days_from))
            .not_valid_after(now + datetime.timedelta(days=days_to)).sign(key, hashes.SHA256()))


mgmt_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
mgmt_cert = self_signed(mgmt_key, "policy signer 1")
mgmt2_key = ec.generate_private_key(ec.SECP256R1())
mgmt2_cert = self_signed(mgmt2_key, "policy signer 2")
MGMT_PEM = os.path.join(WORK, "mgmt1.pem")
with open(MGMT_PEM, "wb") as f:
    f.write(mgmt_cert.public_bytes(serialization.Encoding.PEM))


def der_b64(cert):
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def sign_jws(key, cert, payload_obj, alg=None, python_style=False, bare_jwk=False):
    if bare_jwk:  # the signer as a bare RSA key, no certificate
        j = jwk_of(key, "k")
        hs = json.dumps({"alg": "RS256", "jwk": {"kty": "RSA", "n": j["n"], "e": j["e"]}})
    elif python_style:
        hdr = {"alg": "RSA256", "jwk": {"x5c": [der_b64(cert)]}}
        hs = json.dumps(hdr)
    else:
        alg = alg or ("RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256")
        hs = json.dumps({"alg": alg, "x5c": [der_b64(cert)]}, separators=(",", ":"))
    h = b64u(hs.encode())
    p = b64u(json.dumps(payload_obj, separators=(",", ":")).encode()) if payload_obj is not None else ""
    si = (h + "." + p).encode()
    if isinstance(key, rsa.RSAPrivateKey):
        sig = key.sign(si, padding.PKCS1v15(), hashes.SHA256())
    else:
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
        r, s = decode_dss_signature(key.sign(si, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return h + "." + p + "." + b64u(sig)


def policy_jws_unsigned(text):
    return "eyJhbGciOiJub25lIn0." + b64u(json.dumps({"AttestationPolicy": b64u(text.encode())}, separators=(",", ":")).encode()) + "."


# ---- a running instance -----------------------------------------------------------------------
class Instance:
    def __init__(self, name, *args):
        self.dir = os.path.join(WORK, name)
        self.port = free_port()
        self.args = list(args)
        self.log = open(os.path.join(WORK, name + ".log"), "ab")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([os.path.join(BIN, "cledger-attestd"), "--data-dir", self.dir,
                                      "--listen", "127.0.0.1:%d" % self.port, "--log-level", "info"] + self.args,
                                     stderr=self.log, stdout=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("cledger-attestd exited with %d (see %s.log)" % (self.proc.returncode, self.dir))
            if os.path.exists(os.path.join(self.dir, "tls_cert.pem")):
                try:
                    st, _, _ = self.req("GET", "/certs")
                    if st == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.1)
        raise RuntimeError("cledger-attestd did not become ready")

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    @property
    def base(self):
        return "https://127.0.0.1:%d" % self.port

    def req(self, method, path, body=None, headers=None, raw=False, client_cert=None):
        ctx = ssl.create_default_context(cafile=os.path.join(self.dir, "tls_cert.pem"))
        if client_cert is not None:
            ctx.load_cert_chain(*client_cert)
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=30)
        h = dict(headers or {})
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        c.close()
        if raw:
            return r.status, dict(r.getheaders()), data
        try:
            j = json.loads(data) if data else None
        except ValueError:
            j = None
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), j


def token_parts(tok):
    h, p, s = tok.split(".")
    return json.loads(b64u_dec(h)), json.loads(b64u_dec(p)), s


def verify_token(inst, tok):
    """RS256 signature with the /certs key whose kid the header names."""
    hdr, pl, sig = token_parts(tok)
    st, _, jwks = inst.req("GET", "/certs")
    keys = [k for k in jwks["keys"] if k["kid"] == hdr.get("kid")]
    if len(keys) != 1:
        return False
    cert = x509.load_der_x509_certificate(base64.b64decode(keys[0]["x5c"][0]))
    h, p, s = tok.split(".")
    try:
        cert.public_key().verify(b64u_dec(s), (h + "." + p).encode(), padding.PKCS1v15(), hashes.SHA256())
        return True
    except Exception:
        return False


AUTH = {"Authorization": "Bearer " + BEARER}
Q = "?api-version=2020-10-01"
SGX_QUOTE = vec("sgx/azure-sdk_sgx_quote_v3.bin")
OE_REPORT = vec("sgx/azure-sdk_oe_report.bin")
RUNTIME = vec("sgx/azure-sdk_runtime_data.bin")
MRENCLAVE = "b779202618becb636768e5d902f28d524222735fafb539ea9ba07c3fc171a1c2"
MRSIGNER = "2c1a44952ae8207135c6c29b75b8c029372ee94b677e15c20bd42340f10d41aa"
PERMIT = "version=1.0; authorizationrules{=> permit();}; issuancerules{};"


def attest(inst, typ, body, headers=None):
    return inst.req("POST", "/attest/%s%s" % (typ, Q), body, headers)


def snp_wrapper(report, vcek_der, chain_pem_file, endorsements=None):
    vcek = x509.load_der_x509_certificate(vcek_der).public_bytes(serialization.Encoding.PEM)
    with open(os.path.join(VEC, chain_pem_file), "rb") as f:
        chain = vcek + f.read()
    w = {"SnpReport": b64u(report), "VcekCertChain": b64u(chain)}
    if endorsements is not None:
        w["Endorsements"] = b64u(endorsements.encode())
    return b64u(("\n        " + json.dumps(w)).encode())


def main():
    aad = Instance("aad", "--admin-jwks", JWKS, "--admin-issuer", ISS, "--admin-audience", AUD,
                   "--collateral", "if-available")
    aad.start()
    st, hd, j = aad.req("GET", "/certs")
    check(st == 200 and len(j["keys"]) == 1 and j["keys"][0]["kty"] == "RSA" and j["keys"][0]["x5c"], "A14 /certs")
    st2, _, j2 = aad.req("GET", "/certs/")
    check(st2 == 200 and j2 == j, "A14 /certs/ (trailing slash)")
    kid = j["keys"][0]["kid"]
    cert = x509.load_der_x509_certificate(base64.b64decode(j["keys"][0]["x5c"][0]))
    check(len(kid) == 44 and base64.b64decode(kid) == cert.fingerprint(hashes.SHA256()), "kid = b64(SHA-256(DER))")
    check(cert.public_key().key_size == 2048 and cert.serial_number > 0, "RSA-2048 signing cert, positive serial")
    st, _, oid = aad.req("GET", "/.well-known/openid-configuration")
    check(st == 200 and oid["issuer"] == aad.base and oid["jwks_uri"] == aad.base + "/certs"
          and "response_types_supported" in oid, "A15 OpenID document")
    check(oct(os.stat(os.path.join(aad.dir, "signing_key.pem")).st_mode & 0o777) == "0o600"
          and oct(os.stat(os.path.join(aad.dir, "tls_key.pem")).st_mode & 0o777) == "0o600"
          and oct(os.stat(os.path.join(aad.dir, "context.key")).st_mode & 0o777) == "0o600", "key files 0600")
    tls = x509.load_pem_x509_certificate(open(os.path.join(aad.dir, "tls_cert.pem"), "rb").read())
    sans = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    check("localhost" in sans.get_values_for_type(x509.DNSName), "TLS SAN localhost")
    # crypto/cpu.h: on AMD CPUs with AVX2 and ADX the daemon re-executes itself with libcrypto's
    # ADX code masked (faster RSA signatures); elsewhere, or when the variable is set, it does not.
    # Every token below is signed that way and verified against /certs.
    cpuinfo = open("/proc/cpuinfo").read()
    flags = set(re.search(r"^flags\s*:(.*)$", cpuinfo, re.M).group(1).split())
    amd = "AuthenticAMD" in cpuinfo and {"avx2", "adx"} <= flags
    env = open("/proc/%d/environ" % aad.proc.pid, "rb").read().split(b"\0")
    if "OPENSSL_ia32cap" in os.environ:
        check(b"OPENSSL_ia32cap=" + os.environ["OPENSSL_ia32cap"].encode() in env, "OPENSSL_ia32cap kept as set")
    else:
        check((b"OPENSSL_ia32cap=:~0x80000" in env) == amd, "RSA code path chosen for the CPU (AMD: %s)" % amd)
    check(open("/proc/%d/comm" % aad.proc.pid).read().strip() == "cledger-attestd", "process name kept across the re-exec")

    # A1: SGX + Binary runtime data, default policy
    st, hd, j = attest(aad, "SgxEnclave", {"quote": b64u(SGX_QUOTE), "runtimeData": {"data": b64u(RUNTIME), "dataType": "Binary"}})
    check(st == 200, "A1 status %s %s" % (st, j))
    if st == 200:
        hdr, p, _ = token_parts(j["token"])
        check(hdr["alg"] == "RS256" and hdr["kid"] == kid and hdr["jku"] == aad.base + "/certs" and hdr["typ"] == "JWT", "A1 header")
        check(verify_token(aad, j["token"]), "A1 signature verifies with /certs")
        check(p["x-ms-attestation-type"] == "sgx" and p["x-ms-sgx-is-debuggable"] is False
              and p["x-ms-sgx-mrenclave"] == MRENCLAVE and p["x-ms-sgx-mrsigner"] == MRSIGNER
              and p["x-ms-sgx-product-id"] == 1 and p["x-ms-sgx-svn"] == 1 and p["x-ms-ver"] == "1.0", "A1 SGX claims")
        check(p.get("is-debuggable") is False and p.get("sgx-mrenclave") == MRENCLAVE and p.get("sgx-mrsigner") == MRSIGNER
              and p.get("product-id") == 1 and p.get("svn") == 1 and p.get("tee") == "sgx", "A1 issued legacy claims")
        check(isinstance(p.get("x-ms-policy"), dict) and p["x-ms-policy"].get("tee") == "sgx" and len(p["x-ms-policy"]) == 6, "A1 x-ms-policy")
        check(p["x-ms-sgx-report-data"] == "ed11a9eb97dfc17053a32a6992e71d04f7ec996e45519ab710936afb48f9041d" + "0" * 64, "A1 report data")
        check(p["x-ms-sgx-collateral"]["quotehash"] == hashlib.sha256(SGX_QUOTE).hexdigest(), "A1 quotehash")
        check(p["x-ms-sgx-ehd"] == b64u(RUNTIME) == p["maa-ehd"] == p["aas-ehd"], "A1 ehd claims")
        check(p["x-cledger-tcb-evaluated"] is False and "x-ms-sgx-tcb-status" not in p
              and set(p["x-ms-sgx-collateral"]) == {"quotehash"}, "A1 without collateral the token says so")
        check(p["exp"] - p["iat"] == 28800 and p["nbf"] == p["iat"] and len(p["jti"]) == 64 and p["iss"] == aad.base, "A1 times")
        check(p["x-ms-policy-hash"] == "egjnANIzEpS2WgpE4Nk-QEwM69XRCgTs42_G0qLlbnk", "A1 policy hash of the default")
        # the real MAA token's values
        real = json.load(open(os.path.join(VEC, "maa/sharedwus_2021-05-05_SgxEnclave_binary-runtimedata.json")))["payload"]
        for k in ("x-ms-sgx-mrenclave", "x-ms-sgx-mrsigner", "x-ms-sgx-product-id", "x-ms-sgx-svn", "x-ms-sgx-is-debuggable",
                  "x-ms-sgx-ehd", "x-ms-sgx-report-data", "is-debuggable", "sgx-mrenclave", "tee"):
            if k in real:
                check(p.get(k) == real[k], "A1 equals the real MAA token in %s" % k)
    check(hd.get("x-ms-request-id") is not None, "x-ms-request-id header")

    # A2: OpenEnclave + JSON runtime data
    st, _, j = attest(aad, "OpenEnclave", {"report": b64u(OE_REPORT), "runtimeData": {"data": b64u(RUNTIME), "dataType": "JSON"}})
    check(st == 200, "A2 status %s %s" % (st, j))
    if st == 200:
        _, p, _ = token_parts(j["token"])
        check(p["x-ms-sgx-collateral"]["quotehash"] == "949b189c928f25c0a8090ae57d9f481b3435f26fb9a4d7e86e2619770d29c13f", "A2 quotehash")
        check(p["x-ms-runtime"]["jwk"]["crv"] == "P-256" and "x-ms-sgx-ehd" not in p and "maa-ehd" not in p, "A2 runtime claims")
    # A3: draft policy -> unsigned token
    st, _, j = attest(aad, "OpenEnclave", {"report": b64u(OE_REPORT), "runtimeData": {"data": b64u(RUNTIME), "dataType": "JSON"},
                                           "draftPolicyForAttestation": PERMIT})
    check(st == 200, "A3 status %s %s" % (st, j))
    if st == 200:
        hdr, p, sig = token_parts(j["token"])
        check(hdr["alg"] == "none" and sig == "" and j["token"].endswith("."), "A3 unsigned")
        check(p["x-ms-policy-hash"] == "z0FRjKS0ssQTNur1V6BV8WIrh9M3fzgTo0EfHRvapWU" and "x-ms-policy" not in p and "tee" not in p, "A3 claims")
    # A4: runtime data changed
    bad_rt = bytearray(RUNTIME)
    bad_rt[10] ^= 1
    st, hd, j = attest(aad, "SgxEnclave", {"quote": b64u(SGX_QUOTE), "runtimeData": {"data": b64u(bytes(bad_rt)), "dataType": "Binary"}})
    check(st == 400 and j["error"]["code"] == "InvalidParameter" and hd.get("x-ms-error-code") == "InvalidParameter", "A4 %s %s" % (st, j))
    # A5: mr_enclave byte changed
    q = bytearray(SGX_QUOTE)
    q[112] ^= 1
    st, _, j = attest(aad, "SgxEnclave", {"quote": b64u(bytes(q))})
    check(st == 400 and j["error"]["code"] == "InvalidParameter", "A5 %s %s" % (st, j))
    # A6: standard alphabet with padding
    st, _, j = attest(aad, "SgxEnclave", {"quote": base64.b64encode(SGX_QUOTE).decode(),
                                          "runtimeData": {"data": base64.b64encode(RUNTIME).decode(), "dataType": "Binary"}})
    check(st == 200, "A6 %s %s" % (st, j))
    # A7: initTimeData without data
    st, _, j = attest(aad, "SgxEnclave", {"quote": b64u(SGX_QUOTE), "initTimeData": {"dataType": "JSON"}})
    check(st == 200, "A7 %s %s" % (st, j))
    # nonce echo (string and number)
    st, _, j = attest(aad, "SgxEnclave", {"quote": b64u(SGX_QUOTE), "nonce": "n-123"})
    check(st == 200 and token_parts(j["token"])[1]["nonce"] == "n-123", "nonce echoed")
    st, _, j = attest(aad, "SgxEnclave", {"quote": b64u(SGX_QUOTE), "nonce": 42})
    check(st == 200 and token_parts(j["token"])[1]["nonce"] == "42", "numeric nonce")
    for num, want in ((1.5, "1.5"), (0.1, "0.1"), (-2.5e-300, "-2.5e-300"), (1e21, "1e+21")):
        st, _, j = attest(aad, "SgxEnclave", {"quote": b64u(SGX_QUOTE), "nonce": num})
        check(st == 200 and token_parts(j["token"])[1]["nonce"] == want,
              "real nonce %r -> %r: %s %s" % (num, want, st, token_parts(j["token"])[1].get("nonce") if st == 200 else j))

    # malformed requests
    for body, what in ((b"{", "bad JSON"), (b"[]", "not an object"), (json.dumps({"quote": "***"}).encode(), "bad base64"),
                       (json.dumps({"quote": b64u(b"short")}).encode(), "truncated quote"),
                       (json.dumps({"quote": b64u(SGX_QUOTE), "runtimeData": {"data": "aa", "dataType": "Text"}}).encode(), "bad dataType"),
                       (json.dumps({"quote": b64u(SGX_QUOTE), "runtimeData": {"data": b64u(b"[1]"), "dataType": "JSON"}}).encode(), "JSON runtime not object"),
                       (json.dumps({"quote": b64u(SGX_QUOTE), "draftPolicyForAttestation": "version=9.9;"}).encode(), "bad draft")):
        st, hd, j = attest(aad, "SgxEnclave", body, {"Content-Type": "application/json"})
        want = "PolicyParsingError" if what == "bad draft" else "InvalidParameter"
        check(st == 400 and j and j["error"]["code"] == want, "%s -> %s %s" % (what, st, j))
    st, _, j = attest(aad, "SgxEnclave", {"quote": b64u(vec("tdx/phala_tdx_quote_v4.bin"))})
    check(st == 400 and "TDX" in j["error"]["message"], "TDX quote on SgxEnclave refused")
    st, _, j = aad.req("POST", "/attest/NoSuchType" + Q, {"quote": "AA"})
    check(st == 400 and j["error"]["code"] == "InvalidParameter", "unknown type 400")
    st, _, j = aad.req("GET", "/nothing/here")
    check(st == 404 and j["error"]["code"] == "NotFound", "unknown route 404")
    st, hd, j = aad.req("GET", "/attest/SgxEnclave" + Q)
    check(st == 405 and hd.get("allow") == "POST", "wrong method 405 with Allow: %s %s" % (st, hd.get("allow")))
    st, _, _ = aad.req("POST", "/attest/sgxenclave" + Q, {"quote": b64u(SGX_QUOTE)})
    check(st == 200, "type matched case-insensitively")
    st, _, _ = attest(aad, "SgxEnclave", {"quote": b64u(SGX_QUOTE)}, {"Authorization": "Bearer garbage"})
    check(st == 200, "bearer token ignored on anonymous routes")

    # policies: admission
    st, _, j = aad.req("GET", "/policies/SgxEnclave" + Q)
    check(st == 401 and j["error"]["code"] == "Unauthorized", "GET policy without bearer -> 401")
    for tok, what in ((make_jwt(other_key), "foreign key"), (make_jwt(admin_key, aud="x"), "wrong audience"),
                      (make_jwt(admin_key, iss="https://evil"), "wrong issuer"), (make_jwt(admin_key, exp_in=-600), "expired")):
        st, _, j = aad.req("GET", "/policies/SgxEnclave" + Q, headers={"Authorization": "Bearer " + tok})
        check(st == 401, "admin JWT with %s -> %s" % (what, st))
    st, _, j = aad.req("GET", "/policies/SgxEnclave" + Q, headers=AUTH)
    check(st == 200 and verify_token(aad, j["token"]), "GET policy with bearer")
    if st == 200:
        pj = token_parts(j["token"])[1]["x-ms-policy"]
        inner = json.loads(b64u_dec(pj.split(".")[1]))
        check(b64u_dec(inner["AttestationPolicy"]).decode().startswith("version= 1.0;authorizationrules{c:[type==\"$is-debuggable\"]"), "default SGX policy served")
    # A8: PUT both client forms; GET returns the identical JWS
    js_jws = "eyJhbGciOiJub25lIn0.eyJBdHRlc3RhdGlvblBvbGljeSI6ImRtVnljMmx2YmoweExqQTdJR0YxZEdodmNtbDZZWFJwYjI1eWRXeGxjM3M5UGlCd1pYSnRhWFFvS1R0OU95QnBjM04xWVc1alpYSjFiR1Z6ZTMwNyJ9."
    py_jws = "eyJhbGciOiJub25lIn0.eyJBdHRlc3RhdGlvblBvbGljeSI6ICJkbVZ5YzJsdmJqMHhMakE3SUdGMWRHaHZjbWw2WVhScGIyNXlkV3hsYzNzOVBpQndaWEp0YVhRb0tUdDlPeUJwYzNOMVlXNWpaWEoxYkdWemUzMDcifQ."
    for jws, h in ((js_jws, "c6sEJQItV50OeP9IrP_bzywAMOVvj5uDPbklA_bwdYQ"), (py_jws, "pyhI2FKMjRkvpvwS07hLclAyvsi5O4TrnzL5OPsIxzM")):
        st, _, j = aad.req("PUT", "/policies/SgxEnclave" + Q, jws, dict(AUTH, **{"Content-Type": "text/plain"}))
        check(st == 200, "A8 PUT %s %s" % (st, j))
        if st == 200:
            p = token_parts(j["token"])[1]
            check(p["x-ms-policy-result"] == "Updated" and p["x-ms-policy-token-hash"] == h, "A8 token hash")
        st, _, j = aad.req("GET", "/policies/SgxEnclave" + Q, headers=AUTH)
        check(st == 200 and token_parts(j["token"])[1]["x-ms-policy"] == jws, "A8 GET returns the identical JWS")
    st, _, j = attest(aad, "SgxEnclave", {"quote": b64u(SGX_QUOTE)})
    check(st == 200 and token_parts(j["token"])[1]["x-ms-policy-hash"] == "z0FRjKS0ssQTNur1V6BV8WIrh9M3fzgTo0EfHRvapWU"
          and "tee" not in token_parts(j["token"])[1], "stored policy used for attestation")
    # signed (RSA, x5c) policy in AAD mode: accepted, signer reported
    signed = sign_jws(mgmt_key, mgmt_cert, {"AttestationPolicy": b64u(b"version=1.0; authorizationrules{=> permit();}; issuancerules{=> issue(type=\"sdk-test\", value=\"true\");};")})
    st, _, j = aad.req("PUT", "/policies/SgxEnclave" + Q, signed, dict(AUTH, **{"Content-Type": "text/plain"}))
    check(st == 200 and token_parts(j["token"])[1]["x-ms-policy-signer"]["x5c"][0] == der_b64(mgmt_cert), "signed policy PUT, signer echoed")
    st, _, j = attest(aad, "SgxEnclave", {"quote": b64u(SGX_QUOTE)})
    if st == 200:
        p = token_parts(j["token"])[1]
        check(p.get("sdk-test") == "true" and p["x-ms-policy"]["sdk-test"] == "true"
              and p["x-ms-policy-hash"] == "QqLSTk9zh3RVGm9QA4u9qoQY2Qu8i1IvuxkXq-Eplv4"
              and p["x-ms-policy-signer"]["x5c"][0] == der_b64(mgmt_cert), "custom issuance + signer in token")
    else:
        check(False, "attest with signed policy %s %s" % (st, j))
    tampered = signed[:-3] + ("A" if signed[-3] != "A" else "B") + signed[-2:]
    st, _, j = aad.req("PUT", "/policies/SgxEnclave" + Q, tampered, AUTH)
    check(st == 400 and j["error"]["code"] == "InvalidOperation", "tampered signature -> InvalidOperation")
    # A10: policy that does not parse
    st, _, j = aad.req("PUT", "/policies/SgxEnclave" + Q, policy_jws_unsigned("version=1.0; authorizationrules{ => permit() };"), AUTH)
    check(st == 400 and j["error"]["code"] == "PolicyParsingError", "A10 %s %s" % (st, j))
    # raw text accepted in AAD mode
    st, _, j = aad.req("PUT", "/policies/SevSnpVm" + Q, PERMIT, AUTH)
    check(st == 200, "raw policy text in AAD mode %s %s" % (st, j))
    # A11: deny
    st, _, j = aad.req("PUT", "/policies/SgxEnclave" + Q, policy_jws_unsigned("version=1.0; authorizationrules{=> deny();}; issuancerules{};"), AUTH)
    check(st == 200, "deny policy stored")
    st, _, j = attest(aad, "SgxEnclave", {"quote": b64u(SGX_QUOTE)})
    check(st == 400 and j["error"]["code"] == "PolicyEvaluationError", "A11 %s %s" % (st, j))
    # A9: reset
    st, _, j = aad.req("POST", "/policies/SgxEnclave:reset" + Q, "eyJhbGciOiJub25lIn0..", AUTH)
    check(st == 200 and token_parts(j["token"])[1]["x-ms-policy-result"] == "Removed", "A9 reset")
    st, _, j = attest(aad, "SgxEnclave", {"quote": b64u(SGX_QUOTE)})
    check(st == 200 and token_parts(j["token"])[1]["x-ms-policy-hash"] == "egjnANIzEpS2WgpE4Nk-QEwM69XRCgTs42_G0qLlbnk", "A9 default again")
    st, _, j = aad.req("POST", "/policies/SgxEnclave:reset" + Q, policy_jws_unsigned(PERMIT), AUTH)
    check(st == 400 and j["error"]["code"] == "InvalidOperation", "reset with a payload refused")
    # certificates are an Isolated feature
    st, _, j = aad.req("GET", "/certificates" + Q, headers=AUTH)
    check(st == 200 and token_parts(j["token"])[1]["x-ms-policy-certificates"] == {"keys": []}, "AAD certificates empty")
    st, _, j = aad.req("POST", "/certificates:add" + Q, json.dumps(sign_jws(mgmt_key, mgmt_cert, {"policyCertificate": {"kty": "RSA", "x5c": [der_b64(mgmt2_cert)]}})), AUTH)
    check(st == 400 and j["error"]["code"] == "InvalidOperation", "AAD certificates:add refused")

    # A16-A18: SEV-SNP
    w = snp_wrapper(vec("snp/go-sev-guest_report.bin"), vec("snp/go-sev-guest_vcek.der"), "roots/ask_ark_milan.pem")
    st, _, j = attest(aad, "SevSnpVm", {"report": w})
    check(st == 200, "A16 %s %s" % (st, j))
    if st == 200:
        p = token_parts(j["token"])[1]
        check(p["x-ms-attestation-type"] == "sevsnpvm" and p["x-ms-sevsnpvm-launchmeasurement"].startswith("b07af962")
              and p["x-ms-sevsnpvm-is-debuggable"] is True and p["x-ms-sevsnpvm-smt-allowed"] is True
              and p["x-ms-sevsnpvm-migration-allowed"] is False and p["x-ms-sevsnpvm-bootloader-svn"] == 2
              and p["x-ms-sevsnpvm-tee-svn"] == 0 and p["x-ms-sevsnpvm-snpfw-svn"] == 5 and p["x-ms-sevsnpvm-microcode-svn"] == 68
              and p["x-ms-sevsnpvm-reportdata"] == "0102030405" + "0" * 118, "A16 claims")
    w2 = snp_wrapper(vec("snp/virtee_report_milan.bin"), vec("snp/virtee_vcek_milan.der"), "roots/ask_ark_milan.pem")
    st, _, j = attest(aad, "SevSnpVm", {"report": w2})
    check(st == 200, "A17 %s %s" % (st, j))
    if st == 200:
        p = token_parts(j["token"])[1]
        check(p["x-ms-sevsnpvm-is-debuggable"] is False and p["x-ms-sevsnpvm-bootloader-svn"] == 3
              and p["x-ms-sevsnpvm-snpfw-svn"] == 8 and p["x-ms-sevsnpvm-microcode-svn"] == 115, "A17 claims")
    # Endorsements are not verified: a policy may read them (incoming claim), the token does not
    # carry them unless the policy issues them itself
    endorse = '{"Uvm":["AAAA"]}'
    w3 = snp_wrapper(vec("snp/virtee_report_milan.bin"), vec("snp/virtee_vcek_milan.der"), "roots/ask_ark_milan.pem", endorse)
    st, _, j = attest(aad, "SevSnpVm", {"report": w3})
    check(st == 200 and "x-ms-sevsnpvm-endorsements" not in token_parts(j["token"])[1],
          "unverified Endorsements are not a token claim %s" % st)
    st, _, j = aad.req("PUT", "/policies/SevSnpVm" + Q, 'version=1.0; authorizationrules{=> permit();}; '
                       'issuancerules{c:[type=="x-ms-sevsnpvm-endorsements"] => issue(type="uvm", value=c.value);};', AUTH)
    check(st == 200, "endorsements policy stored %s %s" % (st, j))
    st, _, j = attest(aad, "SevSnpVm", {"report": w3})
    p = token_parts(j["token"])[1] if st == 200 else {}
    check(p.get("uvm") == endorse and "x-ms-sevsnpvm-endorsements" not in p,
          "a policy reads the Endorsements as an incoming claim %s %s" % (st, p.get("uvm")))
    st, _, j = aad.req("PUT", "/policies/SevSnpVm" + Q, PERMIT, AUTH)
    check(st == 200, "permit policy again")
    rep = bytearray(vec("snp/go-sev-guest_report.bin"))
    rep[0x2A0] ^= 1
    st, _, j = attest(aad, "SevSnpVm", {"report": snp_wrapper(bytes(rep), vec("snp/go-sev-guest_vcek.der"), "roots/ask_ark_milan.pem")})
    check(st == 400 and j["error"]["code"] == "InvalidParameter", "A18 %s %s" % (st, j))
    st, _, j = attest(aad, "SevSnpVm", {"report": snp_wrapper(vec("snp/go-sev-guest_report.bin"), vec("snp/virtee_vcek_milan.der"), "roots/ask_ark_milan.pem")})
    check(st == 400, "SNP report with the wrong VCEK refused")
    # A20: TDX v5 without collateral
    st, _, j = attest(aad, "TdxVm", {"quote": b64u(vec("tdx/go-tdx-guest_quote_v5.bin"))})
    check(st == 200, "A20 %s %s" % (st, j))
    if st == 200:
        p = token_parts(j["token"])[1]
        check(p["tdx_mrtd"].startswith("7348651a") and p["tdx_mrtd"].endswith("f876") and p["tdx_tee_tcb_svn"].startswith("0b010400")
              and p["x-ms-attestation-type"] == "tdxvm" and "attester_tcb_status" not in p, "A20 claims")
    # virtual quotes of development nodes
    node_key = b"not really a key"
    rd = hashlib.sha256(node_key).hexdigest()
    vq = json.dumps({"measurement": "cledger virtual v1", "report_data": rd}, separators=(",", ":"), sort_keys=True).encode()
    st, _, j = attest(aad, "Virtual", {"quote": b64u(vq), "runtimeData": {"data": b64u(node_key)}})
    check(st == 200 and token_parts(j["token"])[1]["x-ms-attestation-type"] == "virtual"
          and token_parts(j["token"])[1]["x-cledger-virtual-hardware-backed"] is False, "virtual quote %s %s" % (st, j))
    st, _, j = attest(aad, "Virtual", {"quote": b64u(vq), "runtimeData": {"data": b64u(b"other")}})
    check(st == 400, "virtual quote binding mismatch")
    # A21: TPM step 1 (needs a bearer, as MAA)
    tpm_body = {"data": b64u(json.dumps({"payload": {"type": "aikcert"}}).encode())}
    st, _, j = aad.req("POST", "/attest/Tpm" + Q, tpm_body)
    check(st == 401, "TPM without bearer -> 401")
    st, _, j = aad.req("POST", "/attest/Tpm" + Q, tpm_body, AUTH)
    check(st == 200, "A21 %s %s" % (st, j))
    if st == 200:
        pl = json.loads(b64u_dec(j["data"]))["payload"]
        check(pl.get("challenge") and pl.get("service_context"), "A21 challenge + service_context")

    # over 1,000 hostile requests: exact 4xx each, the service keeps serving
    r = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "tests", "cli", "attestd_hostile.py"), str(aad.port),
                        os.path.join(aad.dir, "tls_cert.pem"), BEARER, VEC],
                       capture_output=True, text=True, timeout=600)
    check(r.returncode == 0, "hostile requests:\n" + r.stdout[-300:] + r.stderr[-2500:])
    if r.returncode == 0:
        print(r.stdout.strip())
    # durability: restart keeps the stored policies; history records every change
    st, _, j = aad.req("PUT", "/policies/TdxVm" + Q, policy_jws_unsigned("version=1.0; authorizationrules{=> permit();}; issuancerules{=> issue(type=\"kept\", value=true);};"), AUTH)
    check(st == 200, "PUT TdxVm policy")
    check(aad.stop() == 0, "SIGTERM exits 0")
    aad.start()
    st, _, j = attest(aad, "TdxVm", {"quote": b64u(vec("tdx/go-tdx-guest_quote_v5.bin"))})
    check(st == 200 and token_parts(j["token"])[1].get("kept") is True, "policy survives a restart")
    hist = [json.loads(l) for l in open(os.path.join(aad.dir, "history.jsonl"))]
    check(len(hist) == 9 and all(h["who"] == "jwt:test-admin" for h in hist) and [h["seq"] for h in hist] == list(range(1, len(hist) + 1)),
          "history records every change with who (%d records)" % len(hist))
    # one instance per data directory: a second is refused while the first runs and serves on
    r = subprocess.run([os.path.join(BIN, "cledger-attestd"), "--data-dir", aad.dir, "--listen", "127.0.0.1:0"],
                       capture_output=True, timeout=30)
    check(r.returncode == 1 and b"in use by another cledger-attestd process" in r.stderr,
          "second instance on the same data directory: exit %d %r" % (r.returncode, r.stderr[-200:]))
    st, _, _ = aad.req("GET", "/certs")
    check(st == 200, "first instance serves after the second was refused")
    # backup / restore
    out = os.path.join(WORK, "backup.json")
    aad.stop()
    r = subprocess.run([os.path.join(BIN, "cledger-attestd"), "export", "--data-dir", aad.dir, "--out", out], capture_output=True)
    check(r.returncode == 0 and json.load(open(out))["policies"].get("TdxVm"), "export")
    fresh = Instance("restored", "--admin-jwks", JWKS, "--admin-issuer", ISS, "--admin-audience", AUD)
    fresh.start()
    fresh.stop()
    r = subprocess.run([os.path.join(BIN, "cledger-attestd"), "import", "--data-dir", fresh.dir, out], capture_output=True)
    check(r.returncode == 0, "import %s" % r.stderr)
    r = subprocess.run([os.path.join(BIN, "cledger-attestd"), "import", "--data-dir", fresh.dir, "/etc/hostname"], capture_output=True)
    check(r.returncode != 0 and r.stderr, "import of garbage refused")
    fresh.start()
    st, _, j = fresh.req("GET", "/policies/TdxVm" + Q, headers=AUTH)
    check(st == 200 and "a2VwdA" in b64u(json.dumps(token_parts(j["token"])[1]).encode()) or
          (st == 200 and b"kept" in b64u_dec(json.loads(b64u_dec(token_parts(j["token"])[1]["x-ms-policy"].split(".")[1]))["AttestationPolicy"])),
          "restored policy served")
    fresh.stop()
    # --admin-jwks by URL (fetched once at start with libcurl; plain http only on loopback)
    import http.server
    import threading
    jw = json.dumps({"keys": [jwk_of(admin_key, "admin-1")]}).encode()

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(jw)))
            self.end_headers()
            self.wfile.write(jw)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url_inst = Instance("jwksurl", "--admin-jwks", "http://127.0.0.1:%d/keys" % srv.server_port,
                        "--admin-issuer", ISS, "--admin-audience", AUD)
    url_inst.start()
    st, _, j = url_inst.req("GET", "/policies/SgxEnclave" + Q, headers=AUTH)
    check(st == 200, "admin JWT validated against a JWKS fetched by URL (%s)" % st)
    url_inst.stop()
    srv.shutdown()
    r = subprocess.run([os.path.join(BIN, "cledger-attestd"), "--data-dir", os.path.join(WORK, "jwksbad"), "--listen",
                        "127.0.0.1:0", "--admin-jwks", "http://example.org/keys", "--admin-issuer", ISS,
                        "--admin-audience", AUD], capture_output=True, timeout=30)
    check(r.returncode == 1 and b"use https" in r.stderr, "plain-http JWKS off loopback refused")
    # SIGTERM while attestations are in flight: they finish (200), late ones get 503 or a closed
    # connection, never a 5xx crash; exit status 0
    import threading
    load = Instance("sigterm")
    load.start()
    statuses, stop_flag = [], [False]

    def hammer():
        while not stop_flag[0]:
            try:
                st, _, _ = attest(load, "SgxEnclave", {"quote": b64u(SGX_QUOTE)})
                statuses.append(st)
            except (OSError, http.client.HTTPException):
                statuses.append("closed")
                return

    ths = [threading.Thread(target=hammer) for _ in range(4)]
    for t in ths:
        t.start()
    time.sleep(1.0)
    rc = load.stop()
    stop_flag[0] = True
    for t in ths:
        t.join(timeout=30)
    check(rc == 0 and statuses.count(200) > 0 and all(x in (200, 503, "closed") for x in statuses),
          "SIGTERM under load: exit %s, answers %s" % (rc, sorted(set(map(str, statuses)))))
    # mode fixed at creation
    r = subprocess.run([os.path.join(BIN, "cledger-attestd"), "--data-dir", aad.dir, "--listen", "127.0.0.1:0", "--mode", "isolated"],
                       capture_output=True, timeout=30)
    check(r.returncode == 2 and b"fixed at creation" in r.stderr, "mode change refused")
    # management certificates are an Isolated feature: refused at an AAD instance's creation
    r = subprocess.run([os.path.join(BIN, "cledger-attestd"), "--data-dir", os.path.join(WORK, "aadsigner"),
                        "--listen", "127.0.0.1:0", "--policy-signer-cert", MGMT_PEM],
                       capture_output=True, timeout=30)
    check(r.returncode == 2 and b"for Isolated instances" in r.stderr,
          "--policy-signer-cert refused for an AAD instance: %s %r" % (r.returncode, r.stderr[-200:]))

    # ---- Isolated instance, verification time pinned for the Intel collateral ----------------
    coll = os.path.join(WORK, "collateral")
    os.makedirs(coll, exist_ok=True)
    for n in ("sgx/phala_sgx_quote_collateral.json", "tdx/phala_tdx_quote_collateral.json"):
        with open(os.path.join(coll, os.path.basename(n)), "wb") as f:
            f.write(vec(n))
    iso = Instance("iso", "--mode", "isolated", "--policy-signer-cert", MGMT_PEM, "--admin-jwks", JWKS,
                   "--admin-issuer", ISS, "--admin-audience", AUD, "--collateral-dir", coll,
                   "--verification-time", "1750377600")
    iso.start()
    st, _, j = iso.req("PUT", "/policies/SgxEnclave" + Q, policy_jws_unsigned(PERMIT), AUTH)
    check(st == 400 and j["error"]["code"] == "InvalidOperation", "A12 unsigned PUT refused in Isolated mode")
    st, _, j = iso.req("PUT", "/policies/SgxEnclave" + Q, sign_jws(mgmt2_key, mgmt2_cert, {"AttestationPolicy": b64u(PERMIT.encode())}), AUTH)
    check(st == 400 and j["error"]["code"] == "InvalidOperation", "A12 foreign signer refused")
    # the management key as a bare jwk: the tokens could not name the signer (x5c), refused
    st, _, j = iso.req("PUT", "/policies/SgxEnclave" + Q, sign_jws(mgmt_key, None, {"AttestationPolicy": b64u(PERMIT.encode())}, bare_jwk=True), AUTH)
    check(st == 400 and j["error"]["code"] == "InvalidOperation" and "x5c" in j["error"]["message"],
          "bare-jwk signer refused in Isolated mode %s %s" % (st, j))
    st, _, j = iso.req("PUT", "/policies/SgxEnclave" + Q, sign_jws(mgmt_key, mgmt_cert, {"AttestationPolicy": b64u(PERMIT.encode())}, python_style=True), AUTH)
    check(st == 200 and token_parts(j["token"])[1]["x-ms-policy-signer"]["x5c"][0] == der_b64(mgmt_cert), "A12 signed PUT (Python form)")
    # A13: certificates
    add = sign_jws(mgmt_key, mgmt_cert, {"policyCertificate": {"kty": "RSA", "x5c": [der_b64(mgmt2_cert)]}})
    st, _, j = iso.req("POST", "/certificates:add" + Q, json.dumps(add), dict(AUTH, **{"Content-Type": "application/json"}))
    thumb = mgmt2_cert.fingerprint(hashes.SHA1()).hex().upper()
    check(st == 200 and token_parts(j["token"])[1] == {**token_parts(j["token"])[1], "x-ms-certificate-thumbprint": thumb,
                                                         "x-ms-policycertificates-result": "IsPresent"}, "A13 add %s %s" % (st, j))
    st, _, j = iso.req("GET", "/certificates" + Q, headers=AUTH)
    keys = token_parts(j["token"])[1]["x-ms-policy-certificates"]["keys"] if st == 200 else []
    check(len(keys) == 2 and {k["kty"] for k in keys} == {"RSA", "EC"}, "A13 GET lists both")
    st, _, j = iso.req("PUT", "/policies/SgxEnclave" + Q, sign_jws(mgmt2_key, mgmt2_cert, {"AttestationPolicy": b64u(PERMIT.encode())}), AUTH)
    check(st == 200, "new management certificate (EC, ES256) signs policies")
    rem = sign_jws(mgmt2_key, mgmt2_cert, {"policyCertificate": {"kty": "RSA", "x5c": [der_b64(mgmt_cert)]}})
    st, _, j = iso.req("POST", "/certificates:remove" + Q, json.dumps(rem), AUTH)
    check(st == 200 and token_parts(j["token"])[1]["x-ms-policycertificates-result"] == "IsAbsent", "A13 remove")
    rem_last = sign_jws(mgmt2_key, mgmt2_cert, {"policyCertificate": {"kty": "EC", "x5c": [der_b64(mgmt2_cert)]}})
    st, _, j = iso.req("POST", "/certificates:remove" + Q, json.dumps(rem_last), AUTH)
    check(st == 400 and j["error"]["code"] == "InvalidOperation", "A13 removing the last certificate refused")
    st, _, j = iso.req("POST", "/certificates:add" + Q, json.dumps(add), AUTH)
    check(st == 400, "removed signer can no longer add")
    # A19: TDX with collateral at the pinned time
    st, _, j = attest(iso, "TdxVm", {"quote": b64u(vec("tdx/phala_tdx_quote_v4.bin"))})
    check(st == 200, "A19 %s %s" % (st, j))
    if st == 200:
        p = token_parts(j["token"])[1]
        check(p.get("attester_tcb_status") == "UpToDate" and p["x-cledger-tcb-evaluated"] is True
              and p["tdx_mrtd"].startswith("91eb2b44")
              and p["tdx_td_attributes_septve_disable"] is True and p["dbgstat"] == "disabled", "A19 claims")
    st, _, j = attest(iso, "SgxEnclave", {"quote": b64u(vec("sgx/phala_sgx_quote_v3.bin"))})
    check(st == 200 and token_parts(j["token"])[1].get("x-ms-sgx-tcb-status") == "ConfigurationAndSWHardeningNeeded", "Phala SGX TCB status %s %s" % (st, j))
    check(iso.stop() == 0, "isolated SIGTERM")
    admin_certificate()
    sdk_flows()


def pem_files(name, key, cert):
    kp, cp = os.path.join(WORK, name + "_key.pem"), os.path.join(WORK, name + "_cert.pem")
    with open(kp, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cp, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return kp, cp


def admin_certificate():
    """--admin-cert: a TLS client certificate is an administrator; any other is not."""
    ak = ec.generate_private_key(ec.SECP256R1())
    akp, acp = pem_files("admin_tls", ak, self_signed(ak, "attestd admin"))
    ok_, ocp = pem_files("other_tls", mgmt2_key, mgmt2_cert)
    inst = Instance("certadmin", "--admin-cert", acp)
    inst.start()
    st, _, j = inst.req("GET", "/policies/SgxEnclave" + Q, client_cert=(acp, akp))
    check(st == 200 and verify_token(inst, j["token"]), "admin client certificate reads policies (%s)" % st)
    st, _, j = inst.req("PUT", "/policies/SgxEnclave" + Q, PERMIT, client_cert=(acp, akp))
    check(st == 200, "admin client certificate sets a policy (%s %s)" % (st, j))
    st, _, j = inst.req("GET", "/policies/SgxEnclave" + Q, client_cert=(ocp, ok_))
    check(st == 401, "another client certificate is not an administrator (%s)" % st)
    st, _, j = inst.req("GET", "/policies/SgxEnclave" + Q, headers=AUTH)
    check(st == 401, "no JWKS configured: bearer tokens are not accepted (%s)" % st)
    hist = [json.loads(l) for l in open(os.path.join(inst.dir, "history.jsonl"))]
    check(len(hist) == 1 and hist[0]["who"].startswith("cert:"), "history names the certificate administrator")
    check(inst.stop() == 0, "certadmin stop")
    # the administrator's certificate expired (its fingerprint still configured): 401, saying why
    xk = ec.generate_private_key(ec.SECP256R1())
    xkp, xcp = pem_files("expired_tls", xk, self_signed(xk, "expired admin", -10, -5))
    inst = Instance("certadmin-expired", "--admin-cert", xcp)
    inst.start()
    st, _, j = inst.req("GET", "/policies/SgxEnclave" + Q, client_cert=(xcp, xkp))
    check(st == 401 and "validity period" in json.dumps(j),
          "an expired administrator certificate is refused (%s %s)" % (st, j))
    check(inst.stop() == 0, "certadmin-expired stop")
    # one whose notAfter cannot be read (month 13): refused with its own reason, not as "outside
    # its validity period"
    bkp_dir = os.path.join(WORK, "baddates")
    os.makedirs(bkp_dir, exist_ok=True)
    bcp, bkp = bad_dates_cert(bkp_dir)
    inst = Instance("certadmin-baddates", "--admin-cert", bcp)
    inst.start()
    for method, path, body in (("GET", "/policies/SgxEnclave", None), ("PUT", "/policies/SgxEnclave", "x"),
                               ("POST", "/policies/Tpm:reset", "x")):
        st, _, j = inst.req(method, path + Q, body, {"Content-Type": "text/plain"} if body else None,
                            client_cert=(bcp, bkp))
        msg = json.dumps(j)
        check(st == 401 and "Unauthorized" in msg and "cannot be read" in msg and "outside" not in msg,
              "%s %s, admin certificate with unreadable dates: %s %s" % (method, path, st, msg[:200]))
    check(inst.stop() == 0, "certadmin-baddates stop")


def sdk_flows():
    """The official Python (Debian python3-azure) and JS (@azure/attestation 1.0.0) clients."""
    sk, sc = pem_files("sdk_signer", mgmt_key, mgmt_cert)
    py_new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pnk, pnc = pem_files("py_new", py_new_key, self_signed(py_new_key, "python new signer"))
    jnk, jnc = pem_files("js_new", mgmt2_key, mgmt2_cert)  # EC P-256: the JS client signs ES256
    a = Instance("sdk-aad", "--admin-jwks", JWKS, "--admin-issuer", ISS, "--admin-audience", AUD)
    i = Instance("sdk-iso", "--mode", "isolated", "--policy-signer-cert", sc, "--admin-jwks", JWKS,
                 "--admin-issuer", ISS, "--admin-audience", AUD)
    a.start()
    i.start()
    bundle = os.path.join(WORK, "ca-bundle.pem")
    with open(bundle, "wb") as f:
        for inst in (a, i):
            f.write(open(os.path.join(inst.dir, "tls_cert.pem"), "rb").read())
    env = dict(os.environ, AAD_URL=a.base, ISO_URL=i.base, BEARER=BEARER, SIGNER_KEY=sk, SIGNER_CERT=sc,
               VECTORS=VEC, REQUESTS_CA_BUNDLE=bundle, NODE_EXTRA_CA_CERTS=bundle)
    r = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "tests", "sdk", "attest_py_flow.py")],
                       env=dict(env, NEW_KEY=pnk, NEW_CERT=pnc), capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "Python attestation SDK flow:\n" + r.stdout[-400:] + r.stderr[-1500:])
    if r.returncode == 0:
        print(r.stdout.strip())
    ens = subprocess.run(["bash", os.path.join(SRC, "tests", "sdk", "ensure-node-modules.sh")], timeout=600)
    check(ens.returncode == 0, "npm ci of the pinned JS SDKs")
    if ens.returncode == 0:
        r = subprocess.run(["node", os.path.join(SRC, "tests", "sdk", "attest_js_flow.js")],
                           env=dict(env, NEW_KEY=jnk, NEW_CERT=jnc), capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, "JS attestation SDK flow:\n" + r.stdout[-400:] + r.stderr[-1500:])
        if r.returncode == 0:
            print(r.stdout.strip())
    check(a.stop() == 0 and i.stop() == 0, "SDK instances stop cleanly")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a crash of the harness is a failure, with context
        import traceback
        traceback.print_exc()
        T.finish(then=e)  # exit 1
    T.finish()
