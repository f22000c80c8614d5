#!/usr/bin/python3
"""bench/slow_uploads.py: what large request bodies sent slowly cost cledgerd.

    python3 bench/slow_uploads.py [BIN_DIR=build-bench/bin]

Starts cledgerd on a fresh data directory, then opens UPLOAD_CONNS TLS connections that each
send the headers of a write with a Content-Length of UPLOAD_DECLARED bytes, then UPLOAD_SENT
bytes of its body, and then stop sending (the body is never finished). While they hang,
cledgerd's VmRSS is sampled every 0.2 s, and one well-behaved client writes a small entry each
time (it must be answered 200). The HTTP layer counts bodies over 64 KiB against a pool of
64 MiB and answers the uploads past it 503 + Retry-After; the others are closed by the request
timeout (10 s). Reports the largest RSS against the one before the uploads, how the uploads
were answered, and RSS once they are gone.

Environment: UPLOAD_CONNS (300), UPLOAD_DECLARED (1000000), UPLOAD_SENT (900000),
UPLOAD_SECONDS (8), UPLOAD_OUT (markdown summary; default bench/slow-uploads-results.md),
UPLOAD_DIR (scratch parent, /tmp).
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
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests/cli/lib"))
import httpraw  # noqa: E402
from netutil import free_port  # noqa: E402
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build-bench/bin"))
CONNS = int(os.environ.get("UPLOAD_CONNS", "300"))
DECLARED = int(os.environ.get("UPLOAD_DECLARED", "1000000"))
SENT = int(os.environ.get("UPLOAD_SENT", "900000"))
SECONDS = float(os.environ.get("UPLOAD_SECONDS", "8"))
OUT = os.environ.get("UPLOAD_OUT", os.path.join(ROOT, "bench/slow-uploads-results.md"))
API = "api-version=2024-08-22-preview"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def connect(port, ctx):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    return ctx.wrap_socket(s, server_hostname="127.0.0.1")


def upload(port, ctx, out, lock):
    """One slow upload: headers, SENT bytes of the body, then nothing; records how it ended."""
    what = "held"
    try:
        s = connect(port, ctx)
        head = (f"POST /app/transactions?{API} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {DECLARED}\r\n\r\n")
        s.sendall(head.encode())
        body = b'{"contents":"' + b"u" * (SENT - 13)
        for i in range(0, len(body), 65536):
            s.sendall(body[i:i + 65536])
        s.settimeout(SECONDS + 15)
        r = httpraw.Reader(s).read_response()
        what = f"{r.status}" + (" Retry-After" if "retry-after" in r.headers else "")
    except httpraw.Closed:
        what = "closed"
    except (OSError, ssl.SSLError, httpraw.HTTPRawError) as e:
        what = "refused while sending" if isinstance(e, (BrokenPipeError, ConnectionResetError,
                                                         ssl.SSLError)) else type(e).__name__
    with lock:
        out[what] = out.get(what, 0) + 1


def main():
    cledgerd = os.path.join(BIN, "cledgerd")
    if not os.access(cledgerd, os.X_OK):
        sys.exit(f"slow_uploads.py: {cledgerd} not found (build it first)")
    work = tempfile.mkdtemp(prefix="cledger-upl-", dir=os.environ.get("UPLOAD_DIR", "/tmp"))
    data = os.path.join(work, "data")
    port = free_port()
    log = open(os.path.join(work, "cledgerd.log"), "w")
    proc = subprocess.Popen([cledgerd, "--data-dir", data, "--listen", f"127.0.0.1:{port}",
                             "--log-level", "warn"], stdout=log, stderr=log)
    threads, ends, lock = [], {}, threading.Lock()
    try:
        for _ in range(100):
            if os.path.exists(os.path.join(data, "admin_key.pem")):
                try:
                    ctx = ssl.create_default_context(cafile=os.path.join(data, "service_cert.pem"))
                    ctx.load_cert_chain(os.path.join(data, "admin_cert.pem"),
                                        os.path.join(data, "admin_key.pem"))
                    c = connect(port, ctx)
                    c.sendall(b"GET /node/ready HTTP/1.1\r\nHost: x\r\n\r\n")
                    reader = httpraw.Reader(c)
                    if reader.read_response().status == 200:
                        break
                except (OSError, ssl.SSLError, httpraw.HTTPRawError):
                    pass
            time.sleep(0.1)
        else:
            sys.exit("slow_uploads.py: cledgerd did not become ready")
        time.sleep(0.5)
        rss0 = rss_kib(proc.pid)
        t0 = time.monotonic()
        for _ in range(CONNS):
            t = threading.Thread(target=upload, args=(port, ctx, ends, lock), daemon=True)
            t.start()
            threads.append(t)
        peak, samples, writes_ok = rss0, 0, 0
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            peak = max(peak, rss_kib(proc.pid))
            samples += 1
            b = json.dumps({"contents": "still writing"}).encode()
            c.sendall(f"POST /app/transactions?{API} HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      f"application/json\r\nContent-Length: {len(b)}\r\n\r\n".encode() + b)
            writes_ok += reader.read_response().status == 200
            time.sleep(0.2)
        for t in threads:
            t.join(timeout=SECONDS + 20)
        took = time.monotonic() - t0
        time.sleep(1.0)
        rss_after = rss_kib(proc.pid)
        alive = proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if os.environ.get("UPLOAD_KEEP") != "1":
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
        ("uploads", f"{CONNS} connections, Content-Length {DECLARED}, {SENT} bytes sent, "
         "then nothing"),
        ("cledgerd VmRSS before them", mib(rss0)),
        ("cledgerd VmRSS, largest sample while they hang", f"{mib(peak)} (+{mib(peak - rss0)}; "
         f"{samples} samples over {SECONDS:.0f} s)"),
        ("how the uploads ended", ", ".join(f"{v} x {k}" for k, v in sorted(ends.items())) +
         f" (all within {took:.1f} s)"),
        ("cledgerd VmRSS 1 s after they are gone", mib(rss_after)),
        ("another client meanwhile: small writes answered 200", f"{writes_ok} of {samples}"),
        ("cledgerd still running", "yes" if alive else "**no**"),
    ]
    text = "# cledgerd with large uploads that never finish (bench/slow_uploads.py)\n\n"
    text += "| measure | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    print(text)
    with open(OUT, "w") as f:
        f.write(text)
    if not alive or writes_ok != samples:
        sys.exit(1)


if __name__ == "__main__":
    main()
