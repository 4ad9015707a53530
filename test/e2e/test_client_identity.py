"""Client identity and access control: the PROXY protocol (v1, v2, before
TLS), trusted X-Forwarded-For, a route's allow/deny lists and the
per-client connection limit, each checked through what a client and the
server see: the backend's X-Forwarded-For, ip_hash's choice, the access log,
403s and closed connections."""

import ipaddress
import os
import socket
import ssl
import struct
import time
import unittest

from harness import Client, CrestTestCase, get, wait_until
from test_tls import client_context, make_cert

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2(source, port=40000, command=1):
    """A PROXY v2 header: PROXY (command 1) or LOCAL (0) for TCP from `source`."""
    src = ipaddress.ip_address(source)
    if src.version == 4:
        family, body = 0x11, src.packed + bytes([127, 0, 0, 1]) + struct.pack("!HH", port, 80)
    else:
        family, body = 0x21, src.packed + ipaddress.ip_address("::1").packed + struct.pack("!HH", port, 80)
    body += bytes([0xEA, 0, 5]) + b"vpce1"  # a TLV, as AWS sends: skipped
    return SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(body)) + body


def proxy_v1(source, port=40000):
    family = "TCP6" if ":" in source else "TCP4"
    destination = "::1" if ":" in source else "127.0.0.1"
    return f"PROXY {family} {source} {destination} {port} 80\r\n".encode()


class ClientIdentityTest(CrestTestCase):
    def start(self, listener_extra="", extra="", routes=None, pools=None, workers=2):
        self.log_path = os.path.join(self.tmpdir, "access.log")
        if pools is None:
            self.web = self.backend("web")
            pools = {"web": [self.web]}
        config = self.simple_config(pools, routes=routes, extra=f"access_log: {self.log_path}\n{extra}",
                                    workers=workers)
        if listener_extra:
            config = config.replace("    routes:\n", listener_extra + "    routes:\n", 1)
        return self.crest(config, self.port)

    def seen_by_server(self, preamble=b"", headers=None, source=None):
        """The X-Forwarded-For the backend got for one /echo request."""
        c = Client(self.port, source=source)
        c.send(preamble)
        c.request("GET", "/echo", headers=headers)
        r = c.read_response()
        c.close()
        self.assertEqual(r.status, 200, r.body)
        return dict((k.lower(), v) for k, v in r.json()["headers"])["x-forwarded-for"]

    def logged_clients(self, count):
        def lines():
            return open(self.log_path).read().splitlines() if os.path.exists(self.log_path) else []
        wait_until(lambda: len(lines()) >= count, what=f"{count} access log lines")
        # Workers write their lines apart: the order across them is not the requests'.
        return sorted(line.split()[1] for line in lines())

    def refused(self, reason):
        return self.metric("crest_connections_refused_total", listener="public", reason=reason)

    def test_proxy_protocol_v1_and_v2_name_the_client(self):
        self.start("    proxy_protocol: true\n")
        self.assertEqual(self.seen_by_server(proxy_v1("203.0.113.5")), "203.0.113.5")
        self.assertEqual(self.seen_by_server(proxy_v1("2001:db8::7")), "2001:db8::7")
        self.assertEqual(self.seen_by_server(proxy_v2("198.51.100.20")), "198.51.100.20")
        self.assertEqual(self.seen_by_server(proxy_v2("2001:db8::9")), "2001:db8::9")
        # LOCAL (the balancer's health check) and UNKNOWN: the peer is the client.
        self.assertEqual(self.seen_by_server(proxy_v2("198.51.100.20", command=0)), "127.0.0.1")
        self.assertEqual(self.seen_by_server(b"PROXY UNKNOWN\r\n"), "127.0.0.1")
        self.assertEqual(self.logged_clients(6),
                         sorted(["203.0.113.5", "2001:db8::7", "198.51.100.20", "2001:db8::9", "127.0.0.1",
                                 "127.0.0.1"]))
        self.assertEqual(self.refused("proxy_protocol"), 0)

    def test_proxy_protocol_source_drives_ip_hash(self):
        a, b = self.backend("a"), self.backend("b")
        pool = f"    balance: ip_hash\n    servers:\n      - address: {a.address}\n      - address: {b.address}"
        self.start("    proxy_protocol: true\n", pools={"web": pool})

        def backend_for(source):
            c = Client(self.port)
            c.send(proxy_v2(source))
            c.request("GET", "/")
            r = c.read_response()
            c.close()
            return r.header("x-backend")
        chosen = {f"203.0.113.{i}": backend_for(f"203.0.113.{i}") for i in range(1, 21)}
        self.assertEqual(set(chosen.values()), {"a", "b"})  # the sources spread: not all the peer's
        for source, backend in chosen.items():
            self.assertEqual(backend_for(source), backend)  # and each sticks

    def test_a_connection_without_a_valid_header_is_closed_unanswered(self):
        self.start("    proxy_protocol: true\n", extra="timeouts:\n  client_header: 1s")
        for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r\n",
                     SIGNATURE + b"\x21\x41\x00\x00", b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\n\r\n"):
            c = Client(self.port)
            c.send(junk)
            self.assertTrue(c.closed_by_peer(), junk)
            self.assertEqual(c.buf, b"")
        # A header that never ends: closed at client_header.
        slow = Client(self.port)
        slow.send(b"PROXY TCP4 192.0.2.1 ")
        start = time.monotonic()
        self.assertTrue(slow.closed_by_peer(timeout=5))
        self.assertGreater(time.monotonic() - start, 0.8)
        wait_until(lambda: self.refused("proxy_protocol") == 5, what="five refusals counted")
        self.assertEqual(self.web.requests_seen(), [])

    def test_proxy_protocol_comes_before_tls(self):
        cert, key = make_cert(self.tmpdir, "a", ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], ["a.test"])
        tls = f"    proxy_protocol: true\n    tls:\n      certificates: [{{cert: {cert}, key: {key}}}]\n"
        self.start(tls)
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock.sendall(proxy_v1("203.0.113.77"))
        tls_sock = client_context().wrap_socket(sock, server_hostname="a.test")
        tls_sock.sendall(b"GET /echo HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = tls_sock.recv(65536)
            if not chunk:
                break
            data += chunk
        tls_sock.close()
        self.assertIn(b"200 OK", data.split(b"\r\n")[0])
        self.assertIn(b'"X-Forwarded-For", "203.0.113.77"', data)

    def test_trusted_proxies_name_the_client_from_x_forwarded_for(self):
        self.start("    trusted_proxies: [127.0.0.0/8, 10.0.0.0/8]\n")
        # Right to left past trusted addresses: the first untrusted one is the client.
        chain = "192.0.2.66, 198.51.100.9, 10.1.1.1"
        self.assertEqual(self.seen_by_server(headers={"X-Forwarded-For": chain}), chain + ", 127.0.0.1")
        # Every address trusted: the leftmost is the client; junk ends the walk.
        self.seen_by_server(headers={"X-Forwarded-For": "10.9.9.9, 10.1.1.1"})
        self.seen_by_server(headers={"X-Forwarded-For": "198.51.100.1, not-an-address, 10.1.1.1"})
        self.seen_by_server(headers={"X-Forwarded-For": "2001:db8::5"})
        self.seen_by_server()
        self.assertEqual(self.logged_clients(5),
                         sorted(["198.51.100.9", "10.9.9.9", "10.1.1.1", "2001:db8::5", "127.0.0.1"]))

    def test_x_forwarded_for_from_an_untrusted_peer_is_not_believed(self):
        self.start("    trusted_proxies: [10.0.0.0/8]\n")
        self.assertEqual(self.seen_by_server(headers={"X-Forwarded-For": "198.51.100.9"}),
                         "198.51.100.9, 127.0.0.1")
        self.assertEqual(self.logged_clients(1), ["127.0.0.1"])

    def test_access_lists_deny_first_then_allow(self):
        routes = ["      - match: {path_prefix: /internal/}", "        pool: web",
                  "        access:", "          deny: [127.0.0.2, \"2001:db8:bad::/48\"]",
                  "          allow: [127.0.0.0/8, \"2001:db8::/32\"]",
                  "      - pool: web"]
        self.start("    proxy_protocol: true\n", routes=routes)

        def status(preamble, path="/internal/x"):
            c = Client(self.port)
            c.send(preamble)
            c.request("GET", path)
            r = c.read_response()
            c.close()
            return r.status, r.body

        self.assertEqual(status(proxy_v1("127.0.0.1"))[0], 200)
        self.assertEqual(status(proxy_v1("127.0.0.2")), (403, b"access denied\n"))  # denied though allowed
        self.assertEqual(status(proxy_v1("192.0.2.1"))[0], 403)  # not in allow
        self.assertEqual(status(proxy_v1("192.0.2.1"), "/public")[0], 200)  # another route is open
        self.assertEqual(status(proxy_v2("2001:db8:1::1"))[0], 200)
        self.assertEqual(status(proxy_v2("2001:db8:bad::1"))[0], 403)
        self.assertEqual(status(proxy_v2("2001:db9::1"))[0], 403)
        self.assertEqual([r for r in self.web.requests_seen()], ["GET /internal/x", "GET /public", "GET /internal/x"])
        self.assertEqual(self.metric("crest_access_denied_total", listener="public"), 4)
        wait_until(lambda: open(self.log_path).read().count("cause=access_denied") == 4, what="4 log lines")

    def test_per_client_connection_limit_holds_across_workers(self):
        self.start(extra="limits:\n  max_connections_per_client: 4", workers=2)
        held = []
        for _ in range(4):
            c = Client(self.port, source="127.0.0.3")
            c.request("GET", "/")
            self.assertEqual(c.read_response().status, 200)
            held.append(c)
        over = Client(self.port, source="127.0.0.3")
        over.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(over.closed_by_peer())
        self.assertEqual(over.buf, b"")
        self.assertEqual(self.refused("per_client"), 1)
        # Another client is not affected; a closed connection makes room.
        self.assertEqual(get(self.port, "/", source="127.0.0.4").status, 200)
        held.pop().close()

        def one_more():
            c = Client(self.port, source="127.0.0.3")
            try:
                c.request("GET", "/")
                return c.read_response().status == 200
            except (ConnectionError, IndexError, ValueError):
                return False
            finally:
                c.close()
        wait_until(one_more, what="room for one more connection of 127.0.0.3")


if __name__ == "__main__":
    unittest.main()
