"""End to end: the core proxy behaviours of SPEC.md's HTTP section."""

import re
import socket
import time
import unittest

from harness import Client, CrestTestCase, admin_get, free_port, get, wait_until
from prometheus_text import check


def reset_after_sending(client):
    """True when bytes sent now are refused with a reset (the peer's socket is
    gone); on loopback the reset is back before send() returns."""
    try:
        client.sock.sendall(b"x")
        client.sock.recv(1)
        client.sock.sendall(b"x")
    except (ConnectionResetError, BrokenPipeError):
        return True
    return False


class ProxyCoreTest(CrestTestCase):
    def setUp(self):
        super().setUp()
        self.web = self.backend("web")
        config = self.simple_config({"web": [self.web]})
        self.crest(config, self.port)

    def test_upload_and_download_of_1mib_are_intact(self):
        body = bytes((i * 7) % 251 for i in range(1 << 20))
        c = Client(self.port)
        c.request("POST", "/echo", body=body)
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, body)
        c.request("GET", "/bytes/1048576")
        r = c.read_response()
        self.assertEqual(len(r.body), 1 << 20)
        self.assertEqual(r.body[:32], b"0123456789abcdef0123456789abcdef")
        self.assertEqual(r.header("Content-Length"), "1048576")

    def test_chunked_upload_reaches_the_server_whole(self):
        c = Client(self.port)
        c.request("POST", "/echo", headers={"Transfer-Encoding": "chunked"})
        for i in range(20):
            c.send(b"%x\r\n%s\r\n" % (1000, bytes([65 + i]) * 1000))
        c.send(b"0\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), 20000)
        self.assertEqual(r.body[:1000], b"A" * 1000)
        self.assertEqual(r.body[-1000:], b"T" * 1000)

    def test_chunked_responses_are_streamed_as_chunks(self):
        c = Client(self.port)
        c.request("GET", "/chunked/50")
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Transfer-Encoding"), "chunked")
        self.assertEqual(len(r.body), 50000)
        self.assertEqual(r.body[:1000], b"A" * 1000)

    def test_until_close_body_is_rechunked_for_http11_clients(self):
        r = get(self.port, "/eof-body")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Transfer-Encoding"), "chunked")
        self.assertEqual(r.body, b"x" * 5000)

    def test_keep_alive_reuses_client_and_server_connections(self):
        c = Client(self.port)
        ports = set()
        for _ in range(10):
            c.request("GET", "/echo")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertIsNone(r.header("Connection"))
            ports.add(r.json()["peer_port"])
        # With two workers and one client connection, one worker served all ten
        # over one pooled server connection.
        self.assertEqual(len(ports), 1)

    def test_pipelined_responses_come_back_in_order(self):
        c = Client(self.port)
        c.send("GET /sleep/300 HTTP/1.1\r\nHost: a\r\n\r\n"
               "GET /bytes/10 HTTP/1.1\r\nHost: a\r\n\r\n"
               "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
               "GET /echo?last HTTP/1.1\r\nHost: a\r\n\r\n")
        bodies = [c.read_response().body for _ in range(4)]
        self.assertTrue(bodies[0].startswith(b"slept 300ms"))
        self.assertEqual(bodies[1], b"0123456789")
        self.assertEqual(bodies[2], b"hello")
        self.assertIn('"/echo?last"', bodies[3].decode())

    def test_forwarded_headers(self):
        r = get(self.port, "/echo", {"X-Forwarded-For": "203.0.113.9", "Host": "shop.example:8080"})
        seen = dict((k.lower(), v) for k, v in r.json()["headers"])
        self.assertEqual(seen["x-forwarded-for"], "203.0.113.9, 127.0.0.1")
        self.assertEqual(seen["x-forwarded-proto"], "http")
        self.assertEqual(seen["x-forwarded-host"], "shop.example:8080")
        self.assertEqual(seen["host"], "shop.example:8080")
        self.assertRegex(seen["x-request-id"], r"^[0-9a-f]{32}$")
        kept = get(self.port, "/echo", {"X-Request-Id": "trace-42"})
        seen = dict((k.lower(), v) for k, v in kept.json()["headers"])
        self.assertEqual(seen["x-request-id"], "trace-42")

    def metric(self, name, **labels):
        problems, samples = check(admin_get(self.admin_port, "/metrics")[1])
        self.assertEqual(problems, [])
        return samples.get((name, tuple(sorted(labels.items()))))

    def test_header_names_with_underscores_are_not_forwarded(self):
        # A server that maps "_" to "-" (CGI, WSGI) would read Transfer_Encoding as framing.
        r = get(self.port, "/echo", {"Transfer_Encoding": "chunked", "X_Custom": "1", "X-Custom": "2"})
        self.assertEqual(r.status, 200)
        seen = dict((k.lower(), v) for k, v in r.json()["headers"])
        self.assertNotIn("transfer_encoding", seen)
        self.assertNotIn("x_custom", seen)
        self.assertEqual(seen["x-custom"], "2")
        self.assertEqual(self.metric("crest_request_headers_dropped_total", listener="public"), 2)

    def test_an_empty_post_put_or_patch_reaches_the_server_with_content_length_0(self):
        c = Client(self.port)
        for method, headers in (("POST", {}), ("PUT", {}), ("PATCH", {}), ("POST", {"Content-Length": "0"})):
            c.request(method, "/echo", headers)
            seen = dict((k.lower(), v) for k, v in c.read_response().json()["headers"])
            self.assertEqual(seen.get("content-length"), "0", method)
        c.request("GET", "/echo")
        seen = dict((k.lower(), v) for k, v in c.read_response().json()["headers"])
        self.assertNotIn("content-length", seen)

    def test_a_101_the_request_did_not_ask_for_is_502_at_once(self):
        c = Client(self.port, timeout=5)
        c.request("GET", "/switch")
        r = c.read_response()
        self.assertEqual(r.status, 502)
        self.assertIn(b"invalid response", r.body)
        self.assertEqual(self.metric("crest_http_requests_total", listener="public", pool="web", code="5xx"), 1)

    def test_hop_by_hop_headers_are_dropped_both_ways(self):
        r = get(self.port, "/echo", {"Connection": "keep-alive, X-Private", "X-Private": "1",
                                     "Keep-Alive": "timeout=9", "TE": "trailers", "Upgrade": "h2c",
                                     "Proxy-Connection": "keep-alive", "X-Public": "yes"})
        names = [k.lower() for k, _ in r.json()["headers"]]
        for hop in ("x-private", "keep-alive", "te", "upgrade", "proxy-connection"):
            self.assertNotIn(hop, names)
        self.assertIn("x-public", names)
        hop = get(self.port, "/hop")
        self.assertEqual(hop.status, 200)
        self.assertIsNone(hop.header("X-Hop"))
        self.assertIsNone(hop.header("Keep-Alive"))
        self.assertIsNone(hop.header("Connection"))

    def test_http10_clients(self):
        c = Client(self.port)
        c.request("GET", "/chunked/3", version="1.0", host=None)
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Transfer-Encoding"))
        self.assertEqual(len(r.body), 3000)
        self.assertTrue(c.closed_by_peer())

        k = Client(self.port)
        for _ in range(3):
            k.request("GET", "/bytes/5", headers={"Connection": "keep-alive"}, version="1.0")
            r = k.read_response()
            self.assertEqual(r.body, b"01234")
            self.assertEqual(r.header("Connection"), "keep-alive")

    def test_close_after_a_whole_request_is_full_and_after_a_refusal_lingers(self):
        # The client sent its whole request and nothing else: crest closes at
        # once, as NGINX does, and a byte sent afterwards is answered by a reset.
        done = Client(self.port)
        done.request("GET", "/bytes/5", headers={"Connection": "close"})
        self.assertEqual(done.read_response().body, b"01234")
        self.assertTrue(done.closed_by_peer())
        self.assertTrue(reset_after_sending(done))
        # Refused before its request was read to the end: crest goes on reading
        # for a while, so what the client still sends cannot reset the answer.
        refused = Client(self.port)
        refused.send(b"GET / HTTP/1.1\r\n\r\n")
        self.assertEqual(refused.read_response().status, 400)
        self.assertTrue(refused.closed_by_peer())
        self.assertFalse(reset_after_sending(refused))

    def test_head_requests_keep_content_length_and_have_no_body(self):
        c = Client(self.port)
        c.request("HEAD", "/bytes/777")
        r = c.read_response(head_request=True)
        self.assertEqual(r.header("Content-Length"), "777")
        c.request("GET", "/bytes/3")
        self.assertEqual(c.read_response().body, b"012")

    def test_expect_100_continue_is_answered_by_the_proxy(self):
        c = Client(self.port)
        c.request("POST", "/echo", headers={"Expect": "100-continue", "Content-Length": "5"})
        interim = c.read_response()
        self.assertEqual(interim.status, 100)
        c.send(b"hello")
        self.assertEqual(c.read_response().body, b"hello")

    def test_server_closing_idle_connections_is_not_an_error(self):
        # The backend closes keep-alive connections idle for 0.2 s.
        lazy = self.backend("lazy", "--idle-timeout", "0.2")
        self.crests.pop().stop()
        config = self.simple_config({"lazy": [lazy]}, workers=1)
        self.crest(config, self.port)
        for _ in range(4):
            r = get(self.port, "/echo")
            self.assertEqual(r.status, 200)
            time.sleep(0.4)
        c = Client(self.port)
        for _ in range(3):
            c.request("GET", "/bytes/2")
            self.assertEqual(c.read_response().status, 200)
            time.sleep(0.3)

    def test_server_dying_mid_body_never_looks_complete(self):
        c = Client(self.port)
        c.request("GET", "/die-mid-body")
        with self.assertRaises(ConnectionError):
            c.read_response()


class ClosedConnectionTest(CrestTestCase):
    def connections_active(self):
        _, samples = check(admin_get(self.admin_port, "/metrics")[1])
        return samples.get(("crest_downstream_connections_active", (("listener", "public"),)))

    def test_what_a_closed_connection_left_never_reaches_the_next_one(self):
        # One worker, so the next connection starts with the buffers and the
        # exchange the closed one gave back (the worker reuses them).
        web = self.backend("web")
        self.crest(self.simple_config({"web": [web]}, workers=1), self.port)
        for i in range(3):
            gone = Client(self.port)
            # A request in flight, and half of a pipelined one that stays unread.
            gone.send("GET /sleep/100 HTTP/1.1\r\nHost: a\r\n\r\n"
                      f"GET /echo?left-{i} HTTP/1.1\r\nHo")
            wait_until(lambda: web.requests_seen().count("GET /sleep/100") == i + 1,
                       what="the request in flight")
            gone.close()
            wait_until(lambda: self.connections_active() == 0, what="the closed connection gone")
            c = Client(self.port)
            c.request("GET", f"/echo?next-{i}")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertIn(f'"/echo?next-{i}"', r.body.decode())
            c.close()
        self.assertFalse(any("left-" in line for line in web.requests_seen()))


class ProxyErrorsTest(CrestTestCase):
    def test_no_route_is_404_and_the_connection_goes_on(self):
        web = self.backend("web")
        config = self.simple_config({"web": [web]}, routes=[
            "      - match: {host: app.example.com}", "        pool: web"])
        self.crest(config, self.port)
        c = Client(self.port)
        c.request("GET", "/", host="other.example.com")
        r = c.read_response()
        self.assertEqual(r.status, 404)
        self.assertIn(b"no route", r.body)
        c.request("GET", "/", host="APP.example.com:8080")
        r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Backend"), "web")

    def test_unreachable_server_is_502(self):
        dead = free_port()
        config = self.simple_config({"gone": f"    servers:\n      - address: 127.0.0.1:{dead}"})
        self.crest(config, self.port)
        start = time.time()
        r = get(self.port, "/")
        self.assertEqual(r.status, 502)
        self.assertIn(b"gone", r.body)
        self.assertLess(time.time() - start, 1.0)

    def test_slow_server_is_504(self):
        web = self.backend("web")
        config = self.simple_config(
            {"web": f"    timeouts: {{upstream_response: 300ms}}\n    servers:\n      - address: {web.address}"})
        self.crest(config, self.port)
        start = time.time()
        r = get(self.port, "/sleep/3000")
        self.assertEqual(r.status, 504)
        self.assertLess(time.time() - start, 2.0)
        self.assertEqual(get(self.port, "/bytes/1").status, 200)

    def test_invalid_response_is_502(self):
        # A "server" that answers with garbage.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        bad_port = listener.getsockname()[1]
        import threading

        def serve():
            for _ in range(2):
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello")
                conn.close()

        threading.Thread(target=serve, daemon=True).start()
        config = self.simple_config({"bad": f"    retries: 0\n    servers:\n      - address: 127.0.0.1:{bad_port}"})
        self.crest(config, self.port)
        r = get(self.port, "/")
        self.assertEqual(r.status, 502)
        listener.close()

    def test_limits_and_timeouts(self):
        web = self.backend("web")
        config = self.simple_config({"web": [web]}, extra="\n".join([
            "limits:", "  max_header_bytes: 1KiB", "  max_headers: 10", "  max_request_body: 1KiB",
            "timeouts:", "  client_header: 500ms"]))
        self.crest(config, self.port)
        cases = [
            ({"X-Big": "a" * 2000}, "/", 431),
            ({f"X-{i}": "1" for i in range(12)}, "/", 431),
            ({}, "/" + "u" * 2000, 414),
        ]
        for headers, path, status in cases:
            c = Client(self.port)
            c.request("GET", path, headers)
            r = c.read_response()
            self.assertEqual(r.status, status, (headers.keys(), path))
            self.assertEqual(r.header("Connection"), "close")
            self.assertTrue(c.closed_by_peer())
        c = Client(self.port)
        c.request("POST", "/echo", body=b"x" * 2000)
        self.assertEqual(c.read_response().status, 413)
        slow = Client(self.port)
        slow.send("GET / HTTP/1.1\r\nHost: a\r\n")
        start = time.time()
        r = slow.read_response()
        self.assertEqual(r.status, 408)
        self.assertLess(time.time() - start, 2.0)
        self.assertEqual(web.requests_seen(), [])
        # A chunked body is streamed, so its head may reach the server before the
        # limit is passed: the server then sees the request cut off, never whole.
        chunked = Client(self.port)
        chunked.request("POST", "/echo", headers={"Transfer-Encoding": "chunked"})
        chunked.send(b"400\r\n" + b"y" * 1024 + b"\r\n10\r\n" + b"z" * 16 + b"\r\n")
        self.assertEqual(chunked.read_response().status, 413)

    def test_malformed_requests_are_400_and_never_reach_the_server(self):
        web = self.backend("web")
        self.crest(self.simple_config({"web": [web]}), self.port)
        bad = [
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"GET http://other.example/ HTTP/1.1\r\nHost: a\r\n\r\n",
        ]
        for raw in bad:
            c = Client(self.port)
            c.send(raw)
            r = c.read_response()
            self.assertEqual(r.status, 400, raw)
            self.assertTrue(c.closed_by_peer(), raw)
        self.assertEqual(web.requests_seen(), [])


if __name__ == "__main__":
    unittest.main()
