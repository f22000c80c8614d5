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
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, Client, Cledgerd, httpraw, mib, report  # noqa: E402

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build-bench/bin"))
CONNS = int(os.environ.get("UPLOAD_CONNS", "300"))
DECLARED = int(os.environ.get("UPLOAD_DECLARED", "1000000"))
SENT = int(os.environ.get("UPLOAD_SENT", "900000"))
SECONDS = float(os.environ.get("UPLOAD_SECONDS", "8"))
OUT = os.environ.get("UPLOAD_OUT", os.path.join(ROOT, "bench/slow-uploads-results.md"))
API = "api-version=2024-08-22-preview"


def upload(port, ctx, out, lock):
    """One slow upload: headers, SENT bytes of the body, then nothing; records how it ended."""
    what, c = "held", None
    try:
        c = Client(port, ctx)
        c.s.sendall((f"POST /app/transactions?{API} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {DECLARED}\r\n\r\n")
                    .encode())
        body = b'{"contents":"' + b"u" * (SENT - 13)
        for i in range(0, len(body), 65536):
            c.s.sendall(body[i:i + 65536])
        c.s.settimeout(SECONDS + 15)
        st, hdr, _ = c.response()
        what = f"{st}" + (" Retry-After" if "retry-after" in hdr else "")
    except httpraw.Closed:
        what = "closed"
    except (OSError, ssl.SSLError, httpraw.HTTPRawError) as e:
        what = "refused while sending" if isinstance(e, (BrokenPipeError, ConnectionResetError,
                                                         ssl.SSLError)) else type(e).__name__
    if c is not None:
        c.close()
    with lock:
        out[what] = out.get(what, 0) + 1


def main():
    srv = Cledgerd(BIN, "upl", "UPLOAD_DIR", "UPLOAD_KEEP")
    threads, ends, lock = [], {}, threading.Lock()
    try:
        time.sleep(0.5)
        rss0 = srv.rss()
        t0 = time.monotonic()
        for _ in range(CONNS):
            t = threading.Thread(target=upload, args=(srv.port, srv.ctx, ends, lock), daemon=True)
            t.start()
            threads.append(t)
        peak, samples, writes_ok = rss0, 0, 0
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            peak = max(peak, srv.rss())
            samples += 1
            st, _, _ = srv.client.request("POST", f"/app/transactions?{API}",
                                          json.dumps({"contents": "still writing"}))
            writes_ok += st == 200
            time.sleep(0.2)
        for t in threads:
            t.join(timeout=SECONDS + 20)
        took = time.monotonic() - t0
        time.sleep(1.0)
        rss_after = srv.rss()
        alive = srv.alive()
    finally:
        srv.stop()

    rows = [
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
    report("cledgerd with large uploads that never finish (bench/slow_uploads.py)", rows, OUT)
    if not alive or writes_ok != samples:
        sys.exit(1)


if __name__ == "__main__":
    main()
