#!/usr/bin/python3
"""Independent reader for TensorBoard event files (pure standard library).

Cross-checks dltool's TensorBoardWriter without TensorFlow/TensorBoard: parses the TFRecord
framing, verifies both masked CRC32C checksums of every record, and decodes the Event /
Summary protobuf wire format by hand, using TensorBoard's field numbers:

  Event:      wall_time=1 (double), step=2 (int64), file_version=3 (string),
              summary=5 (Summary), session_log=7 (SessionLog)
  Summary:    value=1 (repeated Value)
  Value:      tag=1 (string), simple_value=2 (float)
  SessionLog: status=1 (enum; START=1)

Usage: read_tfevents.py FILE
Prints one line per record:
  file_version <wall_time> <version>
  scalar <step> <tag> <value as %.9g> <wall_time>
  session_start <step>
  event <step>                      (any other Event)
Exits 1 (with a message on stderr) on a CRC mismatch, truncation or malformed protobuf.
"""
import struct
import sys


def _make_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _make_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class Malformed(Exception):
    pass


def read_varint(buf, pos):
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise Malformed("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise Malformed("varint too long")


def fields(buf):
    """Yields (field_number, wire_type, value) of one message; value is int or bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        num, wire = key >> 3, key & 7
        if num == 0:
            raise Malformed("field number 0")
        if wire == 0:
            val, pos = read_varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise Malformed("truncated fixed64")
            val = buf[pos:pos + 8]
            pos += 8
        elif wire == 2:
            n, pos = read_varint(buf, pos)
            if pos + n > len(buf):
                raise Malformed("truncated length-delimited field")
            val = buf[pos:pos + n]
            pos += n
        elif wire == 5:
            if pos + 4 > len(buf):
                raise Malformed("truncated fixed32")
            val = buf[pos:pos + 4]
            pos += 4
        else:
            raise Malformed("unsupported wire type %d" % wire)
        yield num, wire, val


def expect_wire(num, wire, want):
    if wire != want:
        raise Malformed("field %d: wire type %d, expected %d" % (num, wire, want))


def parse_value(buf):
    tag, simple = None, None
    for num, wire, val in fields(buf):
        if num == 1:
            expect_wire(num, wire, 2)
            tag = val.decode("utf-8")
        elif num == 2:
            expect_wire(num, wire, 5)
            simple = struct.unpack("<f", val)[0]
    return tag, simple


def parse_event(buf):
    ev = {"wall_time": 0.0, "step": 0, "values": []}
    for num, wire, val in fields(buf):
        if num == 1:
            expect_wire(num, wire, 1)
            ev["wall_time"] = struct.unpack("<d", val)[0]
        elif num == 2:
            expect_wire(num, wire, 0)
            ev["step"] = val - (1 << 64) if val >= 1 << 63 else val
        elif num == 3:
            expect_wire(num, wire, 2)
            ev["file_version"] = val.decode("utf-8")
        elif num == 5:
            expect_wire(num, wire, 2)
            ev["has_summary"] = True
            for snum, swire, sval in fields(val):
                if snum == 1:
                    expect_wire(snum, swire, 2)
                    ev["values"].append(parse_value(sval))
        elif num == 7:
            expect_wire(num, wire, 2)
            status = 0
            for lnum, lwire, lval in fields(val):
                if lnum == 1:
                    expect_wire(lnum, lwire, 0)
                    status = lval
            ev["session_status"] = status
    return ev


def records(data):
    pos = 0
    index = 0
    while pos < len(data):
        if pos + 12 > len(data):
            raise Malformed("record %d: truncated header" % index)
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (len_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if len_crc != masked_crc32c(header):
            raise Malformed("record %d: length CRC mismatch" % index)
        start = pos + 12
        end = start + length
        if end + 4 > len(data):
            raise Malformed("record %d: truncated data" % index)
        payload = data[start:end]
        (data_crc,) = struct.unpack("<I", data[end:end + 4])
        if data_crc != masked_crc32c(payload):
            raise Malformed("record %d: data CRC mismatch" % index)
        yield payload
        pos = end + 4
        index += 1


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: read_tfevents.py FILE\n")
        return 2
    with open(argv[1], "rb") as f:
        data = f.read()
    out = []
    try:
        for payload in records(data):
            ev = parse_event(payload)
            if "file_version" in ev:
                out.append("file_version %.3f %s" % (ev["wall_time"], ev["file_version"]))
            elif ev.get("has_summary"):
                for tag, simple in ev["values"]:
                    if tag is None or simple is None:
                        raise Malformed("summary value without tag or simple_value")
                    out.append("scalar %d %s %.9g %.3f" % (ev["step"], tag, simple, ev["wall_time"]))
            elif ev.get("session_status") == 1:
                out.append("session_start %d" % ev["step"])
            else:
                out.append("event %d" % ev["step"])
    except (Malformed, UnicodeDecodeError) as e:
        sys.stderr.write("read_tfevents.py: %s: %s\n" % (argv[1], e))
        return 1
    sys.stdout.write("".join(line + "\n" for line in out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
