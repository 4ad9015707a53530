"""Writes seed inputs for the http2 fuzz target: what python3-h2, a real
client stack, sends for a few conversations (GET, POST with a body, many
streams, a reset, trailers, SETTINGS and PING, a cached and a rate-limited
path). Each file starts with the byte that chooses the read size.

    /usr/bin/python3 test/fuzz/http2_seeds.py test/fuzz/corpus/http2
"""

import os
import sys

import h2.config
import h2.connection
import h2.settings


def conversation(build):
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    build(c)
    return c.data_to_send()


def fields(path, method="GET"):
    return [(":method", method), (":path", path), (":scheme", "https"), (":authority", "example.test"),
            ("user-agent", "seed"), ("accept", "*/*")]


def get(c):
    c.send_headers(1, fields("/"), end_stream=True)


def post(c):
    c.send_headers(1, fields("/upload", "POST") + [("content-length", "11")])
    c.send_data(1, b"hello world", end_stream=True)


def chunked_post(c):
    c.send_headers(1, fields("/upload", "POST"))
    c.send_data(1, b"part one ")
    c.send_data(1, b"part two", end_stream=True)


def many(c):
    for i in range(6):
        c.send_headers(1 + 2 * i, fields(f"/cached/{i}" if i % 2 else f"/limited/{i}"), end_stream=True)


def reset(c):
    c.send_headers(1, fields("/"), end_stream=True)
    c.reset_stream(1)
    c.send_headers(3, fields("/again"), end_stream=True)


def trailers(c):
    c.send_headers(1, fields("/upload", "POST") + [("te", "trailers")])
    c.send_data(1, b"body")
    c.send_headers(1, [("x-checksum", "abc")], end_stream=True)


def control(c):
    c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    c.ping(b"12345678")
    c.increment_flow_control_window(100000)
    c.send_headers(1, fields("/"), end_stream=True)


def main(folder):
    os.makedirs(folder, exist_ok=True)
    for name, build in [("get", get), ("post", post), ("chunked-post", chunked_post), ("many", many),
                        ("reset", reset), ("trailers", trailers), ("control", control)]:
        for step in (7, 127):  # read sizes 8 and 128
            with open(os.path.join(folder, f"{name}-{step + 1}"), "wb") as f:
                f.write(bytes([step]) + conversation(build))


if __name__ == "__main__":
    main(sys.argv[1])
