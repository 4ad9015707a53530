#!/usr/bin/env python3
"""A small authoritative DNS server for crest's discovery tests (stdlib UDP).

Answers A and AAAA queries from a JSON file read at every query, so a test
changes the records by rewriting the file:
  {"svc.test": {"A": ["127.0.0.2"], "AAAA": [], "ttl": 1}, "down.test": {"servfail": true}}
Unknown names get NXDOMAIN; a name with "servfail": true gets SERVFAIL.
  dns_server.py --port PORT --records FILE
"""
import argparse
import ipaddress
import json
import socket
import struct


def answer(query, records_path):
    ident, flags, qdcount = struct.unpack("!HHH", query[:6])
    if qdcount != 1:
        return None
    at, labels = 12, []
    while query[at]:
        n = query[at]
        labels.append(query[at + 1:at + 1 + n].decode("ascii", "replace"))
        at += 1 + n
    qtype, qclass = struct.unpack("!HH", query[at + 1:at + 5])
    question = query[12:at + 5]
    name = ".".join(labels).lower()
    try:
        with open(records_path) as f:
            records = json.load(f)
    except (OSError, ValueError):
        records = {}
    entry = records.get(name)
    rd = flags & 0x0100
    if entry is None:
        return struct.pack("!HHHHHH", ident, 0x8480 | rd | 3, 1, 0, 0, 0) + question
    if entry.get("servfail"):
        return struct.pack("!HHHHHH", ident, 0x8080 | rd | 2, 1, 0, 0, 0) + question
    kind = {1: "A", 28: "AAAA"}.get(qtype)
    addresses = entry.get(kind, []) if kind else []
    body = b""
    for a in addresses:
        rdata = ipaddress.ip_address(a).packed
        body += struct.pack("!HHHIH", 0xC00C, qtype, qclass, int(entry.get("ttl", 1)), len(rdata)) + rdata
    return struct.pack("!HHHHHH", ident, 0x8480 | rd, 1, len(addresses), 0, 0) + question + body


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--records", required=True)
    args = ap.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", args.port))
    print(f"dns listening on 127.0.0.1:{args.port}", flush=True)
    while True:
        query, peer = sock.recvfrom(4096)
        try:
            reply = answer(query, args.records)
        except (IndexError, struct.error):
            reply = None
        if reply:
            sock.sendto(reply, peer)


if __name__ == "__main__":
    main()
