#!/usr/bin/python3
"""The `cledger` client against a hostile or broken server: a scripted HTTPS server on loopback
(real TLS, a certificate the client trusts) answers each command with malformed, contradictory or
hostile replies. Every case must end with the documented exit status (1 for a bad answer, 3 for no
usable answer), a clear message on stderr, no signal, no raw control bytes from the server on the
terminal, and within the time bound; nothing the server sends may crash or hang the client. A
`--json` listing is printed page by page: its memory stays that of one page however long the
listing, and a failure on a later page leaves an unterminated document.

usage: client_hostile.py BIN_DIR    (prints "N passed, M failed"; exit 1 on any failure)
"""
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from tally import Tally  # noqa: E402

BIN = os.path.abspath(sys.argv[1])
CL = os.path.join(BIN, "cledger")
work = tempfile.mkdtemp(prefix="cl-client-hostile-")
T = Tally()
check = T.check


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, cwd=work, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


# A CA the client trusts (--service-cert) and a server certificate for 127.0.0.1 issued by it;
# a self-signed client certificate (the server does not ask for it).
openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-days", "2", "-subj", "/CN=hostile CA", "-keyout", "ca.key", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,digitalSignature")
openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-subj", "/CN=127.0.0.1", "-keyout", "srv.key", "-out", "srv.csr")
with open(os.path.join(work, "srv.ext"), "w") as f:
    f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "srv.ext", "-out", "srv.pem")
openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-days", "2", "-subj", "/CN=client", "-keyout", "cli.key", "-out", "cli.pem")

SCTX = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
SCTX.load_cert_chain(os.path.join(work, "srv.pem"), os.path.join(work, "srv.key"))

# ---- the scripted server ------------------------------------------------------------------------

handler = None  # handler(method, path, body, n) -> list of actions; n counts requests in the case
requests = []  # (method, path) of the current case
lock = threading.Lock()


def resp(status, body=b"", ctype="application/json", headers=(), reason="X"):
    if isinstance(body, str):
        body = body.encode()
    h = "HTTP/1.1 %d %s\r\n" % (status, reason)
    if ctype:
        h += "Content-Type: %s\r\n" % ctype
    for k, v in headers:
        h += "%s: %s\r\n" % (k, v)
    h += "Content-Length: %d\r\n\r\n" % len(body)
    return [h.encode("latin-1") + body]


def read_request(s, buf):
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            return None, buf
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, path = lines[0].split()[0:2]
    clen = 0
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            clen = int(v.strip())
    while len(rest) < clen:
        chunk = s.recv(65536)
        if not chunk:
            return None, rest
        rest += chunk
    return (method, path, rest[:clen]), rest[clen:]


def serve_conn(raw):
    try:
        s = SCTX.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError):
        raw.close()
        return
    buf = b""
    try:
        while True:
            req, buf = read_request(s, buf)
            if req is None:
                break
            with lock:
                requests.append(req[0:2])
                n = len(requests)
                h = handler
            for act in h(req[0], req[1], req[2], n):
                if act == "close":
                    s.close()
                    return
                if isinstance(act, tuple) and act[0] == "sleep":
                    time.sleep(act[1])
                else:
                    s.sendall(act)
    except (ssl.SSLError, OSError, ValueError, IndexError):
        pass
    finally:
        try:
            s.close()
        except OSError:
            pass


lsock = socket.socket()
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", 0))
lsock.listen(16)
PORT = lsock.getsockname()[1]
URL = "https://127.0.0.1:%d" % PORT


def accept_loop():
    while True:
        try:
            c, _ = lsock.accept()
        except OSError:
            return
        threading.Thread(target=serve_conn, args=(c,), daemon=True).start()


threading.Thread(target=accept_loop, daemon=True).start()

# ---- cases --------------------------------------------------------------------------------------

TX = "x-ms-ccf-transaction-id"
ESC = "\x1b]0;owned\x07\x1b[2J"  # a terminal title change and a screen clear
CTRL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")


HWM = re.compile(r"^VmHWM:\s*(\d+) kB", re.M)


def spawn(cmd, limit, env, stdout=None):
    """Runs cmd with its output in files (stdout: a path to write standard output to instead,
    read back as empty). Returns a CompletedProcess with .maxrss, the peak resident set in KiB of
    the client's own memory (VmHWM, read every 5 ms while it runs: the ru_maxrss of a child starts
    at this script's peak), or None when it ran over limit s."""
    with (open(stdout, "wb") if stdout else tempfile.TemporaryFile(dir=work)) as fo, \
            tempfile.TemporaryFile(dir=work) as fe:
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, cwd=work, env=env)  # returns after exec
        deadline = time.monotonic() + limit
        hwm = 0
        while True:
            try:
                with open("/proc/%d/status" % p.pid) as f:
                    m = HWM.search(f.read())
                hwm = max(hwm, int(m.group(1)) if m else 0)  # no VmHWM once it has exited
            except OSError:
                pass
            pid, status, _ = os.wait4(p.pid, os.WNOHANG)
            if pid != 0:
                break
            if time.monotonic() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                p.returncode = -9
                return None
            time.sleep(0.005)
        p.returncode = os.waitstatus_to_exitcode(status)
        fe.seek(0)
        out = b""
        if not stdout:
            fo.seek(0)
            out = fo.read()
        r = subprocess.CompletedProcess(cmd, p.returncode, out, fe.read())
        r.maxrss = hwm
        return r


def run(name, args, h, want, msg=None, limit=15.0, timeout="2", out_re=None, human=True,
        env=None, stdout=None):
    """Runs `cledger ARGS` against handler h; checks exit status, stderr, control bytes, time."""
    global handler
    with lock:
        handler = h
        requests.clear()
    cmd = [CL, *args, "--endpoint", URL, "--service-cert", os.path.join(work, "ca.pem"),
           "--cert", os.path.join(work, "cli.pem"), "--key", os.path.join(work, "cli.key"),
           "--timeout", timeout]
    t0 = time.monotonic()
    p = spawn(cmd, limit + 30, {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})},
              stdout)
    if p is None:
        check(False, "%s: still running after %.0f s" % (name, limit + 30))
        return None
    dt = time.monotonic() - t0
    err = p.stderr.decode("utf-8", "replace")
    check(p.returncode >= 0, "%s: killed by signal %d: %s" % (name, -p.returncode, err[-300:]))
    check(p.returncode == want, "%s: exit %d, wanted %d: %s" % (name, p.returncode, want,
                                                                err[-300:]))
    if msg is not None:
        check(re.search(msg, err) is not None, "%s: stderr %r does not match %r" %
              (name, err[-300:], msg))
    check(dt < limit, "%s: took %.1f s (bound %.0f s)" % (name, dt, limit))
    if os.environ.get("CLIENT_HOSTILE_VERBOSE"):
        print("%6.2f s  exit %d  %6.1f MiB  %s" % (dt, p.returncode, p.maxrss / 1024, name),
              file=sys.stderr)
    if human:
        check(CTRL.search(p.stderr) is None, "%s: control bytes on stderr: %r" % (name, p.stderr[-200:]))
        check(CTRL.search(p.stdout) is None, "%s: control bytes on stdout: %r" % (name, p.stdout[-200:]))
    if out_re is not None:
        out = p.stdout.decode("utf-8", "replace")
        check(re.search(out_re, out) is not None, "%s: stdout %r does not match %r" %
              (name, out[-300:], out_re))
    return p


def always(*acts):
    return lambda m, path, b, n: list(acts)


def by_path(table, default=None):
    """table: list of (regex on the path, actions or function(n) -> actions)."""
    def h(m, path, b, n):
        for rx, a in table:
            if re.search(rx, path):
                return a(n) if callable(a) else a
        return default or resp(404, '{"error":{"code":"NotFound","message":"no"}}')
    return h


J = lambda s: resp(200, s)  # noqa: E731
GET = ["get", "2.7"]

# a working answer first, so a failure below is the hostile part, not the harness
run("sane get", GET, always(*J('{"state":"Ready","entry":{"contents":"ok","collectionId":"c",'
                                 '"transactionId":"2.7"}}')), 0, out_re=r"^ok\n$")

# -- bodies that are not what the route promises
run("get: not JSON", GET, always(*J("<html>oops</html>")), 1, r"not valid JSON")
run("get: empty body", GET, always(*J("")), 1, r"not valid JSON")
run("get: JSON array", GET, always(*J("[1,2]")), 1, r"unexpected state")
run("get: state not a string", GET, always(*J('{"state":7}')), 1, r"unexpected state")
run("get: Ready without entry", GET, always(*J('{"state":"Ready"}')), 1, r"no entry.contents")
run("get: contents a number", GET, always(*J('{"state":"Ready","entry":{"contents":5}}')), 1,
    r"no entry.contents")
run("get: state with escapes", GET, always(*J('{"state":"\\u001b[2Jx"}')), 1,
    r"unexpected state")
run("get: truncated JSON", GET, always(*J('{"state":"Ready","entry":{"conte')), 1,
    r"not valid JSON")
run("get: NUL in JSON", GET, always(*J('{"state":"Re\\u0000ady"}')), 1, r"not valid JSON")
run("get: duplicate keys", GET, always(*J('{"state":"Loading","state":"Ready","entry":'
                                          '{"contents":"x"}}')), 1, r"not valid JSON")
run("get: deep nesting", GET, always(*J("[" * 100000 + "]" * 100000)), 1, r"not valid JSON")
run("get: Loading forever", GET, always(*J('{"state":"Loading"}')), 1, r"timed out", limit=10)

# -- HTTP-level breakage: no usable answer is exit 3
run("get: connection closed", GET, always("close"), 3, r"Server returned nothing|Empty reply|"
    r"closed|reset")
run("get: garbage status line", GET, always(b"HTTQ/9 OK\r\n\r\n", "close"), 3, r"cledger: GET")
run("get: truncated body", GET, always(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"s",
                                       "close"), 3, r"cledger: GET")
run("get: bad chunked", GET, always(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    b"zz\r\nabc\r\n", "close"), 3, r"cledger: GET")
run("get: no answer in time", GET, always(("sleep", 4)), 3, r"[Tt]imeout|timed out", limit=8)
run("get: stalls mid-body", GET, always(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{",
                                        ("sleep", 4)), 3, r"[Tt]imeout|timed out", limit=8)
run("get: a 200 KiB header", GET,
    always(b"HTTP/1.1 200 OK\r\nX-Big: " + b"v" * 200000 + b"\r\nContent-Length: 2\r\n\r\n{}",
           "close"), 3, r"cledger: GET")
run("get: 1 MiB of headers", GET,
    always(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000)
                                             for i in range(1000)) +
           b"Content-Length: 2\r\n\r\n{}", "close"), 3, r"cledger: GET")
run("get: body over 64 MiB", GET,
    always(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % ((64 << 20) + 10),
           b"[" + b" " * (64 << 20) + b"]        "), 3, r"larger than", limit=30)
run("get: 503 forever", GET, always(*resp(503, '{"error":{"code":"ServiceUnavailable",'
                                          '"message":"busy"}}', headers=[("Retry-After", "1e308")])),
    1, r"503 ServiceUnavailable", limit=10)
run("get: 429 with odd Retry-After", GET,
    lambda m, p, b, n: resp(429, "", headers=[("Retry-After", ["nan", "-5", "inf", "1" * 40,
                                                               "0x10"][n % 5])]),
    1, r"429", limit=10)

# -- error answers: code and message are the server's, printed without control bytes
run("error: escapes in code and message", GET,
    always(*resp(400, '{"error":{"code":"Bad%s","message":"m%s\\nnext line"}}' %
                 ("\\u001b[31m", "\\u0007"))), 1, r"400 Bad.*\[31m.*m")
run("error: code not a string", GET, always(*resp(403, '{"error":{"code":5,"message":[]}}')), 1,
    r"403")
run("error: error not an object", GET, always(*resp(404, '{"error":"nope"}')), 1, r"404 HTTP error")
run("error: raw escapes in a text body", GET,
    always(*resp(500, "boom" + ESC + "\r\n", ctype="text/plain")), 1, r"500 HTTP error: boom")
run("error: --json prints a JSON error body", GET + ["--json"],
    always(*resp(409, '{"error":{"code":"Conflict","message":"m"}}')), 1, r"409 Conflict",
    out_re=r'^\{"error":\{"code":"Conflict","message":"m"\}\}\n$')
run("error: --json and a body that is not JSON", GET + ["--json"],
    always(*resp(502, "<html>" + ESC + "</html>", ctype="text/html")), 1, r"502 HTTP error",
    out_re=r"^$")
run("error: binary body", GET, always(*resp(502, bytes(range(256)), ctype=None)), 1, r"502")
run("error: 401 hint", GET, always(*resp(401, '{"error":{"code":"Unauthorized","message":"x"}}')),
    1, r"registered user")
run("error: 1xx then 200", GET,
    always(b"HTTP/1.1 100 Continue\r\n\r\n", *J('{"state":"Ready","entry":{"contents":"y"}}')), 0,
    out_re=r"^y\n$")

# -- put: the transaction id header
PUT = ["put", "hello"]
run("put: no transaction id", PUT, always(*J('{"collectionId":"c","transactionId":"2.1"}')), 1,
    r"did not return x-ms-ccf-transaction-id")
run("put: transaction id with escapes", PUT,
    always(*resp(200, '{}', headers=[(TX, "2.1" + ESC)])), 1, r"transaction id")
run("put: transaction id not term.seqno", PUT, always(*resp(200, '{}', headers=[(TX, "abc")])), 1,
    r"transaction id")
run("put: transaction id too long", PUT, always(*resp(200, '{}', headers=[(TX, "1" * 200)])), 1,
    r"transaction id")
run("put: sane", PUT, always(*resp(200, '{}', headers=[(TX, "2.15")])), 0, out_re=r"^2\.15\n$")
run("put --json: body not JSON", PUT + ["--json"], always(*resp(200, 'nope', headers=[(TX, "2.1")])),
    1, r"not valid JSON", human=False)
run("put --wait: Invalid", PUT + ["--wait"],
    by_path([(r"/status", J('{"state":"Invalid","transactionId":"2.1"}'))],
            resp(200, '{}', headers=[(TX, "2.1")])), 1, r"unexpected transaction state 'Invalid'")
run("put --wait: state with escapes", PUT + ["--wait"],
    by_path([(r"/status", J('{"state":"Pen\\u001b[2Jding"}'))],
            resp(200, '{}', headers=[(TX, "2.1")])), 1, r"unexpected transaction state")
run("put --wait: Pending forever", PUT + ["--wait"],
    by_path([(r"/status", J('{"state":"Pending"}'))], resp(200, '{}', headers=[(TX, "2.1")])), 1,
    r"timed out", limit=10)
run("put --wait: 404 forever", PUT + ["--wait"],
    by_path([(r"/status", resp(404, '{"error":{"code":"TransactionNotFound","message":"x"}}'))],
            resp(200, '{}', headers=[(TX, "2.1")])), 1, r"404 TransactionNotFound", limit=10)

# -- status
run("status: escapes in state", ["status", "2.1"], always(*J('{"state":"Comm\\u001bitted"}')), 0,
    out_re=r"^Comm\\x1bitted\n$")
run("status: state missing", ["status", "2.1"], always(*J('{}')), 0, out_re=r"^unknown\n$")

# -- list: pages
LIST = ["list"]
run("list: entries missing", LIST, always(*J('{"state":"Ready"}')), 1, r"no \"entries\" array")
run("list: entries an object", LIST, always(*J('{"state":"Ready","entries":{}}')), 1,
    r"no \"entries\" array")
run("list: entry not an object", LIST,
    always(*J('{"state":"Ready","entries":[{"transactionId":"2.1"},1]}')), 1,
    r"entry 1 of the page has no transactionId")
run("list: transactionId a number", LIST,
    always(*J('{"state":"Ready","entries":[{"transactionId":7,"contents":"x"}]}')), 1,
    r"entry 0 of the page has no transactionId")
run("list: escapes", LIST,
    always(*J('{"state":"Ready","entries":[{"transactionId":"2.1","contents":[]},'
              '{"transactionId":"2.\\u001b5","contents":"a\\u001bb\\u009b"}]}')), 0,
    out_re="^2\\.1\t\n2\\.\\\\x1b5\ta\\\\x1bb\\\\u009b\n$")
run("list: nextLink to another host", LIST,
    always(*J('{"state":"Ready","entries":[],"nextLink":"https://evil.example/app/transactions"}')),
    1, r"leaves the endpoint")
for bad in ("/app/transactions?x=1 2", "/app/transactions?x=1\\r\\nX-Evil: 1", "/app/t%zz",
            "/app/t\\u00e9", "/app/t#frag"):
    run("list: nextLink %r is not a URL path" % bad, LIST,
        always(*J('{"state":"Ready","entries":[],"nextLink":"%s"}' % bad)), 1,
        r"nextLink is not a URL path")
run("list: nextLink to itself", LIST,
    lambda m, p, b, n: J('{"state":"Ready","entries":[],"nextLink":"%s"}' % p), 1,
    r"nextLink repeats", limit=10)
run("list: nextLink not a string", LIST,
    always(*J('{"state":"Ready","entries":[],"nextLink":5}')), 0)
run("list: nextLink cycle", LIST,
    lambda m, p, b, n: J('{"state":"Ready","entries":[],"nextLink":"/app/transactions?api-version='
                         '2022-05-13&fromTransactionId=2.%d"}' % (9 if n % 2 else 5)), 1,
    r"nextLink goes back \(fromTransactionId seqno 5 after 9\)")
run("list: nextLink cycle without fromTransactionId", LIST,
    lambda m, p, b, n: J('{"state":"Ready","entries":[],"nextLink":"/app/transactions?x=%d"}' %
                         (n % 2)), 1, r"no fromTransactionId", limit=120, timeout="60")
run("list: Loading forever", LIST,
    lambda m, p, b, n: J('{"state":"Loading","entries":[],"nextLink":"%s"}' % p), 1,
    r"stays Loading", limit=10)

# -- users
run("user list: ledgerUsers missing", ["user", "list"], always(*J('{}')), 1,
    r"no \"ledgerUsers\" array")
run("user list: not a user", ["user", "list"],
    always(*J('{"ledgerUsers":[{"userId":"a","assignedRole":"Reader"},5]}')), 1,
    r"ledgerUsers\[1\] of the page is not a user", out_re=r"^$")  # no line of a refused page
run("user list: role not a string", ["user", "list"],
    always(*J('{"ledgerUsers":[{"userId":"u","assignedRoles":["Reader",null]}]}')), 1,
    r"ledgerUsers\[0\] of the page is not a user")
run("user list: userId a number", ["user", "list"],
    always(*J('{"ledgerUsers":[{"userId":7,"assignedRole":"Reader"}]}')), 1, r"not a user")
run("user list: escapes", ["user", "list"],
    always(*J('{"ledgerUsers":[{"userId":"u\\u001b","assignedRoles":["Reader","R\\u0007"]},'
              '{"userId":"v","assignedRole":"Con\\ntributor"}]}')), 0,
    out_re="^u\\\\x1b\tReader,R\\\\x07\nv\tCon\\\\ntributor\n$")
run("user list: nextLink to itself", ["user", "list"],
    lambda m, p, b, n: J('{"ledgerUsers":[],"nextLink":"%s"}' % p), 1, r"nextLink repeats",
    limit=10)
run("user get: not an object", ["user", "get", "someone"], always(*J('[]')), 1, r"not a user")
run("user get: escapes", ["user", "get", "someone"],
    always(*J('{"userId":"a\\u001b]0;t\\u0007","assignedRoles":["R\\u001b"]}')), 0,
    out_re="^a\\\\x1b]0;t\\\\x07\tR\\\\x1b\n$")
run("user add: 204 instead of 200", ["user", "add", "someone", "--role", "Reader"],
    always(*resp(204, "")), 1, r"204")
run("user rm: 200 instead of 204", ["user", "rm", "someone"], always(*J('{}')), 1, r"200")

# -- list --json and user list --json are printed page by page (docs/client.md, Output): the
# document's opening, each page's elements once the page is checked, the closing at the end
DUMP = lambda v: json.dumps(v, sort_keys=True, separators=(",", ":"))  # noqa: E731 (cl_json_dump)
ENTRY = lambda k: {"collectionId": "c", "contents": "entry %06d" % k,  # noqa: E731
                   "transactionId": "2.%d" % k}
USER = lambda k: ({"userId": "user%d" % k, "assignedRole": "Reader"} if k % 2 else  # noqa: E731
                  {"userId": "user%d" % k, "assignedRoles": ["Contributor", "Reader"]})


def paged(route, field, total, per, item, bad=None):
    """A listing of items 1..total, per a page, each nextLink one fromTransactionId further (the
    seqno of the page's first item). bad: {first item of a page: actions or function(body)}."""
    def h(m, path, b, n):
        f = re.search(r"fromTransactionId=2\.(\d+)", path)
        first = int(f.group(1)) if f else 1
        body = {field: [item(k) for k in range(first, min(first + per, total + 1))]}
        if field == "entries":
            body["state"] = "Ready"
        if first + per <= total:
            body["nextLink"] = "%s?api-version=x&fromTransactionId=2.%d" % (route, first + per)
        a = (bad or {}).get(first)
        if callable(a):
            return J(a(body))
        return a if a is not None else J(DUMP(body))
    return h


def document(field, items, complete=True):
    """The bytes `--json` prints for a listing of items; complete=False: what a failure leaves."""
    doc = '{"%s":[%s' % (field, ",".join(DUMP(i) for i in items))
    if complete:
        doc += ']}\n' if field == "ledgerUsers" else '],"state":"Ready"}\n'
    return doc.encode()


def listed(name, p, field, items, complete=True):
    """Checks that stdout is the document of items (complete) or exactly its first part: the
    opening and the items given, without closing or newline, so never valid JSON."""
    if p is None:
        return
    want = document(field, items, complete)
    check(p.stdout == want, "%s: stdout %d bytes %r..%r, wanted %d bytes %r..%r" %
          (name, len(p.stdout), p.stdout[:60], p.stdout[-60:], len(want), want[:60], want[-60:]))
    if not complete:
        check(document(field, items + [{}]).startswith(p.stdout),
              "%s: stdout is not the beginning of the document" % name)
        try:
            json.loads(p.stdout)
            parses = True
        except ValueError:
            parses = False
        check(not parses, "%s: the unterminated document parses as JSON" % name)


LJ = ["list", "--json"]
UJ = ["user", "list", "--json"]
ERR500 = resp(500, '{"error":{"code":"Boom","message":"m"}}')
EN = [ENTRY(k) for k in range(1, 16)]
p = run("list --json: five pages", LJ, paged("/app/transactions", "entries", 15, 3, ENTRY), 0)
listed("list --json: five pages", p, "entries", EN)
check(len(requests) == 5, "list --json: five pages: %d requests" % len(requests))
p = run("list --json: no entries", LJ, always(*J('{"state":"Ready","entries":[]}')), 0)
listed("list --json: no entries", p, "entries", [])
p = run("list --json: escapes stay JSON", LJ,
        always(*J('{"state":"Ready","entries":[{"transactionId":"2.1","contents":"a\\u001bb\\u009b'
                  '\\n\\u00e9","x":[1,2.5,null,true]}]}')), 0)
if p is not None:
    check(json.loads(p.stdout) == {"state": "Ready", "entries": [
        {"transactionId": "2.1", "contents": "a\x1bb\x9b\n\xe9", "x": [1, 2.5, None, True]}]},
        "list --json: escapes stay JSON: %r" % p.stdout)
p = run("user list --json: three pages", UJ, paged("/app/ledgerUsers", "ledgerUsers", 5, 2, USER),
        0)
listed("user list --json: three pages", p, "ledgerUsers", [USER(k) for k in range(1, 6)])

# human output: a line per element, each page once the whole of it has been checked (the page
# with the failure prints nothing), flushed page by page
def lines(field, items):
    if field == "entries":
        return "".join("%s\t%s\n" % (e["transactionId"], e["contents"]) for e in items).encode()
    return "".join("%s\t%s\n" % (u["userId"], u.get("assignedRole") or ",".join(
        u["assignedRoles"])) for u in items).encode()


def printed(name, p, field, items):
    if p is not None:
        want = lines(field, items)
        check(p.stdout == want, "%s: stdout %r, wanted %r" % (name, p.stdout[-200:], want[-200:]))


p = run("list: five pages", ["list"], paged("/app/transactions", "entries", 15, 3, ENTRY), 0)
printed("list: five pages", p, "entries", EN)
p = run("user list: three pages", ["user", "list"],
        paged("/app/ledgerUsers", "ledgerUsers", 5, 2, USER), 0)
printed("user list: three pages", p, "ledgerUsers", [USER(k) for k in range(1, 6)])
p = run("list: page 4 an entry without transactionId", ["list"],
        paged("/app/transactions", "entries", 15, 3, ENTRY,
              {10: lambda b: DUMP(dict(b, entries=[ENTRY(10), {"contents": "x"}]))}), 1,
        r"entry 1 of the page has no transactionId")
printed("list: page 4 an entry without transactionId", p, "entries", EN[:9])
p = run("list: page 4's nextLink goes back", ["list"],
        paged("/app/transactions", "entries", 15, 3, ENTRY,
              {10: lambda b: DUMP(dict(b, nextLink="/app/transactions?fromTransactionId=2.4"))}),
        1, r"nextLink goes back")
printed("list: page 4's nextLink goes back", p, "entries", EN[:9])
p = run("user list: page 2 not a user", ["user", "list"],
        paged("/app/ledgerUsers", "ledgerUsers", 5, 2, USER,
              {3: lambda b: DUMP(dict(b, ledgerUsers=[USER(3), {"userId": 3}]))}), 1,
        r"ledgerUsers\[1\] of the page is not a user")
printed("user list: page 2 not a user", p, "ledgerUsers", [USER(1), USER(2)])

# a failure on the first page prints what it always did: the JSON error body, or nothing
run("list --json: first page an error", LJ, always(*ERR500), 1, r"500 Boom: m",
    out_re=r'^\{"error":\{"code":"Boom","message":"m"\}\}\n$')
run("list --json: first page not JSON", LJ, always(*J("<html>")), 1, r"not valid JSON",
    out_re=r"^$")
run("list --json: first page's nextLink leaves the endpoint", LJ,
    paged("/app/transactions", "entries", 15, 3, ENTRY,
          {1: lambda b: DUMP(dict(b, nextLink="https://evil.example/app/transactions"))}),
    1, r"leaves the endpoint", out_re=r"^$")

# a failure on a later page: the beginning of the document (every page checked before), not
# closed, no error body, and the exit status and message of that failure
MID = [
    ("an error", {10: ERR500}, 1, r"500 Boom: m"),
    ("not JSON", {10: J("<html>" + ESC)}, 1, r"not valid JSON"),
    ("no entries array", {10: J('{"state":"Ready"}')}, 1, r"no \"entries\" array"),
    ("an entry without transactionId",
     {10: lambda b: DUMP(dict(b, entries=[ENTRY(10), {"contents": "x"}]))}, 1,
     r"entry 1 of the page has no transactionId"),
    ("a nextLink that goes back",
     {10: lambda b: DUMP(dict(b, nextLink="/app/transactions?fromTransactionId=2.4"))}, 1,
     r"nextLink goes back"),
    ("connection closed", {10: ["close"]}, 3, r"cledger: GET"),
    ("no answer in time", {10: [("sleep", 4)]}, 3, r"[Tt]imeout|timed out"),
]
for what, bad, want, msg in MID:
    name = "list --json: page 4 %s" % what
    p = run(name, LJ, paged("/app/transactions", "entries", 15, 3, ENTRY, bad), want, msg)
    listed(name, p, "entries", EN[:9], complete=False)
p = run("user list --json: page 2 not a user", UJ,
        paged("/app/ledgerUsers", "ledgerUsers", 5, 2, USER,
              {3: lambda b: DUMP(dict(b, ledgerUsers=[USER(3), {"userId": 3}]))}), 1,
        r"ledgerUsers\[1\] of the page is not a user")
listed("user list --json: page 2 not a user", p, "ledgerUsers", [USER(1), USER(2)], complete=False)
p = run("user list --json: page 3 an error", UJ,
        paged("/app/ledgerUsers", "ledgerUsers", 5, 2, USER, {5: ERR500}), 1, r"500 Boom")
listed("user list --json: page 3 an error", p, "ledgerUsers", [USER(k) for k in range(1, 5)],
       complete=False)

# standard output that cannot be written: the listing stops with exit 2 (it used to exit 0 with
# the whole document lost), human and --json alike
for args in (LJ, ["list"]):
    name = "%s > /dev/full" % " ".join(args)
    run(name, args, paged("/app/transactions", "entries", 3000, 100, ENTRY), 2,
        r"cannot write to standard output", stdout="/dev/full")
    check(len(requests) < 30, "%s: %d requests after the output failed" % (name, len(requests)))

# memory: 3,000 pages of 100 entries (300,000 entries, 27 MB of JSON) through a client whose peak
# resident set stays that of one page: 12 MiB (ASan build: 50 MiB). The client that kept every
# entry for one final dump peaked at 273 MiB here (ASan build: 426 MiB). The same for 300,000
# users in human output, which the client used to keep until the last page (243 MiB).
ASAN = b"__asan_init" in open(CL, "rb").read()
BIG, PER = 300000, 100
RSS_MIB = 120 if ASAN else 40  # ASan: its shadow and a 16 MiB quarantine on top


def big_entry(k):
    return {"collectionId": "c", "contents": "entry %06d of a long listing" % k,
            "transactionId": "2.%d" % k}


def big_user(k):
    return {"userId": "%064X" % k, "assignedRoles": ["Contributor", "Reader"]}


for name, args, route, field, item in (
        ("list --json", LJ, "/app/transactions", "entries", big_entry),
        ("user list", ["user", "list"], "/app/ledgerUsers", "ledgerUsers", big_user)):
    name += ": 3,000 pages"
    t0 = time.monotonic()
    p = run(name, args, paged(route, field, BIG, PER, item), 0, limit=60 if ASAN else 20,
            timeout="10", env={"ASAN_OPTIONS": "quarantine_size_mb=16"} if ASAN else None)
    if p is None:
        continue
    check(len(requests) == BIG // PER, "%s: %d requests" % (name, len(requests)))
    check(p.maxrss < RSS_MIB * 1024, "%s: the client's peak resident set is %.0f MiB (bound %d "
          "MiB)" % (name, p.maxrss / 1024, RSS_MIB))
    if args == LJ:
        listed(name, p, field, [item(k) for k in range(1, BIG + 1)])
        try:
            check(len(json.loads(p.stdout)[field]) == BIG, "%s: count" % name)
        except ValueError as e:
            check(False, "%s: stdout is not JSON: %s" % (name, e))
    else:
        printed(name, p, field, [item(k) for k in range(1, BIG + 1)])
    print("%s: %.1f s, client peak RSS %.1f MiB" % (name, time.monotonic() - t0, p.maxrss / 1024),
          file=sys.stderr)

# -- identity and receipts
ID = ["identity"]
run("identity: no certificate", ID, always(*J('{"ledgerId":"x"}')), 1,
    r"no usable ledgerTlsCertificate")
run("identity: not PEM", ID, always(*J('{"ledgerTlsCertificate":"-----BEGIN CERTIFICATE-----\\n'
                                      'AAAA\\n-----END CERTIFICATE-----\\n"}')), 1,
    r"no usable ledgerTlsCertificate")
run("identity: number", ID, always(*J('{"ledgerTlsCertificate":1}')), 1,
    r"no usable ledgerTlsCertificate")
with open(os.path.join(work, "srv.pem")) as f:
    srv_pem = f.read()
run("identity: certificate plus escapes", ID,
    always(*J('{"ledgerTlsCertificate":%s}' % json.dumps(srv_pem + ESC))), 1,
    r"no usable ledgerTlsCertificate")
with open(os.path.join(work, "ca.pem")) as f:
    ca_pem = f.read()
PEMJ = json.dumps(ca_pem)[:-1]  # the PEM as a JSON string literal, without its closing quote
run("identity: trailing NUL tolerated", ID,
    always(*J('{"ledgerId":"x","ledgerTlsCertificate":%s\\u0000\\u0000"}' % PEMJ)), 0,
    out_re="^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n$")
run("identity: escaped backslash before u0000 stays refused", ID,
    always(*J('{"ledgerTlsCertificate":%s\\\\u0000"}' % PEMJ)),
    1, r"no usable ledgerTlsCertificate")
run("identity: NUL inside the PEM stays refused", ID,
    always(*J('{"ledgerTlsCertificate":"-----BEGIN\\u0000 CERTIFICATE-----"}')), 1,
    r"not valid JSON")
REC = ["receipt", "2.7", "--verify"]
run("receipt: garbage receipt", REC, always(*J('{"state":"Ready","receipt":{"cert":5}}')), 1,
    r"receipt INVALID", human=False)
run("receipt: no receipt", REC, always(*J('{"state":"Ready"}')), 1, r"receipt INVALID",
    human=False)
run("receipt: Loading forever", REC, always(*J('{"state":"Loading"}')), 1, r"timed out", limit=10)
out_file = os.path.join(work, "invalid-receipt.json")
run("receipt --out: an invalid receipt is not written", REC + ["--out", out_file],
    always(*J('{"state":"Ready","receipt":{"cert":5}}')), 1, r"receipt INVALID", human=False)
check(not os.path.exists(out_file), "receipt --out: the invalid receipt was written")

# the server is gone: exit 3 quickly
lsock.shutdown(socket.SHUT_RDWR)
lsock.close()
run("server gone", GET, always(), 3, r"cledger: GET", limit=10)

shutil.rmtree(work, ignore_errors=True)
T.finish()
