#!/usr/bin/python3
"""Sends over 1,000 malformed or hostile requests to a running cledgerd over real TLS and checks
each gets its exact expected status (and error code where the API defines one), that the node keeps
serving after each batch, and that nothing was written.

usage: hostile.py URL SERVICE_CERT CERT KEY    (prints "N passed, M failed")
"""
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from badcert import bad_dates_cert  # noqa: E402
import httpraw  # noqa: E402
from tally import Tally  # noqa: E402

url, cacert, cert, key = sys.argv[1:5]
u = urllib.parse.urlparse(url)
HOST, PORT = u.hostname, u.port
T = Tally(show=30)
check = T.check


def ctx(with_cert=True):
    c = ssl.create_default_context(cafile=cacert)
    if with_cert:
        c.load_cert_chain(cert, key)
    return c


CTX = ctx()


def connect(c=None):
    s = socket.create_connection((HOST, PORT), timeout=10)
    return (c or CTX).wrap_socket(s, server_hostname=HOST)


def read_response(s, reader=None):
    """Returns (status, headers, body bytes) or (None, {}, b'') if the connection closed or failed
    (TLS alert, reset, timeout) without a whole response. A malformed response is a failure of its
    own. reader: an httpraw.Reader of s, for a connection that carries more than one response."""
    try:
        r = (reader or httpraw.Reader(s)).read_response()
    except httpraw.BadResponse as e:
        check(False, f"malformed response: {e}")
        return None, {}, b""
    except OSError:  # httpraw.Closed, ssl.SSLError, a reset or a timeout
        return None, {}, b""
    return r.status, r.headers, r.body


def raw(req_bytes, c=None):
    s = connect(c)
    try:
        s.sendall(req_bytes)
        return read_response(s)
    finally:
        s.close()


def req(method, path, body=None, ctype="application/json", extra=""):
    b = body.encode() if isinstance(body, str) else (body or b"")
    h = f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n"
    if ctype is not None and b:
        h += f"Content-Type: {ctype}\r\n"
    if b or method in ("POST", "PATCH", "PUT"):
        h += f"Content-Length: {len(b)}\r\n"
    h += extra + "\r\n"
    return raw(h.encode() + b)


def code_of(body):
    try:
        return json.loads(body)["error"]["code"]
    except Exception:
        return None


def expect(status, code, what, resp):
    st, _, body = resp
    ok = st == status and (code is None or code_of(body) == code)
    check(ok, f"{what}: got {st} {body[:120]!r}, wanted {status} {code}")


def alive():
    st, _, _ = req("GET", "/node/ready")
    return st == 200


def current_seqno():
    st, h, _ = req("GET", "/app/transactions/current?api-version=2022-05-13&collectionId=subledger%3A0")
    return h.get("x-ms-ccf-transaction-id")


before = current_seqno()
V = "api-version=2022-05-13"

# 1. bodies that are not valid LedgerEntry JSON (400 InvalidInput)
bad_bodies = ['{"contents":', "[]", '"x"', "null", "1", '{"contents":1}', '{"contents":null}',
              '{"contents":["a"]}', "{}", '{"contents":"a"} trailing', '{"contents":"\\ud800"}',
              '{"a":1,"a":2}', "\xff\xfe", "{" * 100 + "}" * 100, '{"contents":{"x":1}}']
for i in range(40):
    for b in bad_bodies:
        expect(400, None, f"bad body {b[:20]!r}", req("POST", f"/app/transactions?{V}", b))
# 2. wrong content types (415)
for i in range(30):
    for ct in ("text/plain", "application/xml", "multipart/form-data; boundary=x", "application/jsonx"):
        expect(415, "UnsupportedContentType", f"content type {ct}",
               req("POST", f"/app/transactions?{V}", '{"contents":"x"}', ct))
# 3. bad transaction ids (400 InvalidTransactionId)
for t in ["a.b", "2", "2.", ".5", "2.5.1", "0.0", "02.5", "2.05", "-1.5", "2.5x", "99999999999999999999.1",
          " 2.5"]:
    for route in ("", "/status", "/receipt"):
        for _ in range(6):
            expect(400, "InvalidTransactionId", f"txid {t!r}{route}",
                   req("GET", f"/app/transactions/{urllib.parse.quote(t, safe='%.')}{route}?{V}"))
# 4. malformed percent-encoding (400 InvalidInput)
# a percent-encoded id is decoded first: %32.5 is 2.5 (valid), 2.%00 decodes to a NUL (InvalidInput)
expect(200, None, "%32.5 decodes to 2.5", req("GET", f"/app/transactions/%32.5/status?{V}"))
for p in ["/app/transactions/2.%00/status", "/app/transactions?collectionId=%G1", "/app/transactions?collectionId=%4",
          "/app/users/%ZZ", "/app/transactions?collectionId=a%00b", "/app/users/a%"]:
    for _ in range(20):
        expect(400, "InvalidInput", f"percent {p}", req("GET", p + "&" + V if "?" in p else p + "?" + V))
# 5. oversized contents and collection ids
for _ in range(20):
    expect(400, "EntrySizeCapacityExceeded", "9000-byte contents",
           req("POST", f"/app/transactions?{V}", json.dumps({"contents": "a" * 9000})))
    expect(400, "CollectionIdTooLong", "300-byte collection",
           req("POST", f"/app/transactions?{V}&collectionId={'c' * 300}", '{"contents":"x"}'))
# 6. unknown routes and wrong methods
for _ in range(20):
    expect(404, "ResourceNotFound", "unknown route", req("GET", f"/app/nothing?{V}"))
    expect(405, "MethodNotAllowed", "DELETE transactions", req("DELETE", f"/app/transactions?{V}"))
    expect(405, "MethodNotAllowed", "PUT current", req("PUT", f"/app/transactions/current?{V}", "{}"))
# 7. transport-level abuse: huge headers, huge declared body, endless chunked body, junk
for _ in range(10):
    st, _, _ = raw(f"GET /node/ready HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 40000}\r\n\r\n".encode())
    check(st == 431, f"huge header: {st}")
    st, _, _ = raw(b"POST /app/transactions?" + V.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n")
    check(st == 413, f"declared huge body: {st}")
    s = connect()
    s.sendall(b"POST /app/transactions?" + V.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    st = None
    try:
        for _ in range(4000):  # up to ~4 MB of chunks; the server must cut it off at its limit
            s.sendall(b"400\r\n" + b"a" * 1024 + b"\r\n")
    except (ssl.SSLError, OSError):
        pass
    st, _, _ = read_response(s)
    s.close()
    check(st in (413, None), f"endless chunked body: {st}")
    # a transfer coding other than chunked alone (RFC 9112 §6.1): 501, the body never read as chunked
    expect(501, "NotImplemented", "gzip, chunked",
           raw(b"POST /app/transactions?" + V.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: gzip, chunked\r\n\r\n5\r\n{\"a\":\r\n0\r\n\r\n"))
    st, _, _ = raw(b"\x00\x01\x02 garbage\r\n\r\n")
    check(st == 400, f"garbage request line: {st}")
    st, _, _ = raw(b"GET / HTTP/9.9\r\nHost: x\r\n\r\n")
    check(st in (400, 505), f"bad version: {st}")
# 7b. framing and targets (RFC 9112): Host, obs-fold, CRLF after chunk data, bare CR, protocol name
POSTH = b"POST /app/transactions?" + V.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
for _ in range(10):
    expect(400, None, "no Host", raw(b"GET /node/ready HTTP/1.1\r\n\r\n"))
    expect(400, None, "two Hosts", raw(b"GET /node/ready HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"))
    expect(400, None, "bad Host", raw(b"GET /node/ready HTTP/1.1\r\nHost: a b\r\n\r\n"))
    expect(400, None, "obs-fold", raw(b"GET /node/ready HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n"))
    expect(400, None, "bare CR", raw(b"GET /node/ready HTTP/1.1\rXHost: x\r\n\r\n"))
    expect(400, None, "HTXP", raw(b"GET /node/ready HTXP/1.1\r\nHost: x\r\n\r\n"))
    expect(400, None, "junk after chunk data",
           raw(POSTH + b"Transfer-Encoding: chunked\r\n\r\n10\r\n{\"contents\":\"x\"}ZZ0\r\n\r\n"))
    expect(400, None, "obs-fold in a trailer",
           raw(POSTH + b"Transfer-Encoding: chunked\r\n\r\n10\r\n{\"contents\":\"x\"}\r\n0\r\nT: a\r\n b\r\n\r\n"))
    expect(400, None, "GET *", raw(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n"))
    expect(501, "NotImplemented", "CONNECT", raw(b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n"))
# HTTP/1.0 needs no Host; absolute-form is served like origin-form; OPTIONS names the methods
st, _, body = raw(b"GET /node/ready HTTP/1.0\r\n\r\n")
check(st == 200, f"HTTP/1.0 without Host: {st}")
st, h, body = raw(f"GET https://{HOST}:{PORT}/app/collections?{V} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
check(st == 200 and b'"collections"' in body, f"absolute-form target: {st} {body[:80]!r}")
st, h, body = raw(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
check(st == 200 and body == b"" and "POST" in h.get("allow", "") and "OPTIONS" in h.get("allow", ""),
      f"OPTIONS *: {st} {h.get('allow')!r}")
st, h, body = raw(b"OPTIONS /app/transactions HTTP/1.1\r\nHost: x\r\n\r\n", ctx(False))
check(st == 200 and h.get("allow") == "GET, HEAD, POST, OPTIONS", f"OPTIONS /app/transactions: {st} {h}")
# HEAD: GET's status and headers, no body, and the connection stays usable (keep-alive)
# (a body sent after the HEAD's head anyway would show as pending bytes, or as a malformed GET reply)
s = connect()
s.sendall(f"HEAD /app/collections?{V} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
rd = httpraw.Reader(s)
try:
    hr = rd.read_response("HEAD")
    head_ok = (hr.version == "HTTP/1.1" and hr.status == 200 and hr.headers.get("content-length") != "0"
               and rd.pending == b"")
except (httpraw.HTTPRawError, OSError) as e:
    hr, head_ok = e, False
s.sendall(f"GET /app/collections?{V} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
st, h, body = read_response(s, rd)
s.close()
check(head_ok and st == 200 and b'"collections"' in body, f"HEAD then GET on one connection: {hr!r} {st}")
# a client certificate whose validity OpenSSL cannot read (month 13): served anonymously, 401 elsewhere
with tempfile.TemporaryDirectory() as td:
    bad_cert, bad_key = bad_dates_cert(td)
    bc = ssl.create_default_context(cafile=cacert)
    bc.load_cert_chain(bad_cert, bad_key)
    st, _, _ = raw(b"GET /node/ready HTTP/1.1\r\nHost: x\r\n\r\n", bc)
    check(st == 200, f"unreadable certificate dates, anonymous route: {st}")
    st, _, body = raw(f"GET /app/transactions/current?{V} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), bc)
    check(st == 401 and code_of(body) == "InvalidAuthenticationInfo" and b"cannot be read" in body,
          f"unreadable certificate dates, user route: {st} {body[:100]!r}")
# 8. slow partial request: the server closes it by itself
s = connect()
s.sendall(b"GET /node/ready HTTP/1.1\r\nHost: x\r\n")
t0 = time.time()
s.settimeout(60)
try:
    closed = s.recv(100) in (b"",) or True
except (ssl.SSLError, OSError):
    closed = True
check(closed and time.time() - t0 < 59, "slow partial request closed by the server")
s.close()
# 9. no client certificate / plain HTTP on the TLS port
for _ in range(10):
    st, _, body = raw(f"GET /app/transactions/current?{V} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), ctx(False))
    check(st == 401 and code_of(body) == "InvalidAuthenticationInfo", f"no client cert: {st}")
    try:
        p = socket.create_connection((HOST, PORT), timeout=5)
        p.sendall(b"GET /node/ready HTTP/1.1\r\nHost: x\r\n\r\n")
        p.settimeout(5)
        r = p.recv(100)
        check(not r.startswith(b"HTTP/1.1 200"), "plain HTTP on the TLS port must not be served")
        p.close()
    except OSError:
        check(True, "plain HTTP refused")

check(alive(), "node still serving after the hostile batches")
check(current_seqno() == before, f"nothing written: read point {before} -> {current_seqno()}")
T.finish()
