#!/usr/bin/python3
"""bench/slow_readers.py: what list pages held for readers that never read cost cledgerd.

    python3 bench/slow_readers.py [BIN_DIR=build-bench/bin]

Starts cledgerd on a fresh data directory, writes SLOW_ENTRIES entries of SLOW_BODY bytes into one
collection (so a list page is cut at 1 MiB), then opens SLOW_CONNS TLS connections with a 4 KiB
receive buffer that each ask for the first page of that collection once and then read nothing.
While they hang, cledgerd's VmRSS is sampled every 0.2 s; the largest sample against the one
before the connections is what the pages held cost. Meanwhile one well-behaved client checks that
writes are answered 200 and list pages 200 or 503 + Retry-After (the cap, 64 MiB); the hanging
connections are closed by cledgerd's send timeout (10 s). Then RSS once they are gone.

Environment: SLOW_CONNS (300), SLOW_ENTRIES (300), SLOW_BODY (8000), SLOW_SECONDS (14),
SLOW_OUT (markdown summary; default bench/slow-readers-results.md), SLOW_DIR (scratch parent,
/tmp). Prints the summary and writes it as markdown.
"""
import json
import os
import platform
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests/cli/lib"))
import httpraw  # noqa: E402
from netutil import free_port  # noqa: E402
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build-bench/bin"))
CONNS = int(os.environ.get("SLOW_CONNS", "300"))
ENTRIES = int(os.environ.get("SLOW_ENTRIES", "300"))
BODY = int(os.environ.get("SLOW_BODY", "8000"))
SECONDS = float(os.environ.get("SLOW_SECONDS", "14"))
OUT = os.environ.get("SLOW_OUT", os.path.join(ROOT, "bench/slow-readers-results.md"))
API = "api-version=2024-08-22-preview"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Client:
    """One keep-alive TLS connection with the administrator's certificate."""

    def __init__(self, port, ctx, rcvbuf=0):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(30)
        s.connect(("127.0.0.1", port))
        self.s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        self.reader = httpraw.Reader(self.s)  # keeps what came past a response

    def send(self, method, path, body=None):
        data = body.encode() if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        self.s.sendall(head.encode() + b"\r\n" + data)

    def response(self):
        """(status, headers, body) of the next response; httpraw.Closed (a ConnectionError) when
        the server closed before it, httpraw.BadResponse when it is malformed or cut short."""
        r = self.reader.read_response()
        return r.status, r.headers, r.body

    def request(self, method, path, body=None):
        self.send(method, path, body)
        return self.response()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def main():
    cledgerd = os.path.join(BIN, "cledgerd")
    if not os.access(cledgerd, os.X_OK):
        sys.exit(f"slow_readers.py: {cledgerd} not found (build it first)")
    work = tempfile.mkdtemp(prefix="cledger-slow-", dir=os.environ.get("SLOW_DIR", "/tmp"))
    data = os.path.join(work, "data")
    port = free_port()
    log = open(os.path.join(work, "cledgerd.log"), "w")
    proc = subprocess.Popen([cledgerd, "--data-dir", data, "--listen", f"127.0.0.1:{port}",
                             "--log-level", "warn"], stdout=log, stderr=log)
    hanging = []
    try:
        ctx = ssl.create_default_context()
        for _ in range(100):
            if os.path.exists(os.path.join(data, "admin_key.pem")):
                try:
                    ctx = ssl.create_default_context(cafile=os.path.join(data, "service_cert.pem"))
                    ctx.load_cert_chain(os.path.join(data, "admin_cert.pem"),
                                        os.path.join(data, "admin_key.pem"))
                    c = Client(port, ctx)
                    if c.request("GET", "/node/ready")[0] == 200:
                        break
                except (OSError, ssl.SSLError, ConnectionError):
                    pass
            time.sleep(0.1)
        else:
            sys.exit("slow_readers.py: cledgerd did not become ready")
        contents = "x" * BODY
        last = None
        for i in range(ENTRIES):
            st, hdr, _ = c.request("POST", f"/app/transactions?collectionId=big&{API}",
                                   json.dumps({"contents": contents}))
            assert st == 200, st
            last = hdr["x-ms-ccf-transaction-id"]
        for _ in range(200):  # committed, so that the first page is full
            st, _, b = c.request("GET", f"/app/transactions/{last}/status?{API}")
            if json.loads(b).get("state") == "Committed":
                break
            time.sleep(0.05)
        st, _, page = c.request("GET", f"/app/transactions?collectionId=big&{API}")
        page_bytes = len(page)
        n_page = len(json.loads(page).get("entries", []))
        time.sleep(0.5)
        rss0 = rss_kib(proc.pid)

        t0 = time.monotonic()
        for _ in range(CONNS):
            h = Client(port, ctx, rcvbuf=4096)
            h.send("GET", f"/app/transactions?collectionId=big&{API}")
            hanging.append(h)
        opened = time.monotonic() - t0
        peak, samples, writes_ok, lists = rss0, [], 0, {}
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            r = rss_kib(proc.pid)
            peak = max(peak, r)
            samples.append(r)
            st, _, _ = c.request("POST", f"/app/transactions?collectionId=small&{API}",
                                 json.dumps({"contents": "still writing"}))
            writes_ok += st == 200
            st, hdr, _ = c.request("GET", f"/app/transactions?collectionId=big&{API}")
            key = f"{st}" + (" Retry-After" if st == 503 and "retry-after" in hdr else "")
            lists[key] = lists.get(key, 0) + 1
            time.sleep(0.2)
        for h in hanging:
            h.close()
        hanging = []
        time.sleep(1.0)
        rss_after = rss_kib(proc.pid)
        st_after, _, _ = c.request("GET", f"/app/transactions?collectionId=big&{API}")
        c.close()
        alive = proc.poll() is None
    finally:
        for h in hanging:
            h.close()
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if os.environ.get("SLOW_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mib = lambda k: f"{k / 1024:.1f} MiB"  # noqa: E731
    rows = [
        ("date", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())),
        ("machine", f"{cpu}, {os.cpu_count()} cores; {platform.platform()}"),
        ("first page of the collection", f"{n_page} entries, {page_bytes} bytes"),
        ("connections that ask for it and never read", f"{CONNS} (opened in {opened:.1f} s, "
         "4 KiB receive buffers)"),
        ("cledgerd VmRSS before them", mib(rss0)),
        ("cledgerd VmRSS, largest sample while they hang", f"{mib(peak)} (+{mib(peak - rss0)}; "
         f"{len(samples)} samples over {SECONDS:.0f} s)"),
        ("cledgerd VmRSS 1 s after they are gone", mib(rss_after)),
        ("another client meanwhile: writes answered 200", f"{writes_ok} of {len(samples)}"),
        ("another client meanwhile: list pages", ", ".join(f"{v} x {k}" for k, v in
                                                          sorted(lists.items()))),
        ("a list page after they are gone", str(st_after)),
        ("cledgerd still running", "yes" if alive else "**no**"),
    ]
    text = "# cledgerd with list readers that never read (bench/slow_readers.py)\n\n"
    text += "| measure | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    print(text)
    with open(OUT, "w") as f:
        f.write(text)
    if not alive or writes_ok != len(samples) or st_after != 200:
        sys.exit(1)


if __name__ == "__main__":
    main()
