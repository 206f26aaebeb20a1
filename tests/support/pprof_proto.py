"""An independent pprof decoder for tests: Google's protobuf runtime with profile.proto's schema.

leaktrace encodes pprof by hand (`leaktrace.profiling.pprof`), and its own decoder would share
any misreading of the format. Here the messages of github.com/google/pprof/proto/profile.proto
(package perftools.profiles; field numbers and types as published there) are declared as a
descriptor and parsed by the `protobuf` package, and `check_valid` applies the checks
`go tool pprof` makes when it reads a profile (profile.go: postDecode and CheckValid): the string
table starts with "", every string index is in range, every sample has one value per sample
type, location and function ids are non-zero, unique and resolvable. Unknown fields (a wrong
field number or wire type) are an error, not silently skipped.
"""

from __future__ import annotations

import gzip
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.unknown_fields import UnknownFieldSet

_T = descriptor_pb2.FieldDescriptorProto
_INT64, _UINT64, _STRING, _BOOL, _MSG = (
    _T.TYPE_INT64,
    _T.TYPE_UINT64,
    _T.TYPE_STRING,
    _T.TYPE_BOOL,
    _T.TYPE_MESSAGE,
)
_ONE, _MANY = _T.LABEL_OPTIONAL, _T.LABEL_REPEATED

# (message, [(field name, number, type, label, message type name)])
_SCHEMA: list[tuple[str, list[tuple[str, int, int, int, str]]]] = [
    ("Profile", [
        ("sample_type", 1, _MSG, _MANY, "ValueType"),
        ("sample", 2, _MSG, _MANY, "Sample"),
        ("mapping", 3, _MSG, _MANY, "Mapping"),
        ("location", 4, _MSG, _MANY, "Location"),
        ("function", 5, _MSG, _MANY, "Function"),
        ("string_table", 6, _STRING, _MANY, ""),
        ("drop_frames", 7, _INT64, _ONE, ""),
        ("keep_frames", 8, _INT64, _ONE, ""),
        ("time_nanos", 9, _INT64, _ONE, ""),
        ("duration_nanos", 10, _INT64, _ONE, ""),
        ("period_type", 11, _MSG, _ONE, "ValueType"),
        ("period", 12, _INT64, _ONE, ""),
        ("comment", 13, _INT64, _MANY, ""),
        ("default_sample_type", 14, _INT64, _ONE, ""),
        ("doc_url", 15, _INT64, _ONE, ""),
    ]),
    ("ValueType", [("type", 1, _INT64, _ONE, ""), ("unit", 2, _INT64, _ONE, "")]),
    ("Sample", [
        ("location_id", 1, _UINT64, _MANY, ""),
        ("value", 2, _INT64, _MANY, ""),
        ("label", 3, _MSG, _MANY, "Label"),
    ]),
    ("Label", [
        ("key", 1, _INT64, _ONE, ""), ("str", 2, _INT64, _ONE, ""),
        ("num", 3, _INT64, _ONE, ""), ("num_unit", 4, _INT64, _ONE, ""),
    ]),
    ("Mapping", [
        ("id", 1, _UINT64, _ONE, ""), ("memory_start", 2, _UINT64, _ONE, ""),
        ("memory_limit", 3, _UINT64, _ONE, ""), ("file_offset", 4, _UINT64, _ONE, ""),
        ("filename", 5, _INT64, _ONE, ""), ("build_id", 6, _INT64, _ONE, ""),
        ("has_functions", 7, _BOOL, _ONE, ""), ("has_filenames", 8, _BOOL, _ONE, ""),
        ("has_line_numbers", 9, _BOOL, _ONE, ""), ("has_inline_frames", 10, _BOOL, _ONE, ""),
    ]),
    ("Location", [
        ("id", 1, _UINT64, _ONE, ""), ("mapping_id", 2, _UINT64, _ONE, ""),
        ("address", 3, _UINT64, _ONE, ""), ("line", 4, _MSG, _MANY, "Line"),
        ("is_folded", 5, _BOOL, _ONE, ""),
    ]),
    ("Line", [("function_id", 1, _UINT64, _ONE, ""), ("line", 2, _INT64, _ONE, ""), ("column", 3, _INT64, _ONE, "")]),
    ("Function", [
        ("id", 1, _UINT64, _ONE, ""), ("name", 2, _INT64, _ONE, ""), ("system_name", 3, _INT64, _ONE, ""),
        ("filename", 4, _INT64, _ONE, ""), ("start_line", 5, _INT64, _ONE, ""),
    ]),
]  # fmt: skip


def _profile_class() -> Any:
    fd = descriptor_pb2.FileDescriptorProto(
        name="leaktrace_test/profile.proto", package="perftools.profiles", syntax="proto3"
    )
    for name, fields in _SCHEMA:
        msg = fd.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".perftools.profiles.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("perftools.profiles.Profile"))


Profile = _profile_class()


class InvalidProfile(ValueError):
    pass


def parse(data: bytes) -> Any:
    """A perftools.profiles.Profile message (gunzipped if needed); InvalidProfile when it is not one."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    msg = Profile()
    try:
        msg.ParseFromString(data)
    except Exception as exc:
        raise InvalidProfile(f"not a protobuf Profile: {exc}") from exc
    _no_unknown_fields(msg, "Profile")
    check_valid(msg)
    return msg


def _no_unknown_fields(msg: Any, path: str) -> None:
    unknown = UnknownFieldSet(msg)
    if len(unknown):
        numbers = sorted({f.field_number for f in unknown})
        raise InvalidProfile(
            f"{path}: fields {numbers} are not in profile.proto (or have the wrong wire type)"
        )
    for fd, value in msg.ListFields():
        if fd.type == _MSG:
            items = value if fd.is_repeated else [value]
            for i, item in enumerate(items):
                _no_unknown_fields(item, f"{path}.{fd.name}[{i}]")


def check_valid(p: Any) -> None:
    strings = list(p.string_table)
    if not strings or strings[0] != "":
        raise InvalidProfile("string_table[0] must be ''")

    def s(idx: int, what: str) -> str:
        if not 0 <= idx < len(strings):
            raise InvalidProfile(f"{what}: string index {idx} out of range")
        return strings[idx]

    for vt in [*p.sample_type, p.period_type]:
        s(vt.type, "value type"), s(vt.unit, "value unit")
    for idx in (p.drop_frames, p.keep_frames, p.default_sample_type, p.doc_url, *p.comment):
        s(idx, "profile")
    functions = {}
    for f in p.function:
        if f.id == 0 or f.id in functions:
            raise InvalidProfile(f"function id {f.id} is reserved or repeated")
        (
            s(f.name, "function name"),
            s(f.system_name, "function system name"),
            s(f.filename, "function file"),
        )
        functions[f.id] = f
    mappings = {m.id for m in p.mapping}
    if 0 in mappings or len(mappings) != len(p.mapping):
        raise InvalidProfile("mapping ids must be non-zero and unique")
    locations = {}
    for loc in p.location:
        if loc.id == 0 or loc.id in locations:
            raise InvalidProfile(f"location id {loc.id} is reserved or repeated")
        if loc.mapping_id and loc.mapping_id not in mappings:
            raise InvalidProfile(f"location {loc.id} names missing mapping {loc.mapping_id}")
        for line in loc.line:
            if line.function_id not in functions:
                raise InvalidProfile(f"location {loc.id} names missing function {line.function_id}")
        locations[loc.id] = loc
    if p.sample and not p.sample_type:
        raise InvalidProfile("missing sample type information")
    for i, sample in enumerate(p.sample):
        if len(sample.value) != len(p.sample_type):
            raise InvalidProfile(
                f"sample {i} has {len(sample.value)} values for {len(p.sample_type)} types"
            )
        for lid in sample.location_id:
            if lid not in locations:
                raise InvalidProfile(f"sample {i} names missing location {lid}")
        for label in sample.label:
            s(label.key, "label key"), s(label.str, "label value"), s(label.num_unit, "label unit")


def stacks(p: Any) -> list[tuple[list[tuple[str, str, int]], list[int], dict[str, str]]]:
    """(frames leaf first as (function, file, line), values, labels) per sample, resolved as pprof does."""
    strings = list(p.string_table)
    functions = {f.id: f for f in p.function}
    locations = {loc.id: loc for loc in p.location}
    out = []
    for sample in p.sample:
        frames = []
        for lid in sample.location_id:
            for line in locations[lid].line:
                fn = functions[line.function_id]
                frames.append((strings[fn.name], strings[fn.filename], int(line.line)))
        labels = {strings[lb.key]: strings[lb.str] for lb in sample.label}
        out.append((frames, list(sample.value), labels))
    return out


def sample_types(p: Any) -> list[tuple[str, str]]:
    strings = list(p.string_table)
    return [(strings[vt.type], strings[vt.unit]) for vt in p.sample_type]
