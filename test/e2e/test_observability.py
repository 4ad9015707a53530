"""End to end: admin endpoints and Prometheus metrics (SPEC.md)."""

import json
import unittest

import signal

from harness import Client, CrestTestCase, admin_get, free_port, get, wait_until
from prometheus_text import check

SPEC_FAMILIES = [
    "crest_http_requests_total", "crest_http_request_duration_seconds", "crest_upstream_requests_total",
    "crest_upstream_connect_errors_total", "crest_upstream_active_requests", "crest_upstream_server_up",
    "crest_health_checks_total", "crest_downstream_connections_active", "crest_downstream_connections_total",
    "crest_tls_handshakes_total", "crest_config_reloads_total", "crest_config_generation",
    "crest_config_last_reload_success_timestamp_seconds", "crest_rate_limited_total",
    "crest_shed_requests_total", "crest_queue_depth", "crest_cache_requests_total", "crest_cache_bytes",
]


class ObservabilityTest(CrestTestCase):
    def setUp(self):
        super().setUp()
        self.web = self.backend("web")
        dead = free_port()
        pools = {
            "web": f"    health_check: {{path: /healthz, interval: 200ms}}\n    servers:\n      - address: {self.web.address}",
            "dead": f"    retries: 0\n    servers:\n      - address: 127.0.0.1:{dead}",
        }
        routes = ["      - match: {path_prefix: /dead/}", "        pool: dead",
                  "      - match: {host: web.test}", "        pool: web"]
        self.dead_address = f"127.0.0.1:{dead}"
        self.crest(self.simple_config(pools, routes=routes), self.port)

    def metrics(self):
        status, text = admin_get(self.admin_port, "/metrics")
        self.assertEqual(status, 200)
        problems, samples = check(text)
        self.assertEqual(problems, [], text)
        return text, samples

    def value(self, samples, name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))), None)

    def test_metrics_follow_traffic(self):
        c = Client(self.port)
        for _ in range(5):
            c.request("GET", "/bytes/3", host="web.test")
            self.assertEqual(c.read_response().status, 200)
        for _ in range(2):
            c.request("GET", "/", host="nowhere.test")
            self.assertEqual(c.read_response().status, 404)
        c.request("GET", "/dead/x", host="web.test")
        self.assertEqual(c.read_response().status, 502)
        c.request("GET", "/status/503", host="web.test")
        self.assertEqual(c.read_response().status, 503)
        text, s = self.metrics()
        for family in SPEC_FAMILIES:
            self.assertIn(f"# TYPE {family} ", text)

        def labels(**kw):
            return tuple(sorted(kw.items()))

        self.assertEqual(s[("crest_http_requests_total", labels(listener="public", pool="web", code="2xx"))], 5)
        self.assertEqual(s[("crest_http_requests_total", labels(listener="public", pool="web", code="5xx"))], 1)
        self.assertEqual(s[("crest_http_requests_total", labels(listener="public", pool="", code="4xx"))], 2)
        self.assertEqual(s[("crest_http_requests_total", labels(listener="public", pool="dead", code="5xx"))], 1)
        self.assertEqual(s[("crest_http_request_duration_seconds_count", labels(listener="public", pool="web"))], 6)
        self.assertEqual(s[("crest_upstream_requests_total", labels(pool="web", server=self.web.address, code="2xx"))], 5)
        self.assertEqual(s[("crest_upstream_requests_total", labels(pool="web", server=self.web.address, code="5xx"))], 1)
        self.assertEqual(s[("crest_upstream_connect_errors_total", labels(pool="dead", server=self.dead_address))], 1)
        self.assertEqual(s[("crest_upstream_server_up", labels(pool="dead", server=self.dead_address))], 0)
        self.assertEqual(s[("crest_upstream_server_up", labels(pool="web", server=self.web.address))], 1)
        self.assertGreater(s[("crest_health_checks_total", labels(pool="web", server=self.web.address, result="pass"))], 0)
        self.assertEqual(s[("crest_downstream_connections_active", labels(listener="public"))], 1)
        self.assertGreaterEqual(s[("crest_downstream_connections_total", labels(listener="public"))], 1)
        self.assertEqual(s[("crest_config_generation", ())], 1)
        self.assertEqual(s[("crest_config_reloads_total", labels(result="success"))], 1)
        # Label values stay bounded: no path, host or raw status anywhere.
        for (name, lbls), _ in s.items():
            for k, v in lbls:
                self.assertNotIn("nowhere", v)
                if k != "protocol":  # SPEC's protocol values are http/1.0, http/1.1, h2
                    self.assertNotIn("/", v)
                if k == "code":
                    self.assertIn(v, ("1xx", "2xx", "3xx", "4xx", "5xx"))

    def test_series_of_the_configuration_start_at_0(self):
        # rate() and increase() need a first sample before the first request.
        _, s = self.metrics()
        for code in ("1xx", "2xx", "3xx", "4xx", "5xx"):
            for pool in ("web", "dead", ""):
                self.assertEqual(s.get(("crest_http_requests_total",
                                        tuple(sorted(dict(listener="public", pool=pool, code=code).items())))), 0)
            for pool, server in (("web", self.web.address), ("dead", self.dead_address)):
                self.assertEqual(s.get(("crest_upstream_requests_total",
                                        tuple(sorted(dict(pool=pool, server=server, code=code).items())))), 0)
        # A pool a reload removes takes its empty series along.
        crest = self.crests[0]
        with open(crest.config_path) as f:
            text = f.read()
        text = text.replace("      - match: {path_prefix: /dead/}\n        pool: dead\n", "")
        text = text[:text.index("  dead:")]
        crest.write_config(text)
        crest.signal(signal.SIGHUP)
        wait_until(lambda: json.loads(admin_get(self.admin_port, "/status")[1])["generation"] == 2,
                   what="generation 2\n" + crest.log())
        _, s = self.metrics()
        self.assertFalse([key for key in s if ("pool", "dead") in key[1]])
        self.assertEqual(s.get(("crest_http_requests_total",
                                tuple(sorted(dict(listener="public", pool="web", code="2xx").items())))), 0)

    def test_status_names_every_pool_and_server(self):
        status, body = admin_get(self.admin_port, "/status")
        self.assertEqual(status, 200)
        doc = json.loads(body)
        self.assertEqual(doc["generation"], 1)
        self.assertEqual(doc["last_reload"]["result"], "success")
        self.assertRegex(doc["last_reload"]["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(set(doc["pools"]), {"web", "dead"})
        web = doc["pools"]["web"]
        self.assertEqual(web["balance"], "round_robin")
        self.assertEqual(web["servers"], [{"address": self.web.address, "weight": 1, "healthy": True,
                                           "active_requests": 0}])

    def test_admin_serves_nothing_else_and_is_not_on_the_listeners(self):
        self.assertEqual(admin_get(self.admin_port, "/healthz"), (200, "ok\n"))
        import urllib.error
        with self.assertRaises(urllib.error.HTTPError) as e:
            admin_get(self.admin_port, "/admin")
        self.assertEqual(e.exception.code, 404)
        # On a proxy listener /metrics is just a path routed to a pool.
        r = get(self.port, "/metrics", {"Host": "web.test"})
        self.assertEqual(r.header("X-Backend"), "web")
        self.assertEqual(get(self.port, "/metrics", {"Host": "other.test"}).status, 404)


class AccessLogTest(CrestTestCase):
    LINE = (r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z 127\.0\.0\.1 public "(GET|POST) \S+ HTTP/1\.[01]" \d{3} \d+ '
            r'\d+\.\d{3} pool=\S+ upstream=\S+ upstream_time=\S+ request_id=\S+ cause=\S+$')

    def read_lines(self, path, count, timeout=3.0):
        import time
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(path) as f:
                lines = f.read().splitlines()
            if len(lines) >= count:
                return lines
            time.sleep(0.05)
        return lines

    def test_one_line_per_request_and_reopen_on_sigusr1(self):
        import os
        import re
        import signal
        web = self.backend("web")
        log_path = os.path.join(self.tmpdir, "access.log")
        config = self.simple_config({"web": [web]}, extra=f"access_log: {log_path}")
        crest = self.crest(config, self.port)
        c = Client(self.port)
        for i in range(5):
            c.request("GET", f"/bytes/{i + 1}", headers={"X-Request-Id": f"req-{i}"})
            c.read_response()
        c.request("GET", "/", host="")  # an empty Host still routes (catch-all)
        c.read_response()
        lines = self.read_lines(log_path, 6)
        self.assertEqual(len(lines), 6, lines)
        for line in lines:
            self.assertRegex(line, self.LINE)
        self.assertIn(f'"GET /bytes/3 HTTP/1.1" 200 3 ', lines[2])
        self.assertIn(f"pool=web upstream={web.address} ", lines[2])
        self.assertTrue(lines[2].endswith("request_id=req-2 cause=-"))

        os.rename(log_path, log_path + ".1")
        crest.signal(signal.SIGUSR1)
        import time
        deadline = time.time() + 3
        while not os.path.exists(log_path) and time.time() < deadline:
            time.sleep(0.02)
        bad = Client(self.port)
        bad.send("GET / HTTP/1.1\r\n\r\n")  # no Host: 400 from crest itself
        bad.read_response()
        fresh = self.read_lines(log_path, 1)
        self.assertEqual(len(fresh), 1, fresh)
        self.assertRegex(fresh[0], r'"GET / HTTP/1.1" 400 \d+ \S+ pool=- upstream=- upstream_time=- request_id=- '
                                   r'cause=bad_request$')
        with open(log_path + ".1") as f:
            self.assertEqual(len(f.read().splitlines()), 6)

    def test_the_cause_field_tells_local_answers_apart(self):
        import os
        web = self.backend("web")
        dead = free_port()
        log_path = os.path.join(self.tmpdir, "access.log")
        pools = {"web": [web],
                 "dead": f"    retries: 0\n    servers:\n      - address: 127.0.0.1:{dead}",
                 "limited": f"    servers:\n      - address: {web.address}"}
        routes = ["      - match: {path_prefix: /dead/}", "        pool: dead",
                  "      - match: {path_prefix: /limited/}", "        pool: limited",
                  "        rate_limit: {key: client_ip, rate: 1/m, burst: 1}",
                  "      - match: {host: web.test}", "        pool: web"]
        self.crest(self.simple_config(pools, routes=routes, extra=f"access_log: {log_path}"), self.port)
        expected = []
        for path, host, status, cause in (("/bytes/1", "web.test", 200, "-"),
                                          ("/", "nowhere.test", 404, "no_route"),
                                          ("/dead/", "web.test", 502, "connect_failed"),
                                          ("/dead/", "web.test", 503, "no_healthy_server"),
                                          ("/limited/", "web.test", 200, "-"),
                                          ("/limited/", "web.test", 429, "rate_limited")):
            self.assertEqual(get(self.port, path, {"Host": host}).status, status, path)
            expected.append((status, cause))
        c = Client(self.port)
        c.request("GET", "/die-mid-body", host="web.test")
        with self.assertRaises(ConnectionError):
            c.read_response()
        expected.append((200, "upstream_reset"))
        lines = self.read_lines(log_path, len(expected))
        # Two workers write their lines in their own order.
        self.assertEqual(sorted((int(line.split('" ')[1].split()[0]), line.rsplit("cause=", 1)[1]) for line in lines),
                         sorted(expected), "\n".join(lines))


if __name__ == "__main__":
    unittest.main()
