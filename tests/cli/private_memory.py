#!/usr/bin/python3
"""A private ledger's contents are not left behind in cledgerd's memory once the requests that
carried them are done. Usage: private_memory.py BIN_DIR WORK_DIR.

A private ledger on loopback is written entries of three kinds (short; 1 KB; ~7.9 KB with JSON
escapes, which the parser decodes into a copy), each holding a random marker, over several
keep-alive connections. Every entry is then read back (one by one, through a list page, as the
collection's current entry and in a receipt's application claims); a body that is JSON but not an
object quotes its start in the 400's message, and a request carries the marker in an Authorization
header. The connections close, except one left idle (its buffers are given back after 1 s). Then every writable mapping of the process (heap, thread
arenas and stacks) is read through /proc/PID/mem and searched for the marker: each hit is a copy
of a private entry's plaintext that a free or a reuse left unwiped (HTTP buffers, TLS records,
jansson strings, the ledger's decryption and encoding buffers).

The search is shown to see the right memory by a control: the collection id, public and kept by
the node for the life of the process, must be found. Exit 0 when the marker is nowhere and the
control is found."""
import http.client
import json
import os
import re
import secrets
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from netutil import free_port  # noqa: E402
from tally import Tally  # noqa: E402

BIN, WORK = sys.argv[1], sys.argv[2]
API = "api-version=2024-01-26-preview"
T = Tally("private_memory")
check = T.check


def connect(port, d):
    ctx = ssl.create_default_context(cafile=os.path.join(d, "service_cert.pem"))
    ctx.load_cert_chain(os.path.join(d, "admin_cert.pem"), os.path.join(d, "admin_key.pem"))
    return http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)


def call(c, method, path, body=None, headers=None):
    h = {"content-type": "application/json"} if body is not None else {}
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    return r.status, data, r


def scan(pid, needles):
    """Offsets of each needle in the process's writable private mappings: {needle: [where]}."""
    found = {n: [] for n in needles}
    longest = max(len(n) for n in needles)
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            f = line.split()
            perms, name = f[1], f[5] if len(f) > 5 else "[anon]"
            if not perms.startswith("rw") or perms[3] != "p" or name.startswith("[v"):
                continue
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            pos = lo
            while pos < hi:
                n = min(hi - pos, 8 << 20)
                try:
                    mem.seek(pos)
                    blob = mem.read(n + longest if pos + n < hi else n)
                except OSError:
                    break
                for nd in needles:
                    for m in re.finditer(re.escape(nd), blob):
                        if m.start() < n:
                            found[nd].append((name, pos + m.start(), blob[max(0, m.start() - 24):
                                                                          m.end() + 24]))
                pos += n
    return found


def main():
    d = os.path.join(WORK, "privmem")
    port = free_port()
    log = open(os.path.join(WORK, "privmem.log"), "w")
    p = subprocess.Popen([os.path.join(BIN, "cledgerd"), "--data-dir", d, "--listen",
                          "127.0.0.1:%d" % port, "--ledger-type", "private", "--log-level", "warn"],
                         stdout=log, stderr=log)
    try:
        run(p, port, d)
    finally:
        p.terminate()
        p.wait(timeout=30)
    T.finish()


def run(p, port, d):
    marker = ("PLAINMARK" + secrets.token_hex(8)).encode()
    coll = "coll-" + secrets.token_hex(8)
    m = marker.decode()
    contents = [
        "a" + m + "b",
        ("x" * 480) + m + ("y" * 500),
        ("line\n\"quoted\" caf\u00e9 " * 300) + m + ("\t tail \u20ac" * 200),
    ]
    contents[2] = contents[2][:7900]
    check(m in contents[2], "the long entry keeps its marker")
    for _ in range(100):
        try:
            c = connect(port, d)
            st, _, _ = call(c, "GET", "/node/ready")
            if st == 200:
                c.close()
                break
        except OSError:
            pass
        time.sleep(0.1)
    conns = [connect(port, d) for _ in range(4)]
    ids = []
    for i in range(60):
        body = json.dumps({"contents": contents[i % 3]}, ensure_ascii=bool(i % 2))
        st, data, r = call(conns[i % 4], "POST", "/app/transactions?collectionId=%s&%s" % (coll, API),
                           body.encode())
        check(st == 200, "write %d: %d %r" % (i, st, data[:200]))
        ids.append(r.getheader("x-ms-ccf-transaction-id"))
    for _ in range(200):
        st, data, _ = call(conns[0], "GET", "/app/transactions/%s/status?%s" % (ids[-1], API))
        if st == 200 and json.loads(data).get("state") == "Committed":
            break
        time.sleep(0.05)
    else:
        check(False, "the last write was not committed")
    for i, tx in enumerate(ids):
        for _ in range(100):
            st, data, _ = call(conns[i % 4], "GET",
                               "/app/transactions/%s?collectionId=%s&%s" % (tx, coll, API))
            if st != 200 or json.loads(data).get("state") != "Loading":
                break
            time.sleep(0.05)
        check(st == 200 and json.loads(data)["entry"]["contents"] == contents[i % 3],
              "read %s: %d %r" % (tx, st, data[:200]))
    st, data, _ = call(conns[1], "GET", "/app/transactions?collectionId=%s&%s" % (coll, API))
    for _ in range(100):
        if st != 200 or json.loads(data).get("state") != "Loading":
            break
        time.sleep(0.05)
        st, data, _ = call(conns[1], "GET", "/app/transactions?collectionId=%s&%s" % (coll, API))
    check(st == 200 and m.encode() in data, "list page: %d %r" % (st, data[:200]))
    st, data, _ = call(conns[2], "GET",
                       "/app/transactions/current?collectionId=%s&%s" % (coll, API))
    check(st == 200 and m.encode() in data, "current entry: %d %r" % (st, data[:200]))
    for _ in range(200):  # the receipt's applicationClaims carry the contents
        st, data, _ = call(conns[0], "GET", "/app/transactions/%s/receipt?%s" % (ids[1], API))
        if st != 200 or json.loads(data).get("state") == "Ready":
            break
        time.sleep(0.05)
    check(st == 200 and m.encode() in data, "receipt with application claims: %d %r"
          % (st, data[:200]))
    st, data, _ = call(conns[3], "POST", "/app/transactions?%s" % API,
                       json.dumps(contents[0]).encode())
    check(st == 400 and m.encode() in data, "a scalar body is quoted in its 400: %d %r"
          % (st, data[:200]))
    st, data, _ = call(conns[3], "GET", "/app/transactions?%s" % API,
                       headers={"authorization": "Bearer " + m})
    check(st == 200, "a request with a bearer token (the certificate decides): %d" % st)
    for c in conns[:3]:
        c.close()
    time.sleep(1.5)  # the closes are seen; the idle connection gives back its buffers after 1 s

    found = scan(p.pid, [marker, coll.encode()])
    check(found[coll.encode()], "control: the collection id %s is in memory" % coll)
    for name, addr, ctx in found[marker][:10]:
        print("  marker in %s at %#x: %r" % (name, addr, ctx), file=sys.stderr)
    check(not found[marker], "a private entry's plaintext was found %d time(s) in cledgerd's "
          "memory" % len(found[marker]))
    conns[3].close()


if __name__ == "__main__":
    main()
