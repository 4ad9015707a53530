"""WebSocket through crest: the HTTP/1.1 upgrade and RFC 8441's extended
CONNECT over HTTP/2, against the test backend's echo endpoint (/ws)."""

import json
import os
import re
import signal
import sys
import time
import unittest

import h2.settings

from harness import Client, CrestTestCase, get, wait_until
from test_http2 import H2Client

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import websocket  # noqa: E402


def reader(data):
    """read_exact over the bytes `data`."""
    rest = [data]

    def read_exact(n):
        piece, rest[0] = rest[0][:n], rest[0][n:]
        if len(piece) < n:
            raise EOFError
        return piece
    return read_exact


class WsClient(Client):
    """A WebSocket client over one plain connection to crest (harness.Client's
    socket, buffer, reads and close)."""

    def __init__(self, port, path="/ws", host="test.local"):
        super().__init__(port)
        self.key = websocket.new_key()
        self.send((f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\n"
                   f"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                   f"Sec-WebSocket-Key: {self.key}\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def send_frame(self, opcode, payload):
        self.send(websocket.frame(opcode, payload, mask=True))

    def receive(self):
        return websocket.read_frame(self._exact)

    def echo(self, opcode, payload):
        self.send_frame(opcode, payload)
        return self.receive()

    def read_body(self):
        """The rest of a non-101 response (Content-Length)."""
        return self._exact(int(self.headers["content-length"]))


class WebSocketTest(CrestTestCase):
    def start(self, extra="", pools=None, routes=None):
        self.log_path = os.path.join(self.tmpdir, "access.log")
        if pools is None:
            self.web = self.backend("web")
            pools = {"web": [self.web]}
        config = self.simple_config(pools, routes=routes, extra=f"access_log: {self.log_path}\n{extra}")
        return self.crest(config, self.port)

    def log_lines(self, pattern, count=1):
        def found():
            if not os.path.exists(self.log_path):
                return []
            return [line for line in open(self.log_path).read().splitlines() if re.search(pattern, line)]
        wait_until(lambda: len(found()) >= count, what=f"{count} access log lines matching {pattern}")
        return found()

    def test_text_and_binary_messages_go_both_ways(self):
        self.start()
        ws = WsClient(self.port)
        self.assertEqual(ws.status, 101)
        self.assertEqual(ws.headers["upgrade"], "websocket")
        self.assertEqual(ws.headers["connection"], "upgrade")
        # The server's answer to the client's own key: the key went through unchanged.
        self.assertEqual(ws.headers["sec-websocket-accept"], websocket.accept_for(ws.key))
        self.assertEqual(ws.headers["x-backend"], "web")
        self.assertEqual(ws.echo(websocket.TEXT, "héllo".encode()), (websocket.TEXT, "héllo".encode()))
        self.assertEqual(ws.echo(websocket.BINARY, bytes(range(256))), (websocket.BINARY, bytes(range(256))))
        self.assertEqual(ws.echo(websocket.PING, b"p"), (websocket.PONG, b"p"))
        opcode, payload = ws.echo(websocket.TEXT, b"headers?")
        seen = {k.lower(): v for k, v in json.loads(payload)["headers"]}
        self.assertEqual(seen["upgrade"], "websocket")
        self.assertEqual(seen["connection"], "upgrade")
        self.assertEqual(seen["x-forwarded-for"], "127.0.0.1")
        self.assertEqual(self.metric("crest_tunnels_active", listener="public"), 1)
        self.assertEqual(self.metric("crest_tunnels_total", listener="public"), 1)
        self.assertEqual(ws.echo(websocket.CLOSE, b"\x03\xe8"), (websocket.CLOSE, b"\x03\xe8"))
        self.assertTrue(ws.closed_by_peer())
        wait_until(lambda: self.metric("crest_tunnels_active", listener="public") == 0, what="the tunnel closed")
        self.assertEqual(self.metric("crest_tunnels_total", listener="public"), 1)
        line = self.log_lines(r'"GET /ws HTTP/1.1" 101 ')[0]
        to_client = int(re.search(r'" 101 (\d+) ', line).group(1))
        from_client = int(re.search(r" from_client=(\d+)$", line).group(1))
        self.assertGreater(to_client, 256)
        self.assertGreater(from_client, 256)
        self.assertIn("cause=-", line)

    def test_a_mebibyte_message_each_way(self):
        self.start()
        ws = WsClient(self.port)
        message = os.urandom(1 << 20)
        self.assertEqual(ws.echo(websocket.BINARY, message), (websocket.BINARY, message))
        self.assertEqual(ws.echo(websocket.TEXT, b"after"), (websocket.TEXT, b"after"))
        ws.close()

    def test_a_refused_upgrade_is_relayed_and_the_connection_goes_on(self):
        self.start()
        ws = WsClient(self.port, path="/ws?refuse=403")
        self.assertEqual(ws.status, 403)
        self.assertEqual(ws.read_body(), b"refused\n")
        ws.send(b"GET / HTTP/1.1\r\nHost: test.local\r\n\r\n")
        while b"hello from web" not in ws.buf:
            ws._fill()
        self.assertEqual(self.metric("crest_tunnels_total", listener="public"), 0)
        ws.close()

    def test_other_upgrades_are_dropped(self):
        self.start()
        c = Client(self.port)
        c.request("GET", "/echo", headers={"Connection": "Upgrade", "Upgrade": "foo/2"})
        r = c.read_response()
        self.assertEqual(r.status, 200)
        seen = {k.lower() for k, _ in r.json()["headers"]}
        self.assertNotIn("upgrade", seen)
        # A 101 the request did not ask for is still refused.
        self.assertEqual(get(self.port, "/switch").status, 502)

    def test_idle_tunnel_closes_at_tunnel_idle_not_client_idle(self):
        self.start(extra="timeouts:\n  client_idle: 1s\n  tunnel_idle: 2s")
        ws = WsClient(self.port)
        # Messages keep it open past both timeouts.
        for i in range(6):
            time.sleep(0.5)
            self.assertEqual(ws.echo(websocket.TEXT, b"%d" % i), (websocket.TEXT, b"%d" % i))
        quiet_from = time.monotonic()
        self.assertTrue(ws.closed_by_peer(timeout=10))
        self.assertGreater(time.monotonic() - quiet_from, 1.8)  # client_idle (1 s) did not close it
        line = self.log_lines(r'"GET /ws HTTP/1.1" 101 ')[0]
        self.assertIn("cause=tunnel_idle", line)
        wait_until(lambda: self.metric("crest_tunnels_active", listener="public") == 0, what="the tunnel closed")

    def test_a_server_that_closes_mid_message_closes_the_client(self):
        self.start()
        ws = WsClient(self.port, path="/ws?close-mid=1")
        self.assertEqual(ws.status, 101)
        self.assertTrue(ws.closed_by_peer())
        wait_until(lambda: self.metric("crest_tunnels_active", listener="public") == 0, what="the tunnel closed")

    def test_graceful_stop_ends_tunnels_at_its_deadline(self):
        crest = self.start(extra="shutdown_timeout: 2s")
        ws = WsClient(self.port)
        self.assertEqual(ws.echo(websocket.TEXT, b"before"), (websocket.TEXT, b"before"))
        stop_at = time.monotonic()
        crest.signal(signal.SIGTERM)
        # Until the deadline the tunnel is served.
        self.assertEqual(ws.echo(websocket.TEXT, b"during"), (websocket.TEXT, b"during"))
        self.assertTrue(ws.closed_by_peer(timeout=10))
        crest.proc.wait(10)
        elapsed = time.monotonic() - stop_at
        self.assertGreater(elapsed, 1.5)
        self.assertLess(elapsed, 6)
        self.assertEqual(crest.proc.returncode, 0)

    def test_reload_leaves_open_tunnels_on_their_configuration(self):
        a, b = self.backend("a"), self.backend("b")
        crest = self.start(pools={"a": [a], "b": [b]})
        ws = WsClient(self.port)
        self.assertEqual(ws.headers["x-backend"], "a")
        crest.write_config(open(crest.config_path).read().replace("      - pool: a", "      - pool: b"))
        crest.signal(signal.SIGHUP)
        wait_until(lambda: get(self.port, "/").header("x-backend") == "b", what="the reload")
        self.assertEqual(ws.echo(websocket.TEXT, b"still"), (websocket.TEXT, b"still"))
        self.assertEqual(json.loads(ws.echo(websocket.TEXT, b"headers?")[1])["backend"], "a")
        self.assertEqual(WsClient(self.port).headers["x-backend"], "b")
        ws.close()

    def test_a_tunnel_holds_no_admission_slot_and_counts_on_its_server_for_least_conn(self):
        a, b = self.backend("a"), self.backend("b")
        pool = ("    balance: least_conn\n    max_active_requests: 1\n    servers:\n"
                f"      - address: {a.address}\n      - address: {b.address}")
        self.start(pools={"web": pool})
        ws = WsClient(self.port)
        self.assertEqual(ws.status, 101)
        tunnel_server = ws.headers["x-backend"]
        # The only slot is free for requests while the tunnel is open...
        for _ in range(4):
            r = get(self.port, "/")
            self.assertEqual(r.status, 200)
            # ...and least_conn sends them to the server without the tunnel.
            self.assertNotEqual(r.header("x-backend"), tunnel_server)
        self.assertEqual(self.metric("crest_shed_requests_total", pool="web", reason="queue_full"), 0)
        ws.close()


class WebSocketOverHttp2Test(CrestTestCase):
    def test_extended_connect_becomes_the_http1_upgrade(self):
        web = self.backend("web")
        log_path = os.path.join(self.tmpdir, "access.log")
        self.crest(self.simple_config({"web": [web]}, extra=f"access_log: {log_path}"), self.port)
        c = H2Client(self.port)
        c.pump(lambda: c.remote_settings_seen)
        self.assertEqual(c.conn.remote_settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL], 1)
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                                  (":path", "/ws"), (":authority", "test.local"),
                                  ("sec-websocket-version", "13")])
        c.flush()
        c.responses[sid] = {"headers": None, "body": b"", "ended": False, "reset": None}
        c.pump(lambda: c.responses[sid]["headers"] is not None)
        headers = c.responses[sid]["headers"]
        self.assertEqual(headers[":status"], "200")
        self.assertNotIn("sec-websocket-accept", headers)
        self.assertNotIn("upgrade", headers)

        def echo(opcode, payload):
            c.responses[sid]["body"] = b""
            c.send_body(sid, websocket.frame(opcode, payload, mask=True), end=False)
            want = len(websocket.frame(opcode, payload, mask=False))
            c.pump(lambda: len(c.responses[sid]["body"]) >= want)
            return websocket.read_frame(reader(c.responses[sid]["body"]))

        self.assertEqual(echo(websocket.TEXT, b"over h2"), (websocket.TEXT, b"over h2"))
        big = os.urandom(300 * 1024)  # more than a stream window: flow control carries it
        self.assertEqual(echo(websocket.BINARY, big), (websocket.BINARY, big))
        seen = {k.lower(): v for k, v in json.loads(echo(websocket.TEXT, b"headers?")[1])["headers"]}
        self.assertEqual(seen["upgrade"], "websocket")
        self.assertEqual(seen["connection"], "upgrade")
        self.assertEqual(len(seen["sec-websocket-key"]), 24)  # made by crest: RFC 8441 has none
        self.assertEqual(seen["sec-websocket-version"], "13")
        self.assertEqual(seen["host"], "test.local")
        self.assertEqual(self.metric("crest_tunnels_active", listener="public"), 1)
        # The client ends its side: the server's side is closed, and the stream ends.
        c.send_body(sid, websocket.frame(websocket.CLOSE, b"\x03\xe8", mask=True), end=True)
        c.pump(lambda: c.responses[sid]["ended"])
        wait_until(lambda: self.metric("crest_tunnels_active", listener="public") == 0, what="the tunnel closed")
        # The connection serves other streams meanwhile and after.
        other = c.request("/")
        self.assertEqual(c.response(other)["headers"][":status"], "200")
        wait_until(lambda: os.path.exists(log_path) and '"GET /ws HTTP/2.0" 101 ' in open(log_path).read(),
                   what="the tunnel's access log line")
        c.close()

    def test_a_server_that_closes_mid_message_ends_the_stream(self):
        web = self.backend("web")
        self.crest(self.simple_config({"web": [web]}), self.port)
        c = H2Client(self.port)
        c.pump(lambda: c.remote_settings_seen)
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                                  (":path", "/ws?close-mid=1"), (":authority", "test.local")])
        c.flush()
        c.responses[sid] = {"headers": None, "body": b"", "ended": False, "reset": None}
        r = c.response(sid)
        self.assertEqual(r["headers"][":status"], "200")
        self.assertEqual(r["body"], b"\x82\x7e\x03\xe8" + b"z" * 10)  # what the server sent, then the end
        self.assertTrue(r["ended"])
        wait_until(lambda: self.metric("crest_tunnels_active", listener="public") == 0, what="the tunnel closed")
        c.close()

    def test_plain_connect_is_refused(self):
        web = self.backend("web")
        self.crest(self.simple_config({"web": [web]}), self.port)
        c = H2Client(self.port, validate=False)
        sid = c.conn.get_next_available_stream_id()
        c.conn.send_headers(sid, [(":method", "CONNECT"), (":authority", "example.test:443")], end_stream=True)
        c.flush()
        c.responses[sid] = {"headers": None, "body": b"", "ended": False, "reset": None}
        self.assertEqual(c.response(sid)["headers"][":status"], "400")
        self.assertEqual(web.requests_seen(), [])


if __name__ == "__main__":
    unittest.main()
