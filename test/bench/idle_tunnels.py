#!/usr/bin/env python3
"""Memory per idle WebSocket tunnel (scripts/bench --tunnels): crest against
NGINX and HAProxy carrying the same tunnels to the same origin.

The origin is an asyncio WebSocket server here that answers every handshake
with 101 and then holds the connection. Each proxy is started fresh with one
worker, COUNT tunnels are opened through it (handshake done, then nothing
moves), and the growth of the proxy's proportional set size (Pss, all its
processes) is scaled to 10,000 tunnels. Rounds alternate the proxies; the
median is reported. COUNT is 9,000 by default: a tunnel costs a proxy two
descriptors, and the machine's hard open-files limit is 20,000.

  idle_tunnels.py --crest BINARY --work DIR [--count N] [--rounds R]

Prints one table (markdown) on stdout.
"""

import argparse
import asyncio
import base64
import hashlib
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from harness import wait_for_port  # noqa: E402

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ORIGIN, CREST, NGINX, HAPROXY = 19200, 19201, 19202, 19203


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


async def origin_connection(reader, writer):
    try:
        await hold(reader, writer)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass  # a port probe, or a proxy that went away
    writer.close()


async def hold(reader, writer):
    head = await reader.readuntil(b"\r\n\r\n")
    key = b""
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept_for(key) + b"\r\n\r\n")
    await writer.drain()
    while await reader.read(65536):
        pass


def run_origin():
    """The origin, in a child process of its own (its descriptors are not the clients')."""
    async def main():
        server = await asyncio.start_server(origin_connection, "127.0.0.1", ORIGIN, backlog=4096)
        async with server:
            await server.serve_forever()
    asyncio.run(main())


async def open_tunnels(port, count):
    """Opens `count` tunnels through the proxy on `port`; returns their writers (held open)."""
    request = (b"GET /ws HTTP/1.1\r\nHost: bench\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
               b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    held = []
    sem = asyncio.Semaphore(256)

    async def one():
        async with sem:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"port {port} answered {head.splitlines()[0]!r}")
            held.append(writer)
    await asyncio.gather(*(one() for _ in range(count)))
    return held


def pss_kib(pid):
    pids = [pid] + [int(p) for p in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                    text=True).stdout.split()]
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except FileNotFoundError:
            pass
    return total


def write_configs(work):
    with open(f"{work}/tunnels.yaml", "w") as f:
        f.write(f"""workers: 1
limits: {{max_connections: 19000}}
listeners:
  - name: public
    listen: 127.0.0.1:{CREST}
    routes:
      - pool: origin
pools:
  origin:
    servers:
      - address: 127.0.0.1:{ORIGIN}
""")
    with open(f"{work}/tunnels-nginx.conf", "w") as f:
        f.write(f"""worker_processes 1;
worker_rlimit_nofile 20000;
pid {work}/tunnels-nginx.pid;
error_log {work}/tunnels-nginx.err;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  server {{
    listen 127.0.0.1:{NGINX} backlog=4096;
    location / {{
      proxy_pass http://127.0.0.1:{ORIGIN};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 1h;
    }}
  }}
}}
""")
    with open(f"{work}/tunnels-haproxy.cfg", "w") as f:
        f.write(f"""global
  nbthread 1
  maxconn 9900
  ulimit-n 20000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout tunnel 1h
frontend public
  bind 127.0.0.1:{HAPROXY}
  default_backend origin
backend origin
  server origin 127.0.0.1:{ORIGIN}
""")


def start(target, crest, work):
    if target == "crest":
        cmd = [crest, "-c", f"{work}/tunnels.yaml"]
    elif target == "nginx":
        cmd = ["nginx", "-c", f"{work}/tunnels-nginx.conf", "-g", "daemon off;"]
    else:
        cmd = ["haproxy", "-f", f"{work}/tunnels-haproxy.cfg"]
    proc = subprocess.Popen(["taskset", "-c", "0", *cmd], stdout=subprocess.DEVNULL,
                            stderr=open(f"{work}/tunnels-{target}.log", "a"))
    wait_for_port({"crest": CREST, "nginx": NGINX, "haproxy": HAPROXY}[target], proc=proc)
    return proc


def measure(target, crest, work, count):
    proc = start(target, crest, work)
    try:
        time.sleep(0.5)
        before = pss_kib(proc.pid)
        loop = asyncio.new_event_loop()
        held = loop.run_until_complete(open_tunnels({"crest": CREST, "nginx": NGINX, "haproxy": HAPROXY}[target],
                                                    count))
        time.sleep(1)
        after = pss_kib(proc.pid)
        for w in held:
            w.close()
        loop.run_until_complete(asyncio.sleep(0.5))
        loop.close()
        return (after - before) * 10000 / count
    finally:
        proc.terminate()
        proc.wait()
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--crest", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--count", type=int, default=9000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    write_configs(args.work)
    origin = subprocess.Popen([sys.executable, __file__, "--origin"])
    try:
        wait_for_port(ORIGIN, proc=origin)
        targets = ["crest", "nginx", "haproxy"]
        results = {t: [] for t in targets}
        for r in range(args.rounds):
            for t in targets[r % 3:] + targets[:r % 3]:
                results[t].append(measure(t, args.crest, args.work, args.count))
                print(f"idle_tunnels: round {r + 1} {t}: {results[t][-1]:.0f} KiB per 10,000", file=sys.stderr)
    finally:
        origin.terminate()
        origin.wait()
    print(f"| idle WebSocket tunnels (measured with {args.count}, scaled to 10,000; "
          f"median of {args.rounds}) | Pss growth per 10,000 | per tunnel | min-max per 10,000 |")
    print("|---|---|---|---|")
    for t in ["crest", "nginx", "haproxy"]:
        m = statistics.median(results[t])
        print(f"| {t} | {m / 1024:.1f} MiB | {m * 1024 / 10000:.0f} B | "
              f"{min(results[t]) / 1024:.1f}-{max(results[t]) / 1024:.1f} MiB |")


if __name__ == "__main__":
    if sys.argv[1:] == ["--origin"]:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        run_origin()
    else:
        main()
