"""End to end: how requests spread over a pool's servers."""

import collections
import threading
import time
import unittest

from harness import Client, CrestTestCase


class BalancingTest(CrestTestCase):
    def test_round_robin_honours_weights_3_to_1(self):
        a, b = self.backend("a"), self.backend("b")
        pool = f"    servers:\n      - address: {a.address}\n        weight: 3\n      - address: {b.address}"
        self.crest(self.simple_config({"web": pool}), self.port)
        counts = collections.Counter()
        clients = [Client(self.port) for _ in range(4)]
        for i in range(400):
            c = clients[i % 4]
            c.request("GET", "/bytes/1")
            counts[c.read_response().header("X-Backend")] += 1
        # One schedule shared by both workers: exact up to the two workers' interleaving.
        self.assertAlmostEqual(counts["a"], 300, delta=2)
        self.assertAlmostEqual(counts["b"], 100, delta=2)

    def test_least_conn_prefers_the_fast_server(self):
        fast, slow = self.backend("fast"), self.backend("slow")
        pool = (f"    balance: least_conn\n    servers:\n      - address: {fast.address}\n"
                f"      - address: {slow.address}")
        # The slow server answers /sleep requests in 200 ms, the fast one at once:
        # routes send /work to both, but each backend sleeps only when named slow.
        self.crest(self.simple_config({"web": pool}), self.port)
        counts = collections.Counter()
        lock = threading.Lock()

        def loop():
            c = Client(self.port)
            for _ in range(25):
                c.request("GET", "/slow-on/slow")
                name = c.read_response().header("X-Backend")
                with lock:
                    counts[name] += 1

        threads = [threading.Thread(target=loop) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sum(counts.values()), 200)
        self.assertGreater(counts["fast"], 2 * counts["slow"], counts)

    def test_ip_hash_keeps_each_client_address_on_one_server(self):
        servers = [self.backend(n) for n in ("a", "b", "c")]
        pool = "    balance: ip_hash\n    servers:\n" + "".join(f"      - address: {s.address}\n" for s in servers)
        self.crest(self.simple_config({"web": pool.rstrip()}), self.port)
        chosen = {}
        for i in range(2, 22):
            source = f"127.0.0.{i}"
            seen = set()
            for _ in range(5):
                c = Client(self.port, source=source)
                c.request("GET", "/bytes/1")
                seen.add(c.read_response().header("X-Backend"))
                c.close()
            self.assertEqual(len(seen), 1, source)
            chosen[source] = seen.pop()
        self.assertGreater(len(set(chosen.values())), 1)


if __name__ == "__main__":
    unittest.main()
