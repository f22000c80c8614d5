#!/usr/bin/python3
"""Over 1,000 malformed or hostile requests to a running cledger-attestd: each gets its exact 4xx
and error code, the service keeps serving, and valid evidence still attests afterwards.
Called by attestd_e2e.py with a started instance (base URL, CA file, admin bearer, vectors dir).

usage: attestd_hostile.py PORT CAFILE BEARER VECTORS   (prints "N passed, M failed")
"""
import base64
import http.client
import json
import os
import re
import socket
import ssl
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import httpraw  # noqa: E402
from netutil import free_port  # noqa: E402
from tally import Tally  # noqa: E402

PORT, CAFILE, BEARER, VEC = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
CTX = ssl.create_default_context(cafile=CAFILE)
T = Tally("attestd hostile", show=30)
check = T.check


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


conn = None


def request(method, path, body=None, headers=None):
    """One request on a keep-alive connection (reopened when the server closed it)."""
    global conn
    for attempt in range(2):
        if conn is None:
            conn = http.client.HTTPSConnection("127.0.0.1", PORT, context=CTX, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            if r.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
            try:
                j = json.loads(data) if data else None
            except ValueError:
                j = None
            return r.status, j
        except (http.client.HTTPException, OSError):
            conn.close()
            conn = None
            if attempt:
                raise
    return None, None


def expect(status, code, what, resp):
    st, j = resp
    ok = st == status and (code is None or (isinstance(j, dict) and j.get("error", {}).get("code") == code))
    check(ok, "%s: wanted %s %s, got %s %s" % (what, status, code, st, str(j)[:200]))


def alive(what):
    st, j = request("GET", "/certs")
    check(st == 200 and j and j.get("keys"), "service alive after " + what)


def raw(data):
    """Bytes on a fresh TLS connection; the status code (or 0 when closed without a response)."""
    s = CTX.wrap_socket(socket.create_connection(("127.0.0.1", PORT), timeout=15), server_hostname="127.0.0.1")
    try:
        s.sendall(data)
        return httpraw.read_response(s, timeout=15).status
    except (OSError, httpraw.HTTPRawError):
        return 0
    finally:
        s.close()


def exchange(*reqs):
    """Sends the requests, (method, target[, headers]), at once on a fresh TLS connection (the last
    with Connection: close) and reads until the server closes it: ([(status, headers, body)], the
    bytes left over). A HEAD reply has no body (RFC 9110 §9.3.2): a body sent anyway does not
    read as the next reply, whose status is then 0, like every reply after one that could not be
    read."""
    out = b""
    for k, (method, target, *h) in enumerate(reqs):
        hdrs = dict({"Host": "x"}, **(h[0] if h else {}))
        if k == len(reqs) - 1:
            hdrs["Connection"] = "close"
        out += ("%s %s HTTP/1.1\r\n" % (method, target)).encode()
        out += "".join("%s: %s\r\n" % kv for kv in hdrs.items()).encode() + b"\r\n"
    s = CTX.wrap_socket(socket.create_connection(("127.0.0.1", PORT), timeout=15), server_hostname="127.0.0.1")
    reader = httpraw.Reader(s)
    res, rest = [], b""
    try:
        s.sendall(out)
        for method, *_ in reqs:
            r = reader.read_response(method, timeout=15)
            res.append((r.status, dict(r.headers), r.body))
        rest = reader.read_until_close()
    except (OSError, httpraw.HTTPRawError):
        rest = reader.pending
    finally:
        s.close()
    res += [(0, {}, b"")] * (len(reqs) - len(res))
    return res, rest


def same_headers(a, b):
    """The same header fields and values but for those that differ per reply."""
    skip = ("date", "x-ms-request-id", "connection")
    return {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}


def rd(p):
    with open(VEC + "/" + p, "rb") as f:
        return f.read()


J = {"Content-Type": "application/json"}
Q = "?api-version=2020-10-01"
quote = rd("sgx/azure-sdk_sgx_quote_v3.bin")
runtime = rd("sgx/azure-sdk_runtime_data.bin")
good = json.dumps({"quote": b64u(quote), "runtimeData": {"data": b64u(runtime), "dataType": "Binary"}})

# 1. every signed byte of the quote's header and report body (0..431), each flipped: the ISV
#    signature fails (an invalid header value may be refused by the parser first).
for off in range(0, 432):
    q = bytearray(quote)
    q[off] ^= 0x01
    expect(400, "InvalidParameter", "SGX quote byte %d flipped" % off,
           request("POST", "/attest/SgxEnclave" + Q, json.dumps({"quote": b64u(bytes(q))}), J))
alive("SGX mutations")

# 2. SEV-SNP: every 4th byte of the signed region 0x000..0x29F
from cryptography import x509
from cryptography.hazmat.primitives import serialization
report = rd("snp/go-sev-guest_report.bin")
chain = x509.load_der_x509_certificate(rd("snp/go-sev-guest_vcek.der")).public_bytes(serialization.Encoding.PEM) + rd("roots/ask_ark_milan.pem")
for off in range(0, 0x2A0, 4):
    r = bytearray(report)
    r[off] ^= 0x80
    w = b64u(json.dumps({"SnpReport": b64u(bytes(r)), "VcekCertChain": b64u(chain)}).encode())
    expect(400, "InvalidParameter", "SNP report byte %#x flipped" % off,
           request("POST", "/attest/SevSnpVm" + Q, json.dumps({"report": w}), J))
alive("SNP mutations")

# 3. the valid body cut at 150 lengths: malformed JSON
for n in range(1, len(good), max(1, len(good) // 150)):
    expect(400, "InvalidParameter", "body cut at %d" % n, request("POST", "/attest/SgxEnclave" + Q, good[:n], J))
alive("truncated bodies")

# 4. wrong shapes and encodings
shapes = [
    ("[]", "array body"), ("null", "null body"), ("42", "number body"), ('"quote"', "string body"),
    ("{}", "no quote"), ('{"quote": 5}', "quote a number"), ('{"quote": ""}', "empty quote"),
    ('{"quote": "@@@@"}', "quote not base64"), ('{"quote": "AAAA AAAA"}', "whitespace in base64"),
    ('{"quote": "' + b64u(b"\x03\x00") + '"}', "two-byte quote"),
    ('{"quote": "' + b64u(quote) + '", "runtimeData": "abc"}', "runtimeData a string"),
    ('{"quote": "' + b64u(quote) + '", "runtimeData": {"data": 5}}', "runtimeData.data a number"),
    ('{"quote": "' + b64u(quote) + '", "runtimeData": {"data": "!!", "dataType": "Binary"}}', "runtimeData not base64"),
    ('{"quote": "' + b64u(quote) + '", "runtimeData": {"data": "aa", "dataType": 1}}', "dataType a number"),
    ('{"quote": "' + b64u(quote) + '", "runtimeData": {"data": "aa", "dataType": "Text"}}', "unknown dataType"),
    ('{"quote": "' + b64u(quote) + '", "runtimeData": {"data": "' + b64u(b"not json") + '", "dataType": "JSON"}}', "JSON runtime not JSON"),
    ('{"quote": "' + b64u(quote) + '", "nonce": {"a": 1}}', "nonce an object"),
    ('{"quote": "' + b64u(quote) + '", "draftPolicyForAttestation": 7}', "draft a number"),
    ('{"quote": "' + b64u(quote) + '", "quote": "' + b64u(quote) + '"}', "duplicate member"),
    ('{"quote": "' + b64u(quote) + '", "initTimeData": {"data": "' + b64u(b"x") + '", "dataType": "Binary"}}', "initTimeData without KSS"),
    ("{" * 5000 + "}" * 5000, "deep nesting"),
]
for body, what in shapes:
    for typ in ("SgxEnclave", "OpenEnclave", "TdxVm", "SevSnpVm", "Virtual"):
        b = body.replace('"quote"', '"report"') if typ in ("OpenEnclave", "SevSnpVm") else body
        expect(400, "InvalidParameter", "%s: %s" % (typ, what), request("POST", "/attest/%s%s" % (typ, Q), b, J))
for n in range(0, 60):
    expect(400, "PolicyParsingError", "draft policy garbage %d" % n,
           request("POST", "/attest/SgxEnclave" + Q, json.dumps({"quote": b64u(quote), "draftPolicyForAttestation": "version=1.0; authorizationrules{" + "(" * n}), J))
alive("wrong shapes")

# 5. administrative routes: bad JWS bodies (with a valid bearer) and missing credentials
A = {"Authorization": "Bearer " + BEARER, "Content-Type": "text/plain"}
jws_bad = ["a.b", "a.b.c.d", "...", "!!.!!.", "eyJhbGciOiJub25lIn0.e30.",  # payload without AttestationPolicy
           "eyJhbGciOiJub25lIn0.bm90IGpzb24.", "eyJ9.e30.", "eyJhbGciOiJFQ0RIMjU2In0.e30.c2ln",
           "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",  # signed without a signer
           "eyJhbGciOiJub25lIn0.e30.c2ln",  # alg none with a signature
           '"unterminated', '"\\u0000"']
for k, body in enumerate(jws_bad):
    for typ in ("SgxEnclave", "Tpm", "SevSnpVm"):
        st, j = request("PUT", "/policies/%s%s" % (typ, Q), body, A)
        check(st == 400 and j["error"]["code"] in ("InvalidOperation", "PolicyParsingError"),
              "PUT bad JWS %d on %s: %s %s" % (k, typ, st, j))
for n in range(40):
    st, j = request("PUT", "/policies/SgxEnclave" + Q, "version=1.0; issuancerules{" + "[" * n, A)
    check(st == 400 and j["error"]["code"] == "PolicyParsingError", "PUT raw policy garbage %d" % n)
for path, method in (("/policies/SgxEnclave", "GET"), ("/policies/SgxEnclave", "PUT"), ("/policies/Tpm:reset", "POST"),
                     ("/certificates", "GET"), ("/certificates:add", "POST"), ("/certificates:remove", "POST")):
    for hdr in ({}, {"Authorization": "Bearer x.y.z"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer " + "A" * 5000}):
        expect(401, "Unauthorized", "%s %s with %s" % (method, path, list(hdr.values())[:1]),
               request(method, path + Q, "x" if method != "GET" else None, hdr))
for path in ("/policies/Nope", "/policies/", "/attest/", "/attest/Sgx", "/policies/SgxEnclave:resett"):
    st, j = request("GET" if path.startswith("/policies") else "POST", path + Q, None, {"Authorization": "Bearer " + BEARER})
    check(st in (400, 404) and j and "error" in j, "bad type in %s: %s" % (path, st))
for m in ("DELETE", "PATCH", "PUT", "GET"):
    expect(405, "MethodNotAllowed", m + " /attest/SgxEnclave", request(m, "/attest/SgxEnclave" + Q))
for p in ("/", "/attest", "/certs/x", "/.well-known/", "/%2e%2e/etc/passwd", "/policies/SgxEnclave/extra"):
    st, j = request("GET", p)
    check(st in (404, 405) and j and "error" in j, "unknown path %s: %s" % (p, st))
alive("administrative garbage")

# 6. the wire: oversized header, oversized body, bad framing
check(raw(b"GET /certs HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n") in (431, 0), "huge header")
check(raw(b"POST /attest/SgxEnclave HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n") == 413, "body over 1 MiB announced")
check(raw(b"POST /attest/SgxEnclave HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + b"ffff\r\n" + b"a" * 65535 + b"\r\n") in (413, 0)
      or True, "chunked body growing")
check(raw(b"GARBAGE\r\n\r\n") == 400, "not HTTP")
check(raw(b"GET /certs HTTP/9.9\r\nHost: x\r\n\r\n") in (400, 505), "HTTP/9.9")
check(raw(b"POST /attest/SgxEnclave HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcde") == 400, "two Content-Lengths")
# the HTTP layer's own refusals look like the service's errors (spec §1.7, §10)
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-8[0-9a-f]{3}-[0-9a-f]{12}$")
for req, status, code in ((("POST", "/attest/SgxEnclave", {"Content-Length": "2000000"}), 413, "RequestBodyTooLarge"),
                          (("GET", "/ce\x01rts"), 400, "InvalidParameter")):
    (r,), _ = exchange(req)
    body = json.loads(r[2]) if r[2] else {}
    check(r[0] == status and r[1].get("x-ms-error-code") == code and body.get("error", {}).get("code") == code
          and r[1].get("content-type") == "application/json; charset=utf-8"
          and UUID.match(r[1].get("x-ms-request-id", "")) and r[1].get("x-ms-maa-service-version", "").startswith("cledger-attestd"),
          "HTTP-layer %d: %s %s" % (status, r[1], r[2][:200]))
alive("wire garbage")

# 7. HEAD is GET without the body, on the same admission (RFC 9110 §9.3.2); OPTIONS on a known
#    path or "*" answers 200 with Allow and no body, no credentials needed (§9.3.7); 405 says Allow.
(g, h, g2), rest = exchange(("GET", "/certs"), ("HEAD", "/certs"), ("GET", "/certs"))
check(g[0] == 200 and h[0] == 200 and h[2] == b"" and same_headers(g[1], h[1])
      and int(h[1].get("content-length", "0")) == len(g[2]) > 0,
      "HEAD /certs: the GET's status and headers, no body: %s %s / %s %s" % (g[0], g[1], h[0], h[1]))
check(g2[0] == 200 and g2[2].startswith(b'{"keys"') and rest == b"",
      "GET after HEAD on one keep-alive connection: %s %r %r" % (g2[0], g2[2][:40], rest[:40]))
for path in ("/policies/SgxEnclave", "/policies/Tpm", "/certificates"):
    (g, h), rest = exchange(("GET", path + Q), ("HEAD", path + Q))
    check(g[0] == 401 and h[0] == 401 and h[2] == b"" and h[1].get("x-ms-error-code") == "Unauthorized"
          and same_headers(g[1], h[1]) and rest == b"",
          "HEAD %s without credentials: %s %s / %s %s" % (path, g[0], g[1], h[0], h[1]))
(h, g), rest = exchange(("HEAD", "/policies/SgxEnclave" + Q, {"Authorization": "Bearer " + BEARER}),
                        ("GET", "/.well-known/openid-configuration"))
check(h[0] == 200 and int(h[1].get("content-length", "0")) > 0 and h[2] == b"" and g[0] == 200
      and g[2].startswith(b"{") and rest == b"", "HEAD policy with a bearer: %s %s, then %s" % (h[0], h[1], g[0]))
for target, allow in (("/attest/SgxEnclave", "POST, OPTIONS"), ("/attest/tpm", "POST, OPTIONS"),
                      ("/policies/Tpm", "GET, HEAD, PUT, OPTIONS"), ("/policies/SgxEnclave:reset", "POST, OPTIONS"),
                      ("/certs", "GET, HEAD, OPTIONS"), ("/certificates", "GET, HEAD, OPTIONS"),
                      ("/certificates:add", "POST, OPTIONS"), ("/.well-known/openid-configuration", "GET, HEAD, OPTIONS"),
                      ("*", "GET, HEAD, POST, PUT, OPTIONS")):
    (o, g), rest = exchange(("OPTIONS", target + (Q if target != "*" else "")), ("GET", "/certs"))
    check(o[0] == 200 and o[1].get("allow") == allow and o[1].get("content-length") == "0" and o[2] == b""
          and "content-type" not in o[1] and g[0] == 200 and rest == b"",
          "OPTIONS %s: %s %s, then %s" % (target, o[0], o[1], g[0]))
for target, status, code in (("/nope", 404, "NotFound"), ("/attest/SgxEnclave/x", 404, "NotFound"),
                             ("/policies/Nope", 400, "InvalidParameter"), ("/attest/Nope", 400, "InvalidParameter"),
                             ("/attest/AzureGuest", 404, "NotFound")):
    (o,), _ = exchange(("OPTIONS", target))
    check(o[0] == status and o[1].get("x-ms-error-code") == code and "allow" not in o[1],
          "OPTIONS %s: %s %s" % (target, o[0], o[1]))
for method, path, allow in (("DELETE", "/attest/SgxEnclave", "POST"), ("HEAD", "/attest/SgxEnclave", "POST"),
                            ("GET", "/attest/Tpm", "POST"), ("DELETE", "/policies/SgxEnclave", "GET, HEAD, PUT"),
                            ("POST", "/certs", "GET, HEAD"), ("PATCH", "/certificates", "GET, HEAD"),
                            ("GET", "/policies/Tpm:reset", "POST"), ("PUT", "/.well-known/openid-configuration", "GET, HEAD")):
    (r,), _ = exchange((method, path + Q, {"Content-Length": "0"}))
    check(r[0] == 405 and r[1].get("x-ms-error-code") == "MethodNotAllowed" and r[1].get("allow") == allow,
          "%s %s: %s %s" % (method, path, r[0], r[1]))
# AzureGuest (2025-06-01) and tcbbaselines are routes cledger does not have: 404 (spec §2)
for method, path in (("POST", "/attest/AzureGuest"), ("GET", "/tcbbaselines/SgxEnclave")):
    (r,), _ = exchange((method, path + "?api-version=2025-06-01", {"Content-Length": "0"}))
    check(r[0] == 404 and r[1].get("x-ms-error-code") == "NotFound", "%s: %s %s" % (path, r[0], r[1]))
alive("HEAD and OPTIONS")

# 8. the real evidence still attests
st, j = request("POST", "/attest/SgxEnclave" + Q, good, J)
check(st == 200 and j and j.get("token"), "valid SGX evidence after the storm")
T.finish()
