"""End to end: SIGHUP reload, graceful stop, daemon mode (SPEC.md, Signals)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness import (CREST, Client, CrestTestCase, admin_get, concurrently, free_port, get, run_crest,
                     wait_for_port, wait_until)
from prometheus_text import check


def connections_active(admin_port):
    """crest_downstream_connections_active of the listener "public"."""
    _, samples = check(admin_get(admin_port, "/metrics")[1])
    return samples.get(("crest_downstream_connections_active", (("listener", "public"),)))


def refuses(port):
    """True when a connection to the port is refused, or reset: a listener
    closed while the probe waited in its queue has gone all the same."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except (ConnectionRefusedError, ConnectionResetError):
        return True


class ReloadTest(CrestTestCase):
    def config(self, weight_a, extra_route=False, extra_listener_port=None):
        pool = (f"    servers:\n      - address: {self.a.address}\n        weight: {weight_a}\n"
                f"      - address: {self.b.address}")
        routes = []
        if extra_route:
            routes += ["      - match: {path_prefix: /only-b/}", "        pool: only-b"]
        routes += ["      - pool: web"]
        text = self.simple_config({"web": pool, "only-b": [self.b]}, routes=routes,
                                  listen_port=self.port, admin_port=self.admin_port)
        if extra_listener_port:
            text = text.replace("pools:\n", f"  - name: extra\n    listen: 127.0.0.1:{extra_listener_port}\n"
                                            "    routes:\n      - pool: web\npools:\n", 1)
        return text

    def setUp(self):
        super().setUp()
        self.a, self.b = self.backend("a"), self.backend("b")
        self.port, self.admin_port = free_port(), free_port()
        self.proc = self.crest(self.config(1), self.port)

    def reload(self, text):
        self.proc.write_config(text)
        self.proc.signal(signal.SIGHUP)

    def generation(self):
        return json.loads(admin_get(self.admin_port, "/status")[1])["generation"]

    def wait_generation(self, n, timeout=3):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.generation() == n:
                return
            time.sleep(0.02)
        self.fail(f"generation {n} not reached: {self.generation()}\n{self.proc.log()}")

    def test_reloads_under_load_fail_no_request(self):
        errors, done = [], collections_counter()
        stop = threading.Event()

        def client(keep_alive):
            c = None
            while not stop.is_set():
                try:
                    if c is None or not keep_alive:
                        c = Client(self.port)
                    c.request("GET", "/bytes/2")
                    r = c.read_response()
                    if r.status != 200:
                        errors.append(r.status)
                    done[keep_alive] += 1
                    if not keep_alive:
                        c.close()
                except Exception as e:  # noqa: BLE001 - every failure counts
                    errors.append(repr(e))
                    c = None

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in (True, False, True)]
        for t in threads:
            t.start()
        try:
            for i in range(6):
                time.sleep(0.3)
                self.reload(self.config(3 if i % 2 == 0 else 1, extra_route=i % 2 == 0))
                self.wait_generation(i + 2)
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(errors, [])
        self.assertGreater(sum(done.values()), 1000, done)
        self.assertIn("reload: generation 2 applied (pools changed: web; routes changed)", self.proc.log())

    def test_a_broken_configuration_keeps_the_old_one_serving(self):
        self.reload(self.config(1).replace("    servers:", "    servres:", 1))
        deadline = time.time() + 3
        while "reload: failed" not in self.proc.log() and time.time() < deadline:
            time.sleep(0.02)
        log = self.proc.log()
        self.assertIn("reload: failed, generation 1 keeps serving", log)
        self.assertRegex(log, r"error reload: \S+crest.yaml:\d+:\d+: pools.web.servres: unknown field")
        self.assertEqual(get(self.port, "/bytes/1").status, 200)
        status = json.loads(admin_get(self.admin_port, "/status")[1])
        self.assertEqual(status["generation"], 1)
        self.assertEqual(status["last_reload"]["result"], "failure")
        metrics = admin_get(self.admin_port, "/metrics")[1]
        self.assertIn('crest_config_reloads_total{result="failure"} 1', metrics)

    def test_the_reload_log_names_changed_settings(self):
        text = self.config(1)
        self.reload(text.replace("workers: 2", "workers: 2\nshutdown_timeout: 3s"))
        self.wait_generation(2)
        self.reload(text.replace("workers: 2", "workers: 1\nshutdown_timeout: 3s"))
        self.wait_generation(3)
        wait_until(lambda: "generation 3 applied" in self.proc.log(), what="the reload's log line")
        log = self.proc.log()
        self.assertIn("reload: generation 2 applied (settings changed: shutdown_timeout)", log)
        self.assertIn("reload: generation 3 applied (unchanged until the next start: workers)", log)

    def test_listeners_are_added_and_removed(self):
        extra = free_port()
        self.reload(self.config(1, extra_listener_port=extra))
        self.wait_generation(2)
        self.assertEqual(get(extra, "/bytes/1").status, 200)
        held = Client(extra)  # an idle keep-alive connection of the listener about to go
        held.request("GET", "/bytes/1")
        self.assertEqual(held.read_response().status, 200)
        self.reload(self.config(1))
        self.wait_generation(3)
        # The generation changes on the main thread; each worker closes the
        # removed listener's socket on its own loop a moment later.
        deadline = time.time() + 2
        while True:
            try:
                socket.create_connection(("127.0.0.1", extra), timeout=1).close()
            except ConnectionRefusedError:
                break
            self.assertLess(time.time(), deadline, "the removed listener still accepts")
            time.sleep(0.02)
        self.assertTrue(held.closed_by_peer(timeout=3))
        self.assertEqual(get(self.port, "/bytes/1").status, 200)
        self.assertIn("listeners added: extra", self.proc.log())
        self.assertIn("listeners removed: extra", self.proc.log())

    def test_a_listener_renamed_on_its_address_loses_no_connection(self):
        # The new name takes over the old name's sockets: with sockets of its
        # own, the connections queued on the old ones were reset when those closed.
        failures, served = [], []
        stop = threading.Event()

        def connect_in_a_loop():
            while not stop.is_set():
                try:
                    served.append(get(self.port, "/bytes/1", headers={"Connection": "close"}).status)
                except OSError as e:
                    failures.append(repr(e))

        clients = [threading.Thread(target=connect_in_a_loop) for _ in range(4)]
        for t in clients:
            t.start()
        wait_until(lambda: len(served) >= 20, what="20 requests before the reload")
        self.reload(self.config(1).replace("- name: public", "- name: front"))
        self.wait_generation(2)
        after_reload = len(served)
        wait_until(lambda: len(served) >= after_reload + 40, what="40 requests after the reload")
        stop.set()
        for t in clients:
            t.join()
        self.assertEqual(failures, [])
        self.assertEqual(set(served), {200})
        self.assertIn("listeners added: front", self.proc.log())


def collections_counter():
    import collections
    return collections.Counter()


class StopTest(CrestTestCase):
    def test_sigterm_lets_the_request_in_flight_finish(self):
        web = self.backend("web")
        crest = self.crest(self.simple_config({"web": [web]}), self.port)
        idle = Client(self.port)
        idle.request("GET", "/bytes/1")
        idle.read_response()
        busy = Client(self.port)
        busy.request("GET", "/sleep/1000")
        wait_until(lambda: "GET /sleep/1000" in web.requests_seen(), what="the request reaching the server")
        crest.signal(signal.SIGTERM)
        self.assertTrue(idle.closed_by_peer(timeout=2))
        r = busy.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Connection"), "close")
        self.assertEqual(crest.proc.wait(5), 0)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", self.port), timeout=1)

    def test_sigterm_closes_the_listeners_while_the_request_in_flight_finishes(self):
        # A balancer in front must see a refusal at once, to retry elsewhere.
        web = self.backend("web")
        crest = self.crest(self.simple_config({"web": [web]}), self.port)
        busy = Client(self.port)
        busy.request("GET", "/sleep/3000")
        wait_until(lambda: "GET /sleep/3000" in web.requests_seen(), what="the request reaching the server")
        crest.signal(signal.SIGTERM)
        wait_until(lambda: refuses(self.port), timeout=2, what="a refused connection after SIGTERM")
        self.assertIsNone(crest.proc.poll(), "crest exited before its request in flight finished")
        r = busy.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(crest.proc.wait(5), 0)

    def test_sigterm_answers_a_connection_that_has_not_sent_its_request_yet(self):
        web = self.backend("web")
        crest = self.crest(self.simple_config({"web": [web]}), self.port)
        fresh = Client(self.port)
        wait_until(lambda: connections_active(self.admin_port) == 1, what="the connection accepted")
        crest.signal(signal.SIGTERM)
        # The worker closes its listening socket, then drains its connections, in one task.
        wait_until(lambda: refuses(self.port), what="the stop under way")
        fresh.request("GET", "/bytes/1")
        r = fresh.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Connection"), "close")
        self.assertEqual(crest.proc.wait(5), 0)

    def test_shutdown_timeout_bounds_the_wait(self):
        web = self.backend("web")
        crest = self.crest(self.simple_config({"web": [web]}, extra="shutdown_timeout: 500ms"), self.port)
        busy = Client(self.port)
        busy.request("GET", "/sleep/5000")
        wait_until(lambda: "GET /sleep/5000" in web.requests_seen(), what="the request reaching the server")
        start = time.time()
        crest.signal(signal.SIGTERM)
        self.assertEqual(crest.proc.wait(5), 0)
        self.assertLess(time.time() - start, 2)


class IdleTest(CrestTestCase):
    def test_workers_sleep_once_the_traffic_stops(self):
        # After an event a worker polls for busy_poll (50us by default) before
        # it sleeps: between bursts it must not keep a core busy.
        web = self.backend("web")
        crest = self.crest(self.simple_config({"web": [web]}), self.port)
        results, _ = concurrently(lambda: get(self.port, "/bytes/1").status, 20)
        self.assertEqual(results, [200] * 20)
        time.sleep(0.3)
        before = cpu_seconds(crest.proc.pid)
        time.sleep(2)
        used = cpu_seconds(crest.proc.pid) - before
        print(f"\nCPU used by an idle crest over 2 s: {used:.3f} s")
        self.assertLess(used, 0.05)


def cpu_seconds(pid):
    """User + system CPU time of a process and all its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class DaemonTest(CrestTestCase):
    def test_daemon_detaches_writes_its_pid_and_refuses_a_second_start(self):
        web = self.backend("web")
        cfg = os.path.join(self.tmpdir, "crest.yaml")
        with open(cfg, "w") as f:
            f.write(self.simple_config({"web": [web]}))
        pid_file = os.path.join(self.tmpdir, "crest.pid")
        log_file = os.path.join(self.tmpdir, "crest.log")
        args = [CREST, "-c", cfg, "--daemon", "--pid-file", pid_file, "--log-file", log_file]
        started = subprocess.run(args, capture_output=True, text=True, timeout=10)
        self.assertEqual(started.returncode, 0, started.stderr)
        self.assertEqual(started.stdout + started.stderr, "")
        with open(pid_file) as f:
            pid = int(f.read())
        try:
            os.kill(pid, 0)
            self.assertEqual(get(self.port, "/bytes/1").status, 200)
            again = subprocess.run(args, capture_output=True, text=True, timeout=10)
            self.assertEqual(again.returncode, 3)
            self.assertIn(f"names running process {pid}", again.stderr)
        finally:
            os.kill(pid, signal.SIGTERM)
        deadline = time.time() + 5
        while os.path.exists(pid_file) and time.time() < deadline:
            time.sleep(0.05)
        self.assertFalse(os.path.exists(pid_file))
        with open(log_file) as f:
            log = f.read()
        self.assertIn("crest started", log)
        self.assertIn("open files limit: ", log)

    def test_a_second_crest_on_the_same_ports_refuses_to_start(self):
        # Listeners use SO_REUSEPORT, which would let the second one start and
        # take about half of the first one's new connections.
        web = self.backend("web")
        first = self.crest(self.simple_config({"web": [web]}), self.port)
        code, _, err = run_crest(["-c", first.config_path])
        self.assertEqual(code, 3)
        self.assertIn(f"listener public: cannot listen on 127.0.0.1:{self.port}: address already in use "
                      "(is another crest running?)", err)
        for _ in range(20):
            self.assertEqual(get(self.port, "/bytes/1", headers={"Connection": "close"}).status, 200)
        self.assertIsNone(first.proc.poll())

    def test_a_daemon_started_with_relative_paths_reloads_its_file(self):
        a, b = self.backend("a"), self.backend("b")
        with open(os.path.join(self.tmpdir, "daemon.yaml"), "w") as f:
            f.write(self.simple_config({"web": [a]}))
        os.mkdir(os.path.join(self.tmpdir, "run"))
        args = [CREST, "-c", "daemon.yaml", "--daemon", "--pid-file", "run/crest.pid", "--log-file", "crest.log"]
        started = subprocess.run(args, cwd=self.tmpdir, capture_output=True, text=True, timeout=10)
        self.assertEqual(started.returncode, 0, started.stderr)
        with open(os.path.join(self.tmpdir, "run", "crest.pid")) as f:
            pid = int(f.read())
        try:
            self.assertEqual(get(self.port, "/").header("X-Backend"), "a")
            with open(os.path.join(self.tmpdir, "daemon.yaml"), "w") as f:
                f.write(self.simple_config({"web": [b]}, listen_port=self.port, admin_port=self.admin_port))
            os.kill(pid, signal.SIGHUP)
            wait_until(lambda: json.loads(admin_get(self.admin_port, "/status")[1])["generation"] == 2,
                       what="generation 2")
            self.assertEqual(get(self.port, "/").header("X-Backend"), "b")
        finally:
            os.kill(pid, signal.SIGTERM)
        with open(os.path.join(self.tmpdir, "crest.log")) as f:
            log = f.read()
        self.assertIn("reload: generation 2 applied", log)
        self.assertNotIn("error", log)

    def test_configuration_errors_are_reported_before_detaching(self):
        cfg = os.path.join(self.tmpdir, "bad.yaml")
        with open(cfg, "w") as f:
            f.write("listeners: []\n")
        pid_file = os.path.join(self.tmpdir, "crest.pid")
        r = subprocess.run([CREST, "-c", cfg, "--daemon", "--pid-file", pid_file], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 1)
        self.assertIn("listeners: at least one listener is required", r.stderr)
        self.assertFalse(os.path.exists(pid_file))
        self.assertEqual(subprocess.run([CREST, "-c", cfg, "--daemon"], capture_output=True).returncode, 2)


@unittest.skipUnless(shutil.which("systemd-analyze"), "systemd-analyze is not installed")
class SystemdUnitTest(unittest.TestCase):
    def test_the_shipped_unit_scores_ok_in_systemd_analyze_security(self):
        # "OK" is an exposure below 4.5; --threshold counts in tenths.
        unit = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "crest.service")
        p = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=44", unit],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("OK", p.stdout.splitlines()[-1])


if __name__ == "__main__":
    unittest.main()
