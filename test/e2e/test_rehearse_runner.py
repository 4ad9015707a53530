"""scripts/rehearse.py's verdicts: the same short scenario passes with an SLO
the run can meet and fails (exit 1, "missed" in the report) with one it
cannot; the timeline has a row a second from crest's /metrics. And the
report rendered from what a real Prometheus (Debian's) recorded of crest,
with a reload marked."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import yaml

from harness import CrestTestCase, free_port, wait_for_port, wait_until

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
EXAMPLES = os.path.join(ROOT, "examples", "rehearsal")


@unittest.skipUnless(shutil.which("h2load"), "h2load is not installed (scripts/install-deps)")
class RehearseRunnerTest(unittest.TestCase):
    def rehearse(self, slos, tmp):
        with open(os.path.join(EXAMPLES, "tight.yaml")) as f:
            scenario = yaml.safe_load(f)
        scenario["slos"] = slos
        shutil.copy(os.path.join(EXAMPLES, "launch.crest.yaml"), tmp)
        path = os.path.join(tmp, "scenario.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(scenario, f)
        out = os.path.join(tmp, "out")
        p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "rehearse.py"), path, "--out", out,
                            "--no-plots"], capture_output=True, text=True, timeout=120)
        with open(os.path.join(out, "report.md")) as f:
            return p.returncode, f.read(), out

    def test_an_slo_met_passes_and_one_missed_fails(self):
        with tempfile.TemporaryDirectory() as tmp:
            code, report, out = self.rehearse({"p99_ms": 5000, "error_percent": 50, "never_shed": ["api"]}, tmp)
            self.assertEqual(code, 0, report)
            self.assertIn("All SLOs held", report)
            self.assertIn("| steady | 100 |", report)
            with open(os.path.join(out, "timeline.csv")) as f:
                rows = list(csv.DictReader(f))
            self.assertGreaterEqual(len(rows), 2)
            self.assertGreater(max(float(r["rps_2xx"]) for r in rows), 10)
        with tempfile.TemporaryDirectory() as tmp:
            code, report, _ = self.rehearse({"p99_ms": 0.001}, tmp)
            self.assertEqual(code, 1, report)
            self.assertIn("**missed**", report)


if __name__ == "__main__":
    unittest.main()


@unittest.skipUnless(shutil.which("prometheus") and shutil.which("h2load"),
                     "prometheus or h2load is not installed (scripts/install-deps)")
class FromPrometheusTest(CrestTestCase):
    def test_the_report_from_what_prometheus_recorded(self):
        web = self.backend("web")
        self.crest(self.simple_config({"web": [web]}, workers=1), self.port)
        prom_port = free_port()
        config = os.path.join(self.tmpdir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: crest\n"
                    f"    static_configs: [{{targets: ['127.0.0.1:{self.admin_port}']}}]\n")
        prom = subprocess.Popen(["prometheus", f"--config.file={config}",
                                 f"--storage.tsdb.path={os.path.join(self.tmpdir, 'tsdb')}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(prom_port, timeout=30)

            def scraping():
                url = f"http://127.0.0.1:{prom_port}/api/v1/query?query=crest_config_reloads_total"
                try:
                    with urllib.request.urlopen(url, timeout=2) as r:
                        return len(json.load(r)["data"]["result"]) > 0
                except OSError:
                    return False
            wait_until(scraping, timeout=30, what="Prometheus scraping crest")
            subprocess.run(["h2load", "--h1", "-c", "2", "-t", "1", "--rps=50", "-D", "4",
                            f"http://127.0.0.1:{self.port}/"], capture_output=True, timeout=60)
            self.crests[0].signal(signal.SIGHUP)
            wait_until(lambda: "generation 2 applied" in self.crests[0].log(), what="the reload")
            subprocess.run(["h2load", "--h1", "-c", "2", "-t", "1", "--rps=50", "-D", "3",
                            f"http://127.0.0.1:{self.port}/"], capture_output=True, timeout=60)
            time.sleep(2)  # the last scrapes
            out = os.path.join(self.tmpdir, "out")
            scenario = os.path.join(self.tmpdir, "slos.yaml")
            with open(scenario, "w") as f:
                yaml.safe_dump({"name": "recorded", "slos": {"p99_ms": 5000, "never_shed": ["web"]}}, f)
            p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "rehearse.py"), scenario,
                                "--from-prometheus", f"http://127.0.0.1:{prom_port}", "--window", "60s",
                                "--out", out, "--no-plots"], capture_output=True, text=True, timeout=120)
            with open(os.path.join(out, "report.md")) as f:
                report = f.read()
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr + report)
            self.assertIn("All SLOs held", report)
            self.assertIn("s: reload", report)
            with open(os.path.join(out, "timeline.csv")) as f:
                rows = list(csv.DictReader(f))
            self.assertGreater(max(float(r["rps_2xx"]) for r in rows), 20)
        finally:
            prom.kill()
            prom.wait()
