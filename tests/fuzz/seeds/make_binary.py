#!/usr/bin/env python3
"""Writes the binary seeds of the fuzz targets: a journal segment and an Avro event message.

Run from the repository root: python3 tests/fuzz/seeds/make_binary.py (needs PyPI fastavro).
The text seeds beside it are written by hand.
"""

import io
import json
import pathlib
import struct
import zlib

import fastavro

SEEDS = pathlib.Path(__file__).resolve().parent
SCHEMAS = SEEDS.parent.parent.parent / "schemas" / "avro"


def frame(fields):
    """One journal frame: length u32 LE, CRC32 of the payload u32 LE, payload of name/length/bytes fields."""
    payload = b"".join(name.encode() + struct.pack("<I", len(value)) + value for name, value in fields)
    return struct.pack("<I", len(payload)) + struct.pack("<I", zlib.crc32(payload)) + payload


def journal():
    hec_meta = json.dumps({"token": "default", "channel": "c-1", "host": "web01"}).encode()
    frames = [
        frame([("v", b"1"), ("k", b"syslog"), ("s", b"syslog"), ("t", b"1733468400.123456789"),
               ("b", b"<34>1 2026-12-06T07:00:00Z web01 sshd 1 - - Failed password"), ("p", b"127.0.0.1:40000")]),
        frame([("v", b"1"), ("k", b"hec"), ("s", b"hec"), ("t", b"1733468400.000000001"),
               ("b", b'{"event":"x","host":"h"}'), ("m", b"hec_event"), ("i", b"0"), ("h", hec_meta)]),
        frame([("v", b"1"), ("k", b"wazuh"), ("s", b"wazuh"), ("t", b"1733468401.5"),
               ("b", b'{"rule":{"id":"1"}}'), ("p", b"/var/ossec/logs/alerts/alerts.json"),
               ("m", b"file"), ("i", b"1024"), ("f", b"2049:131")]),
    ]
    # The last frame torn in half, as a crash mid-write leaves it.
    (SEEDS / "journal" / "three-records-and-a-torn-tail").write_bytes(b"".join(frames) + frames[0][:11])


def avro(schema_file, record, name):
    schema = fastavro.parse_schema(json.loads((SCHEMAS / schema_file).read_text()))
    out = io.BytesIO()
    out.write(b"\x00" + struct.pack(">I", 1))  # Confluent wire format: magic byte, schema id
    fastavro.schemaless_writer(out, schema, record)
    (SEEDS / "avro" / name).write_bytes(out.getvalue())


def main():
    (SEEDS / "journal").mkdir(exist_ok=True)
    (SEEDS / "avro").mkdir(exist_ok=True)
    journal()
    event = {
        "id": bytes(range(16)), "time": 1733468400123456, "received": 1733468400200000,
        "source": {"kind": "syslog", "name": "syslog", "peer": "127.0.0.1:40000"},
        "host": "web01", "severity": 4, "category": "authentication", "message": "Failed password",
        "fields": {"user": "root", "port": 22, "ratio": 0.5, "ok": False, "tags": ["a", "b"], "none": None},
        "raw": "<34>1 ...",
    }
    avro("event.avsc", event, "event")


if __name__ == "__main__":
    main()
