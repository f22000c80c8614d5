"""bench/benchlib.py: what the Python benchmarks against cledgerd share (slow_readers.py,
slow_uploads.py): a cledgerd on a fresh data directory with its administrator's TLS context,
keep-alive clients, resident memory, and the markdown summary with the machine it ran on."""
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


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


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


class Cledgerd:
    """cledgerd from BIN_DIR on a fresh data directory under `scratch_env` (default /tmp) and a
    free port, ready (GET /node/ready answered 200) when the constructor returns; .ctx is the
    administrator's TLS context, .client an open Client. stop() ends it and removes the directory
    unless `keep_env` is 1."""

    def __init__(self, bin_dir, prefix, scratch_env, keep_env):
        exe = os.path.join(bin_dir, "cledgerd")
        if not os.access(exe, os.X_OK):
            sys.exit(f"{prefix}: {exe} not found (build it first)")
        self.keep = os.environ.get(keep_env) == "1"
        self.work = tempfile.mkdtemp(prefix=f"cledger-{prefix}-",
                                     dir=os.environ.get(scratch_env, "/tmp"))
        data = os.path.join(self.work, "data")
        self.port = free_port()
        self.log = open(os.path.join(self.work, "cledgerd.log"), "w")
        self.proc = subprocess.Popen([exe, "--data-dir", data, "--listen",
                                      f"127.0.0.1:{self.port}", "--log-level", "warn"],
                                     stdout=self.log, stderr=self.log)
        for _ in range(100):
            if os.path.exists(os.path.join(data, "admin_key.pem")):
                try:
                    self.ctx = ssl.create_default_context(
                        cafile=os.path.join(data, "service_cert.pem"))
                    self.ctx.load_cert_chain(os.path.join(data, "admin_cert.pem"),
                                             os.path.join(data, "admin_key.pem"))
                    self.client = Client(self.port, self.ctx)
                    if self.client.request("GET", "/node/ready")[0] == 200:
                        return
                except (OSError, ssl.SSLError, ConnectionError, httpraw.HTTPRawError):
                    pass
            time.sleep(0.1)
        self.stop()
        sys.exit(f"{prefix}: cledgerd did not become ready")

    def rss(self):
        return rss_kib(self.proc.pid)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        if not self.keep:
            shutil.rmtree(self.work, ignore_errors=True)


def report(title, rows, out):
    """Prints `rows` ((measure, value), ...) after the date and the machine as a markdown table
    under `title`, and writes it to `out`."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    rows = [("date", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())),
            ("machine", f"{cpu}, {os.cpu_count()} cores; {platform.platform()}")] + list(rows)
    text = f"# {title}\n\n| measure | value |\n|---|---|\n"
    text += "".join(f"| {k} | {v} |\n" for k, v in rows)
    print(text)
    with open(out, "w") as f:
        f.write(text)
