#!/usr/bin/env python3
"""A small real HTTP/1.1 backend for crest's end-to-end tests and demo.

Names itself in the X-Backend response header. Paths:
  /                 short text answer naming the backend
  /echo             JSON of the request line and headers it received; the body is echoed back
  /bytes/N          N bytes of a repeating pattern (Content-Length)
  /chunked/N        N chunks of 1000 bytes, chunked encoding, flushed one by one
  /sleep/MS         answers after MS milliseconds; X-In-Flight says how many /sleep
                    requests this backend was serving at once, this one included
  /slow-on/NAME     answers after 200 ms when this backend is NAME, at once otherwise
  /status/CODE      answers with that status
  /page?hdr=NAME:VALUE&delay=MS
                    200 (500 while --fail-file exists) with those response headers, after
                    MS ms; the body counts the requests for this exact target (for caches)
  /close            answers then closes the connection (no keep-alive)
  /eof-body         body delimited by closing the connection (no length)
  /die-mid-body     announces 100000 bytes, sends 1000, then closes
  /switch           101 Switching Protocols whatever was asked, then waits for the peer to close
  /hop              a response carrying hop-by-hop headers (Keep-Alive, Connection: X-Hop, X-Hop)
  /ws               WebSocket echo: every message comes back as it was sent; the text
                    message "headers?" is answered with JSON of the handshake's request
                    headers and the backend's name; a close is answered with a close.
                    ?refuse=CODE answers the handshake with CODE instead; ?close-mid=1
                    switches, sends 10 bytes of a 1000-byte message, and closes
  /healthz          200, or 500 while the file named by --fail-file exists
Every request line is appended to --log FILE when given (tests count what reached the backend);
a request carrying X-Crest-Mirror adds a line "MIRROR METHOD PATH body=LENGTH". --delay MS
answers every request MS milliseconds late.
"""
import argparse
import json
import os
import socketserver
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

import websocket


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response (flushed by the base class after each request) and
    # no Nagle: head and body sent apart would otherwise wait for a delayed ACK.
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def _log(self):
        self._log_line(f"{self.command} {self.path}")

    def _log_line(self, line):
        if self.server.log_path:
            with self.server.log_lock, open(self.server.log_path, "a") as f:
                f.write(line + "\n")

    def _send(self, status, body, headers=None, close=False):
        self.send_response(status)
        self.send_header("X-Backend", self.server.name)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except (ConnectionError, ValueError):
            # A client (crest) that gave up in the middle of a request body.
            self.close_connection = True

    def do_GET(self):
        self._log()
        body = self._read_body()
        if self.headers.get("X-Crest-Mirror"):
            self._log_line(f"MIRROR {self.command} {self.path} body={len(body)}")
        if self.server.delay:
            time.sleep(self.server.delay / 1000.0)
        path = self.path.split("?")[0]
        parts = path.strip("/").split("/")
        if path.endswith("/echo"):
            info = {
                "method": self.command,
                "path": self.path,
                "version": self.request_version,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body_length": len(body),
                "backend": self.server.name,
                "peer_port": self.client_address[1],
            }
            payload = json.dumps(info).encode()
            if body:
                self._send(200, body, {"X-Echo-Info": json.dumps(info)[:4000]})
            else:
                self._send(200, payload, {"Content-Type": "application/json"})
        elif parts[0] == "bytes":
            n = int(parts[1])
            pattern = b"0123456789abcdef"
            self._send(200, (pattern * (n // 16 + 1))[:n])
        elif parts[0] == "chunked":
            self.send_response(200)
            self.send_header("X-Backend", self.server.name)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(int(parts[1])):
                chunk = bytes([65 + i % 26]) * 1000
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif parts[0] == "sleep":
            with self.server.log_lock:
                self.server.in_flight += 1
                in_flight = self.server.in_flight
            time.sleep(int(parts[1]) / 1000.0)
            with self.server.log_lock:
                self.server.in_flight -= 1
            self._send(200, f"slept {parts[1]}ms on {self.server.name}\n".encode(),
                       {"X-In-Flight": str(in_flight)})
        elif parts[0] == "slow-on":
            if parts[1] == self.server.name:
                time.sleep(0.2)
            self._send(200, f"done on {self.server.name}\n".encode())
        elif parts[0] == "page":
            query = urllib.parse.parse_qs(self.path.partition("?")[2])
            with self.server.log_lock:
                self.server.page_counts[self.path] = self.server.page_counts.get(self.path, 0) + 1
                n = self.server.page_counts[self.path]
            time.sleep(int(query.get("delay", ["0"])[0]) / 1000.0)
            failing = self.server.fail_file and os.path.exists(self.server.fail_file)
            headers = dict(h.split(":", 1) for h in query.get("hdr", []))
            self._send(500 if failing else 200, f"{self.server.name} {self.path} #{n}\n".encode(), headers)
        elif parts[0] == "status":
            self._send(int(parts[1]), b"status\n")
        elif path == "/close":
            self._send(200, b"closing\n", close=True)
        elif path == "/eof-body":
            self.send_response(200)
            self.send_header("X-Backend", self.server.name)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"x" * 5000)
            self.close_connection = True
        elif path == "/die-mid-body":
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"y" * 1000)
            self.wfile.flush()
            self.close_connection = True
        elif path == "/switch":
            # Switches protocols though the request did not ask to (no Upgrade reaches
            # a server through crest), then holds the connection until the peer closes it.
            self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\n\r\n")
            self.wfile.flush()
            self.rfile.read(1)
            self.close_connection = True
        elif path == "/ws":
            self._websocket()
        elif path == "/hop":
            self._send(200, b"hop\n", {"Connection": "X-Hop", "X-Hop": "secret", "Keep-Alive": "timeout=5"})
        elif path == "/healthz":
            failing = self.server.fail_file and os.path.exists(self.server.fail_file)
            self._send(500 if failing else 200, b"fail\n" if failing else b"ok\n")
        else:
            self._send(200, f"hello from {self.server.name}\n".encode())

    def _websocket(self):
        query = urllib.parse.parse_qs(self.path.partition("?")[2])
        key = self.headers.get("Sec-WebSocket-Key")
        connection = [t.strip().lower() for t in self.headers.get("Connection", "").split(",")]
        if "refuse" in query:
            self._send(int(query["refuse"][0]), b"refused\n")
            return
        if self.headers.get("Upgrade", "").lower() != "websocket" or "upgrade" not in connection or not key:
            self._send(426, b"a WebSocket handshake was expected\n", {"Upgrade": "websocket"})
            return
        self.close_connection = True
        self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: %s\r\nX-Backend: %s\r\n\r\n"
                         % (websocket.accept_for(key).encode(), self.server.name.encode()))
        if "close-mid" in query:
            self.wfile.write(b"\x82\x7e\x03\xe8" + b"z" * 10)
            self.wfile.flush()
            return
        self.wfile.flush()

        def read_exact(n):
            data = self.rfile.read(n)
            if len(data) < n:
                raise EOFError
            return data

        while True:
            try:
                opcode, payload = websocket.read_frame(read_exact)
            except (EOFError, ConnectionError, ValueError):
                return
            if opcode == websocket.CLOSE:
                self.wfile.write(websocket.frame(websocket.CLOSE, payload[:2], False))
                self.wfile.flush()
                return
            if opcode == websocket.PING:
                opcode = websocket.PONG
            elif opcode == websocket.TEXT and payload == b"headers?":
                payload = json.dumps({"backend": self.server.name,
                                      "headers": [[k, v] for k, v in self.headers.items()]}).encode()
            self.wfile.write(websocket.frame(opcode, payload, False))
            self.wfile.flush()

    def __getattr__(self, name):
        # Every method (PATCH, MKCOL, ...) is answered like GET.
        if name.startswith("do_"):
            return self.do_GET
        raise AttributeError(name)


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--name", required=True)
    ap.add_argument("--log")
    ap.add_argument("--fail-file")
    ap.add_argument("--idle-timeout", type=float, help="close keep-alive connections idle this long (s)")
    ap.add_argument("--delay", type=int, default=0, help="answer every request this many ms late")
    args = ap.parse_args()
    if args.idle_timeout:
        Handler.timeout = args.idle_timeout
    server = Server((args.host, args.port), Handler)
    server.name = args.name
    server.log_path = args.log
    server.log_lock = threading.Lock()
    server.in_flight = 0
    server.page_counts = {}
    server.fail_file = args.fail_file
    server.delay = args.delay
    print(f"backend {args.name} listening on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
