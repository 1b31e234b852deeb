#!/usr/bin/python3
"""Independent reader for TensorBoard event files (pure standard library).

Cross-checks dltool's TensorBoardWriter without TensorFlow/TensorBoard: parses the TFRecord
framing, verifies both masked CRC32C checksums of every record, and decodes the Event /
Summary protobuf wire format by hand, using TensorBoard's field numbers:

  Event:      wall_time=1 (double), step=2 (int64), file_version=3 (string),
              summary=5 (Summary), session_log=7 (SessionLog)
  Summary:    value=1 (repeated Value)
  Value:      tag=1 (string), simple_value=2 (float), image=4 (Image), histo=5 (HistogramProto),
              metadata=9 (SummaryMetadata: plugin_data=1 {plugin_name=1, content=2})
  Image:      height=1, width=2, colorspace=3, encoded_image_string=4
  HistogramProto: min=1 max=2 num=3 sum=4 sum_squares=5 (double), bucket_limit=6 bucket=7
              (packed doubles)
  SessionLog: status=1 (enum; START=1)
  HParamsPluginData (plugin "hparams", tensorboard/plugins/hparams/plugin_data.proto, api.proto):
              version=1, experiment=2 {hparam_infos=4 {name=1, type=4}, metric_infos=5
              {name=1 {group=1, tag=2}}}, session_start_info=3 {hparams=1 (map<string,
              google.protobuf.Value {number_value=2, string_value=3, bool_value=4}>)},
              session_end_info=4 {status=1}

Usage: read_tfevents.py FILE
Prints one line per summary value or other record:
  file_version <wall_time> <version>
  scalar <step> <tag> <value as %.9g> <wall_time>
  histogram <step> <tag> <min> <max> <num> <sum> <sum_squares> <limits> <counts>
                                    (Python repr of each double; lists comma-separated)
  image <step> <tag> <height> <width> <colorspace> <PNG bytes>
  hparams <step> <tag> <HParamsPluginData as compact JSON>
  plugin <step> <tag> <plugin_name> <content bytes>     (other plugins' metadata-only values)
  session_start <step>
  event <step>                      (any other Event)
Exits 1 (with a message on stderr) on a CRC mismatch, truncation or malformed protobuf, or an
image whose PNG header disagrees with its height/width.
"""
import json
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


def string_field(num, wire, val):
    expect_wire(num, wire, 2)
    return val.decode("utf-8")


def varint_field(num, wire, val):
    expect_wire(num, wire, 0)
    return val


def double_field(num, wire, val):
    expect_wire(num, wire, 1)
    return struct.unpack("<d", val)[0]


def packed_doubles(num, wire, val):
    expect_wire(num, wire, 2)
    if len(val) % 8:
        raise Malformed("field %d: packed doubles of %d bytes" % (num, len(val)))
    return list(struct.unpack("<%dd" % (len(val) // 8), val))


def parse_histogram(buf):
    h = {"min": 0.0, "max": 0.0, "num": 0.0, "sum": 0.0, "sum_squares": 0.0,
         "bucket_limit": [], "bucket": []}
    names = {1: "min", 2: "max", 3: "num", 4: "sum", 5: "sum_squares"}
    for num, wire, val in fields(buf):
        if num in names:
            h[names[num]] = double_field(num, wire, val)
        elif num == 6:
            h["bucket_limit"] += packed_doubles(num, wire, val)
        elif num == 7:
            h["bucket"] += packed_doubles(num, wire, val)
    if len(h["bucket_limit"]) != len(h["bucket"]):
        raise Malformed("histogram: %d bucket limits, %d counts"
                        % (len(h["bucket_limit"]), len(h["bucket"])))
    return h


def parse_image(buf):
    img = {"height": 0, "width": 0, "colorspace": 0, "png": b""}
    names = {1: "height", 2: "width", 3: "colorspace"}
    for num, wire, val in fields(buf):
        if num in names:
            img[names[num]] = varint_field(num, wire, val)
        elif num == 4:
            expect_wire(num, wire, 2)
            img["png"] = val
    png = img["png"]
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise Malformed("image: not PNG data")
    if struct.unpack(">II", png[16:24]) != (img["width"], img["height"]):
        raise Malformed("image: PNG header size differs from width/height")
    return img


def parse_hparam_value(buf):
    """google.protobuf.Value -> [kind, value]."""
    for num, wire, val in fields(buf):
        if num == 2:
            return ["number", double_field(num, wire, val)]
        if num == 3:
            return ["string", string_field(num, wire, val)]
        if num == 4:
            return ["bool", bool(varint_field(num, wire, val))]
        return ["other", num]
    return ["unset", None]


def parse_hparams_plugin_data(buf):
    """HParamsPluginData -> dict (experiment / session_start_info / session_end_info)."""
    out = {"version": 0}
    for num, wire, val in fields(buf):
        if num == 1:
            out["version"] = varint_field(num, wire, val)
        elif num == 2:
            expect_wire(num, wire, 2)
            exp = {"hparam_infos": [], "metric_infos": []}
            for enum, ewire, eval_ in fields(val):
                if enum == 4:
                    expect_wire(enum, ewire, 2)
                    info = {"name": "", "type": 0}
                    for inum, iwire, ival in fields(eval_):
                        if inum == 1:
                            info["name"] = string_field(inum, iwire, ival)
                        elif inum == 4:
                            info["type"] = varint_field(inum, iwire, ival)
                        else:
                            info["field%d" % inum] = True
                    exp["hparam_infos"].append(info)
                elif enum == 5:
                    expect_wire(enum, ewire, 2)
                    name = {"group": "", "tag": ""}
                    for mnum, mwire, mval in fields(eval_):
                        if mnum == 1:
                            expect_wire(mnum, mwire, 2)
                            for nnum, nwire, nval in fields(mval):
                                name[{1: "group", 2: "tag"}.get(nnum, "field%d" % nnum)] = \
                                    string_field(nnum, nwire, nval)
                    exp["metric_infos"].append(name)
            out["experiment"] = exp
        elif num == 3:
            expect_wire(num, wire, 2)
            hparams = []
            for snum, swire, sval in fields(val):
                if snum == 1:  # map entry {key=1, value=2}
                    expect_wire(snum, swire, 2)
                    key, value = "", ["unset", None]
                    for knum, kwire, kval in fields(sval):
                        if knum == 1:
                            key = string_field(knum, kwire, kval)
                        elif knum == 2:
                            expect_wire(knum, kwire, 2)
                            value = parse_hparam_value(kval)
                    hparams.append([key] + value)
            out["session_start_info"] = {"hparams": hparams}
        elif num == 4:
            expect_wire(num, wire, 2)
            status = 0
            for enum, ewire, eval_ in fields(val):
                if enum == 1:
                    status = varint_field(enum, ewire, eval_)
            out["session_end_info"] = {"status": status}
    return out


def parse_value(buf):
    """Summary.Value -> dict with tag and one of simple / histo / image / plugin."""
    v = {"tag": None}
    for num, wire, val in fields(buf):
        if num == 1:
            v["tag"] = string_field(num, wire, val)
        elif num == 2:
            expect_wire(num, wire, 5)
            v["simple"] = struct.unpack("<f", val)[0]
        elif num == 4:
            expect_wire(num, wire, 2)
            v["image"] = parse_image(val)
        elif num == 5:
            expect_wire(num, wire, 2)
            v["histo"] = parse_histogram(val)
        elif num == 9:
            expect_wire(num, wire, 2)
            for mnum, mwire, mval in fields(val):
                if mnum == 1:
                    expect_wire(mnum, mwire, 2)
                    name, content = "", b""
                    for pnum, pwire, pval in fields(mval):
                        if pnum == 1:
                            name = string_field(pnum, pwire, pval)
                        elif pnum == 2:
                            expect_wire(pnum, pwire, 2)
                            content = pval
                    v["plugin"] = (name, content)
    return v


def describe_value(step, wall_time, v):
    tag = v["tag"]
    if tag is None:
        raise Malformed("summary value without tag")
    if "simple" in v:
        return "scalar %d %s %.9g %.3f" % (step, tag, v["simple"], wall_time)
    if "histo" in v:
        h = v["histo"]
        return "histogram %d %s %r %r %r %r %r %s %s" % (
            step, tag, h["min"], h["max"], h["num"], h["sum"], h["sum_squares"],
            ",".join(repr(x) for x in h["bucket_limit"]), ",".join(repr(x) for x in h["bucket"]))
    if "image" in v:
        i = v["image"]
        return "image %d %s %d %d %d %d" % (step, tag, i["height"], i["width"], i["colorspace"],
                                            len(i["png"]))
    if "plugin" in v:
        name, content = v["plugin"]
        if name == "hparams":
            return "hparams %d %s %s" % (step, tag, json.dumps(
                parse_hparams_plugin_data(content), separators=(",", ":")))
        return "plugin %d %s %s %d" % (step, tag, name, len(content))
    raise Malformed("summary value %s without simple_value, histo, image or plugin data" % tag)


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
                for v in ev["values"]:
                    out.append(describe_value(ev["step"], ev["wall_time"], v))
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
