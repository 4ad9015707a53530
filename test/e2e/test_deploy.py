"""deploy/: the Kubernetes manifests are well-formed and agree with the
configuration they carry, which crest itself accepts; the container image
ships every library the binary needs. (No container engine or API server
runs where the tests do: docs/scale-out.md says how the rest was checked.)"""

import glob
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import yaml

from harness import CREST, run_crest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DEPLOY = os.path.join(ROOT, "deploy")


def documents():
    out = []
    for path in sorted(glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml"))):
        with open(path) as f:
            out += [(os.path.basename(path), d) for d in yaml.safe_load_all(f) if d]
    return out


def seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m)", text)
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]


class DeployTest(unittest.TestCase):
    def kind(self, kind, name=None):
        found = [d for _, d in documents() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
        self.assertTrue(found, kind)
        return found[0]

    def check(self, text):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "crest.yaml")
            with open(path, "w") as f:
                f.write(text)
            code, out, err = run_crest(["-c", path, "--check"])
            self.assertEqual(code, 0, out + err)

    def test_every_manifest_is_a_named_kubernetes_object(self):
        docs = documents()
        self.assertGreaterEqual(len(docs), 8)
        for file, d in docs:
            for key in ("apiVersion", "kind", "metadata"):
                self.assertIn(key, d, file)
            self.assertTrue(d["metadata"].get("name"), file)

    def test_the_configuration_they_carry_is_accepted_by_crest(self):
        config = yaml.safe_load(self.kind("ConfigMap", "crest")["data"]["crest.yaml"])
        self.check(self.kind("ConfigMap", "crest")["data"]["crest.yaml"])
        with open(os.path.join(DEPLOY, "crest.yaml")) as f:
            self.check(f.read())
        self.assertEqual(config["busy_poll"], 0)  # the autoscaler reads CPU

    def test_the_deployment_fits_the_configuration(self):
        config = yaml.safe_load(self.kind("ConfigMap", "crest")["data"]["crest.yaml"])
        pod = self.kind("Deployment", "crest")["spec"]["template"]["spec"]
        container = pod["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        self.assertEqual(ports["admin"], int(config["admin"]["listen"].rsplit(":", 1)[1]))
        self.assertEqual(ports["http"], int(config["listeners"][0]["listen"].rsplit(":", 1)[1]))
        for probe in ("readinessProbe", "livenessProbe"):
            self.assertEqual(container[probe]["httpGet"], {"path": "/healthz", "port": "admin"})
        pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
        self.assertGreater(pod["terminationGracePeriodSeconds"], pre_stop + seconds(config["shutdown_timeout"]))
        self.assertEqual(self.kind("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["name"], "crest")
        self.assertEqual(self.kind("Service", "app-backends")["spec"]["clusterIP"], "None")

    def test_the_dashboard_and_alerts_use_only_metrics_crest_exports(self):
        with open(os.path.join(ROOT, "observe", "metrics.cc")) as f:
            source = f.read()
        exported = set(re.findall(r'"(crest_[a-z_]+)"', source))
        with open(os.path.join(DEPLOY, "grafana", "crest.json")) as f:
            dashboard = json.load(f)
        exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        self.assertEqual(len(exprs), 14)
        with open(os.path.join(DEPLOY, "prometheus", "alerts.yml")) as f:
            rules = yaml.safe_load(f)["groups"][0]["rules"]
        exprs += [r["expr"] for r in rules]
        used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"crest_[a-z_]+", e)}
        self.assertEqual(used - exported, set())
        self.assertLessEqual({"listener", "pool"}, {v["name"] for v in dashboard["templating"]["list"]})

    @unittest.skipUnless(shutil.which("ldd") and shutil.which("dpkg"), "needs ldd and dpkg")
    def test_the_image_installs_every_library_the_binary_links(self):
        with open(os.path.join(DEPLOY, "Dockerfile")) as f:
            dockerfile = f.read()
        libraries = subprocess.run(["ldd", CREST], capture_output=True, text=True).stdout
        packages = set()
        for line in libraries.splitlines():
            m = re.search(r"=> (\S+)", line)
            if not m:
                continue
            owner = subprocess.run(["dpkg", "-S", os.path.realpath(m.group(1))], capture_output=True, text=True)
            if owner.returncode == 0:
                packages.add(owner.stdout.split(":")[0])
        # Present in every Debian image; and the sanitizers' runtimes, when the
        # suite runs on the ASan/UBSan build (the image ships the Release one).
        packages -= {"libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libzstd1"}
        packages = {p for p in packages if not re.match(r"lib(asan|ubsan|lsan|tsan)\d", p)}
        self.assertTrue(packages)
        for p in sorted(packages):
            self.assertIn(p, dockerfile)


if __name__ == "__main__":
    unittest.main()
