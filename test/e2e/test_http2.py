"""End to end: HTTP/2 from clients (prior knowledge and ALPN), each stream an exchange."""

import json
import os
import pathlib
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hyperframe.frame

from harness import CrestTestCase, get, wait_until


def parse_frames(data):
    """The whole frames at the start of `data`, and what is left."""
    frames = []
    while len(data) >= 9:
        frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(data[:9]))
        if len(data) < 9 + length:
            break
        frame.parse_body(memoryview(data[9:9 + length]))
        frames.append(frame)
        data = data[9 + length:]
    return frames, data


class H2Client:
    """An HTTP/2 client connection (python3-h2): sends what it is told, collects what comes."""

    def __init__(self, port, validate=True, window=None, tls_context=None):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls_context is not None:
            sock = tls_context.wrap_socket(sock, server_hostname="a.test")
        self.sock = sock
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                           validate_outbound_headers=validate,
                                           normalize_outbound_headers=validate)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        if window is not None:
            self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()
        self.responses = {}  # stream id -> {"headers", "body", "ended", "reset"}
        self.goaway = None
        self.remote_settings_seen = False
        self.auto_ack = True

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path, method="GET", headers=(), body=None, end=True, authority="example.test"):
        sid = self.conn.get_next_available_stream_id()
        fields = [(":method", method), (":path", path), (":scheme", "http"), (":authority", authority),
                  *headers]
        self.conn.send_headers(sid, fields, end_stream=end and body is None)
        self.flush()
        self.responses[sid] = {"headers": None, "body": b"", "ended": False, "reset": None}
        if body is not None:
            self.send_body(sid, body, end)
        return sid

    def send_body(self, sid, body, end=True):
        """Sends `body` as the windows allow, reading the server's WINDOW_UPDATEs meanwhile."""
        while body:
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if room == 0:
                before = self.conn.local_flow_control_window(sid)
                self.pump(lambda: self.conn.local_flow_control_window(sid) > before or self.finished(sid))
                if self.finished(sid):
                    return
                continue
            self.conn.send_data(sid, body[:room])
            body = body[room:]
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    def pump(self, until, timeout=10):
        """Reads and handles frames until until() is true."""
        deadline = time.monotonic() + timeout
        while not until():
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise AssertionError("timed out waiting for the server")
            if not data:
                raise ConnectionError("closed by the server")
            for event in self.conn.receive_data(data):
                self.handle(event)
            self.flush()

    def handle(self, event):
        if isinstance(event, h2.events.ResponseReceived):
            self.responses[event.stream_id]["headers"] = dict(event.headers)
            self.responses[event.stream_id]["ended_by_headers"] = event.stream_ended is not None
        elif isinstance(event, h2.events.DataReceived):
            self.responses[event.stream_id]["body"] += event.data
            if self.auto_ack:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.responses[event.stream_id]["ended"] = True
        elif isinstance(event, h2.events.StreamReset):
            if event.stream_id in self.responses:
                self.responses[event.stream_id]["reset"] = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.remote_settings_seen = True

    def finished(self, sid):
        r = self.responses[sid]
        return r["ended"] or r["reset"] is not None

    def response(self, sid, timeout=10):
        self.pump(lambda: self.finished(sid), timeout)
        return self.responses[sid]

    def close(self):
        self.sock.close()


class Http2Test(CrestTestCase):
    def start(self, extra_listener="", extra=""):
        self.web = self.backend("web")
        config = self.simple_config({"web": [self.web]}, extra=extra)
        if extra_listener:
            config = config.replace("    routes:\n", extra_listener + "    routes:\n", 1)
        self.crest(config, self.port)

    def test_prior_knowledge_stream_reaches_the_server_as_http1(self):
        self.start(extra=f"access_log: {self.tmpdir}/access.log")
        c = H2Client(self.port)
        sid = c.request("/echo?x=1", headers=[("x-test", "one"), ("cookie", "a=1"), ("cookie", "b=2")])
        r = c.response(sid)
        self.assertEqual(r["headers"][":status"], "200")
        self.assertNotIn("connection", r["headers"])
        self.assertNotIn("keep-alive", r["headers"])
        self.assertTrue(all(name == name.lower() for name in r["headers"]))
        seen = json.loads(r["body"])
        self.assertEqual(seen["method"], "GET")
        self.assertEqual(seen["path"], "/echo?x=1")
        self.assertEqual(seen["version"], "HTTP/1.1")
        headers = {k.lower(): v for k, v in seen["headers"]}
        self.assertEqual(headers["host"], "example.test")
        self.assertEqual(headers["x-test"], "one")
        self.assertEqual(headers["cookie"], "a=1; b=2")  # one field for an HTTP/1 server
        self.assertEqual(headers["x-forwarded-proto"], "http")
        c.close()
        wait_until(lambda: self.metric("crest_downstream_requests_total", listener="public", protocol="h2") == 1,
                   what="the h2 request counted")
        self.assertEqual(self.metric("crest_downstream_requests_total", listener="public", protocol="http/1.1"), 0)
        wait_until(lambda: os.path.exists(f"{self.tmpdir}/access.log") and
                   '"GET /echo?x=1 HTTP/2.0" 200' in open(f"{self.tmpdir}/access.log").read(),
                   what="the access log line")

    def test_an_empty_response_ends_the_stream_with_its_headers(self):
        self.start(extra=f"access_log: {self.tmpdir}/access.log")
        c = H2Client(self.port)
        empty = [c.request("/bytes/0"), c.request("/status/204"), c.request("/bytes/5", method="HEAD")]
        full = c.request("/bytes/5")
        for sid in empty:
            r = c.response(sid)
            self.assertTrue(r["ended_by_headers"], r)
            self.assertEqual(r["body"], b"")
        r = c.response(full)
        self.assertFalse(r["ended_by_headers"])
        self.assertEqual(r["body"], b"01234")
        c.close()
        # Served, not cut: each is logged with its status.
        log = pathlib.Path(self.tmpdir, "access.log")
        lines = ('"GET /bytes/0 HTTP/2.0" 200', '"GET /status/204 HTTP/2.0" 204', '"HEAD /bytes/5 HTTP/2.0" 200')
        wait_until(lambda: log.exists() and all(line in log.read_text() for line in lines),
                   what="the access log lines")

    def test_an_empty_local_response_ends_the_stream_with_its_headers(self):
        self.crest_without_healthy_servers(200, "", "text/plain")
        c = H2Client(self.port)
        r = c.response(c.request("/"))
        self.assertEqual((r["headers"][":status"], r["headers"]["content-length"]), ("200", "0"))
        self.assertTrue(r["ended_by_headers"], r)
        self.assertEqual(r["body"], b"")
        c.close()
        self.assertEqual(self.metric("crest_shed_requests_total", pool="api", reason="no_healthy"), 1)

    def test_many_streams_on_one_connection(self):
        self.start()
        c = H2Client(self.port)
        sids = [c.request(f"/sleep/200?n={i}") for i in range(20)]
        start = time.monotonic()
        for sid in sids:
            self.assertEqual(c.response(sid)["headers"][":status"], "200")
        # Served side by side, not one after another (20 x 200 ms).
        self.assertLess(time.monotonic() - start, 2.0)
        self.assertEqual(len([line for line in self.web.requests_seen() if "/sleep/200" in line]), 20)
        c.close()

    def test_request_bodies_with_and_without_content_length(self):
        self.start()
        c = H2Client(self.port)
        body = os.urandom(300 * 1024)  # more than a stream's window: flow control must move it
        framed = c.request("/echo", method="POST", headers=[("content-length", str(len(body)))], body=body)
        streamed = c.request("/echo", method="POST", body=body)
        for sid in (framed, streamed):
            r = c.response(sid, timeout=20)
            self.assertEqual(r["headers"][":status"], "200")
            self.assertEqual(r["body"], body)
        c.close()

    def test_a_slow_reader_gets_the_whole_response(self):
        self.start()
        c = H2Client(self.port, window=16 * 1024)
        c.auto_ack = False
        sid = c.request("/bytes/2000000")
        got = 0
        # The client gives its window back 16 KiB at a time, as it reads.
        while not c.responses[sid]["ended"]:
            c.pump(lambda: len(c.responses[sid]["body"]) > got or c.responses[sid]["ended"])
            new = len(c.responses[sid]["body"]) - got
            got += new
            if new:
                c.conn.acknowledge_received_data(new, sid)
                c.flush()
        self.assertEqual(len(c.responses[sid]["body"]), 2000000)
        c.close()

    def test_streams_over_max_concurrent_streams_are_refused(self):
        self.start(extra_listener="    http2: {max_concurrent_streams: 2}\n")
        c = H2Client(self.port)
        c.pump(lambda: c.remote_settings_seen)
        self.assertEqual(c.conn.remote_settings.max_concurrent_streams, 2)
        # Past the client library's own check, as an abusive client would be.
        c.conn.remote_settings = h2.settings.Settings(client=False)
        sids = [c.request(f"/sleep/300?n={i}") for i in range(4)]
        for sid in sids[2:]:
            self.assertEqual(c.response(sid)["reset"], h2.errors.ErrorCodes.REFUSED_STREAM)
        # The streams within the limit are served, and the connection goes on.
        for sid in sids[:2]:
            self.assertEqual(c.response(sid)["headers"][":status"], "200")
        after = c.request("/")
        self.assertEqual(c.response(after)["headers"][":status"], "200")
        self.assertIsNone(c.goaway)
        c.close()
        # The refused streams never reached the server.
        seen = " ".join(self.web.requests_seen())
        self.assertNotIn("n=2", seen)
        self.assertNotIn("n=3", seen)

    def test_a_client_far_past_max_concurrent_streams_loses_the_connection(self):
        self.start(extra_listener="    http2: {max_concurrent_streams: 2}\n")
        c = H2Client(self.port)
        c.pump(lambda: c.remote_settings_seen)  # and acknowledged them, before any stream
        c.conn.remote_settings = h2.settings.Settings(client=False)
        # More than 100 streams past the limit at once: refusing them one by one
        # would be work without end, so the connection ends.
        sids = [c.request(f"/sleep/300?n={i}") for i in range(2 + 101)]
        with self.assertRaises((ConnectionError, h2.exceptions.ProtocolError)):
            c.response(sids[-1])
        self.assertIsNotNone(c.goaway)
        self.assertEqual(c.goaway.error_code, h2.errors.ErrorCodes.PROTOCOL_ERROR)
        c.close()

    def test_fields_that_would_smuggle_into_http1_never_reach_the_server(self):
        self.start()
        bad = [
            [("x-evil", "a\r\nInjected: 1")],
            [("X-Upper", "1")],
            [("connection", "keep-alive")],
            [("transfer-encoding", "chunked")],
            [("te", "gzip")],
        ]
        for fields in bad:
            c = H2Client(self.port, validate=False)
            sid = c.request("/echo?bad", headers=fields)
            try:
                r = c.response(sid)
                self.assertNotEqual(r["headers"] and r["headers"].get(":status"), "200", fields)
            except ConnectionError:
                pass  # ended with GOAWAY: also never forwarded
            c.close()
        self.assertEqual([line for line in self.web.requests_seen() if "bad" in line], [])

    def test_header_list_over_max_header_bytes_is_431(self):
        self.start(extra="limits:\n  max_header_bytes: 4096")
        c = H2Client(self.port)
        sid = c.request("/echo?big", headers=[("x-big", "a" * 8000)])
        r = c.response(sid)
        if r["reset"] is None:
            self.assertEqual(r["headers"][":status"], "431")
        self.assertEqual([line for line in self.web.requests_seen() if "big" in line], [])
        c.close()

    def test_graceful_stop_sends_goaway_and_finishes_the_stream_in_flight(self):
        self.start(extra="shutdown_timeout: 5s")
        # nghttp, because python3-h2 stops reading at a GOAWAY.
        client = subprocess.Popen(["nghttp", "-nv", f"http://127.0.0.1:{self.port}/sleep/500"],
                                  stdout=subprocess.PIPE, text=True)
        wait_until(lambda: any("/sleep/500" in line for line in self.web.requests_seen()),
                   what="the request at the server")
        self.crests[0].proc.send_signal(signal.SIGTERM)
        out = client.communicate(timeout=10)[0]
        sid = re.search(r"send HEADERS frame <[^>]*stream_id=(\d+)>", out).group(1)
        goaway = re.search(r"recv GOAWAY frame.*\n\s*\(last_stream_id=(\d+), error_code=(\w+)", out)
        self.assertIsNotNone(goaway, out)
        self.assertEqual(goaway.groups(), (sid, "NO_ERROR"))
        self.assertIn(":status: 200", out)
        self.assertIn("recv DATA frame", out)

    def test_a_reload_sends_goaway_and_the_next_connection_takes_the_new_configuration(self):
        self.web = self.backend("web")
        other = self.backend("other")
        self.crest(self.simple_config({"web": [self.web]}, workers=1), self.port)
        c = H2Client(self.port)
        first = c.request("/bytes/1")
        self.assertEqual(c.response(first)["headers"]["x-backend"], "web")
        self.crests[0].write_config(self.simple_config({"other": [other]}, listen_port=self.port,
                                                       admin_port=self.admin_port, workers=1))
        self.crests[0].signal(signal.SIGHUP)
        wait_until(lambda: get(self.port, "/bytes/1").header("X-Backend") == "other",
                   what="the worker on the new configuration")
        # The next stream on the old connection is not taken: GOAWAY names the last one served.
        c.request("/bytes/1")
        c.pump(lambda: c.goaway is not None)
        self.assertEqual(c.goaway.error_code, h2.errors.ErrorCodes.NO_ERROR)
        self.assertEqual(c.goaway.last_stream_id, first)
        c.close()
        fresh = H2Client(self.port)
        self.assertEqual(fresh.response(fresh.request("/bytes/1"))["headers"]["x-backend"], "other")
        fresh.close()
        wait_until(lambda: self.metric("crest_http2_goaway_total", listener="public", reason="shutdown") == 1,
                   what="the GOAWAY counted")

    def test_h2c_off_leaves_the_listener_http1_only(self):
        self.start(extra_listener="    http2: {h2c: false}\n")
        self.assertEqual(get(self.port, "/bytes/3").status, 200)
        with self.assertRaises((ConnectionError, AssertionError)):
            c = H2Client(self.port)
            c.pump(lambda: c.remote_settings_seen, timeout=2)


class Http2AbuseTest(CrestTestCase):
    """Each abuse ends the connection with a GOAWAY at bounded cost; no request reaches the server."""

    def start(self, extra=""):
        self.web = self.backend("web")
        self.crest(self.simple_config({"web": [self.web]}, extra=extra), self.port)

    def send_raw(self, build):
        """Opens a connection, sends build(client)'s frames, reads until it ends: the GOAWAY's code."""
        c = H2Client(self.port)
        c.pump(lambda: c.remote_settings_seen)
        try:
            c.sock.sendall(build(c))
        except OSError:
            pass  # closed while sending: what was read before still says why
        goaway = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                data = c.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            frames, _ = parse_frames(data)
            for frame in frames:
                if isinstance(frame, hyperframe.frame.GoAwayFrame):
                    goaway = frame.error_code
        c.close()
        self.assertLess(time.monotonic(), deadline, "the connection stayed open")
        return goaway

    @staticmethod
    def request_fields(c, tag):
        return [(":method", "GET"), (":path", f"/bytes/1?{tag}"), (":scheme", "http"), (":authority", "a")]

    def test_rapid_reset(self):
        self.start()

        def build(c):
            for _ in range(3000):
                sid = c.conn.get_next_available_stream_id()
                c.conn.send_headers(sid, self.request_fields(c, "rapid"), end_stream=True)
                c.conn.reset_stream(sid)
            return c.conn.data_to_send()

        # nghttp2's own limit (CVE-2023-44487) ends it with INTERNAL_ERROR.
        self.assertEqual(self.send_raw(build), h2.errors.ErrorCodes.INTERNAL_ERROR)
        self.assertLess(len(self.web.requests_seen()), 100)

    def test_continuation_flood(self):
        self.start()

        def build(c):
            encoder = c.conn.encoder
            first = hyperframe.frame.HeadersFrame(1)
            first.data = encoder.encode(self.request_fields(c, "continuation"))
            out = first.serialize()
            for i in range(1000):  # never END_HEADERS
                more = hyperframe.frame.ContinuationFrame(1)
                more.data = encoder.encode([(f"x-{i}", "b")])
                out += more.serialize()
            return out

        self.assertEqual(self.send_raw(build), h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
        self.assertEqual(self.web.requests_seen(), [])

    def test_settings_ping_priority_and_empty_data_floods(self):
        self.start()
        floods = {
            "settings": lambda c: hyperframe.frame.SettingsFrame(0, settings={4: 65535}).serialize() * 20000,
            "ping": lambda c: hyperframe.frame.PingFrame(0, opaque_data=b"12345678").serialize() * 20000,
            "priority": lambda c: b"".join(hyperframe.frame.PriorityFrame(2 * i + 1, depends_on=0).serialize()
                                           for i in range(5000)),
            "empty data": lambda c: (c.conn.send_headers(1, [(":method", "POST"), (":path", "/echo?empty"),
                                                             (":scheme", "http"), (":authority", "a")])
                                     or c.conn.data_to_send())
            + hyperframe.frame.DataFrame(1, data=b"").serialize() * 20000,
        }
        for name, build in floods.items():
            with self.subTest(name):
                self.assertEqual(self.send_raw(build), h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
        wait_until(lambda: self.metric("crest_http2_goaway_total", listener="public", reason="calm") == 4,
                   what="four GOAWAYs counted as calm")

    def test_hpack_bomb_is_431(self):
        self.start()
        c = H2Client(self.port)
        # Each repeat is one byte on the wire (an index into the dynamic table): 8 MB decoded.
        sid = c.request("/bytes/1?bomb", headers=[("x-a", "a" * 4000)] * 2000)
        r = c.response(sid)
        self.assertEqual(r["headers"][":status"], "431")
        self.assertEqual(self.web.requests_seen(), [])
        c.close()

    def test_a_window_held_at_zero_is_cut_at_client_idle(self):
        self.start(extra="timeouts:\n  client_idle: 1s")
        c = H2Client(self.port, window=0)
        c.auto_ack = False
        sid = c.request("/bytes/1000000")
        start = time.monotonic()
        with self.assertRaises(ConnectionError):
            c.pump(lambda: False, timeout=8)
        self.assertLess(time.monotonic() - start, 4)
        self.assertEqual(c.responses[sid]["body"], b"")
        c.close()


class Http2TlsTest(CrestTestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.TemporaryDirectory(prefix="crest-h2-")
        cls.cert, cls.key = f"{cls.certs.name}/a.pem", f"{cls.certs.name}/a.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", cls.key, "-out", cls.cert, "-days", "30", "-subj", "/CN=a.test"],
                       check=True, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        cls.certs.cleanup()

    def start(self, alpn=None):
        self.web = self.backend("web")
        config = self.simple_config({"web": [self.web]})
        alpn_line = f"      alpn: [{alpn}]\n" if alpn else ""
        config = config.replace("    routes:\n", f"    tls:\n{alpn_line}      certificates:\n"
                                f"        - cert: {self.cert}\n          key: {self.key}\n    routes:\n", 1)
        self.crest(config, self.port)

    def context(self, protocols):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(protocols)
        return context

    def test_alpn_chooses_h2_by_default(self):
        self.start()
        c = H2Client(self.port, tls_context=self.context(["h2", "http/1.1"]))
        self.assertEqual(c.sock.selected_alpn_protocol(), "h2")
        sid = c.request("/echo")
        r = c.response(sid)
        self.assertEqual(r["headers"][":status"], "200")
        headers = {k.lower(): v for k, v in json.loads(r["body"])["headers"]}
        self.assertEqual(headers["x-forwarded-proto"], "https")
        c.close()
        out = subprocess.run(["curl", "-sk", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                              f"https://127.0.0.1:{self.port}/bytes/10"], capture_output=True, text=True)
        self.assertEqual(out.stdout, "2 200")

    def test_alpn_http1_only_turns_http2_off(self):
        self.start(alpn="http/1.1")
        sock = self.context(["h2", "http/1.1"]).wrap_socket(socket.create_connection(("127.0.0.1", self.port)),
                                                            server_hostname="a.test")
        self.assertEqual(sock.selected_alpn_protocol(), "http/1.1")
        sock.close()


if __name__ == "__main__":
    unittest.main()
