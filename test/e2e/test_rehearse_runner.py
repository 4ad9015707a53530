"""scripts/rehearse.py's verdicts: the same short scenario passes with an SLO
the run can meet and fails (exit 1, "missed" in the report) with one it
cannot; the timeline has a row a second from crest's /metrics."""

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

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
