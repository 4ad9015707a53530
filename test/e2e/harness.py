"""Helpers for end-to-end tests: start the real crest binary and real backend
processes on free loopback ports, and talk HTTP to them as a client would."""

import fcntl
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

from prometheus_text import check

HERE = os.path.dirname(os.path.abspath(__file__))
BACKEND = os.path.join(HERE, "..", "support", "backend.py")
CREST = os.environ.get("CREST_BINARY", os.path.join(HERE, "..", "..", "build", "proxy", "crest"))

# Client connections a test opened, closed by CrestTestCase.tearDown.
_open_clients = []


_given_ports = set()
# One lock file per port handed out, held (flock) until this process exits:
# test processes that ctest runs side by side never hand out the same port,
# even in the moment between this check and the backend or crest binding it.
_PORT_LOCKS = os.path.join(tempfile.gettempdir(), "crest-e2e-ports")
_held_locks = []


def _reserve(port):
    os.makedirs(_PORT_LOCKS, exist_ok=True)
    fd = os.open(os.path.join(_PORT_LOCKS, str(port)), os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held_locks.append(fd)
    return True


def free_port():
    """A port nothing listens on, below Linux's ephemeral range (32768+) so it is
    never the source port of a live connection, and never handed out twice, in
    this process or in another test process running at the same time."""
    while True:
        port = random.randrange(20000, 32000)
        if port in _given_ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if not _reserve(port):
            continue
        _given_ports.add(port)
        return port


def wait_until(predicate, timeout=5.0, what="the condition"):
    """Polls predicate() until it is true; its last value. Fails with `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.01)


def wait_for_port(port, timeout=10.0, host="127.0.0.1", proc=None):
    """Waits until something listens on the port; with `proc`, raises ProcessLookupError
    as soon as that process has exited instead."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise ProcessLookupError(f"the process for port {port} exited with {proc.returncode}")
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout}s")


class Backend:
    """A backend process (test/support/backend.py) that names itself in X-Backend."""

    def __init__(self, name, tmpdir, extra_args=()):
        self.name = name
        self.log_path = os.path.join(tmpdir, f"backend-{name}.log")
        # A port something outside the tests took after free_port() looked: another one.
        for attempt in range(3):
            self.port = free_port()
            self.address = f"127.0.0.1:{self.port}"
            open(self.log_path, "w").close()
            self.proc = subprocess.Popen(
                [sys.executable, BACKEND, "--port", str(self.port), "--name", name, "--log", self.log_path,
                 *extra_args],
                stdout=subprocess.DEVNULL)
            try:
                wait_for_port(self.port, proc=self.proc)
                return
            except ProcessLookupError:
                if attempt == 2:
                    raise

    def requests_seen(self):
        with open(self.log_path) as f:
            return [line.rstrip("\n") for line in f]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Crest:
    """The crest binary on a generated configuration."""

    def __init__(self, config_text, tmpdir, wait_port=None, args=()):
        self.config_path = os.path.join(tmpdir, "crest.yaml")
        self.write_config(config_text)
        self.stderr_path = os.path.join(tmpdir, "crest.stderr")
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([CREST, "-c", self.config_path, *args], stderr=self.stderr,
                                     stdout=subprocess.DEVNULL)
        if wait_port:
            try:
                wait_for_port(wait_port)
            except RuntimeError:
                self.stop()
                raise RuntimeError("crest did not start:\n" + self.log())

    def write_config(self, text):
        with open(self.config_path, "w") as f:
            f.write(text)

    def log(self):
        if not self.stderr.closed:
            self.stderr.flush()
        with open(self.stderr_path) as f:
            return f.read()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15):
        """SIGTERM, then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        return self.proc.returncode


def run_crest(args, timeout=20):
    """Runs crest to completion; (exit code, stdout, stderr)."""
    p = subprocess.run([CREST, *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


class Response:
    def __init__(self, status, reason, headers, body, version):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name, value)
        self.body = body
        self.version = version

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)


class Client:
    """A raw HTTP/1 client connection: sends bytes as given, parses responses."""

    def __init__(self, port, host="127.0.0.1", source=None, timeout=10):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""
        _open_clients.append(self)

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def request(self, method, path, headers=None, body=b"", version="1.1", host="test.local"):
        lines = [f"{method} {path} HTTP/{version}"]
        hdrs = dict(headers or {})
        if host is not None and "Host" not in hdrs:
            hdrs["Host"] = host
        if body and "Content-Length" not in hdrs and "Transfer-Encoding" not in hdrs:
            hdrs["Content-Length"] = str(len(body))
        lines += [f"{k}: {v}" for k, v in hdrs.items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed by crest")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("latin-1")

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, head_request=False):
        status_line = self._line()
        version, status, reason = (status_line.split(" ", 2) + [""])[:3]
        headers = []
        while True:
            line = self._line()
            if not line:
                break
            k, v = line.split(":", 1)
            headers.append((k.strip(), v.strip()))
        resp = Response(int(status), reason, headers, b"", version)
        if head_request or resp.status in (204, 304) or resp.status < 200:
            return resp
        te = resp.header("Transfer-Encoding")
        cl = resp.header("Content-Length")
        if te and te.lower() == "chunked":
            body = b""
            while True:
                size = int(self._line().split(";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body += self._exact(size)
                self._line()
            resp.body = body
        elif cl is not None:
            resp.body = self._exact(int(cl))
        else:
            while True:
                try:
                    self._fill()
                except ConnectionError:
                    break
            resp.body, self.buf = self.buf, b""
        return resp

    def closed_by_peer(self, timeout=5):
        """True when crest closes the connection (EOF or reset) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def get(port, path, headers=None, **kw):
    """One request on a fresh connection."""
    c = Client(port, **kw)
    try:
        c.request("GET", path, headers)
        return c.read_response()
    finally:
        c.close()


def concurrently(call, count):
    """Runs `call` on `count` threads at once; returns their results (in
    completion order) and the seconds until the last one ended."""
    results = []
    threads = [threading.Thread(target=lambda: results.append(call())) for _ in range(count)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.monotonic() - start


def admin_get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.read().decode()


class CrestTestCase(unittest.TestCase):
    """Gives each test a scratch folder and stops what it started."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="crest-e2e-")
        self.tmpdir = self.tmp.name
        self.backends = []
        self.crests = []

    def tearDown(self):
        reports = []
        try:
            while _open_clients:
                _open_clients.pop().close()
            for c in self.crests:
                c.stop()
                # Under the sanitizer build, any report fails the test that caused it.
                log = c.log()
                if any(m in log for m in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")):
                    reports.append(log)
        finally:
            # Backends hold the test's output pipe: one left running would hang ctest.
            for b in self.backends:
                b.stop()
            self.tmp.cleanup()
        self.assertEqual(reports, [], "sanitizer report:\n" + "\n".join(reports))

    def backend(self, name, *args):
        b = Backend(name, self.tmpdir, args)
        self.backends.append(b)
        return b

    def metric(self, name, **labels):
        """The value of one sample on the admin port's /metrics (None when absent); the page must parse."""
        _, text = admin_get(self.admin_port, "/metrics")
        problems, samples = check(text)
        self.assertEqual(problems, [], text)
        return samples.get((name, tuple(sorted(labels.items()))))

    def crest(self, config, wait_port, args=()):
        c = Crest(config, self.tmpdir, wait_port, args)
        self.crests.append(c)
        # Listeners accept into their backlog once bound; the admin port is
        # bound a moment later, so wait for it too.
        admin = getattr(self, "admin_port", None)
        if wait_port and admin and f"127.0.0.1:{admin}" in config:
            wait_for_port(admin)
        return c

    def crest_without_healthy_servers(self, status, body, content_type):
        """Starts crest on a pool "api" whose one server refuses connections
        and whose route answers with this fallback, and has that server
        marked down (a request's failed connect)."""
        routes = ["      - match: {path_prefix: /}", "        pool: api", "        fallback:",
                  f"          status: {status}", f"          body: '{body}'", f"          content_type: {content_type}"]
        pool = f"    retries: 0\n    servers:\n      - address: 127.0.0.1:{free_port()}"
        self.crest(self.simple_config({"api": pool}, routes=routes), self.port)
        get(self.port, "/")

    def simple_config(self, pools, routes=None, extra="", listen_port=None, admin_port=None,
                      workers=2):
        """A one-listener configuration. pools: {name: [backend, ...] or (yaml text)}."""
        self.port = listen_port or free_port()
        self.admin_port = admin_port or free_port()
        lines = [f"workers: {workers}", "admin:", f"  listen: 127.0.0.1:{self.admin_port}", extra,
                 "listeners:", "  - name: public", f"    listen: 127.0.0.1:{self.port}", "    routes:"]
        lines += routes or [f"      - pool: {next(iter(pools))}"]
        lines.append("pools:")
        for name, spec in pools.items():
            lines.append(f"  {name}:")
            if isinstance(spec, str):
                lines.append(spec)
            else:
                lines.append("    servers:")
                lines += [f"      - address: {b.address}" for b in spec]
        return "\n".join(lines) + "\n"
