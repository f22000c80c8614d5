#!/usr/bin/python3
"""cledger-attestd's TPM protocol against a software TPM (driven by test_attestd_tpm.sh, which
has manufactured the TPM, created ek.ctx/ek.pub, ak.ctx/ak.pub/ak.name, read the RSA EK
certificate into ek_rsa.der and extended PCR 16; TPM2TOOLS_TCTI points at it).

usage: attestd_tpm.py BIN_DIR WORK_DIR
"""
import base64
import http.client
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import datetime

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tally import Tally  # noqa: E402

BIN, T = sys.argv[1], sys.argv[2]
TALLY = Tally("attestd TPM e2e")
check = TALLY.check


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def unb64u(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def rd(name):
    with open(os.path.join(T, name), "rb") as f:
        return f.read()


def tpm(*args):
    subprocess.run(["timeout", "10", "tpm2_flushcontext", "-t"], capture_output=True)
    subprocess.run(["timeout", "10", "tpm2_flushcontext", "-s"], capture_output=True)
    r = subprocess.run(["timeout", "30"] + list(args), cwd=T, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(args), r.stderr.decode()[-500:]))
    return r.stdout.decode()


# an administrator by client certificate (sets the Tpm policy)
ak_admin = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tpm test admin")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ak_admin.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2)).sign(ak_admin, hashes.SHA256()))
ADMIN_KEY, ADMIN_CERT = os.path.join(T, "admin.key"), os.path.join(T, "admin.pem")
open(ADMIN_KEY, "wb").write(ak_admin.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
open(ADMIN_CERT, "wb").write(cert.public_bytes(serialization.Encoding.PEM))
CFG = os.path.join(T, "attestd.json")
json.dump({"tpmRequiresBearer": False}, open(CFG, "w"))

s = socket.socket()
s.bind(("127.0.0.1", 0))
PORT = s.getsockname()[1]
s.close()
D = os.path.join(T, "attestd")
log = open(os.path.join(T, "attestd.log"), "ab")
proc = subprocess.Popen([os.path.join(BIN, "cledger-attestd"), "--data-dir", D, "--listen", "127.0.0.1:%d" % PORT,
                         "--admin-cert", ADMIN_CERT, "--tpm-roots", os.path.join(T, "ca.pem"), "--config", CFG,
                         "--log-level", "info"], stdout=log, stderr=log)


def req(method, path, body=None, admin=False):
    ctx = ssl.create_default_context(cafile=os.path.join(D, "tls_cert.pem"))
    if admin:
        ctx.load_cert_chain(ADMIN_CERT, ADMIN_KEY)
    c = http.client.HTTPSConnection("127.0.0.1", PORT, context=ctx, timeout=30)
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
    c.request(method, path, body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data else None


for _ in range(300):
    if os.path.exists(os.path.join(D, "tls_cert.pem")):
        try:
            if req("GET", "/certs")[0] == 200:
                break
        except OSError:
            pass
    time.sleep(0.1)

Q = "?api-version=2020-10-01"


def tpm_call(payload):
    st, j = req("POST", "/attest/Tpm" + Q, {"data": b64u(json.dumps({"payload": payload}).encode())})
    if st == 200:
        return st, json.loads(unb64u(j["data"]))["payload"]
    return st, j


def set_policy(text):
    jws = "eyJhbGciOiJub25lIn0." + b64u(json.dumps({"AttestationPolicy": b64u(text.encode())}).encode()) + "."
    st, j = req("PUT", "/policies/Tpm" + Q, jws, admin=True)
    check(st == 200, "set Tpm policy: %s %s" % (st, j))


POLICY = ('version=1.1; configurationrules{ => issueproperty(type="required_pcr_mask", value=0x10003); }; '
          'authorizationrules{ c:[type=="aikValidated", value==true] => permit(); }; '
          'issuancerules{ c:[type=="aikValidated"] => issue(type="validated-ak", value=c.value); };')


def quote_over(nonce_hex, pcrs="sha256:0,1,16"):
    tpm("tpm2_quote", "-c", "ak.ctx", "-l", pcrs, "-q", nonce_hex, "-m", "q.msg", "-s", "q.sig", "-o", "q.pcrs", "-g", "sha256")
    # PCR values for the JSON form: read them back from the TPM
    vals = {}
    listing = tpm("tpm2_pcrread", pcrs)
    for m in re.finditer(r"^\s+(\d+)\s*:\s*0x([0-9A-Fa-f]+)", listing, re.M):
        vals[m.group(1)] = m.group(2).lower()
    return rd("q.msg"), rd("q.sig"), {"sha256": vals}


def activate(blob, encsec):
    # tpm2-tools credential file: magic, version, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET
    with open(os.path.join(T, "cred.bin"), "wb") as f:
        f.write(struct.pack(">II", 0xBADCC0DE, 1) + blob + encsec)
    subprocess.run(["timeout", "10", "tpm2_flushcontext", "-t"], capture_output=True)
    subprocess.run(["timeout", "10", "tpm2_flushcontext", "-s"], capture_output=True)
    r = subprocess.run("timeout 20 tpm2_startauthsession --policy-session -S session.ctx && "
                       "timeout 20 tpm2_policysecret -S session.ctx -c e && "
                       "timeout 20 tpm2_activatecredential -c ak.ctx -C ek.ctx -i cred.bin -o secret.out -P session:session.ctx; "
                       "rc=$?; timeout 10 tpm2_flushcontext session.ctx; exit $rc",
                       shell=True, cwd=T, capture_output=True)
    if r.returncode != 0:
        raise RuntimeError("activatecredential: " + r.stderr.decode()[-500:])
    return rd("secret.out")


def main():
    ek_pub, ak_pub, ek_cert = rd("ek.pub"), rd("ak.pub"), rd("ek_rsa.der")
    # no policy yet: step 1 works, step 3 fails with InvalidOperation
    st, p = tpm_call({"type": "aikcert"})
    check(st == 200 and p.get("challenge") and p.get("service_context") and "credential_blob" not in p, "plain step 1")
    set_policy(POLICY)
    st, p = tpm_call({"type": "aikcert", "tpm2": {"ek_pub": b64u(ek_pub), "ek_cert": b64u(ek_cert), "ak_pub": b64u(ak_pub)}})
    check(st == 200 and p.get("credential_blob") and p.get("encrypted_secret"), "step 1 with activation: %s %s" % (st, p))
    if st != 200:
        return
    secret = activate(unb64u(p["credential_blob"]), unb64u(p["encrypted_secret"]))
    check(len(secret) == 32, "the TPM recovered the credential secret")
    challenge = unb64u(p["challenge"])
    qm, qs, pcrs = quote_over(challenge.hex())

    def step3(att_data):
        jws = "eyJhbGciOiJub25lIn0." + b64u(json.dumps({"att_type": "tpm2-quote", "att_data": att_data}).encode()) + "."
        return tpm_call({"request": jws})

    good = {"challenge": p["challenge"], "service_context": p["service_context"], "activated_secret": b64u(secret),
            "rp_data": b64u(b"relying party nonce"),
            "tpm2": {"quote": b64u(qm), "signature": b64u(qs), "ak_pub": b64u(ak_pub), "pcrs": pcrs}}
    st, r = step3(good)
    check(st == 200 and "report" in r, "step 3: %s %s" % (st, r))
    if st == 200:
        h, pl, sig = r["report"].split(".")
        claims = json.loads(unb64u(pl))
        check(json.loads(unb64u(h))["alg"] == "RS256" and sig, "signed token")
        check(claims["x-ms-attestation-type"] == "tpm" and claims["aikValidated"] is True and claims["tpmVersion"] == 2
              and claims.get("validated-ak") is True and claims["rp_data"] == b64u(b"relying party nonce"), "TPM claims")
        pc = json.loads(claims["pcrs"])["PCRs"]
        check(sorted(e["Index"] for e in pc) == [0, 1, 16], "pcrs claim covers 0, 1, 16")
    # wrong secret
    bad = json.loads(json.dumps(good))
    bad["activated_secret"] = b64u(bytes(32))
    st, r = step3(bad)
    check(st == 400 and "activated_secret" in r["error"]["message"], "wrong activation secret refused: %s" % r)
    # forged service_context
    bad = json.loads(json.dumps(good))
    ctxb = bytearray(unb64u(good["service_context"]))
    ctxb[12] ^= 1
    bad["service_context"] = b64u(bytes(ctxb))
    st, r = step3(bad)
    check(st == 400 and "service_context" in r["error"]["message"], "forged service_context refused")
    # a wrong PCR value
    bad = json.loads(json.dumps(good))
    bad["tpm2"]["pcrs"]["sha256"]["16"] = "00" * 32
    st, r = step3(bad)
    check(st == 400 and r["error"]["code"] == "InvalidParameter", "wrong PCR 16 value refused")
    # a quote over another nonce (replay of an older quote with a new challenge)
    st, p2 = tpm_call({"type": "aikcert"})
    bad = json.loads(json.dumps(good))
    bad["challenge"], bad["service_context"] = p2["challenge"], p2["service_context"]
    del bad["activated_secret"]
    st, r = step3(bad)
    check(st == 400 and ("nonce" in r["error"]["message"].lower() or "extraData" in r["error"]["message"]),
          "stale quote refused: %s" % r)
    # the AK without activation is not validated: the policy's permit needs aikValidated
    qm2, qs2, pcrs2 = quote_over(unb64u(p2["challenge"]).hex())
    noact = {"challenge": p2["challenge"], "service_context": p2["service_context"],
             "tpm2": {"quote": b64u(qm2), "signature": b64u(qs2), "ak_pub": b64u(ak_pub), "pcrs": pcrs2}}
    st, r = step3(noact)
    check(st == 400 and r["error"]["code"] == "PolicyEvaluationError", "unvalidated AK denied by the policy: %s" % r)
    # PCR mask not covered: quote only PCRs 0,1
    st, p3 = tpm_call({"type": "aikcert", "tpm2": {"ek_pub": b64u(ek_pub), "ek_cert": b64u(ek_cert), "ak_pub": b64u(ak_pub)}})
    sec3 = activate(unb64u(p3["credential_blob"]), unb64u(p3["encrypted_secret"]))
    qm3, qs3, pcrs3 = quote_over(unb64u(p3["challenge"]).hex(), "sha256:0,1")
    st, r = step3({"challenge": p3["challenge"], "service_context": p3["service_context"], "activated_secret": b64u(sec3),
                   "tpm2": {"quote": b64u(qm3), "signature": b64u(qs3), "ak_pub": b64u(ak_pub), "pcrs": pcrs3}})
    check(st == 400 and "required_pcr_mask" in r["error"]["message"], "PCR 16 required by the policy: %s" % r)
    # an EK certificate of another CA
    other = os.path.join(os.environ.get("CLEDGER_SOURCE_DIR", "."), "tests/data/attestation-vectors/tpm/ek_rsa_cert.der")
    st, r = tpm_call({"type": "aikcert", "tpm2": {"ek_pub": b64u(ek_pub), "ek_cert": b64u(open(other, "rb").read()), "ak_pub": b64u(ak_pub)}})
    check(st == 400 and "ek_cert" in r["error"]["message"], "EK certificate of another CA refused: %s" % r)


try:
    main()
except Exception as e:
    import traceback
    traceback.print_exc()
    check(False, "harness: %s" % e)
finally:
    proc.terminate()
    proc.wait(timeout=30)
TALLY.finish()
