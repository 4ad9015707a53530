#!/usr/bin/env python3
"""Launch-day benchmark (scripts/bench --launch-day): premium latency behind a
capped pool, alone and during a flood of normal traffic.

A slow origin (test/support/backend.py, /sleep/20: 20 ms per request) sits
behind a pool capped at 16 requests in flight. A flood of 256 keep-alive
connections of normal requests (wrk) keeps more than 10x the pool's capacity
waiting; premium requests (X-Plan: premium, priority high) come at a fixed
rate (h2load --rps, per-request times from its log file). Each target is
measured alone and during the flood, rounds alternating the targets:

  crest-reserved  crest, queue.reserved_high: 4
  crest           crest, no reserved slots (priority orders the queue only)
  haproxy         HAProxy, server maxconn 16 and set-priority-class for premium

Prints one table (markdown) on stdout: premium p50/p99 alone and during the
flood, their ratio, and the flood's own throughput.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from harness import wait_for_port  # noqa: E402
BACKEND = os.path.join(HERE, "..", "support", "backend.py")

CAP = 16
FLOOD_CONNECTIONS = 256
PREMIUM_CLIENTS = 2
PREMIUM_RATE = 10  # per client per second
SERVICE_MS = 20
RESERVED = 4


def crest_config(port, origin, reserved):
    return f"""workers: 2
busy_poll: 0
listeners:
  - name: public
    listen: 127.0.0.1:{port}
    routes:
      - match: {{path_prefix: /, headers: {{X-Plan: premium}}}}
        pool: api
        priority: high
      - pool: api
pools:
  api:
    max_active_requests: {CAP}
    queue: {{size: 4096, timeout: 30s, reserved_high: {reserved}}}
    timeouts: {{upstream_response: 30s}}
    servers:
      - address: 127.0.0.1:{origin}
"""


def haproxy_config(port, origin):
    return f"""global
  maxconn 4000
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout queue 30s
frontend public
  bind 127.0.0.1:{port}
  http-request set-priority-class int(-10) if {{ req.hdr(x-plan) -m str premium }}
  default_backend api
backend api
  server origin 127.0.0.1:{origin} maxconn {CAP}
"""


def premium_latencies(port, seconds, work, name):
    """Per-request times (ms) of premium requests at a fixed rate for `seconds`."""
    log = os.path.join(work, f"premium.{name}.log")
    subprocess.run(["h2load", "--h1", "-c", str(PREMIUM_CLIENTS), "-t", "1", f"--rps={PREMIUM_RATE}",
                    "-D", str(seconds), "-H", "X-Plan: premium", f"--log-file={log}",
                    f"http://127.0.0.1:{port}/sleep/{SERVICE_MS}?premium"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    times = []
    with open(log) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3 and fields[1] == "200":
                times.append(int(fields[2]) / 1000.0)
    return times


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


def measure(port, seconds, work, name):
    alone = premium_latencies(port, seconds, work, name + ".alone")
    flood = subprocess.Popen(["wrk", "-t1", f"-c{FLOOD_CONNECTIONS}", f"-d{seconds + 3}s", "--timeout", "30s",
                              f"http://127.0.0.1:{port}/sleep/{SERVICE_MS}?normal"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(1.5)  # the pool full and the queue long before the premium clients start
    during = premium_latencies(port, seconds, work, name + ".flood")
    out, _ = flood.communicate()
    flood_rate = 0.0
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            flood_rate = float(line.split()[1])
    return {"alone": alone, "flood": during, "flood_rate": flood_rate}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--crest", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--base-port", type=int, default=19200)
    args = ap.parse_args()

    origin = args.base_port
    ports = {"crest-reserved": origin + 1, "crest": origin + 2, "haproxy": origin + 3}
    procs = []

    def start(argv, port, stdin=None):
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(p)
        wait_for_port(port, proc=p)

    try:
        start([sys.executable, BACKEND, "--port", str(origin), "--name", "origin"], origin)
        for name, reserved in (("crest-reserved", RESERVED), ("crest", 0)):
            path = os.path.join(args.work, f"{name}.yaml")
            with open(path, "w") as f:
                f.write(crest_config(ports[name], origin, reserved))
            start([args.crest, "-c", path], ports[name])
        path = os.path.join(args.work, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(haproxy_config(ports["haproxy"], origin))
        start(["haproxy", "-f", path], ports["haproxy"])

        names = list(ports)
        results = {n: [] for n in names}
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                results[name].append(measure(ports[name], args.seconds, args.work, f"{name}.{r}"))
                print(f"bench: launch day round {r + 1} {name} done", file=sys.stderr)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()

    def med(name, key, p):
        return statistics.median(percentile(run[key], p) for run in results[name])

    print(f"Premium latency behind a pool capped at {CAP} requests in flight, a {SERVICE_MS} ms origin, "
          f"{PREMIUM_CLIENTS * PREMIUM_RATE} premium requests/s; flood: wrk -c{FLOOD_CONNECTIONS} of normal "
          f"requests; medians of {args.rounds} rounds of {args.seconds} s, targets alternated.\n")
    print("| target | premium p50 alone (ms) | p99 alone | p50 during the flood | p99 during the flood "
          "| p99 flood / alone | flood's normal requests/s |")
    print("|---|---|---|---|---|---|---|")
    labels = {"crest-reserved": f"crest, `reserved_high: {RESERVED}`", "crest": "crest, no reserved slots",
              "haproxy": "HAProxy, `set-priority-class`"}
    for name in names:
        a50, a99 = med(name, "alone", 50), med(name, "alone", 99)
        f50, f99 = med(name, "flood", 50), med(name, "flood", 99)
        rate = statistics.median(run["flood_rate"] for run in results[name])
        print(f"| {labels[name]} | {a50:.1f} | {a99:.1f} | {f50:.1f} | {f99:.1f} | {f99 / a99:.2f} | {rate:.0f} |")


if __name__ == "__main__":
    main()
