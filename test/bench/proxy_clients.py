#!/usr/bin/env python3
"""Client load for scripts/bench --proxy-protocol: CONNECTIONS connections
over THREADS threads, each making REQUESTS keep-alive GETs of /0 (the last
with Connection: close), every connection opening with a PROXY v2 header
when --proxy is given, from a source address of its own. The same load with
and without the header shows what reading it costs crest.
  proxy_clients.py PORT CONNECTIONS REQUESTS [--proxy] [--threads N]
"""
import argparse
import socket
import struct
import sys
import threading

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def header(n):
    source = bytes([198, 51, (n >> 8) & 0xFF, n & 0xFF])
    body = source + bytes([127, 0, 0, 1]) + struct.pack("!HH", 40000 + n % 20000, 80)
    return SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def read_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before a response")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += sock.recv(65536)
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.split(b"\r\n")[0].decode())
    return rest[length:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("connections", type=int)
    ap.add_argument("requests", type=int)
    ap.add_argument("--proxy", action="store_true")
    ap.add_argument("--threads", type=int, default=16)
    args = ap.parse_args()
    keep = b"GET /0 HTTP/1.1\r\nHost: bench\r\n\r\n"
    last = b"GET /0 HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    errors = []

    def run(first):
        try:
            for n in range(first, args.connections, args.threads):
                sock = socket.create_connection(("127.0.0.1", args.port))
                preamble = header(n) if args.proxy else b""
                buf = b""
                for i in range(args.requests):
                    sock.sendall(preamble + (last if i == args.requests - 1 else keep))
                    preamble = b""
                    buf = read_response(sock, buf)
                sock.close()
        except Exception as e:  # reported below: a failed load must not pass as a measurement
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit(f"proxy_clients: {errors[0]}")


if __name__ == "__main__":
    main()
