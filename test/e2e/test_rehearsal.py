"""Rehearsal features of a route: injected faults (delay, abort, gated by a
header) and mirroring a share of requests to another pool, over HTTP/1.1
and HTTP/2; a dead or slow mirror changes nothing for the client."""

import os
import time
import unittest

from harness import Client, CrestTestCase, free_port, get, wait_until
from test_http2 import H2Client


class FaultTest(CrestTestCase):
    def start(self, fault, extra=""):
        self.web = self.backend("web")
        routes = ["      - match: {path_prefix: /hurt/}", "        pool: web", f"        fault: {fault}",
                  "      - pool: web"]
        self.crest(self.simple_config({"web": [self.web]}, routes=routes, extra=extra), self.port)

    def test_abort_answers_without_the_server_and_only_with_the_header(self):
        self.start("{abort_percent: 100, abort_status: 503, header: X-Crest-Fault}")
        self.assertEqual(get(self.port, "/hurt/a").status, 200)  # no header: not eligible
        r = get(self.port, "/hurt/b", headers={"X-Crest-Fault": "1"})
        self.assertEqual((r.status, r.body), (503, b"fault injected\n"))
        c = H2Client(self.port)
        sid = c.request("/hurt/c", headers=[("x-crest-fault", "1")])
        self.assertEqual(c.response(sid)["headers"][":status"], "503")
        self.assertEqual(self.web.requests_seen(), ["GET /hurt/a"])
        self.assertEqual(self.metric("crest_faults_total", listener="public", kind="abort"), 2)
        wait_until(lambda: self.metric("crest_http_requests_total", listener="public", pool="web", code="5xx") == 2,
                   what="the aborts counted under their pool")

    def test_delay_holds_only_the_delayed_request(self):
        self.start("{delay: 400ms, delay_percent: 100}")
        slow = Client(self.port)
        start = time.monotonic()
        slow.request("GET", "/hurt/slow")
        # Meanwhile, another request on another route is not held up.
        quick_start = time.monotonic()
        self.assertEqual(get(self.port, "/fine").status, 200)
        self.assertLess(time.monotonic() - quick_start, 0.3)
        self.assertEqual(slow.read_response().status, 200)
        self.assertGreaterEqual(time.monotonic() - start, 0.4)
        c = H2Client(self.port)
        h2_start = time.monotonic()
        sid = c.request("/hurt/h2")
        self.assertEqual(c.response(sid)["headers"][":status"], "200")
        self.assertGreaterEqual(time.monotonic() - h2_start, 0.4)
        self.assertEqual(self.metric("crest_faults_total", listener="public", kind="delay"), 2)

    def test_a_share_of_requests_is_aborted(self):
        self.start("{abort_percent: 50}")
        c = Client(self.port)
        statuses = []
        for _ in range(200):
            c.request("GET", "/hurt/x")
            statuses.append(c.read_response().status)
        aborted = statuses.count(503)
        self.assertTrue(60 <= aborted <= 140, aborted)  # 50% of 200, far from chance's bounds
        self.assertEqual(aborted + statuses.count(200), 200)


class MirrorTest(CrestTestCase):
    def start(self, mirror_servers, percent=100):
        self.web = self.backend("web")
        mirror_pool = "    servers:\n" + "\n".join(f"      - address: {a}" for a in mirror_servers)
        routes = ["      - pool: web", f"        mirror: {{pool: shadow, percent: {percent}, max_body: 4KiB}}"]
        self.crest(self.simple_config({"web": [self.web], "shadow": mirror_pool}, routes=routes), self.port)

    def mirrored(self, shadow):
        return [line for line in shadow.requests_seen() if line.startswith("MIRROR ")]

    def test_a_copy_reaches_the_mirror_with_its_body_and_its_answer_is_dropped(self):
        shadow = self.backend("shadow")
        self.start([shadow.address])
        c = Client(self.port)
        c.request("POST", "/echo", body=b"x" * 1000)
        r = c.read_response()
        self.assertEqual(r.header("x-backend"), "web")  # the client gets the primary's answer
        c.request("POST", "/echo", headers={"Transfer-Encoding": "chunked"}, body=b"5\r\nhello\r\n0\r\n\r\n")
        self.assertEqual(c.read_response().status, 200)
        c.request("POST", "/echo", body=b"y" * 5000)  # over max_body: not mirrored
        self.assertEqual(c.read_response().status, 200)
        h2 = H2Client(self.port)
        sid = h2.request("/h2")
        self.assertEqual(h2.response(sid)["headers"][":status"], "200")
        wait_until(lambda: len(self.mirrored(shadow)) == 3, what="three copies at the mirror")
        self.assertEqual(sorted(self.mirrored(shadow)), ["MIRROR GET /h2 body=0", "MIRROR POST /echo body=1000",
                                                         "MIRROR POST /echo body=5"])
        wait_until(lambda: self.metric("crest_mirror_requests_total", pool="shadow", result="sent") == 3,
                   what="three copies answered")
        self.assertEqual(self.metric("crest_mirror_requests_total", pool="shadow", result="skipped"), 1)

    def test_a_dead_or_slow_mirror_changes_nothing_for_the_client(self):
        slow = self.backend("slow", "--delay", "5000")
        dead = f"127.0.0.1:{free_port()}"
        self.start([slow.address, dead])
        c = Client(self.port)
        times = []
        for i in range(20):
            start = time.monotonic()
            c.request("GET", f"/x{i}")
            r = c.read_response()
            times.append(time.monotonic() - start)
            self.assertEqual((r.status, r.header("x-backend")), (200, "web"))
        self.assertLess(max(times), 0.5, times)
        wait_until(lambda: (self.metric("crest_mirror_requests_total", pool="shadow", result="error") or 0) >= 1,
                   what="copies to the dead server counted as errors")


if __name__ == "__main__":
    unittest.main()
