"""End to end: the micro-cache (SPEC.md "Cache"): storability, freshness,
request coalescing, stale-if-error, 304s, LRU bound, purge, metrics."""

import os
import threading
import time
import unittest
import urllib.request

from harness import Client, CrestTestCase, concurrently, get


def page(*headers, delay=0, tag=""):
    """A backend /page target answering with `headers` ("Name:Value")."""
    query = "&".join(f"hdr={urllib.parse.quote(h)}" for h in headers)
    if delay:
        query += f"&delay={delay}"
    return f"/page?{query}&tag={tag}"


class CacheTest(CrestTestCase):
    def start(self, ttl="5s", stale="2s", max_size="1MiB", backend_args=()):
        self.web = self.backend("web", *backend_args)
        routes = ["      - match: {path_prefix: /}", "        pool: web", "        cache:",
                  f"          ttl: {ttl}", f"          stale: {stale}"]
        pool = (f"    retries: 0\n    servers:\n      - address: {self.web.address}")
        config = self.simple_config({"web": pool}, routes=routes, extra=f"cache:\n  max_size: {max_size}")
        self.crest(config, self.port)

    def seen(self, target):
        return self.web.requests_seen().count(f"GET {target}")

    def twice(self, target, first_headers=None, second_headers=None):
        """The same target from two different clients."""
        a = get(self.port, target, first_headers)
        b = get(self.port, target, second_headers)
        return a, b

    def test_a_miss_is_stored_and_the_next_request_hits(self):
        self.start()
        target = page("Cache-Control:max-age=60")
        a, b = self.twice(target)
        self.assertEqual((a.status, a.header("X-Cache")), (200, "MISS"))
        self.assertEqual((b.status, b.header("X-Cache")), (200, "HIT"))
        self.assertEqual(a.body, b.body)
        self.assertEqual(self.seen(target), 1)
        self.assertIsNotNone(b.header("Age"))
        self.assertEqual(b.header("X-Backend"), "web")  # the server's headers are kept
        # HEAD is answered from the GET entry, with its length and no body.
        c = Client(self.port)
        c.request("HEAD", target)
        h = c.read_response(head_request=True)
        self.assertEqual((h.status, h.header("X-Cache"), h.header("Content-Length")),
                         (200, "HIT", str(len(a.body))))
        self.assertEqual(self.metric("crest_cache_requests_total", result="hit"), 2)
        self.assertEqual(self.metric("crest_cache_requests_total", result="miss"), 1)
        self.assertGreater(self.metric("crest_cache_bytes"), len(a.body))

    def test_storability_table(self):
        self.start()
        # (response headers, request headers of the first and second client, stored?)
        cases = [
            (["Cache-Control:max-age=60"], None, None, True),
            ([], None, None, True),  # the route's ttl
            (["Cache-Control:s-maxage=60, max-age=0"], None, None, True),
            (["Expires:Thu, 01 Jan 2099 00:00:00 GMT"], None, None, True),
            (["Cache-Control:max-age=60", "Set-Cookie:session=alice"], None, None, False),
            (["Cache-Control:private, max-age=60"], None, None, False),
            (["Cache-Control:no-store"], None, None, False),
            (["Cache-Control:no-cache"], None, None, False),
            (["Cache-Control:max-age=0"], None, None, False),
            (["Expires:0"], None, None, False),
            (["Cache-Control:max-age=60", "Vary:*"], None, None, False),
            # An answer to credentials is kept only when it says public.
            (["Cache-Control:max-age=60"], {"Authorization": "Bearer alice"}, None, False),
            (["Cache-Control:public, max-age=60"], {"Authorization": "Bearer alice"}, None, True),
            # Vary: a different value is another variant.
            (["Cache-Control:max-age=60", "Vary:X-Lang"], {"X-Lang": "fr"}, {"X-Lang": "de"}, False),
            (["Cache-Control:max-age=60", "Vary:X-Lang"], {"X-Lang": "fr"}, {"X-Lang": "fr"}, True),
        ]
        for i, (response_headers, first, second, stored) in enumerate(cases):
            with self.subTest(response_headers=response_headers, first=first, second=second):
                target = page(*response_headers, tag=str(i))
                a, b = self.twice(target, first, second)
                self.assertEqual(a.header("X-Cache"), "MISS")
                self.assertEqual(b.header("X-Cache"), "HIT" if stored else "MISS")
                self.assertEqual(self.seen(target), 1 if stored else 2)
                if not stored:
                    # Never one client's answer to another.
                    self.assertNotEqual(a.body, b.body)
                    self.assertIsNone(b.header("Age"))

    def test_private_answers_never_reach_another_client(self):
        self.start()
        target = page("Cache-Control:max-age=60", "Set-Cookie:session=alice")
        get(self.port, target, {"Cookie": "session=alice"})
        other = get(self.port, target)
        self.assertIsNotNone(other.header("Set-Cookie"))  # its own, fresh from the server
        self.assertEqual(other.header("X-Cache"), "MISS")
        self.assertTrue(other.body.endswith(b"#2\n"))
        # A cached public page is not served to a request with credentials
        # unless it said public; the authorized answer is not served to others.
        target = page("Cache-Control:max-age=60", tag="auth")
        get(self.port, target)  # stored (no credentials)
        authorized = get(self.port, target, {"Authorization": "Bearer bob"})
        self.assertEqual(authorized.header("X-Cache"), "MISS")
        self.assertEqual(get(self.port, target).body, b"web " + target.encode() + b" #1\n")

    def test_statuses_and_methods(self):
        self.start()
        for status, stored in [(404, True), (302, False)]:
            target = f"/status/{status}"
            a, b = self.twice(target)
            self.assertEqual(b.header("X-Cache"), "HIT" if stored else "MISS", status)
        c = Client(self.port)
        c.request("POST", page(tag="post"), body=b"x")
        r = c.read_response()
        self.assertEqual(r.header("X-Cache"), "BYPASS")
        self.assertEqual(self.metric("crest_cache_requests_total", result="bypass"), 1)

    def test_200_concurrent_requests_for_a_cold_key_reach_the_server_once(self):
        self.start()
        target = page("Cache-Control:max-age=60", delay=300)
        bodies, statuses = [], []
        lock = threading.Lock()
        barrier = threading.Barrier(200)

        def call():
            c = Client(self.port, timeout=20)
            barrier.wait()
            c.request("GET", target)
            r = c.read_response()
            with lock:
                bodies.append(r.body)
                statuses.append(r.status)
            c.close()

        threads = [threading.Thread(target=call) for _ in range(200)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(statuses, [200] * 200)
        self.assertEqual(set(bodies), {b"web " + target.encode() + b" #1\n"})
        self.assertEqual(self.seen(target), 1)

    def test_a_failed_fill_lets_each_waiter_try_on_its_own(self):
        self.start()
        # Not storable: the waiters go on their own instead of waiting in turn.
        target = page("Cache-Control:no-store", delay=300)
        results, took = concurrently(lambda: get(self.port, target, timeout=10), 5)
        self.assertEqual([r.status for r in results], [200] * 5)
        self.assertEqual(self.seen(target), 5)
        self.assertLess(took, 1.2)  # not 5 x 300 ms in a row

    def test_a_response_cut_short_is_not_stored(self):
        self.start()
        # The server announces 100000 bytes (storable by the route's ttl) and
        # dies after 1000: the client sees the connection close early, and the
        # next request goes to the server again.
        for _ in range(2):
            c = Client(self.port)
            c.request("GET", "/die-mid-body")
            self.assertTrue(c.closed_by_peer())
        self.assertEqual(self.web.requests_seen().count("GET /die-mid-body"), 2)
        self.assertEqual(self.metric("crest_cache_bytes"), 0)

    def test_stale_while_the_pool_is_down_and_not_after_stale(self):
        self.start(stale="2s")
        target = page("Cache-Control:max-age=1")
        first = get(self.port, target)
        stored_at = time.monotonic()
        self.web.stop()
        time.sleep(1.2)  # expired, within stale
        r = get(self.port, target)
        self.assertEqual((r.status, r.header("X-Cache"), r.body), (200, "STALE", first.body))
        self.assertGreaterEqual(int(r.header("Age")), 1)
        self.assertEqual(self.metric("crest_cache_requests_total", result="stale"), 1)
        time.sleep(max(0.0, 3.2 - (time.monotonic() - stored_at)))  # past max-age + stale
        r = get(self.port, target)
        self.assertIn(r.status, (502, 503))
        self.assertEqual(r.header("X-Cache"), "MISS")

    def test_stale_when_the_server_answers_5xx(self):
        fail = os.path.join(self.tmpdir, "fail")
        self.start(stale="10s", backend_args=("--fail-file", fail))
        target = page("Cache-Control:max-age=1")
        first = get(self.port, target)
        open(fail, "w").close()
        time.sleep(1.2)
        r = get(self.port, target)
        self.assertEqual((r.status, r.header("X-Cache"), r.body), (200, "STALE", first.body))
        self.assertEqual(self.seen(target), 2)  # it did ask the server

    def test_conditional_requests_get_304_from_a_fresh_entry(self):
        self.start()
        lm = "Tue, 14 Nov 2023 22:13:20 GMT"
        target = page("Cache-Control:max-age=60", 'ETag:"v1"', f"Last-Modified:{lm}")
        get(self.port, target)
        r = get(self.port, target, {"If-None-Match": '"v1"'})
        self.assertEqual((r.status, r.body, r.header("ETag"), r.header("X-Cache")), (304, b"", '"v1"', "HIT"))
        self.assertIsNone(r.header("Content-Length"))
        self.assertEqual(get(self.port, target, {"If-None-Match": '"v0"'}).status, 200)
        self.assertEqual(get(self.port, target, {"If-Modified-Since": lm}).status, 304)
        self.assertEqual(get(self.port, target, {"If-Modified-Since": "Mon, 13 Nov 2023 00:00:00 GMT"}).status, 200)
        self.assertEqual(self.seen(target), 1)

    def test_least_recently_used_entries_go_beyond_max_size(self):
        self.start(max_size="64KiB")
        targets = [f"/bytes/10000?n={i}" for i in range(10)]
        for t in targets:
            self.assertEqual(get(self.port, t).header("X-Cache"), "MISS")
        self.assertLessEqual(self.metric("crest_cache_bytes"), 64 * 1024)
        self.assertGreater(self.metric("crest_cache_bytes"), 5 * 10000)
        self.assertEqual(get(self.port, targets[-1]).header("X-Cache"), "HIT")
        self.assertEqual(get(self.port, targets[0]).header("X-Cache"), "MISS")  # evicted

    def test_purge_by_path_and_prefix(self):
        self.start()
        for t in ["/bytes/10?a", "/bytes/10?b", "/bytes/20"]:
            get(self.port, t)

        def purge(query):
            req = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}/cache/purge?{query}", method="POST")
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read().decode()

        self.assertEqual(purge("host=test.local&path=/bytes/20"), (200, '{"purged": 1}\n'))
        self.assertEqual(purge("host=TEST.local:8080&path=/bytes/10*"), (200, '{"purged": 2}\n'))
        self.assertEqual(get(self.port, "/bytes/10?a").header("X-Cache"), "MISS")
        with self.assertRaises(urllib.error.HTTPError) as e:
            purge("path=/x")
        self.assertEqual(e.exception.code, 400)


if __name__ == "__main__":
    unittest.main()
