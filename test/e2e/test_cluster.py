"""Cluster-scope rate limits: two crest instances share one bucket in a real
redis-server (Debian's, started here on a free loopback port); Redis slow,
stopped and restarted while they serve."""

import os
import shutil
import socket
import subprocess
import time
import unittest

from harness import Client, CrestTestCase, free_port, wait_for_port, wait_until

RATE, BURST = 40, 40


class Redis:
    def __init__(self, port, tmpdir):
        self.port, self.tmpdir = port, tmpdir
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", self.tmpdir,
                                      "--enable-debug-command", "local"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, proc=self.proc)

    def command(self, line, wait=True):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(line.encode() + b"\r\n")
            if wait:
                return s.recv(1024)
            time.sleep(0.05)  # received and begun; the answer is not waited for

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@unittest.skipUnless(shutil.which("redis-server"), "redis-server is not installed (scripts/install-deps)")
class ClusterRateLimitTest(CrestTestCase):
    def setUp(self):
        super().setUp()
        self.redis = Redis(free_port(), self.tmpdir)
        self.backends.append(self.redis)
        self.web = self.backend("web")

    def instance(self, scope="cluster"):
        """A crest instance of its own (ports, folder) limiting / at RATE/s, BURST."""
        folder = os.path.join(self.tmpdir, f"crest-{len(self.crests)}")
        os.mkdir(folder)
        routes = ["      - pool: web", "        rate_limit:", f"          rate: {RATE}/s",
                  f"          burst: {BURST}", f"          scope: {scope}"]
        extra = f"cluster:\n  redis: 127.0.0.1:{self.redis.port}\n  timeout: 50ms"
        config = self.simple_config({"web": [self.web]}, routes=routes, extra=extra)
        from harness import Crest
        crest = Crest(config, folder, self.port)
        self.crests.append(crest)
        crest.port, crest.admin = self.port, self.admin_port
        return crest

    def calls(self, crest, result):
        self.admin_port = crest.admin
        return self.metric("crest_cluster_calls_total", result=result) or 0

    def admitted(self, instances, seconds):
        """Requests answered 200 (not 429) while sending as fast as possible to all
        `instances` in turn for `seconds`; and the elapsed time."""
        clients = [Client(c.port) for c in instances]
        ok, start = 0, time.monotonic()
        while time.monotonic() - start < seconds:
            for c in clients:
                c.request("GET", "/")
                status = c.read_response().status
                self.assertIn(status, (200, 429))
                ok += status == 200
        return ok, time.monotonic() - start

    def ready(self, crest):
        # The workers connect on their first cluster-scope request: one asks.
        c = Client(crest.port)
        wait_until(lambda: (c.request("GET", "/"), c.read_response())[1] and self.calls(crest, "ok") > 0,
                   what="a decision from Redis")

    def test_two_instances_share_one_bucket(self):
        a, b = self.instance(), self.instance()
        self.ready(a)
        self.ready(b)
        self.redis.command("FLUSHALL")
        ok, elapsed = self.admitted([a, b], 1.5)
        expected = BURST + RATE * elapsed
        self.assertLess(abs(ok - expected), 0.1 * expected + 4, (ok, expected))

    def test_local_scope_limits_each_instance_alone(self):
        a, b = self.instance(scope="local"), self.instance(scope="local")
        ok, elapsed = self.admitted([a, b], 1.5)
        expected = 2 * (BURST + RATE * elapsed)
        self.assertLess(abs(ok - expected), 0.1 * expected + 4, (ok, expected))

    def test_without_redis_no_request_waits_and_limits_hold_per_instance(self):
        a = self.instance()
        self.ready(a)
        # Slow: Redis stops answering for a second; nobody waits past the timeout.
        self.redis.command("DEBUG SLEEP 1", wait=False)
        c = Client(a.port)
        for _ in range(5):
            start = time.monotonic()
            c.request("GET", "/")
            self.assertIn(c.read_response().status, (200, 429))
            self.assertLess(time.monotonic() - start, 0.5)
        self.assertGreater(self.calls(a, "timeout"), 0)
        # Down: decided per instance at once, the local bucket still limits.
        self.redis.stop()
        statuses = []
        for _ in range(BURST * 2 + 20):
            start = time.monotonic()
            c.request("GET", "/")
            statuses.append(c.read_response().status)
            self.assertLess(time.monotonic() - start, 0.5)
        self.assertIn(429, statuses)
        self.assertGreater(self.calls(a, "error"), 0)
        # Back: the shared bucket is used again, without a restart of crest.
        self.redis.start()
        ok_before = self.calls(a, "ok")

        def asks_redis():
            c.request("GET", "/")
            c.read_response()
            return self.calls(a, "ok") > ok_before
        wait_until(asks_redis, timeout=15, what="decisions from the restarted Redis")
        self.assertIn("unreachable", a.log())
        self.assertIn("reachable: cluster-scope rate limits are shared again", a.log())


if __name__ == "__main__":
    unittest.main()
