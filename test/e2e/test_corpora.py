"""End to end: replays the public request-smuggling and parser corpora of
../shared/corpora through the running proxy, with the verdicts they give."""

import json
import os
import re
import socket
import unittest

from harness import CrestTestCase

SHARED = os.environ.get("CREST_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
CORPORA = os.path.join(SHARED, "corpora")


def body_for(head):
    """A body matching the head's framing, so well-formed requests can complete."""
    text = head.decode("latin-1")
    m = re.search(r"\r\nContent-Length:[ \t]*(\d+)[ \t]*\r\n", text)
    if m and text.lower().count("content-length") == 1 and int(m.group(1)) <= 8 << 20:
        return b"x" * int(m.group(1))
    if re.search(r"\r\nTransfer-Encoding:[ \t]*chunked[ \t]*\r\n", text, re.IGNORECASE):
        return b"0\r\n\r\n"
    return b""


class CorporaTest(CrestTestCase):
    def setUp(self):
        super().setUp()
        self.web = self.backend("web")
        self.crest(self.simple_config({"web": [self.web]}, extra="timeouts:\n  client_header: 2s"), self.port)

    def replay(self, raw):
        """(statuses, closed): what crest answered to `raw` followed by a half-close."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        data = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
        return [int(m) for m in re.findall(rb"(?:^|\r\n\r\n|\n)HTTP/1\.1 (\d{3}) ", data)]

    def seen(self):
        return len(self.web.requests_seen())

    def test_http_desync_guardian(self):
        path = os.path.join(CORPORA, "http-desync-guardian", "rendered_heads.json")
        if not os.path.exists(path):
            self.skipTest(f"no corpus at {path}")
        with open(path) as f:
            cases = json.load(f)["cases"]
        failures = []
        tiers = {}
        for case in cases:
            head = bytes.fromhex(case["head_with_host_hex"])
            before = self.seen()
            statuses = self.replay(head + body_for(head))
            reached = self.seen() - before
            tier = case["expected_tier"]
            tiers[tier] = tiers.get(tier, 0) + 1
            first = statuses[0] if statuses else None
            if tier == "Severe":
                ok = first in (400, 501) and reached == 0
            elif tier == "Ambiguous":
                ok = first in (400, 501) and reached == 0 or (first is not None and first < 300 and reached == 1)
            elif case["must_accept"]:
                ok = first is not None and first < 300 and reached == 1
            else:  # other Compliant and Acceptable: accept or refuse, never desync
                ok = first is not None and reached <= 1
            if len(statuses) > 1 or not ok:
                failures.append(f"{case['file']}: {case['name']} [{tier}]: statuses {statuses}, "
                                f"{reached} request(s) reached the server: {case['head_repr']}")
        self.assertEqual(failures, [], "\n" + "\n".join(failures))
        self.assertEqual(sum(tiers.values()), 159)

    def test_llhttp_strict_request_cases(self):
        path = os.path.join(CORPORA, "llhttp-request-tests", "llhttp_request_cases.json")
        if not os.path.exists(path):
            self.skipTest(f"no corpus at {path}")
        failures = []
        rejects = 0
        with open(path) as f:
            llhttp_cases = json.load(f)["cases"]
        for case in llhttp_cases:
            raw = bytes.fromhex(case["raw_hex"])
            before = self.seen()
            statuses = self.replay(raw)
            reached = self.seen() - before
            if case["type"] == "request" and case["verdict"] == "reject":
                rejects += 1
                bare_lf = re.search(rb"[^\r]\n", raw) is not None
                ok = (statuses[:1] in ([400], [501]) and reached == 0) or (bare_lf and reached <= 1)
                if not ok:
                    failures.append(f"{case['file']}: {case['title']}: statuses {statuses}, reached {reached}: "
                                    f"{case['raw_repr']}")
            elif reached > case.get("messages_complete", 1):
                # Whatever crest accepts, the server never sees more requests than the client sent.
                failures.append(f"{case['file']}: {case['title']}: more requests than sent: {case['raw_repr']}")
        self.assertEqual(rejects, 52)
        self.assertEqual(failures, [], "\n" + "\n".join(failures))


if __name__ == "__main__":
    unittest.main()
