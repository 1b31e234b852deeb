#!/usr/bin/python3
"""Checks dltool's histogram and hparams records against PyTorch 1.13's own code.

torch.utils.tensorboard imports the `tensorboard` package, which Debian 12 does not ship. Its
summary.py needs only TensorBoard's protobuf *classes*, so this script loads torch's summary.py
with those classes replaced by a plain class that keeps its keyword arguments: torch's own
make_histogram() and hparams() then run unchanged, and what they build is compared field by
field with what read_tfevents.py (next to this file) decodes from dltool's event file.
Two things come from TensorBoard, not torch, and are restated here: SummaryWriter.default_bins
(built in SummaryWriter.__init__, which needs TensorBoard's file writer; same loop below) and
the hparams plugin's constants (tensorboard/plugins/hparams/metadata.py, api.proto enums).

Usage:
  tb_torch_oracle.py histogram EVENTS TAG VALUES f32|f64
      VALUES: the raw little-endian values dltool's add_histogram(TAG) was given.
  tb_torch_oracle.py hparams EVENTS SPEC
      SPEC: JSON {"hparams": [[name, value], ...], "metrics": [[tag, value], ...]} given to
      add_hparams_run; EVENTS: the run's event file (torch writes everything at step 0).
      One deliberate difference: torch 1.13 tests isinstance(v, int) before bool, so it writes
      True/False as number 1/0 with DATA_TYPE_FLOAT64; dltool writes bool_value with
      DATA_TYPE_BOOL like TensorBoard's own hparams API, and this check expects that.
Prints "ok" and exits 0 when they agree; prints the differences and exits 1 otherwise.
"""
import collections
import importlib
import json
import math
import os
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import read_tfevents  # noqa: E402


class Proto:
    """Any TensorBoard protobuf class: keeps its fields; "serializing" keeps the object."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def SerializeToString(self):
        return self


class SessionStartInfo(Proto):
    def __init__(self, **fields):
        self.hparams = collections.defaultdict(Proto)  # map<string, Value>, insertion order
        super().__init__(**fields)


class Enum:
    def __init__(self, **values):
        self._values = values

    def Value(self, name):
        return self._values[name]


def _stub_module(name, **attrs):
    """Registers module `name` (and its parents) in sys.modules with `attrs`."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        full = ".".join(parts[:i])
        if full not in sys.modules:
            sys.modules[full] = types.ModuleType(full)
            if i > 1:
                setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], sys.modules[full])
    for key, value in attrs.items():
        setattr(sys.modules[name], key, value)


def torch_summary():
    """torch.utils.tensorboard.summary, loaded with stubbed TensorBoard classes."""
    import torch

    summary_cls = type("Summary", (Proto,), {"Value": type("Value", (Proto,), {}),
                                             "Image": type("Image", (Proto,), {})})
    metadata_cls = type("SummaryMetadata", (Proto,),
                        {"PluginData": type("PluginData", (Proto,), {})})
    _stub_module("tensorboard.compat.proto.summary_pb2", HistogramProto=Proto,
                 Summary=summary_cls, SummaryMetadata=metadata_cls)
    _stub_module("tensorboard.compat.proto.tensor_pb2", TensorProto=Proto)
    _stub_module("tensorboard.compat.proto.tensor_shape_pb2", TensorShapeProto=Proto)
    _stub_module("tensorboard.plugins.custom_scalar.layout_pb2")
    _stub_module("tensorboard.plugins.pr_curve.plugin_data_pb2", PrCurvePluginData=Proto)
    _stub_module("tensorboard.plugins.text.plugin_data_pb2", TextPluginData=Proto)
    _stub_module("tensorboard.plugins.hparams.api_pb2", Experiment=Proto, HParamInfo=Proto,
                 MetricInfo=Proto, MetricName=Proto,
                 Status=Enum(STATUS_UNKNOWN=0, STATUS_SUCCESS=1, STATUS_FAILURE=2,
                             STATUS_RUNNING=3),
                 DataType=Enum(DATA_TYPE_UNSET=0, DATA_TYPE_STRING=1, DATA_TYPE_BOOL=2,
                               DATA_TYPE_FLOAT64=3))
    _stub_module("tensorboard.plugins.hparams.metadata", PLUGIN_NAME="hparams",
                 PLUGIN_DATA_VERSION=0, EXPERIMENT_TAG="_hparams_/experiment",
                 SESSION_START_INFO_TAG="_hparams_/session_start_info",
                 SESSION_END_INFO_TAG="_hparams_/session_end_info")
    _stub_module("tensorboard.plugins.hparams.plugin_data_pb2", HParamsPluginData=Proto,
                 SessionStartInfo=SessionStartInfo, SessionEndInfo=Proto)
    # The package's __init__ imports tensorboard's writer; load summary.py without it.
    package = types.ModuleType("torch.utils.tensorboard")
    package.__path__ = [os.path.join(os.path.dirname(torch.__file__), "utils", "tensorboard")]
    sys.modules["torch.utils.tensorboard"] = package
    summary = importlib.import_module("torch.utils.tensorboard.summary")
    summary.np = _NumpyWithOldGreater()
    return summary


class _NumpyWithOldGreater(types.ModuleType):
    """numpy for torch's summary.py. make_histogram calls np.greater(counts, 0, dtype=np.int32),
    which numpy >= 1.24 (Debian 12's) rejects ("No loop matching the specified signature"), so
    torch 1.13's add_histogram fails there; older numpy gave the 0/1 flags computed here."""

    def __init__(self):
        super().__init__("numpy")

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def greater(a, b, dtype=None):
        flags = np.greater(a, b)
        return flags if dtype is None else flags.astype(dtype)


def default_bins():
    """torch.utils.tensorboard.writer.SummaryWriter.__init__'s default_bins."""
    v = 1e-12
    buckets = []
    neg_buckets = []
    while v < 1e20:
        buckets.append(v)
        neg_buckets.append(-v)
        v *= 1.1
    return neg_buckets[::-1] + [0] + buckets


def decoded_values(events_path):
    """[(step, Summary.Value dict)] of every summary value in the file, CRCs checked."""
    with open(events_path, "rb") as f:
        data = f.read()
    out = []
    for payload in read_tfevents.records(data):
        ev = read_tfevents.parse_event(payload)
        for v in ev["values"]:
            out.append((ev["step"], v))
    return out


def same_float(a, b, rel=0.0):
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= rel * max(abs(a), abs(b))


def check_histogram(events, tag, values_path, dtype):
    values = np.fromfile(values_path, dtype={"f32": "<f4", "f64": "<f8"}[dtype])
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, overflowing squares
        want = torch_summary().histogram(tag, values, default_bins()).value[0].histo
    got = [v["histo"] for _, v in decoded_values(events) if v["tag"] == tag and "histo" in v]
    if len(got) != 1:
        return ["%d histogram records with tag %s" % (len(got), tag)]
    got = got[0]
    errors = []
    # Bucket edges and counts exact; min/max/num exact; sum and sum_squares are float64 sums in
    # a different order (numpy's pairwise sum, BLAS dot), so within 1e-12 relative.
    for name, rel in (("min", 0), ("max", 0), ("num", 0), ("sum", 1e-12), ("sum_squares", 1e-12)):
        if not same_float(got[name], getattr(want, name), rel):
            errors.append("%s: dltool %r, torch %r" % (name, got[name], float(getattr(want, name))))
    for name in ("bucket_limit", "bucket"):
        w = [float(x) for x in getattr(want, name)]
        if got[name] != w:
            first = next((i for i, (a, b) in enumerate(zip(got[name], w)) if a != b),
                         min(len(w), len(got[name])))
            errors.append("%s: %d entries vs torch's %d; first difference at %d: %r vs %r" % (
                name, len(got[name]), len(w), first, got[name][first:first + 3], w[first:first + 3]))
    return errors


def canonical_plugin_data(content):
    """torch's HParamsPluginData stub -> the dict read_tfevents.parse_hparams_plugin_data makes."""
    out = {"version": content.version}
    if hasattr(content, "experiment"):
        exp = content.experiment
        out["experiment"] = {
            "hparam_infos": [{"name": h.name, "type": h.type} for h in exp.hparam_infos],
            "metric_infos": [{"group": getattr(m.name, "group", ""), "tag": m.name.tag}
                             for m in exp.metric_infos]}
    if hasattr(content, "session_start_info"):
        rows = []
        for key, value in content.session_start_info.hparams.items():
            if hasattr(value, "number_value"):
                rows.append([key, "number", float(value.number_value)])
            elif hasattr(value, "string_value"):
                rows.append([key, "string", value.string_value])
            else:
                rows.append([key, "bool", bool(value.bool_value)])
        out["session_start_info"] = {"hparams": rows}
    if hasattr(content, "session_end_info"):
        out["session_end_info"] = {"status": content.session_end_info.status}
    return out


def check_hparams(events, spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    hparams = collections.OrderedDict((k, v) for k, v in spec["hparams"])
    metrics = collections.OrderedDict((k, v) for k, v in spec["metrics"])
    bools = {k for k, v in hparams.items() if isinstance(v, bool)}
    want = []  # (step, tag, plugin name, canonical content) in torch's write order
    for summary in torch_summary().hparams(hparams, metrics):
        value = summary.value[0]
        plugin = value.metadata.plugin_data
        content = canonical_plugin_data(plugin.content)
        # The documented difference (see the module docstring): bools as bools.
        for info in content.get("experiment", {}).get("hparam_infos", []):
            if info["name"] in bools:
                info["type"] = 2
        for row in content.get("session_start_info", {}).get("hparams", []):
            if row[0] in bools:
                row[1:] = ["bool", bool(hparams[row[0]])]
        want.append((0, value.tag, plugin.plugin_name, content))
    # SummaryWriter.add_hparams then writes add_scalar(k, v) per metric (float32, step 0).
    want += [(0, k, "scalar", float(np.float32(v))) for k, v in metrics.items()]

    got = []
    for step, v in decoded_values(events):
        if "plugin" in v:
            name, content = v["plugin"]
            got.append((step, v["tag"], name, read_tfevents.parse_hparams_plugin_data(content)))
        elif "simple" in v:
            got.append((step, v["tag"], "scalar", v["simple"]))
        else:
            got.append((step, v["tag"], "other", None))
    # session_start_info.hparams is a protobuf map: its entries have no defined order.
    for entry in got + want:
        if isinstance(entry[3], dict) and "session_start_info" in entry[3]:
            entry[3]["session_start_info"]["hparams"].sort()
    if got == want:
        return []
    return ["dltool: %s" % json.dumps(got), "torch:  %s" % json.dumps(want)]


def main(argv):
    if len(argv) == 6 and argv[1] == "histogram":
        errors = check_histogram(argv[2], argv[3], argv[4], argv[5])
    elif len(argv) == 4 and argv[1] == "hparams":
        errors = check_hparams(argv[2], argv[3])
    else:
        sys.stderr.write(__doc__)
        return 2
    if errors:
        sys.stdout.write("".join(e + "\n" for e in errors))
        return 1
    sys.stdout.write("ok\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
