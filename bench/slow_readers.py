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
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, Client, Cledgerd, mib, report  # noqa: E402

BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build-bench/bin"))
CONNS = int(os.environ.get("SLOW_CONNS", "300"))
ENTRIES = int(os.environ.get("SLOW_ENTRIES", "300"))
BODY = int(os.environ.get("SLOW_BODY", "8000"))
SECONDS = float(os.environ.get("SLOW_SECONDS", "14"))
OUT = os.environ.get("SLOW_OUT", os.path.join(ROOT, "bench/slow-readers-results.md"))
API = "api-version=2024-08-22-preview"


def main():
    srv = Cledgerd(BIN, "slow", "SLOW_DIR", "SLOW_KEEP")
    port, ctx, c = srv.port, srv.ctx, srv.client
    hanging = []
    try:
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
        rss0 = srv.rss()

        t0 = time.monotonic()
        for _ in range(CONNS):
            h = Client(port, ctx, rcvbuf=4096)
            h.send("GET", f"/app/transactions?collectionId=big&{API}")
            hanging.append(h)
        opened = time.monotonic() - t0
        peak, samples, writes_ok, lists = rss0, [], 0, {}
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            r = srv.rss()
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
        rss_after = srv.rss()
        st_after, _, _ = c.request("GET", f"/app/transactions?collectionId=big&{API}")
        c.close()
        alive = srv.alive()
    finally:
        for h in hanging:
            h.close()
        srv.stop()

    rows = [
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
    report("cledgerd with list readers that never read (bench/slow_readers.py)", rows, OUT)
    if not alive or writes_ok != len(samples) or st_after != 200:
        sys.exit(1)


if __name__ == "__main__":
    main()
