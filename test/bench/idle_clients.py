#!/usr/bin/env python3
"""Holds N idle keep-alive client connections to a proxy for scripts/bench (T7).

Each connection makes one request and reads its response whole, so the proxy
has served it and now only keeps it open. Prints "ready" once all are idle,
then holds them until stdin closes.
  idle_clients.py PORT N [PATH]
"""
import selectors
import socket
import sys


def main():
    port, count = int(sys.argv[1]), int(sys.argv[2])
    path = sys.argv[3] if len(sys.argv) > 3 else "/0"
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    pending = {}
    conns = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(request)
        s.setblocking(False)
        conns.append(s)
        pending[s] = b""
        sel.register(s, selectors.EVENT_READ)
    while pending:
        for key, _ in sel.select(timeout=30):
            s = key.fileobj
            data = s.recv(65536)
            if not data:
                sys.exit(f"idle_clients: the proxy closed a connection after {len(conns) - len(pending)} answers")
            got = pending[s] + data
            head, sep, body = got.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if sep and len(body) >= length:
                del pending[s]
                sel.unregister(s)
            else:
                pending[s] = got
    print("ready", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
