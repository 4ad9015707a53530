"""End to end: canary traffic splitting (SPEC.md, split)."""

import collections
import threading
import time
import unittest

from harness import Client, CrestTestCase


class SplitTest(CrestTestCase):
    def split_config(self, sticky, stable_weight=90, canary_weight=10):
        self.stable = self.backend("stable")
        self.canary = self.backend("canary")
        routes = ["      - split:", f"          sticky: {sticky}", "          pools:",
                  f"            - pool: stable\n              weight: {stable_weight}",
                  f"            - pool: canary\n              weight: {canary_weight}"]
        return self.simple_config({"stable": [self.stable], "canary": [self.canary]}, routes=routes)

    def test_90_10_split_over_5000_requests(self):
        self.crest(self.split_config("none"), self.port)
        counts = collections.Counter()
        lock = threading.Lock()

        def client():
            c = Client(self.port)
            local = collections.Counter()
            for _ in range(1250):
                c.request("GET", "/bytes/1")
                local[c.read_response().header("X-Backend")] += 1
            with lock:
                counts.update(local)

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sum(counts.values()), 5000)
        share = counts["canary"] / 5000
        self.assertGreaterEqual(share, 0.08, counts)
        self.assertLessEqual(share, 0.12, counts)

    def test_sticky_client_ip_keeps_each_address_on_one_pool(self):
        self.crest(self.split_config("client_ip", 50, 50), self.port)
        pools = set()
        for i in range(2, 22):
            seen = set()
            for _ in range(5):
                c = Client(self.port, source=f"127.0.0.{i}")
                c.request("GET", "/bytes/1")
                seen.add(c.read_response().header("X-Backend"))
                c.close()
            self.assertEqual(len(seen), 1, f"127.0.0.{i}: {seen}")
            pools |= seen
        self.assertEqual(pools, {"stable", "canary"})

    def test_sticky_cookie_keeps_a_client_on_its_pool(self):
        self.crest(self.split_config("cookie:session", 50, 50), self.port)
        per_session = {}
        for session in range(20):
            seen = set()
            for _ in range(5):
                c = Client(self.port)
                c.request("GET", "/bytes/1", headers={"Cookie": f"theme=dark; session=user-{session}"})
                seen.add(c.read_response().header("X-Backend"))
                c.close()
            self.assertEqual(len(seen), 1)
            per_session[session] = seen.pop()
        # The cookie, not the (shared) client address, decides.
        self.assertEqual(set(per_session.values()), {"stable", "canary"})

    def test_a_failing_canary_does_not_fail_users(self):
        self.crest(self.split_config("none", 50, 50), self.port)
        self.canary.stop()
        statuses = collections.Counter()
        backends = collections.Counter()
        c = Client(self.port)
        for _ in range(100):
            c.request("GET", "/bytes/1")
            r = c.read_response()
            statuses[r.status] += 1
            backends[r.header("X-Backend")] += 1
        self.assertEqual(statuses, {200: 100})
        self.assertEqual(backends, {"stable": 100})
        from harness import admin_get
        metrics = admin_get(self.admin_port, "/metrics")[1]
        self.assertRegex(metrics, r'crest_split_fallbacks_total\{pool="canary"\} [1-9]\d*')


if __name__ == "__main__":
    unittest.main()
