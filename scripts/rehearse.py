#!/usr/bin/python3
"""Runs a launch rehearsal: crest and its demo backends on loopback, phases of
load from Debian's h2load at fixed rates, events at given seconds (a backend
killed, hung, resumed, made slow or failing; crest reloaded with another
configuration; the cache purged), /metrics scraped every second. Writes
OUT/timeline.csv, plots (PNG, python3-matplotlib) with the events marked on
each, and OUT/report.md with the SLO verdicts and the figures per phase.
Exits 0 when every SLO held, 1 otherwise (2 on a usage or setup error).

  scripts/rehearse SCENARIO.yaml --out DIR   (installs what is missing, builds, runs this)
  scripts/rehearse [SCENARIO.yaml] --from-prometheus URL --window 30m --out DIR
      the same timeline, plots and report from what a Prometheus recorded of
      crest (after a launch): no load, the scenario's SLOs (if one is given)
      judged on crest's own metrics, reloads marked as events

The scenario format is in examples/rehearsal/README.md.
"""

import argparse
import csv
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "e2e"))
from harness import free_port, wait_for_port  # noqa: E402  (test/e2e: ports taken without races)
from prometheus_text import check  # noqa: E402

BACKEND = os.path.join(ROOT, "test", "support", "backend.py")
CREST = os.environ.get("CREST_BINARY", os.path.join(ROOT, "build", "proxy", "crest"))
PYTHON = sys.executable


def seconds(value):
    text = str(value)
    for suffix, scale in (("ms", 0.001), ("s", 1), ("m", 60)):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * scale
    return float(text)


class Rehearsal:
    def __init__(self, scenario_path, out):
        import yaml
        self.scenario_dir = os.path.dirname(os.path.abspath(scenario_path))
        with open(scenario_path) as f:
            self.s = yaml.safe_load(f)
        self.out = out
        self.ports = {b["name"]: free_port() for b in self.s.get("backends", [])}
        self.listen, self.admin = free_port(), free_port()
        self.backends, self.events, self.samples, self.phases = {}, [], [], []
        self.crest = None
        self.start = None
        self.stop_scraping = threading.Event()

    # -- the crest configuration, with the ports filled in
    def config(self, name):
        with open(os.path.join(self.scenario_dir, name)) as f:
            text = f.read()
        text = text.replace("{listen}", f"127.0.0.1:{self.listen}").replace("{admin}", f"127.0.0.1:{self.admin}")
        for b, port in self.ports.items():
            text = text.replace("{backend:" + b + "}", f"127.0.0.1:{port}")
        path = os.path.join(self.out, "crest.yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_backend(self, b, delay_ms=0):
        name = b["name"]
        args = [PYTHON, BACKEND, "--port", str(self.ports[name]), "--name", name,
                "--fail-file", os.path.join(self.out, f"fail-{name}")]
        if delay_ms:
            args += ["--delay", str(int(delay_ms))]
        self.backends[name] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.ports[name], timeout=15)

    def now(self):
        return time.monotonic() - self.start

    # -- what the events do
    def act(self, e):
        what, name = e["do"], e.get("backend")
        label = e.get("label") or f"{what} {name or e.get('config', '')}".strip()
        proc = self.backends.get(name)
        if what == "kill":
            proc.kill()
        elif what == "stop":
            proc.terminate()
        elif what == "hang":
            proc.send_signal(signal.SIGSTOP)
        elif what == "resume":
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
            else:
                self.start_backend(self.backend_spec(name))
        elif what == "slow":
            proc.kill()
            proc.wait()
            self.start_backend(self.backend_spec(name), delay_ms=seconds(e.get("delay", "1s")) * 1000)
        elif what == "fail":
            open(os.path.join(self.out, f"fail-{name}"), "w").close()
        elif what == "heal":
            path = os.path.join(self.out, f"fail-{name}")
            if os.path.exists(path):
                os.remove(path)
        elif what == "reload":
            self.config(e["config"])
            self.crest.send_signal(signal.SIGHUP)
        elif what == "purge":
            req = urllib.request.Request(f"http://127.0.0.1:{self.admin}/cache/purge", method="POST", data=b"")
            urllib.request.urlopen(req, timeout=5).read()
        else:
            raise ValueError(f"unknown event {what!r}")
        self.events.append((self.now(), label))

    def backend_spec(self, name):
        return next(b for b in self.s["backends"] if b["name"] == name)

    def run_events(self):
        for e in sorted(self.s.get("events", []), key=lambda e: seconds(e["at"])):
            delay = seconds(e["at"]) - self.now()
            if self.stop_scraping.wait(max(0, delay)):
                return
            self.act(e)

    # -- /metrics, every second
    def scrape(self):
        while not self.stop_scraping.is_set():
            t = self.now()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=2) as r:
                    _, samples = check(r.read().decode())
                self.samples.append((t, samples))
            except OSError:
                pass
            self.stop_scraping.wait(max(0, 1 - (self.now() - t)))

    def run(self):
        os.makedirs(self.out, exist_ok=True)
        for b in self.s.get("backends", []):
            self.start_backend(b)
        self.crest = subprocess.Popen([CREST, "-c", self.config(self.s["crest"])],
                                      stderr=open(os.path.join(self.out, "crest.log"), "w"), stdout=subprocess.DEVNULL)
        wait_for_port(self.listen, timeout=15)
        wait_for_port(self.admin, timeout=15)
        self.start = time.monotonic()
        threads = [threading.Thread(target=self.scrape), threading.Thread(target=self.run_events)]
        for t in threads:
            t.start()
        try:
            for i, p in enumerate(self.s["phases"]):
                self.load(i, p)
        finally:
            self.stop_scraping.set()
            for t in threads:
                t.join()
            self.crest.terminate()
            self.crest.wait(30)
            for proc in self.backends.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGCONT)
                    proc.kill()
                    proc.wait()

    def load(self, i, p):
        connections = int(p.get("connections", 16))
        rate = float(p["rate"])
        duration = seconds(p["duration"])
        log = os.path.join(self.out, f"phase-{i}.log")
        if os.path.exists(log):
            os.remove(log)  # h2load appends: an earlier run's lines would count
        args = ["h2load", "-c", str(connections), "-t", "1", f"--rps={max(1, round(rate / connections))}",
                "-D", str(int(duration)), f"--log-file={log}"]
        if p.get("protocol", "h1") == "h1":
            args.append("--h1")
        for h in p.get("headers", []):
            args += ["-H", h]
        args += [f"http://127.0.0.1:{self.listen}{path}" for path in p.get("paths", ["/"])]
        begin = self.now()
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.phases.append({"name": p.get("name", f"phase {i + 1}"), "begin": begin, "end": self.now(),
                            "log": log, "rate": rate})


class Recorded:
    """What main() reads from a Rehearsal, from a Prometheus's recorded data."""

    FAMILIES = ("crest_http_requests_total", "crest_http_request_duration_seconds_bucket",
                "crest_shed_requests_total", "crest_rate_limited_total", "crest_faults_total",
                "crest_upstream_server_up", "crest_config_reloads_total")

    def __init__(self, url, window, scenario_path):
        import json
        import urllib.parse
        import yaml
        self.s = {}
        if scenario_path:
            with open(scenario_path) as f:
                self.s = yaml.safe_load(f)
        end = time.time()
        start = end - seconds(window)
        step = max(1, int(seconds(window) / 1000))  # at most ~1,000 points
        by_time = {}
        for family in self.FAMILIES:
            query = urllib.parse.urlencode({"query": family, "start": start, "end": end, "step": step})
            with urllib.request.urlopen(f"{url.rstrip('/')}/api/v1/query_range?{query}", timeout=30) as r:
                result = json.load(r)["data"]["result"]
            for series in result:
                labels = tuple(sorted((k, v) for k, v in series["metric"].items() if k != "__name__"))
                for t, value in series["values"]:
                    by_time.setdefault(float(t) - start, {})[(family, labels)] = float(value)
        self.samples = sorted(by_time.items())
        self.phases = []
        self.events = []
        for (t0, a), (t1, b) in zip(self.samples, self.samples[1:]):
            if total(b, "crest_config_reloads_total") > total(a, "crest_config_reloads_total"):
                self.events.append((t1, "reload"))
        self.source = f"{url}, the last {window}"


# -- what the samples say, second by second
def total(samples, name, **match):
    return sum(v for (n, labels), v in samples.items() if n == name and
               all(dict(labels).get(k) == w for k, w in match.items()))


def by_label(samples, name, label):
    out = {}
    for (n, labels), v in samples.items():
        if n == name:
            key = dict(labels).get(label, "")
            out[key] = out.get(key, 0) + v
    return out


def quantile(buckets, q):
    """From cumulative {le: count} deltas: the le of quantile q, in ms."""
    items = sorted((float("inf") if le == "+Inf" else float(le), c) for le, c in buckets.items())
    if not items or items[-1][1] <= 0:
        return None
    target = q * items[-1][1]
    for le, c in items:
        if c >= target:
            return None if le == float("inf") else le * 1000
    return None


def timeline(samples):
    rows, pools = [], set()
    for (t0, a), (t1, b) in zip(samples, samples[1:]):
        dt = t1 - t0
        row = {"t": round(t1, 1)}
        for code in ("2xx", "3xx", "4xx", "5xx"):
            row[f"rps_{code}"] = (total(b, "crest_http_requests_total", code=code)
                                  - total(a, "crest_http_requests_total", code=code)) / dt
        buckets = {le: by_label(b, "crest_http_request_duration_seconds_bucket", "le").get(le, 0) - c
                   for le, c in by_label(a, "crest_http_request_duration_seconds_bucket", "le").items()}
        row["p50_ms"], row["p99_ms"] = quantile(buckets, 0.5), quantile(buckets, 0.99)
        per_pool_a = by_label(a, "crest_http_requests_total", "pool")
        per_pool_b = by_label(b, "crest_http_requests_total", "pool")
        answered = sum(per_pool_b.values()) - sum(per_pool_a.values())
        for pool, v in per_pool_b.items():
            if pool:
                pools.add(pool)
                row[f"share_{pool}"] = (v - per_pool_a.get(pool, 0)) / answered if answered > 0 else 0
        row["shed_per_s"] = (total(b, "crest_shed_requests_total") - total(a, "crest_shed_requests_total")) / dt
        row["rate_limited_per_s"] = (total(b, "crest_rate_limited_total") - total(a, "crest_rate_limited_total")) / dt
        row["faults_per_s"] = (total(b, "crest_faults_total") - total(a, "crest_faults_total")) / dt
        up = by_label(b, "crest_upstream_server_up", "pool")
        for pool, v in up.items():
            row[f"up_{pool}"] = v
        rows.append(row)
    return rows, sorted(pools)


def client_view(log):
    """(requests, errors, [latencies in ms]) of one h2load log."""
    lat, errors = [], 0
    try:
        for line in open(log):
            parts = line.split()
            if len(parts) >= 3:
                status = int(parts[1])
                lat.append(int(parts[2]) / 1000)
                errors += status >= 500 or status == 0
    except FileNotFoundError:
        pass
    return len(lat), errors, sorted(lat)


def pct(values, q):
    return values[min(len(values) - 1, int(q * len(values)))] if values else None


def plot(rows, pools, events, phases, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = [r["t"] for r in rows]
    figures = {
        "requests.png": ("Requests/s by status class", "requests/s",
                         [(f"rps_{c}", c) for c in ("2xx", "3xx", "4xx", "5xx")]),
        "latency.png": ("Latency at crest (p50, p99)", "ms", [("p50_ms", "p50"), ("p99_ms", "p99")]),
        "pools.png": ("Share of traffic per pool", "share", [(f"share_{p}", p) for p in pools]),
        "shed.png": ("Shed, rate-limited and fault-injected requests/s", "requests/s",
                     [("shed_per_s", "shed"), ("rate_limited_per_s", "rate limited"), ("faults_per_s", "faults")]),
        "health.png": ("Servers up per pool", "servers", [(f"up_{p}", p) for p in pools]),
    }
    written = []
    for name, (title, unit, series) in figures.items():
        fig, ax = plt.subplots(figsize=(10, 3.2))
        for key, label in series:
            ys = [r.get(key) for r in rows]
            if any(y for y in ys if y is not None):
                ax.plot(t, [y if y is not None else float("nan") for y in ys], label=label)
        for p in phases:
            ax.axvspan(p["begin"], p["end"], alpha=0.06, color="grey")
            ax.text(p["begin"], 1.0, " " + p["name"], transform=ax.get_xaxis_transform(), va="top", fontsize=7,
                    color="grey")
        for when, label in events:
            ax.axvline(when, color="red", linestyle="--", linewidth=1)
            ax.text(when, 0.85, " " + label, transform=ax.get_xaxis_transform(), color="red", fontsize=8)
        ax.set_title(title)
        ax.set_xlabel("seconds")
        ax.set_ylabel(unit)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, name), dpi=100)
        plt.close(fig)
        written.append((name, title))
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenario", nargs="?")
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-plots", action="store_true", help="timeline, report and verdicts only")
    ap.add_argument("--from-prometheus", metavar="URL", help="render what this Prometheus recorded")
    ap.add_argument("--window", default="30m", help="with --from-prometheus: how far back (30m)")
    args = ap.parse_args()
    if args.from_prometheus:
        os.makedirs(args.out, exist_ok=True)
        r = Recorded(args.from_prometheus, args.window, args.scenario)
    elif args.scenario:
        r = Rehearsal(args.scenario, args.out)
        r.run()
    else:
        ap.error("a scenario, or --from-prometheus URL")
    rows, pools = timeline(r.samples)
    with open(os.path.join(args.out, "timeline.csv"), "w", newline="") as f:
        keys = sorted({k for row in rows for k in row}, key=lambda k: (k != "t", k))
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    plots = [] if args.no_plots else plot(rows, pools, r.events, r.phases, args.out)

    # SLOs, from what the clients saw (or, from a Prometheus, from crest's
    # metrics); injected aborts are not the servers' errors.
    first = r.samples[0][1] if r.samples else {}
    final = r.samples[-1][1] if r.samples else {}

    def increase(name, **match):
        return total(final, name, **match) - (total(first, name, **match) if args.from_prometheus else 0)
    aborts = increase("crest_faults_total", kind="abort")
    requests = errors = 0
    latencies = []
    phase_rows = []
    if args.from_prometheus:
        requests = increase("crest_http_requests_total")
        errors = increase("crest_http_requests_total", code="5xx")
        bucket = "crest_http_request_duration_seconds_bucket"
        before = by_label(first, bucket, "le")
        recorded_p99 = quantile({le: c - before.get(le, 0) for le, c in by_label(final, bucket, "le").items()}, 0.99)
    for p in r.phases:
        n, e, lat = client_view(p["log"])
        requests, errors, latencies = requests + n, errors + e, latencies + lat
        span = max(p["end"] - p["begin"], 1e-9)
        phase_rows.append(f"| {p['name']} | {p['rate']:.0f} | {n / span:.0f} | {n} | "
                          f"{100 * e / n if n else 0:.2f}% | {pct(lat, 0.5) or 0:.1f} | {pct(lat, 0.99) or 0:.1f} |")
    latencies.sort()
    slos = r.s.get("slos", {})
    verdicts = []
    if "p99_ms" in slos:
        p99 = (recorded_p99 if args.from_prometheus else pct(latencies, 0.99)) or float("inf")
        verdicts.append((f"p99 below {slos['p99_ms']} ms", f"{p99:.1f} ms", p99 < float(slos["p99_ms"])))
    if "error_percent" in slos:
        share = 100 * max(0, errors - aborts) / requests if requests else 100
        verdicts.append((f"errors below {slos['error_percent']}% (injected faults excluded)", f"{share:.3f}%",
                         share < float(slos["error_percent"])))
    for pool in slos.get("never_shed", []):
        shed = increase("crest_shed_requests_total", pool=pool)
        verdicts.append((f"no request of pool {pool} shed", f"{shed:.0f} shed", shed == 0))
    ok = all(v[2] for v in verdicts)

    title = r.s.get("name") or os.path.basename(args.scenario or "crest")
    span = r.samples[-1][0] - r.samples[0][0] if len(r.samples) > 1 else 0
    source = f" Recorded by {r.source}; measured at crest." if args.from_prometheus else ""
    lines = [f"# Rehearsal: {title}", "",
             f"**{'All SLOs held' if ok else 'SLOs missed'}.** {requests:.0f} requests over {span:.0f} s.{source}", "",
             "| SLO | measured | verdict |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'held' if good else '**missed**'} |" for name, value, good in verdicts]
    if phase_rows:
        lines += ["", "## Phases (as the load generator saw them)", "",
                  "| phase | target req/s | achieved req/s | requests | 5xx or failed | p50 ms | p99 ms |",
                  "|---|---|---|---|---|---|---|", *phase_rows]
    lines += ["", "## Events", ""]
    lines += [f"- {when:.1f} s: {label}" for when, label in r.events] or ["- none"]
    lines += ["", "## Plots", ""]
    lines += [f"### {title}\n\n![{title}]({name})\n" for name, title in plots]
    lines += ["Data: `timeline.csv` (one row a second, from crest's /metrics); crest's log: `crest.log`."]
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"rehearse: {'all SLOs held' if ok else 'SLOs missed'}; report in {os.path.join(args.out, 'report.md')}")
    for name, value, good in verdicts:
        print(f"rehearse: {'held  ' if good else 'MISSED'} {name}: {value}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
