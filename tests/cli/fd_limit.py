#!/usr/bin/python3
"""A server started with a low descriptor limit, then sent many more TCP connections than it has
descriptors for: it must not spin on a listener it cannot accept from (CPU, log lines), and it must
serve again once they are gone. Usage: fd_limit.py BIN_DIR WORK_DIR. cledgerd caps its connections
to fit the limit (no accept ever fails); cledger-attestd has no cap, so its accept runs out of
descriptors and the spare-descriptor path closes the connections it cannot take; when even the spare
cannot come back, the listener rests for a moment instead of spinning. attestd runs twice: with
worker threads, and with everything on the main loop ("httpThreads": 0)."""
import os
import resource
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
import httpraw  # noqa: E402
from netutil import free_port  # noqa: E402

BIN, WORK = sys.argv[1], sys.argv[2]
fails = 0


def check(ok, what):
    global fails
    if not ok:
        fails += 1
        print("FAIL: " + what, file=sys.stderr)


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        f = f.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def limit(n):
    return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def serves(port, cafile, path):
    for _ in range(100):
        try:
            ctx = ssl.create_default_context(cafile=cafile) if cafile else \
                ssl._create_unverified_context()
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                    ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path)
                try:
                    r = httpraw.read_response(s, timeout=5)
                except (httpraw.Closed, httpraw.BadResponse):  # answered, but not with a response
                    return False
                return r.version == "HTTP/1.1" and r.status == 200
        except OSError:
            time.sleep(0.1)
    return False


def offer(port, n, socks):
    """Opens up to n connections (until the kernel refuses), appended to socks."""
    for _ in range(n):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:
            break


def cpu_over(pid, settle, secs):
    """CPU seconds pid used in secs seconds, after settle seconds."""
    time.sleep(settle)
    c0 = cpu_s(pid)
    time.sleep(secs)
    return cpu_s(pid) - c0


def run(name, cmd, nofile, cafile_of, path, logre, starve=False):
    port = free_port()
    log = open(os.path.join(WORK, name + ".log"), "w+")
    p = subprocess.Popen(cmd(port), stdout=log, stderr=log, preexec_fn=limit(nofile))
    spinning = False
    try:
        check(serves(port, cafile_of(), path), "%s: not serving at start" % name)
        socks = []
        offer(port, 400, socks)
        used = cpu_over(p.pid, 0.5, 2)
        check(used < 0.5, "%s: %.2f s of CPU in 2 s with %d connections offered" % (name, used, len(socks)))
        if used >= 0.5:
            spinning = True
            return  # it logs gigabytes and may never serve again (killed below)
        if starve:
            # Not even the spare descriptor can come back (its slot taken, here by a soft limit
            # below every descriptor the server holds; at run time by another of its threads):
            # the listener must rest, not spin (it did, at 100% CPU, until a descriptor freed).
            resource.prlimit(p.pid, resource.RLIMIT_NOFILE, (8, nofile))
            offer(port, 20, socks)
            used = cpu_over(p.pid, 0.3, 1.5)
            check(used < 0.3, "%s: %.2f s of CPU in 1.5 s with no descriptor for the spare" % (name, used))
            if used >= 0.3:
                spinning = True
                return
            resource.prlimit(p.pid, resource.RLIMIT_NOFILE, (nofile, nofile))
        for s in socks:
            s.close()
        time.sleep(0.5)
        check(serves(port, cafile_of(), path), "%s: not serving after the connections went" % name)
        log.seek(0)
        lines = log.read(4 << 20).splitlines()
        storm = [l for l in lines if "accept failed" in l or "out of file descriptors" in l]
        check(len(storm) <= 5, "%s: %d accept lines in the log" % (name, len(storm)))
        check(any(logre in l for l in lines), "%s: no %r in the log" % (name, logre))
    finally:
        if spinning:
            p.kill()
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            check(False, "%s: SIGTERM not served in 30 s" % name)
            p.kill()
            p.wait()


ld = os.path.join(WORK, "fdl-ledger")
run("cledgerd", lambda port: [os.path.join(BIN, "cledgerd"), "--data-dir", ld, "--listen",
                              "127.0.0.1:%d" % port],
    300, lambda: os.path.join(ld, "service_cert.pem"), b"/node/ready", "at most 44 client connections")
ad = os.path.join(WORK, "fdl-attest")
run("cledger-attestd", lambda port: [os.path.join(BIN, "cledger-attestd"), "--data-dir", ad,
                                     "--listen", "127.0.0.1:%d" % port, "--admin-cert",
                                     os.path.join(ld, "admin_cert.pem")],
    64, lambda: None, b"/certs", "out of file descriptors", starve=True)
# The same with every connection on the main loop ("httpThreads": 0). Its listener was libuv's
# uv_listen, which calls back with UV_EMFILE in a loop that never returns once its own reserve
# descriptor is gone: 100% CPU, millions of log lines, and SIGTERM not served.
ad1 = os.path.join(WORK, "fdl-attest-single")
cfg = os.path.join(WORK, "fdl-attest-single.json")
with open(cfg, "w") as f:
    f.write('{"httpThreads": 0}')
run("cledger-attestd-single", lambda port: [
    os.path.join(BIN, "cledger-attestd"), "--data-dir", ad1, "--listen", "127.0.0.1:%d" % port,
    "--admin-cert", os.path.join(ld, "admin_cert.pem"), "--config", cfg],
    64, lambda: None, b"/certs", "out of file descriptors", starve=True)
print("fd_limit: %s" % ("ok" if fails == 0 else "%d failed" % fails))
sys.exit(1 if fails else 0)
