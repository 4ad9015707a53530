"""End to end: the command line contract (SPEC.md, Command line)."""

import os
import signal
import socket
import time
import unittest

from harness import CrestTestCase, free_port, run_crest

VALID = """listeners:
  - name: public
    listen: 127.0.0.1:{port}
    routes:
      - pool: web
pools:
  web:
    servers:
      - address: 127.0.0.1:9
"""


class CliTest(CrestTestCase):
    def write(self, name, text):
        path = os.path.join(self.tmpdir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_check_accepts_a_valid_file(self):
        code, out, err = run_crest(["-c", self.write("ok.yaml", VALID.format(port=free_port())), "--check"])
        self.assertEqual((code, out, err), (0, "configuration OK\n", ""))

    def test_check_names_file_line_and_field_of_a_misspelled_key(self):
        path = self.write("typo.yaml", VALID.format(port=8080).replace("    servers:", "    server:"))
        code, out, err = run_crest(["-c", path, "--check"])
        self.assertEqual(code, 1)
        self.assertEqual(out, "")
        lines = err.strip().split("\n")
        self.assertIn(f"{path}:8:5: pools.web.server: unknown field (allowed: ", lines[0])
        self.assertIn(f"{path}:8:5: pools.web.servers: missing required field", lines[1])

    def test_check_refuses_a_key_given_twice(self):
        text = "workers: 1\nworkers: 2\n" + VALID.format(port=8080) + "  web:\n    servers:\n      - address: 127.0.0.1:10\n"
        path = self.write("twice.yaml", text)
        code, out, err = run_crest(["-c", path, "--check"])
        self.assertEqual((code, out), (1, ""))
        self.assertEqual(err.strip().split("\n"), [
            f"{path}:2:1: workers: given twice in one mapping (first at line 1)",
            f"{path}:12:3: pools.web: given twice in one mapping (first at line 9)"])

    def test_check_of_an_unreadable_file_is_a_configuration_error(self):
        code, _, err = run_crest(["-c", "/nonexistent.yaml", "--check"])
        self.assertEqual(code, 1)
        self.assertEqual(err, "/nonexistent.yaml: cannot read: No such file or directory\n")

    def test_check_reports_a_server_name_that_does_not_resolve(self):
        path = self.write("dns.yaml", VALID.format(port=8080).replace("127.0.0.1:9", "no-such-host.invalid:80"))
        code, _, err = run_crest(["-c", path, "--check"])
        self.assertEqual(code, 1)
        self.assertIn(f"{path}:9:18: pools.web.servers[0].address: cannot resolve no-such-host.invalid", err)

    def test_version_help_and_usage_errors(self):
        code, out, _ = run_crest(["--version"])
        self.assertEqual(code, 0)
        self.assertRegex(out, r"^crest \d+\.\d+\.\d+\n$")
        code, out, _ = run_crest(["--help"])
        self.assertEqual(code, 0)
        self.assertIn("--check", out)
        self.assertEqual(run_crest([])[0], 2)
        self.assertEqual(run_crest(["-c"])[0], 2)
        self.assertEqual(run_crest(["--frobnicate"])[0], 2)

    def test_a_taken_port_is_a_start_failure(self):
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code, _, err = run_crest(["-c", self.write("busy.yaml", VALID.format(port=port))])
        self.assertEqual(code, 3)
        self.assertIn(f"cannot listen on 127.0.0.1:{port}", err)
        taken.close()

    def test_logs_are_timestamped_lines_with_a_level(self):
        port = free_port()
        crest = self.crest(VALID.format(port=port), port)
        self.assertEqual(crest.stop(), 0)
        for line in crest.log().strip().split("\n"):
            self.assertRegex(line, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info|warn|error) ")


if __name__ == "__main__":
    unittest.main()
