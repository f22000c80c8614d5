#!/usr/bin/python3
"""Self-test of httpraw.py (ctest httpraw): byte streams fed to the reader over a socketpair (whole,
and cut into pieces written one after another) and through a socket that hands out one byte per
recv (every read boundary); well-formed responses of every framing, then malformed, truncated and
slow ones. usage: test_httpraw.py   (prints "httpraw: N passed, M failed"; exit 1 on a failure)
"""
import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import httpraw  # noqa: E402
from tally import Tally  # noqa: E402

T = Tally("httpraw")
check = T.check


class ByteSock:
    """recv() hands out one byte at a time, then b"" (the peer closed)."""

    def __init__(self, data):
        self.data = data
        self.at = 0
        self.timeout = None

    def recv(self, n):
        out = self.data[self.at:self.at + 1]
        self.at += len(out)
        return out

    def gettimeout(self):
        return self.timeout

    def settimeout(self, t):
        self.timeout = t


def socketpair_feed(pieces, close=True, gap=0.0):
    """A socket whose peer writes `pieces` (gap seconds apart), then closes unless close=False."""
    a, b = socket.socketpair()
    a.settimeout(5)

    def write():
        try:
            for p in pieces:
                b.sendall(p)
                if gap:
                    time.sleep(gap)
        except OSError:  # the reader gave up and closed
            pass
        if close:
            b.close()

    t = threading.Thread(target=write, daemon=True)
    t.start()
    return a, b, t


def cuts(data, rng):
    """data in 1..8 pieces at random places."""
    at = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 7)))) if len(data) > 1 else []
    return [data[i:j] for i, j in zip([0] + at, at + [len(data)])]


RNG = random.Random(1234)


def fails_with(fn, exc):
    try:
        fn()
    except exc:
        return True
    return False


def streams(data):
    """(name, reader) over data: one write, random pieces, one byte per recv."""
    a, _, _ = socketpair_feed([data])
    yield "whole", httpraw.Reader(a), a
    a, _, _ = socketpair_feed(cuts(data, RNG), gap=0.002)
    yield "pieces", httpraw.Reader(a), a
    yield "bytewise", httpraw.Reader(ByteSock(data), bufsize=1), None


def each(data, fn, what):
    """fn(reader) on every way of receiving data; fn returns True when right."""
    for how, r, s in streams(data):
        try:
            ok = fn(r)
            check(ok, "%s (%s)" % (what, how))
        except Exception as e:  # noqa: BLE001
            check(False, "%s (%s): %r" % (what, how, e))
        finally:
            if s is not None:
                s.close()


def raises(data, exc, what, method="GET", **kw):
    """Reading data (a response, then the close) raises exc, on every way of receiving it."""
    for how, r, s in streams(data):
        try:
            for k, v in kw.items():
                setattr(r, k, v)
            r.read_response(method)
            check(False, "%s (%s): no exception" % (what, how))
        except exc as e:
            check(isinstance(e, httpraw.HTTPRawError) and str(e), "%s (%s): %r" % (what, how, e))
        except Exception as e:  # noqa: BLE001
            check(False, "%s (%s): %r, wanted %s" % (what, how, e, exc.__name__))
        finally:
            if s is not None:
                s.close()


# ---- well-formed ------------------------------------------------------------------------------

CL = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nX-A: 1\r\nx-a:  2 \r\n\r\n{\"a\":\"xyz\"}"


def cl_ok(r):
    a = r.read_response()
    return (a.version == "HTTP/1.1" and a.status == 200 and a.reason == "OK" and a.body == b'{"a":"xyz"}'
            and a.headers["content-type"] == "application/json" and a.headers["CONTENT-TYPE"] == "application/json"
            and a.headers.get("Content-Length") == "11" and "content-length" in a.headers and "X-A" in a.headers
            and a.headers["x-a"] == "1, 2" and a.headers.get_all("X-a") == ["1", "2"]
            and a.headers.fields[0] == ("Content-Type", "application/json") and a.headers.get("nope") is None
            and not a.chunked and not a.until_close and not a.will_close and r.pending == b""
            and r.read_until_close() == b"")


each(CL, cl_ok, "Content-Length body, case-insensitive and repeated fields")

KA = (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
      b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
      b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbusy."
      b"leftover")


def ka_ok(r):
    a, b, c = r.read_response(), r.read_response(), r.read_response()
    return (a.status == 200 and a.body == b"one" and b.status == 404 and b.reason == "Not Found" and b.body == b""
            and c.status == 503 and c.headers["retry-after"] == "1" and c.body == b"busy." and c.will_close
            and r.read_until_close() == b"leftover")


each(KA, ka_ok, "three responses on one connection, then what follows")

CH = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      b"5\r\nhello\r\n1;ext=\"v\"\r\n \r\nA ; e\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
      b"HTTP/1.1 204 No Content\r\n\r\n")


def ch_ok(r):
    a, b = r.read_response(), r.read_response()
    return (a.chunked and a.body == b"hello 0123456789" and a.trailers["x-trailer"] == "t"
            and b.status == 204 and b.body == b"" and r.read_until_close() == b"")


each(CH, ch_ok, "chunked body with extensions and a trailer, then a 204")
each(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked \r\n\r\n0\r\n\r\n",
     lambda r: r.read_response().body == b"", "empty chunked body, coding name case-insensitive")

UC = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this\r\nHTTP/1.1 until the close"
each(UC, lambda r: (lambda a: a.until_close and a.will_close and a.body == UC.split(b"\r\n\r\n", 1)[1])(r.read_response()),
     "no length: the body runs until the close")
each(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
     lambda r: (lambda a: a.version == "HTTP/1.0" and a.body == b"ok" and a.will_close)(r.read_response()),
     "HTTP/1.0 without keep-alive closes")

HEAD = (b"HTTP/1.1 200 OK\r\nContent-Length: 42\r\nContent-Type: application/json\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
each(HEAD, lambda r: (lambda h, g: h.body == b"" and h.headers["content-length"] == "42" and g.body == b"{}"
                      and r.read_until_close() == b"")(r.read_response("HEAD"), r.read_response()),
     "HEAD: Content-Length but no body, then a GET")
NB = (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nETag: \"x\"\r\n\r\n"
      b"HTTP/1.1 204 No Content\r\nX: y\r\n\r\n"
      b"HTTP/1.1 200 \r\nContent-Length: 1\r\n\r\n!")
each(NB, lambda r: (lambda a, b, c: a.status == 304 and a.body == b"" and b.status == 204 and b.body == b""
                    and c.reason == "" and c.body == b"!")(r.read_response(), r.read_response(), r.read_response()),
     "304 and 204 without a body; an empty reason phrase")
IN = (b"HTTP/1.1 100 Continue\r\n\r\n"
      b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n"
      b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nhi")
each(IN, lambda r: (lambda a: a.status == 201 and a.body == b"hi" and [i.status for i in a.interim] == [100, 103]
                    and a.interim[1].headers["link"] == "</a>; rel=preload")(r.read_response()),
     "1xx interim responses read past")
each(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nnot http",
     lambda r: (lambda a: a.status == 101 and a.will_close and r.read_until_close() == b"not http")(r.read_response()),
     "101 is returned, the rest is not HTTP")
BIG = os.urandom(300000)
each(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BIG) + BIG,
     lambda r: r.read_response().body == BIG, "a 300 KB body")
r = httpraw.Reader(None, KA)
check([x.status for x in (r.read_response(), r.read_response(), r.read_response())] == [200, 404, 503]
      and r.pending == b"leftover" and r.read_until_close() == b"leftover" and r.pending == b"",
      "Reader over bytes: pending and read_until_close")
check(httpraw.read_response(ByteSock(CL)).body == b'{"a":"xyz"}', "read_response(sock)")

# ---- closed, truncated, malformed -------------------------------------------------------------

raises(b"", httpraw.Closed, "nothing at all: Closed")
check(issubclass(httpraw.Closed, ConnectionError) and issubclass(httpraw.BadResponse, ValueError)
      and issubclass(httpraw.Truncated, httpraw.BadResponse) and issubclass(httpraw.Truncated, ConnectionError)
      and not issubclass(httpraw.BadResponse, OSError), "exception classes")
raises(b"HTTP/1.1 200 OK\r\nContent-Len", httpraw.Truncated, "closed inside the head")
raises(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345", httpraw.Truncated, "closed inside a body")
raises(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", httpraw.Truncated, "closed inside a chunk")
raises(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n", httpraw.Truncated,
       "closed before the end of the trailer section")
raises(b"HTTP/1.1 100 Continue\r\n\r\n", httpraw.Truncated, "closed after an interim response")
for bad, what in [
        (b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", "bare LF after the status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n", "bare LF after a field"),
        (b"HTTP/1.1 200 O\rK\r\nContent-Length: 0\r\n\r\n", "bare CR in the status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\n", "bare LF ends the head"),
        (b"HTTP/1.1 20 OK\r\n\r\n", "two-digit status"),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "four-digit status"),
        (b"HTTP/1.1 200\r\n\r\n", "no SP after the status"),
        (b"HTTP/1.1  200 OK\r\n\r\n", "two SPs"),
        (b"HTTP/2 200 OK\r\n\r\n", "HTTP/2"),
        (b"HTTP/2.0 200 OK\r\n\r\n", "HTTP/2.0 on the wire"),
        (b"http/1.1 200 OK\r\n\r\n", "lower-case protocol"),
        (b"ICY 200 OK\r\n\r\n", "not HTTP"),
        (b"\x16\x03\x01\x00\x05hello\r\n\r\n", "a TLS record"),
        (b"HTTP/1.1 099 X\r\n\r\n", "status under 100"),
        (b"HTTP/1.1 200 OK\r\nX-A: 1\r\n b\r\nContent-Length: 0\r\n\r\n", "obs-fold"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "a line without a colon"),
        (b"HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n", "white space before the colon"),
        (b"HTTP/1.1 200 OK\r\n: 1\r\n\r\n", "an empty field name"),
        (b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n", "a NUL in a value"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", "Content-Length not a number"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length negative"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n12345", "Content-Length two values"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n12345", "two Content-Lengths"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", "Content-Length huge"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         "Content-Length and Transfer-Encoding"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "gzip, chunked"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxx", "gzip alone"),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", "Content-Length in a 204"),
        (b"HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\n", "Content-Length in a 100"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n", "chunk size not hex"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n\r\n", "empty chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", "negative chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", "SP after a chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloZZ0\r\n\r\n", "chunk data without CRLF"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n", "17 hex digits"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: a\r\n b\r\n\r\n", "obs-fold in a trailer"),
]:
    raises(bad, httpraw.BadResponse, what)
for bad, what in [(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "status line over max_head"),
                  (b"HTTP/1.1 200 OK\r\nX-Big: " + b"v" * 200 + b"\r\n\r\n", "field over max_head"),
                  (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 40 + b"\r\n", "many fields over max_head")]:
    raises(bad, httpraw.BadResponse, what + " (limit 10 or 100)", max_head=10 if "status" in what else 100)
raises(b"HTTP/1.1 200 OK\r\n" + b"X" * 5000, httpraw.BadResponse, "no line end within max_head", max_head=1000)
raises(b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n" + b"x" * 101, httpraw.BadResponse, "body over max_body",
       max_body=100)
raises(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + b"x" * 64 + b"\r\n40\r\n" + b"x" * 64
       + b"\r\n0\r\n\r\n", httpraw.BadResponse, "chunked body over max_body", max_body=100)
raises(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 101, httpraw.BadResponse, "body to the close over max_body", max_body=100)
# a bad one after a good one: the good one is read, the error is on the next
each(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}{}garbage\r\n\r\n",
     lambda r: r.read_response().body == b"{}" and fails_with(r.read_response, httpraw.BadResponse),
     "a good response, then bytes past its Content-Length")


# a HEAD answered with a body anyway: the body shows as a malformed next response
each(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
     lambda r: r.read_response("HEAD").body == b"" and fails_with(r.read_response, httpraw.BadResponse),
     "a body after a HEAD's response is not taken for the next response")

# ---- time -------------------------------------------------------------------------------------



def expect_timeout(sock, timeout, what):
    """read_response(timeout) must raise TimeoutError after about `timeout` seconds."""
    t0 = time.monotonic()
    try:
        httpraw.Reader(sock).read_response(timeout=timeout)
        check(False, what + ": no timeout")
    except TimeoutError:
        took = time.monotonic() - t0
        check(timeout - 0.05 < took < 2, "%s: timeout after %.2f s" % (what, took))


# stalls after the head: the timeout, not the socket's, ends it; the socket's timeout comes back
a, b, t = socketpair_feed([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"], close=False)
a.settimeout(7)
expect_timeout(a, 0.3, "stalled body")
check(a.gettimeout() == 7, "the socket's timeout restored: %r" % a.gettimeout())
a.close()
b.close()
# a trickle, a byte every 50 ms: each recv is quick, the whole is not
TR = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"x" * 40
a, b, t = socketpair_feed([TR[i:i + 1] for i in range(len(TR))], gap=0.05)
expect_timeout(a, 0.5, "trickle")
a.close()
t.join()
b.close()
# and in time it is read whole
a, b, t = socketpair_feed([TR[:10], TR[10:50], TR[50:]], gap=0.05)
resp = httpraw.Reader(a).read_response(timeout=5)
check(resp.body == b"x" * 40 and a.gettimeout() == 5, "pieces within the timeout")
a.close()

# past the reader's 64 KiB compaction, with lines split across small recvs (the reader drops what
# it has read while a line is half in: positions must follow): a 100 KB body then a 404, and a
# chunked body of 100 KB, each at recv sizes that put the compaction inside a line
BIG = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"b" * 100000
NEXT = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"
CH = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      + b"".join(b"%x\r\n%s\r\n" % (1000, b"c" * 1000) for _ in range(100)) + b"0\r\n\r\n")
for size in (1, 3, 7, 13, 1000, 4096):
    class Sized(ByteSock):
        def recv(self, n, size=size):
            out = self.data[self.at:self.at + size]
            self.at += len(out)
            return out
    try:
        rd = httpraw.Reader(Sized(BIG + NEXT + CH), bufsize=size)
        r1, r2, r3 = rd.read_response(), rd.read_response(), rd.read_response()
        check(r1.body == b"b" * 100000 and r2.status == 404 and r2.body == b"no"
              and r3.body == b"c" * 100000, "over 64 KiB, recv size %d" % size)
    except Exception as e:  # noqa: BLE001
        check(False, "over 64 KiB, recv size %d: %r" % (size, e))

T.finish()
