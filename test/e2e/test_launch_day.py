"""End to end: launch-day protection (SPEC.md): header routes, rate limits,
admission queues with priority, fallback answers, and their metrics."""

import json
import threading
import time
import unittest

from harness import Client, CrestTestCase, admin_get, get, wait_until


class LaunchDayTest(CrestTestCase):
    def test_header_match_routes_premium_traffic_to_its_pool(self):
        premium, public = self.backend("premium"), self.backend("public")
        routes = ["      - match:", "          path_prefix: /api/", "          headers:",
                  "            x-PLAN: premium", "        pool: premium",
                  "      - match: {path_prefix: /api/}", "        pool: public"]
        self.crest(self.simple_config({"premium": [premium], "public": [public]}, routes=routes), self.port)
        self.assertEqual(get(self.port, "/api/x", {"X-Plan": "premium"}).header("X-Backend"), "premium")
        # Values match exactly; names in any case.
        self.assertEqual(get(self.port, "/api/x", {"x-plan": "premium"}).header("X-Backend"), "premium")
        self.assertEqual(get(self.port, "/api/x", {"X-Plan": "Premium"}).header("X-Backend"), "public")
        self.assertEqual(get(self.port, "/api/x").header("X-Backend"), "public")

    def rate_limited_config(self, key, rate, burst):
        self.api = self.backend("api")
        routes = ["      - match: {path_prefix: /}", "        pool: api", "        rate_limit:",
                  f"          key: {key}", f"          rate: {rate}", f"          burst: {burst}"]
        return self.simple_config({"api": [self.api]}, routes=routes)

    def test_rate_limit_admits_the_burst_then_the_rate_per_client(self):
        self.crest(self.rate_limited_config("client_ip", "100/s", 20), self.port)
        c = Client(self.port, source="127.0.0.2")
        statuses = []
        refused = None
        start = time.monotonic()
        while time.monotonic() - start < 3.0:
            c.request("GET", "/bytes/1")
            r = c.read_response()
            statuses.append(r.status)
            if r.status == 429 and refused is None:
                refused = r
        elapsed = time.monotonic() - start
        self.assertEqual(statuses[:20], [200] * 20)  # the burst, at once
        self.assertEqual(set(statuses), {200, 429})
        admitted = statuses.count(200)
        expected = 20 + 100 * elapsed
        self.assertLess(abs(admitted - expected), 0.1 * expected, f"{admitted} admitted in {elapsed:.2f} s")
        # An honest refusal: when to come back, and the bucket's state.
        self.assertEqual(refused.header("Retry-After"), "1")
        self.assertEqual(refused.header("RateLimit-Limit"), "20")
        self.assertEqual(refused.header("RateLimit-Remaining"), "0")
        self.assertIn(refused.header("RateLimit-Reset"), {"1"})
        self.assertEqual(len(self.api.requests_seen()), admitted)  # refused ones never reached it
        # Another client has its own full bucket.
        other = Client(self.port, source="127.0.0.3")
        for _ in range(20):
            other.request("GET", "/bytes/1")
            r = other.read_response()
            self.assertEqual(r.status, 200)
            self.assertIsNotNone(r.header("RateLimit-Remaining"))  # on admitted responses too
        self.assertEqual(self.metric("crest_rate_limited_total", listener="public"), statuses.count(429))

    def test_rate_limit_by_header_falls_back_to_the_client_address(self):
        self.crest(self.rate_limited_config("header:X-Api-Key", "1/m", 2), self.port)

        def statuses(headers, n=3):
            return [get(self.port, "/bytes/1", headers).status for _ in range(n)]

        self.assertEqual(statuses({"X-Api-Key": "alice"}), [200, 200, 429])
        self.assertEqual(statuses({"X-Api-Key": "bob"}), [200, 200, 429])
        # Without the header the client's address is the key.
        self.assertEqual(statuses({}), [200, 200, 429])
        r = get(self.port, "/bytes/1", {"X-Api-Key": "alice"})
        self.assertGreater(int(r.header("Retry-After")), 50)  # a token a minute

    def admission_config(self, max_active, queue_size, timeout, fallback=True, reserved_high=None):
        self.api = self.backend("api")
        fallback_lines = ["        fallback:", "          status: 503",
                          "          body: '{\"error\":\"busy, retry shortly\"}'",
                          "          content_type: application/json"] if fallback else []
        routes = ["      - match:", "          path_prefix: /", "          headers: {X-Plan: premium}",
                  "        pool: api", "        priority: high", *fallback_lines,
                  "      - match: {path_prefix: /}", "        pool: api", *fallback_lines]
        reserved = "" if reserved_high is None else f", reserved_high: {reserved_high}"
        pool = (f"    max_active_requests: {max_active}\n"
                f"    queue: {{size: {queue_size}, timeout: {timeout}{reserved}}}\n"
                f"    servers:\n      - address: {self.api.address}")
        return self.simple_config({"api": pool}, routes=routes)

    def test_admission_serves_high_priority_first_and_sheds_the_rest_in_time(self):
        # Timing: each request holds its slot 1.5 s. The first 4 normal
        # ones take the pool at t=0 and 46 wait; then 8 premium ones queue
        # and take every slot freed at 1.5 s and at 3 s. Every request waits
        # at most 3.75 s, so the premium ones are still waiting at 3 s, and
        # the normal ones have all been shed before the slots free again at
        # 4.5 s as long as they queued within 0.75 s (the margin for a slow
        # machine). At the server nothing normal may come between or after
        # the premium ones.
        self.crest(self.admission_config(4, 100, "3750ms"), self.port)
        results = []
        lock = threading.Lock()

        def call(i, plan):
            headers = {"X-Plan": plan} if plan else {}
            start = time.monotonic()
            r = get(self.port, f"/sleep/1500?{plan or 'normal'}-{i}", headers)
            with lock:
                results.append((plan or "normal", r, time.monotonic() - start))

        threads = [threading.Thread(target=call, args=(i, None)) for i in range(50)]
        for t in threads:
            t.start()
        wait_until(lambda: self.metric("crest_queue_depth", pool="api") == 46, what="46 waiting")
        high = [threading.Thread(target=call, args=(i, "premium")) for i in range(8)]
        for t in high:
            t.start()
        for t in threads + high:
            t.join()
        self.assertEqual(len(results), 58)
        served = [(p, r) for p, r, _ in results if r.status == 200]
        shed = [(p, r, t) for p, r, t in results if r.status != 200]
        # Every premium request got through; the pool never had more than 4 at once.
        self.assertEqual(sum(1 for p, _ in served if p == "premium"), 8)
        self.assertLessEqual(max(int(r.header("X-In-Flight")) for _, r in served), 4)
        # At the server: the 4 normal requests that found free slots, then
        # every premium one ahead of the 46 normal ones that were waiting.
        order = [line.split("?")[1].split("-")[0] for line in self.api.requests_seen()]
        self.assertEqual(order, ["normal"] * 4 + ["premium"] * 8)
        # The rest were shed with the fallback, within queue.timeout + 100 ms.
        self.assertEqual(len(shed), 46)
        for plan, r, took in shed:
            self.assertEqual(plan, "normal")
            self.assertEqual(r.status, 503)
            self.assertEqual(r.body, b'{"error":"busy, retry shortly"}')
            self.assertEqual(r.header("Content-Type"), "application/json")
            self.assertEqual(r.header("Retry-After"), "1")
            self.assertLess(took, 3.75 + 0.1 + 0.05)  # + the request's own round trip
        self.assertEqual(self.metric("crest_shed_requests_total", pool="api", reason="queue_timeout"), len(shed))
        self.assertEqual(self.metric("crest_queue_depth", pool="api"), 0)

    def flood(self, count, sleep_ms):
        """`count` normal requests of /sleep/`sleep_ms` on threads; returns (threads, responses)."""
        responses = []

        def call(i):
            responses.append(get(self.port, f"/sleep/{sleep_ms}?normal-{i}"))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
        for t in threads:
            t.start()
        return threads, responses

    def test_reserved_slots_keep_room_for_high_priority_during_a_flood(self):
        self.crest(self.admission_config(4, 100, "10s", reserved_high=2), self.port)
        threads, responses = self.flood(6, 800)
        # Normal traffic holds its share, 2 of the 4 slots, and the rest of it waits.
        wait_until(lambda: self.metric("crest_queue_depth", pool="api") == 4, what="4 waiting")
        self.assertEqual(self.metric("crest_pool_slots_in_use", pool="api"), 2)
        self.assertEqual(self.metric("crest_pool_reserved_slots_in_use", pool="api"), 0)
        # A premium request finds a free slot at once, past the waiting ones.
        start = time.monotonic()
        premium = get(self.port, "/bytes/1", {"X-Plan": "premium"})
        self.assertEqual(premium.status, 200)
        self.assertLess(time.monotonic() - start, 0.4)
        status = json.loads(admin_get(self.admin_port, "/status")[1])["pools"]["api"]["slots"]
        self.assertEqual((status["max"], status["reserved_high"]), (4, 2))
        for t in threads:
            t.join()
        self.assertEqual([r.status for r in responses], [200] * 6)
        # At the server no more than the share of normal requests at once.
        self.assertEqual(max(int(r.header("X-In-Flight")) for r in responses), 2)

    def test_without_reserved_slots_high_priority_waits_for_a_slot(self):
        self.crest(self.admission_config(4, 100, "10s", reserved_high=0), self.port)
        threads, responses = self.flood(6, 800)
        wait_until(lambda: self.metric("crest_queue_depth", pool="api") == 2, what="2 waiting")
        self.assertEqual(self.metric("crest_pool_slots_in_use", pool="api"), 4)
        start = time.monotonic()
        premium = get(self.port, "/bytes/1", {"X-Plan": "premium"})
        took = time.monotonic() - start
        self.assertEqual(premium.status, 200)
        # It waited for a normal request to give its slot back (ahead of the waiting ones).
        self.assertGreater(took, 0.3)
        for t in threads:
            t.join()
        self.assertEqual(max(int(r.header("X-In-Flight")) for r in responses), 4)

    def test_a_full_queue_sheds_at_once_and_reports_its_depth(self):
        self.crest(self.admission_config(1, 2, "5s", fallback=False), self.port)
        busy = [Client(self.port) for _ in range(3)]
        for c in busy:  # one in the pool, two queued
            c.request("GET", "/sleep/1000")
        deadline = time.monotonic() + 2
        while self.metric("crest_queue_depth", pool="api") != 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(self.metric("crest_queue_depth", pool="api"), 2)
        start = time.monotonic()
        r = get(self.port, "/sleep/1000")
        self.assertLess(time.monotonic() - start, 0.5)
        self.assertEqual(r.status, 503)  # no fallback: the proxy's own 503
        self.assertEqual(r.header("Retry-After"), "1")
        self.assertEqual(self.metric("crest_shed_requests_total", pool="api", reason="queue_full"), 1)
        for c in busy:
            self.assertEqual(c.read_response().status, 200)

    def test_a_queued_request_whose_client_leaves_gives_up_its_place(self):
        self.crest(self.admission_config(1, 10, "5s"), self.port)
        first = Client(self.port)
        first.request("GET", "/sleep/500?first-0")
        wait_until(lambda: len(self.api.requests_seen()) == 1, what="the first request at the server")
        gone = Client(self.port)
        gone.request("GET", "/sleep/500?gone-0")
        deadline = time.monotonic() + 2
        while self.metric("crest_queue_depth", pool="api") != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        gone.close()
        deadline = time.monotonic() + 1
        while self.metric("crest_queue_depth", pool="api") != 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(self.metric("crest_queue_depth", pool="api"), 0)
        later = Client(self.port)
        later.request("GET", "/sleep/10?later-0")
        self.assertEqual(first.read_response().status, 200)
        self.assertEqual(later.read_response().status, 200)
        # The one that left never reached the server.
        self.assertEqual([l.split("?")[1] for l in self.api.requests_seen()], ["first-0", "later-0"])

    def test_fallback_answers_when_no_server_is_healthy(self):
        self.crest_without_healthy_servers(200, "maintenance", "text/html")
        c = Client(self.port)
        for _ in range(3):
            c.request("GET", "/")
            r = c.read_response()
            self.assertEqual((r.status, r.body, r.header("Content-Type")), (200, b"maintenance", "text/html"))
            self.assertIsNone(r.header("Retry-After"))
        self.assertEqual(self.metric("crest_shed_requests_total", pool="api", reason="no_healthy"), 3)


if __name__ == "__main__":
    unittest.main()
