"""A checker for the Prometheus text exposition format 0.0.4, covering what
`promtool check metrics` enforces, so the tests need no 96 MB prometheus
package: names and labels well formed, one HELP and TYPE per family before its
samples, counters named *_total, histograms with cumulative le buckets ending
in +Inf plus _sum and _count, no duplicate series."""

import math
import re

NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"')
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)( \d+)?$")


def parse_labels(text):
    if not text:
        return ()
    inner = text[1:-1].rstrip(",")
    labels = []
    pos = 0
    while pos < len(inner):
        m = LABEL.match(inner, pos)
        if not m:
            raise ValueError(f"bad labels: {text}")
        labels.append((m.group(1), m.group(2)))
        pos = m.end()
        if pos < len(inner):
            if inner[pos] != ",":
                raise ValueError(f"bad labels: {text}")
            pos += 1
    names = [n for n, _ in labels]
    if len(set(names)) != len(names):
        raise ValueError(f"repeated label name: {text}")
    return tuple(sorted(labels))


def check(text):
    """Returns (problems, samples): samples maps (name, labels) -> value."""
    problems = []
    types, helps, samples = {}, {}, {}
    family_of_sample = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            name = parts[2]
            if not NAME.match(name):
                problems.append(f"{lineno}: bad metric name {name}")
            table = helps if parts[1] == "HELP" else types
            if name in table:
                problems.append(f"{lineno}: second {parts[1]} for {name}")
            table[name] = parts[3] if len(parts) > 3 else ""
            if parts[1] == "TYPE" and table[name] not in ("counter", "gauge", "histogram", "summary", "untyped"):
                problems.append(f"{lineno}: bad type {table[name]}")
            if parts[1] == "TYPE" and table[name] == "counter" and not name.endswith("_total"):
                problems.append(f"{lineno}: counter {name} should end in _total")
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            problems.append(f"{lineno}: not a sample: {line}")
            continue
        name, label_text, value = m.group(1), m.group(2), m.group(3)
        try:
            labels = parse_labels(label_text)
            number = float(value)
        except ValueError as e:
            problems.append(f"{lineno}: {e}")
            continue
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name[: -len(suffix)]) == "histogram":
                family = name[: -len(suffix)]
        if family not in types:
            problems.append(f"{lineno}: sample of {name} before its TYPE")
        if family not in helps:
            problems.append(f"{lineno}: {family} has no HELP")
        key = (name, labels)
        if key in samples:
            problems.append(f"{lineno}: duplicate series {line}")
        samples[key] = number
        family_of_sample[key] = family
    # Histograms: cumulative buckets ending with +Inf equal to _count.
    for family, kind in types.items():
        if kind != "histogram":
            continue
        series = {}
        for (name, labels), value in samples.items():
            if name == family + "_bucket":
                rest = tuple(l for l in labels if l[0] != "le")
                le = dict(labels).get("le")
                series.setdefault(rest, []).append((math.inf if le == "+Inf" else float(le), value))
        for rest, buckets in series.items():
            buckets.sort()
            counts = [v for _, v in buckets]
            if counts != sorted(counts):
                problems.append(f"{family}{dict(rest)}: buckets not cumulative")
            if buckets[-1][0] != math.inf:
                problems.append(f"{family}{dict(rest)}: no +Inf bucket")
            if samples.get((family + "_count", rest)) != buckets[-1][1]:
                problems.append(f"{family}{dict(rest)}: _count differs from the +Inf bucket")
            if (family + "_sum", rest) not in samples:
                problems.append(f"{family}{dict(rest)}: no _sum")
    return problems, samples
