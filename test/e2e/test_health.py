"""End to end: active health checks, passive ejection, retries, 503."""

import collections
import json
import os
import time
import unittest

from harness import Client, CrestTestCase, admin_get, get, wait_until


class HealthTest(CrestTestCase):
    def server_healthy(self, pool, address):
        status = json.loads(admin_get(self.admin_port, "/status")[1])
        return [s for s in status["pools"][pool]["servers"] if s["address"] == address][0]["healthy"]

    def pool(self, servers, check=True, extra=""):
        lines = ["    retries: 1"]
        if check:
            lines += ["    health_check:", "      path: /healthz", "      interval: 200ms", "      timeout: 150ms"]
        lines += ["    servers:"] + [f"      - address: {s.address}" for s in servers]
        return "\n".join(lines) + extra

    def loop(self, seconds, counts, errors, new_connection_every=5):
        """A steady client: keep-alive requests with a fresh connection now and then."""
        deadline = time.time() + seconds
        client = None
        i = 0
        while time.time() < deadline:
            if client is None or i % new_connection_every == 0:
                client = Client(self.port)
            i += 1
            try:
                client.request("GET", "/bytes/10")
                r = client.read_response()
                if r.status != 200:
                    errors.append(r.status)
                counts[r.header("X-Backend")] += 1
            except (ConnectionError, OSError) as e:
                errors.append(repr(e))
                client = None
            time.sleep(0.005)

    def test_failing_health_check_drains_a_server_and_it_comes_back(self):
        fail_file = os.path.join(self.tmpdir, "b-fails")
        a = self.backend("a")
        b = self.backend("b", "--fail-file", fail_file)
        self.crest(self.simple_config({"web": self.pool([a, b])}), self.port)
        errors = []
        warmup = collections.Counter()
        self.loop(0.5, warmup, errors)
        self.assertGreater(warmup["b"], 0)
        open(fail_file, "w").close()
        draining = collections.Counter()
        self.loop(2.0, draining, errors)
        drained = collections.Counter()
        self.loop(1.0, drained, errors)
        self.assertEqual(drained["b"], 0, drained)
        self.assertGreater(drained["a"], 0)
        status = json.loads(admin_get(self.admin_port, "/status")[1])
        b_state = [s for s in status["pools"]["web"]["servers"] if s["address"] == b.address][0]
        self.assertFalse(b_state["healthy"])
        os.remove(fail_file)
        wait_until(lambda: self.server_healthy("web", b.address), what="b healthy again")
        recovered = collections.Counter()
        self.loop(1.0, recovered, errors)
        self.assertGreater(recovered["b"], 0, recovered)
        self.assertEqual(errors, [])
        self.assertIn(f"health: pool web server {b.address}: healthy -> down (status 500)", self.crests[0].log())
        self.assertIn(f"health: pool web server {b.address}: down -> healthy (status 200)", self.crests[0].log())
        self.assertIn("GET /healthz", b.requests_seen())

    def test_a_server_killed_mid_run_costs_no_request(self):
        a, b = self.backend("a"), self.backend("b")
        self.crest(self.simple_config({"web": self.pool([a, b], check=False)}), self.port)
        errors = []
        counts = collections.Counter()
        import threading
        killer = threading.Timer(0.7, b.stop)
        killer.start()
        self.loop(2.5, counts, errors, new_connection_every=3)
        killer.join()
        self.assertEqual(errors, [])
        self.assertGreater(counts["b"], 0)
        self.assertIn(f"health: pool web server {b.address}: healthy -> down (connect refused, passive)",
                      self.crests[0].log())

    def test_no_healthy_server_is_a_quick_503_with_retry_after(self):
        a, b = self.backend("a"), self.backend("b")
        self.crest(self.simple_config({"api": self.pool([a, b])}), self.port)
        self.assertEqual(get(self.port, "/").status, 200)
        a.stop()
        b.stop()
        wait_until(lambda: not self.server_healthy("api", a.address) and not self.server_healthy("api", b.address),
                   what="both servers down after three failed checks")
        start = time.time()
        r = get(self.port, "/")
        elapsed = time.time() - start
        self.assertEqual(r.status, 503)
        self.assertEqual(r.header("Retry-After"), "1")
        self.assertEqual(r.body, b'no healthy server in pool "api"\n')
        self.assertLess(elapsed, 0.1)

    def test_without_checks_an_ejected_server_is_retried_after_a_back_off(self):
        a = self.backend("a")
        port_b = self.backend("b")
        self.crest(self.simple_config({"web": self.pool([a, port_b], check=False)}), self.port)
        port_b.stop()
        for _ in range(4):
            self.assertEqual(get(self.port, "/").status, 200)
        log = self.crests[0].log()
        self.assertIn("healthy -> down (connect refused, passive)", log)
        wait_until(lambda: "down -> healthy" in self.crests[0].log(), what="the back-off's end")
        self.assertIn("down -> healthy (retrying after 2000ms without active checks)", self.crests[0].log())


if __name__ == "__main__":
    unittest.main()
