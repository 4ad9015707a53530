"""End to end: TLS termination (SNI, versions, ALPN, resumption, HTTPS proxying)."""

import os
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from harness import CrestTestCase, admin_get, free_port


def make_cert(folder, name, key_spec, dns):
    """A self-signed certificate for `dns` names (openssl CLI); returns (cert, key)."""
    cert, key = os.path.join(folder, f"{name}.pem"), os.path.join(folder, f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", *key_spec, "-nodes", "-keyout", key, "-out", cert,
                    "-days", "30", "-subj", f"/CN={dns[0]}", "-addext",
                    "subjectAltName=" + ",".join(f"DNS:{d}" for d in dns)],
                   check=True, capture_output=True)
    return cert, key


def s_client(port, *args, stdin=b""):
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
                       input=stdin, capture_output=True, timeout=15)
    return p.returncode, p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")


def client_context(version=None):
    """A client context that trusts the test's self-signed certificates; only `version` if given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if version is not None:
        context.minimum_version = context.maximum_version = version
    return context


class TlsTest(CrestTestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.TemporaryDirectory(prefix="crest-tls-")
        d = cls.certs.name
        ec = ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        cls.a_rsa = make_cert(d, "a-rsa", ["rsa:2048"], ["a.test"])
        cls.a_ec = make_cert(d, "a-ec", ec, ["a.test"])
        cls.b = make_cert(d, "b", ec, ["b.test"])
        cls.w = make_cert(d, "w", ec, ["*.w.test"])
        # An RSA and an ECDSA certificate that share one name of their lists.
        cls.rsa_www = make_cert(d, "rsa-www", ["rsa:2048"], ["rsa.test", "www.test"])
        cls.ec_www = make_cert(d, "ec-www", ec, ["ec.test", "www.test"])

    @classmethod
    def tearDownClass(cls):
        cls.certs.cleanup()

    def start(self, min_version="1.2", session_tickets=True, certificates=None):
        self.web = self.backend("web")
        certificates = certificates or (self.a_rsa, self.a_ec, self.b, self.w)
        certs = "".join(f"        - cert: {c}\n          key: {k}\n" for c, k in certificates)
        tickets = "" if session_tickets else "      session_tickets: false\n"
        config = self.simple_config({"web": [self.web]})
        config = config.replace("    routes:\n", f"    tls:\n      min_version: \"{min_version}\"\n{tickets}"
                                                f"      certificates:\n{certs}    routes:\n", 1)
        self.crest(config, self.port)

    def subject(self, *args):
        code, out = s_client(self.port, *args)
        self.assertEqual(code, 0, out)
        for line in out.splitlines():
            if line.startswith("subject="):
                return line.split("CN = ")[-1].strip()
        self.fail(out)

    def test_sni_chooses_the_certificate_and_falls_back_to_the_first(self):
        self.start()
        self.assertEqual(self.subject("-servername", "b.test"), "b.test")
        self.assertEqual(self.subject("-servername", "x.w.test"), "*.w.test")
        self.assertEqual(self.subject("-servername", "A.TEST"), "a.test")
        self.assertEqual(self.subject("-servername", "unknown.test"), "a.test")
        self.assertEqual(self.subject("-noservername"), "a.test")

    def test_rsa_and_ecdsa_certificates_for_one_name(self):
        self.start()
        _, rsa = s_client(self.port, "-servername", "a.test", "-tls1_2", "-sigalgs", "RSA+SHA256")
        self.assertIn("Server public key is 2048 bit", rsa)
        _, ecdsa = s_client(self.port, "-servername", "a.test", "-tls1_2", "-sigalgs", "ECDSA+SHA256")
        self.assertIn("Server public key is 256 bit", ecdsa)

    def test_each_name_is_served_by_every_certificate_that_covers_it(self):
        self.start(certificates=(self.rsa_www, self.ec_www))
        for version in ("-tls1_2", "-tls1_3"):
            _, ecdsa = s_client(self.port, "-servername", "www.test", version, "-sigalgs", "ECDSA+SHA256")
            self.assertIn("Server public key is 256 bit", ecdsa)
            self.assertIn("CN = ec.test", ecdsa)
            _, rsa = s_client(self.port, "-servername", "www.test", version,
                              "-sigalgs", "RSA+SHA256:RSA-PSS+SHA256")
            self.assertIn("Server public key is 2048 bit", rsa)
            self.assertIn("CN = rsa.test", rsa)
        self.assertEqual(self.subject("-servername", "ec.test", "-sigalgs", "ECDSA+SHA256"), "ec.test")
        self.assertEqual(self.subject("-servername", "rsa.test"), "rsa.test")
        # Without SNI: the first certificate of each key type.
        self.assertEqual(self.subject("-noservername", "-sigalgs", "ECDSA+SHA256"), "ec.test")
        self.assertEqual(self.subject("-noservername", "-sigalgs", "RSA+SHA256:RSA-PSS+SHA256"), "rsa.test")

    def test_protocol_versions_and_alpn(self):
        self.start()
        code, out = s_client(self.port, "-tls1_3", "-alpn", "h2,http/1.1")
        self.assertEqual(code, 0, out)
        self.assertIn("TLSv1.3", out)
        self.assertIn("ALPN protocol: h2", out)  # h2 is offered by default (SPEC, HTTP/2 from clients)
        code, out = s_client(self.port, "-tls1_2")
        self.assertEqual(code, 0, out)
        self.assertIn("Protocol  : TLSv1.2", out)
        self.assertRegex(out, r"Cipher    : ECDHE-(ECDSA|RSA)-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)")
        # The client offers TLS 1.1 for real (lowered security level); the server refuses it.
        code, out = s_client(self.port, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0")
        self.assertNotEqual(code, 0)
        self.assertIn("alert protocol version", out)
        code, out = s_client(self.port, "-tls1_2", "-cipher", "AES128-SHA")
        self.assertNotEqual(code, 0, "a non-ECDHE, non-AEAD cipher must be refused")
        _, metrics = admin_get(self.admin_port, "/metrics")
        self.assertRegex(metrics, r'crest_tls_handshakes_total\{listener="public",result="ok"\} [1-9]')
        self.assertRegex(metrics, r'crest_tls_handshakes_total\{listener="public",result="error"\} [1-9]')

    def test_min_version_1_3(self):
        self.start(min_version="1.3")
        code, _ = s_client(self.port, "-tls1_2")
        self.assertNotEqual(code, 0)
        code, out = s_client(self.port, "-tls1_3")
        self.assertEqual(code, 0, out)

    def handshake(self, context, session=None):
        start = time.perf_counter()
        raw = socket.create_connection(("127.0.0.1", self.port))
        s = context.wrap_socket(raw, server_hostname="a.test", session=session)
        elapsed = time.perf_counter() - start
        # TLS 1.3 tickets arrive after the handshake: one request/response reads them.
        s.sendall(b"GET /bytes/1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        s.recv(65536)
        reused, sess = s.session_reused, s.session
        s.close()
        return elapsed, reused, sess

    def test_tickets_resume_across_connections_and_workers(self):
        self.start()
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = client_context(version)
            full_times, resumed_times = [], []
            for _ in range(10):
                t_full, reused, sess = self.handshake(ctx)
                self.assertFalse(reused)
                self.assertTrue(sess.has_ticket)
                full_times.append(t_full)
                # Two workers: over ten tries the resumption lands on both.
                t_resumed, reused, _ = self.handshake(ctx, sess)
                self.assertTrue(reused, version)
                resumed_times.append(t_resumed)
            full, resumed = sorted(full_times)[5], sorted(resumed_times)[5]
            print(f"\n{version.name}: median full handshake {full * 1e3:.2f} ms, resumed {resumed * 1e3:.2f} ms")

    def test_without_tickets_sessions_resume_from_the_cache(self):
        self.start(session_tickets=False)
        for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            ctx = client_context(version)
            for _ in range(10):
                _, reused, sess = self.handshake(ctx)
                self.assertFalse(reused)
                if version == ssl.TLSVersion.TLSv1_2:
                    # TLS 1.3 always sends a ticket; without tickets it only names a cached session.
                    self.assertFalse(sess.has_ticket)
                # The cache is shared by the two workers, as the ticket keys are.
                _, reused, _ = self.handshake(ctx, sess)
                self.assertTrue(reused, version)

    def test_https_request_end_to_end(self):
        self.start()
        out = subprocess.run(["curl", "-sk", "--resolve", f"a.test:{self.port}:127.0.0.1",
                              f"https://a.test:{self.port}/echo"], capture_output=True, text=True, timeout=15)
        self.assertEqual(out.returncode, 0, out.stderr)
        import json
        seen = {k.lower(): v for k, v in json.loads(out.stdout)["headers"]}
        self.assertEqual(seen["x-forwarded-proto"], "https")
        self.assertEqual(seen["host"], f"a.test:{self.port}")
        big = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                              "--resolve", f"a.test:{self.port}:127.0.0.1", f"https://a.test:{self.port}/bytes/1048576"],
                             capture_output=True, text=True, timeout=15)
        self.assertEqual(big.stdout, "200 1048576")

    def test_a_client_half_closing_without_close_notify_still_gets_its_answer(self):
        # As over plain HTTP: the request, then the client's FIN with no TLS
        # close_notify (OpenSSL 3 would call that an error by default).
        self.start()
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = client_context().wrap_bio(incoming, outgoing, server_hostname="a.test")

        def flush():
            pending = outgoing.read()
            if pending:
                raw.sendall(pending)

        def exchange(step):
            while True:
                try:
                    result = step()
                    flush()
                    return result
                except ssl.SSLWantReadError:
                    flush()
                    data = raw.recv(65536)
                    if not data:
                        incoming.write_eof()
                    incoming.write(data)

        exchange(tls.do_handshake)
        exchange(lambda: tls.write(b"GET /bytes/5 HTTP/1.1\r\nHost: a.test\r\n\r\n"))
        raw.shutdown(socket.SHUT_WR)
        answer = b""
        while b"01234" not in answer:
            try:
                answer += exchange(lambda: tls.read(65536))
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                break
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer)
        self.assertTrue(answer.endswith(b"01234"), answer)
        raw.close()

    def test_check_reports_certificate_problems(self):
        from harness import run_crest
        cfg = os.path.join(self.tmpdir, "tls.yaml")
        with open(cfg, "w") as f:
            f.write(f"""listeners:
  - name: public
    listen: 127.0.0.1:{free_port()}
    tls:
      certificates:
        - cert: {self.a_rsa[0]}
          key: {self.b[1]}
        - cert: missing.pem
          key: missing.key
    routes:
      - pool: web
pools:
  web:
    servers:
      - address: 127.0.0.1:9
""")
        code, _, err = run_crest(["-c", cfg, "--check"])
        self.assertEqual(code, 1)
        self.assertIn(f"{cfg}:6:11: listeners[0].tls.certificates[0].key: key {self.b[1]} does not match", err)
        self.assertIn(f"{cfg}:8:11: listeners[0].tls.certificates[1].cert: cannot read {self.tmpdir}/missing.pem", err)


if __name__ == "__main__":
    unittest.main()
