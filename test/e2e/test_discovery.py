"""DNS service discovery: servers with `resolve: true` follow their name's
records while crest runs, looked up at a test DNS server
(test/support/dns_server.py) whose records the test rewrites, with backends
on 127.0.0.2 and 127.0.0.3 behind one name."""

import json
import os
import subprocess
import sys
import threading
import unittest

from harness import BACKEND, CrestTestCase, free_port, get, wait_for_port, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
DNS_SERVER = os.path.join(HERE, "..", "support", "dns_server.py")


class Process:
    """A helper process, stopped by the test's tearDown (it is put in self.backends)."""

    def __init__(self, args, port, host="127.0.0.1"):
        self.proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL)
        if port is not None:
            wait_for_port(port, host=host, proc=self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class DiscoveryTest(CrestTestCase):
    def setUp(self):
        super().setUp()
        self.records_path = os.path.join(self.tmpdir, "records.json")
        self.set_records(A=[])
        self.dns_port = free_port()
        # UDP: nothing to wait for but the process having bound (it prints first).
        self.backends.append(Process([DNS_SERVER, "--port", str(self.dns_port), "--records", self.records_path],
                                     None))
        self.server_port = free_port()
        for host, name in (("127.0.0.2", "b2"), ("127.0.0.3", "b3")):
            self.backends.append(Process([BACKEND, "--host", host, "--port", str(self.server_port), "--name", name],
                                         self.server_port, host))

    def set_records(self, **entry):
        entry.setdefault("ttl", 1)
        tmp = self.records_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"svc.test": entry}, f)
        os.replace(tmp, self.records_path)

    def start(self, pool_extra=""):
        pool = (f"{pool_extra}    servers:\n      - address: svc.test:{self.server_port}\n"
                "        resolve: true")
        extra = f"resolver:\n  nameservers: [127.0.0.1:{self.dns_port}]\n  interval: 1s"
        self.crest(self.simple_config({"web": pool}, extra=extra), self.port)

    def servers(self):
        return self.metric("crest_pool_servers", pool="web")

    def backends_answering(self, n=20):
        seen = set()
        for _ in range(n):
            r = get(self.port, "/")
            self.assertEqual(r.status, 200, r.body)
            seen.add(r.header("x-backend"))
        return seen

    def test_servers_follow_the_records_without_a_reload(self):
        self.set_records(A=["127.0.0.2"])
        self.start()
        wait_until(lambda: self.servers() == 1, what="the first answer")
        self.assertEqual(self.backends_answering(), {"b2"})
        # Added: traffic within interval + 1 s.
        self.set_records(A=["127.0.0.2", "127.0.0.3"])
        wait_until(lambda: self.servers() == 2, timeout=2.5, what="the added address")
        self.assertEqual(self.backends_answering(), {"b2", "b3"})
        # Removed: no more requests, and none of a steady load fails meanwhile.
        failures, stop = [], threading.Event()

        def load():
            while not stop.is_set():
                r = get(self.port, "/")
                if r.status != 200:
                    failures.append(r.status)
        t = threading.Thread(target=load)
        t.start()
        self.set_records(A=["127.0.0.3"])
        wait_until(lambda: self.servers() == 1, timeout=2.5, what="the removed address")
        stop.set()
        t.join()
        self.assertEqual(failures, [])
        self.assertEqual(self.backends_answering(), {"b3"})
        self.assertGreaterEqual(self.metric("crest_resolver_lookups_total", pool="web", result="ok"), 3)
        # /status names the servers by address.
        _, status = __import__("harness").admin_get(self.admin_port, "/status")
        self.assertIn(f"127.0.0.3:{self.server_port}", status)
        self.assertNotIn(f"127.0.0.2:{self.server_port}", status)

    def test_a_failed_or_empty_answer_keeps_the_known_servers(self):
        self.set_records(A=["127.0.0.2", "127.0.0.3"])
        self.start()
        wait_until(lambda: self.servers() == 2, what="the first answer")
        self.set_records(servfail=True)
        wait_until(lambda: (self.metric("crest_resolver_lookups_total", pool="web", result="error") or 0) >= 2,
                   what="two failed lookups")
        self.assertEqual(self.servers(), 2)
        self.assertEqual(self.backends_answering(), {"b2", "b3"})
        self.set_records(A=[])
        errors = self.metric("crest_resolver_lookups_total", pool="web", result="error")
        wait_until(lambda: self.metric("crest_resolver_lookups_total", pool="web", result="error") > errors,
                   what="an empty answer")
        self.assertEqual(self.servers(), 2)

    def test_a_new_address_of_a_checked_pool_joins_after_its_first_passing_check(self):
        self.set_records(A=["127.0.0.2"])
        self.start(pool_extra="    health_check: {path: /healthz, interval: 300ms, healthy_threshold: 3}\n")
        wait_until(lambda: self.servers() == 1, what="the first answer")
        wait_until(lambda: self.metric("crest_upstream_server_up", pool="web",
                                       server=f"127.0.0.2:{self.server_port}") == 1,
                   what="127.0.0.2 up after one passing check")
        self.set_records(A=["127.0.0.2", "127.0.0.3"])
        wait_until(lambda: self.servers() == 2, timeout=2.5, what="the added address")
        # One check (300 ms), not healthy_threshold (three): well within 1.5 s.
        wait_until(lambda: self.metric("crest_upstream_server_up", pool="web",
                                       server=f"127.0.0.3:{self.server_port}") == 1,
                   timeout=1.5, what="127.0.0.3 up")
        self.assertEqual(self.backends_answering(), {"b2", "b3"})


if __name__ == "__main__":
    unittest.main()
