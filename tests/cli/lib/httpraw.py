"""Reads raw HTTP/1.1 responses off a socket, for the Python tests and benchmarks that write their
requests on the wire themselves (tests/cli/*.py, bench/slow_readers.py). Self-test:
tests/cli/lib/test_httpraw.py (ctest httpraw).

    r = httpraw.Reader(sock)              # one per connection: it keeps what it read past a response
    resp = r.read_response()              # method="HEAD" when it answers a HEAD (no body then)
    resp.status, resp.reason, resp.version, resp.headers["Content-Type"], resp.body
    r.pending                             # bytes received past the last response
    r.read_until_close()                  # those and everything else until the peer closes

    httpraw.read_response(sock)           # one response on a connection used once
    httpraw.Reader(None, data)            # responses out of bytes already received

Framing (RFC 9112 §6.3): no body for a HEAD, 1xx, 204 or 304; Transfer-Encoding: chunked (chunk
extensions dropped, trailer fields in resp.trailers); Content-Length; otherwise the body runs until
the peer closes. Interim 1xx responses other than 101 are read past (kept in resp.interim).
Header names are case-insensitive (resp.headers is a dict keyed by the lower-cased name; a repeated
field's values are joined with ", "; headers.fields keeps them as received).

Errors: Closed (a ConnectionError) when the connection ends before the first byte of a response;
BadResponse (a ValueError) for anything malformed, Truncated (a BadResponse and a ConnectionError)
when the connection ends inside a response; TimeoutError when `timeout` seconds pass before the
whole response is in (it bounds the whole response, not each recv; without it the socket's own
timeout applies to each recv); any other OSError of the socket as it comes.

It is strict on purpose (the servers under test must be): lines end in CRLF, the status line is
HTTP/d.d SP 3DIGIT SP reason, no obs-fold, no control characters in field values, one
Content-Length value, none with a Transfer-Encoding, no transfer coding but chunked, no
Content-Length or Transfer-Encoding on a 1xx or 204.
"""
import re
import time

MAX_HEAD = 1 << 20  # bytes of status line + header fields (and of a chunk-size line or trailers)
MAX_BODY = 256 << 20

_STATUS = re.compile(rb"HTTP/([0-9])\.([0-9]) ([0-9]{3}) ([\t\x20-\x7e\x80-\xff]*)")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE_BAD = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")  # CTLs but HTAB
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


class HTTPRawError(Exception):
    """Anything this module raises itself."""


class Closed(HTTPRawError, ConnectionError):
    """The connection ended before the first byte of a response."""


class BadResponse(HTTPRawError, ValueError):
    """A malformed response (or one over the reader's limits)."""


class Truncated(BadResponse, ConnectionError):
    """The connection ended inside a response (a BadResponse and a ConnectionError both)."""


class Headers(dict):
    """Header (or trailer) fields: a dict keyed by lower-cased name, looked up case-insensitively;
    a field received more than once holds its values joined with ", " (RFC 9110 §5.3).
    .fields lists (name, value) as received; .get_all(name) the values of one name."""

    def __init__(self, fields=()):
        super().__init__()
        self.fields = []
        for name, value in fields:
            self.add(name, value)

    def add(self, name, value):
        self.fields.append((name, value))
        k = name.lower()
        old = dict.get(self, k)
        dict.__setitem__(self, k, value if old is None else old + ", " + value)

    def get_all(self, name):
        k = name.lower()
        return [v for n, v in self.fields if n.lower() == k]

    def __getitem__(self, name):
        return dict.__getitem__(self, name.lower())

    def __setitem__(self, name, value):
        dict.__setitem__(self, name.lower(), value)

    def __delitem__(self, name):
        dict.__delitem__(self, name.lower())

    def __contains__(self, name):
        return isinstance(name, str) and dict.__contains__(self, name.lower())

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)


class Response:
    """One response. version "HTTP/1.1"; status int; reason str; headers and trailers Headers; body
    bytes (de-chunked); chunked: it came chunked; until_close: its body ran until the peer closed;
    will_close: the server means to close after it (Connection: close, HTTP/1.0 without keep-alive,
    a body to close, 101); interim: the 1xx responses read before it."""

    def __init__(self, version, status, reason, headers):
        self.version, self.status, self.reason, self.headers = version, status, reason, headers
        self.body = b""
        self.trailers = Headers()
        self.chunked = False
        self.until_close = False
        self.interim = []

    @property
    def will_close(self):
        conn = [t.strip().lower() for t in self.headers.get("connection", "").split(",")]
        if self.until_close or self.status == 101 or "close" in conn:
            return True
        return self.version == "HTTP/1.0" and "keep-alive" not in conn

    def __repr__(self):
        return "<Response %s %d %s, %d header fields, %d body bytes>" % (
            self.version, self.status, self.reason, len(self.headers.fields), len(self.body))


class Reader:
    """Reads the responses of one connection in order. sock: anything with recv() (a socket, a TLS
    socket), or None to read only `data`; data: bytes already received from it."""

    def __init__(self, sock, data=b"", bufsize=65536, max_head=MAX_HEAD, max_body=MAX_BODY):
        self.sock = sock
        self.bufsize = bufsize
        self.max_head = max_head
        self.max_body = max_body
        self._buf = bytearray(data)
        self._pos = 0
        self.eof = sock is None  # the peer closed (no more recv)
        self._deadline = None

    @property
    def pending(self):
        """Bytes received but not yet read as part of a response."""
        return bytes(self._buf[self._pos:])

    # ---- input --------------------------------------------------------------------------------
    def _fill(self):
        """One recv into the buffer; False at the end of the stream."""
        if self.eof:
            return False
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("httpraw: the response did not come in time")
            self.sock.settimeout(left)
        chunk = self.sock.recv(self.bufsize)
        if not chunk:
            self.eof = True
            return False
        if self._pos > 65536 and self._pos * 2 > len(self._buf):  # drop what was read
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += chunk
        return True

    def _line(self, limit, what):
        """The next CRLF-terminated line, without its CRLF; limit: its most bytes but the CRLF."""
        scanned = 0  # bytes after self._pos already searched (_fill may move what self._pos is)
        while True:
            nl = self._buf.find(b"\n", self._pos + scanned)
            if nl >= 0:
                break
            scanned = len(self._buf) - self._pos
            if scanned > limit + 1:
                raise BadResponse("%s: over %d bytes without a line end" % (what, limit))
            if not self._fill():
                raise Truncated("%s: the connection closed inside a line: %r"
                                % (what, bytes(self._buf[self._pos:self._pos + 100])))
        start = self._pos
        if nl - 1 - start > limit:
            raise BadResponse("%s: a line of over %d bytes" % (what, limit))
        if nl == start or self._buf[nl - 1] != 0x0D:
            raise BadResponse("%s: a line ends in a bare LF: %r"
                              % (what, bytes(self._buf[max(start, nl - 99):nl + 1])))
        line = bytes(self._buf[start:nl - 1])
        if b"\r" in line:
            raise BadResponse("%s: a bare CR in %r" % (what, line[:100]))
        self._pos = nl + 1
        return line

    def _take(self, n, what):
        while len(self._buf) - self._pos < n:
            if not self._fill():
                raise Truncated("%s: the connection closed after %d of %d bytes"
                                % (what, len(self._buf) - self._pos, n))
        out = bytes(self._buf[self._pos:self._pos + n])
        self._pos += n
        return out

    def _fields(self, budget, what):
        """Header or trailer fields up to the empty line; budget: bytes they may take."""
        h = Headers()
        used = 0
        while True:
            line = self._line(max(budget - used - 2, 0), what)
            used += len(line) + 2
            if used > budget:
                raise BadResponse("%s: over %d bytes" % (what, budget))
            if line == b"":
                return h, used
            if line[:1] in (b" ", b"\t"):
                raise BadResponse("%s: obs-fold (a line starting with white space): %r" % (what, line[:100]))
            name, colon, value = line.partition(b":")
            if not colon or not _TOKEN.fullmatch(name):
                raise BadResponse("%s: not a field: %r" % (what, line[:100]))
            value = value.strip(b" \t")
            if _VALUE_BAD.search(value):
                raise BadResponse("%s: a control character in %r" % (what, line[:100]))
            h.add(name.decode("ascii"), value.decode("latin-1"))

    # ---- responses ----------------------------------------------------------------------------
    def read_response(self, method="GET", timeout=None):
        """The next final response (1xx but 101 read past, into .interim). method: the request's
        (HEAD: no body); timeout: seconds for the whole of it (None: the socket's own per recv)."""
        old = None
        if timeout is not None and self.sock is not None:
            old = self.sock.gettimeout()
            self._deadline = time.monotonic() + timeout
        try:
            interim = []
            while True:
                r = self._one(method, first=not interim)
                if 100 <= r.status < 200 and r.status != 101:
                    interim.append(r)
                    continue
                r.interim = interim
                return r
        finally:
            if self._deadline is not None:
                self._deadline = None
                self.sock.settimeout(old)

    def _one(self, method, first):
        if self._pos == len(self._buf) and not self._fill():
            if first:
                raise Closed("the connection closed before a response")
            raise Truncated("the connection closed after an interim response")
        line = self._line(self.max_head, "status line")
        m = _STATUS.fullmatch(line)
        if not m:
            raise BadResponse("not a status line: %r" % line[:100])
        r = Response("HTTP/%s.%s" % (m.group(1).decode(), m.group(2).decode()), int(m.group(3)),
                     m.group(4).decode("latin-1"), None)
        if r.version not in ("HTTP/1.0", "HTTP/1.1"):
            raise BadResponse("version %s" % r.version)
        if r.status < 100:
            raise BadResponse("status %d" % r.status)
        r.headers, _ = self._fields(self.max_head - len(line) - 2, "header section")
        te = r.headers.get("transfer-encoding")
        cls = r.headers.get_all("content-length")
        if (r.status < 200 or r.status == 204) and (te is not None or cls):
            raise BadResponse("Content-Length or Transfer-Encoding in a %d" % r.status)
        length = None
        if cls:
            vals = {v.strip() for v in ",".join(cls).split(",")}
            if len(vals) != 1 or not re.fullmatch(r"[0-9]{1,18}", next(iter(vals))):
                raise BadResponse("Content-Length %r" % cls)
            length = int(vals.pop())
        if te is not None:
            if length is not None:
                raise BadResponse("both Transfer-Encoding and Content-Length")
            if [c.strip().lower() for c in te.split(",")] != ["chunked"]:
                raise BadResponse("Transfer-Encoding %r (only chunked is read)" % te)
        if method == "HEAD" or r.status < 200 or r.status in (204, 304):
            return r
        if te is not None:
            r.chunked = True
            r.body, r.trailers = self._chunked()
        elif length is not None:
            if length > self.max_body:
                raise BadResponse("Content-Length %d over %d" % (length, self.max_body))
            r.body = self._take(length, "body")
        else:
            r.until_close = True
            r.body = self.read_until_close()
        return r

    def _chunked(self):
        body = bytearray()
        while True:
            line = self._line(self.max_head, "chunk size")
            size, semi, _ext = line.partition(b";")
            if semi:
                size = size.rstrip(b" \t")  # BWS before a chunk extension
            if not _HEX.fullmatch(size):
                raise BadResponse("chunk size line %r" % line[:100])
            n = int(size, 16)
            if n == 0:
                break
            if len(body) + n > self.max_body:
                raise BadResponse("chunked body over %d bytes" % self.max_body)
            body += self._take(n, "chunk data")
            if self._take(2, "chunk data end") != b"\r\n":
                raise BadResponse("chunk data not followed by CRLF")
        trailers, _ = self._fields(self.max_head, "trailer section")
        return bytes(body), trailers

    def read_until_close(self):
        """Everything not yet read, up to the peer's close (at most max_body bytes)."""
        while True:
            if len(self._buf) - self._pos > self.max_body:
                raise BadResponse("over %d bytes before the close" % self.max_body)
            if not self._fill():
                break
        out = bytes(self._buf[self._pos:])
        self._pos = len(self._buf)
        return out


def read_response(sock, method="GET", timeout=None, **limits):
    """One response from sock (what follows it is dropped: for a connection used once)."""
    return Reader(sock, **limits).read_response(method, timeout)
