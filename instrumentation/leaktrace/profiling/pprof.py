"""A small pprof (profile.proto) encoder and decoder, written against the wire format.

Hand-rolled rather than generated so leaktrace needs no protoc step and no extra dependency;
the message is simple and stable (github.com/google/pprof/proto/profile.proto).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from .samples import Frame

# Field numbers in profile.proto.
_P_SAMPLE_TYPE, _P_SAMPLE, _P_LOCATION, _P_FUNCTION, _P_STRINGS = 1, 2, 4, 5, 6
_P_TIME, _P_DURATION, _P_PERIOD_TYPE, _P_PERIOD = 9, 10, 11, 12

MEMORY_SAMPLE_TYPES: tuple[tuple[str, str], ...] = (
    ("alloc_objects", "count"),
    ("alloc_space", "bytes"),
    ("inuse_objects", "count"),
    ("inuse_space", "bytes"),
)


# --- wire primitives --------------------------------------------------------------------------
_ONE_BYTE = tuple(bytes((i,)) for i in range(128))


def _varint(value: int) -> bytes:
    # Most varints in a profile are small ids and counts: skip the loop for them (the encoder
    # writes about 70 per heap sample, so this is its hot path).
    if 0 <= value < 128:
        return _ONE_BYTE[value]
    if 0 < value < 16384:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field_no: int, wire_type: int) -> bytes:
    return _varint((field_no << 3) | wire_type)


def _len_field(field_no: int, payload: bytes) -> bytes:
    return _key(field_no, 2) + _varint(len(payload)) + payload


def _int_field(field_no: int, value: int) -> bytes:
    return _key(field_no, 0) + _varint(value) if value else b""


def _packed(field_no: int, values: Iterable[int]) -> bytes:
    payload = b"".join(_varint(v) for v in values)
    return _len_field(field_no, payload) if payload else b""


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for one protobuf message."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field_no, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            yield field_no, wire, value
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated length-delimited field")
            yield field_no, wire, buf[pos : pos + length]
            pos += length
        elif wire == 1:
            yield field_no, wire, int.from_bytes(buf[pos : pos + 8], "little")
            pos += 8
        elif wire == 5:
            yield field_no, wire, int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _unpack_ints(wire: int, value: int | bytes) -> list[int]:
    if isinstance(value, int):  # one unpacked varint (or a fixed-width field)
        return [_signed(value)]
    out, pos = [], 0
    while pos < len(value):
        v, pos = _read_varint(value, pos)
        out.append(_signed(v))
    return out


def _message(value: int | bytes) -> bytes:
    """The payload of a field that must be length-delimited (a message, a string)."""
    if not isinstance(value, bytes):
        raise ValueError("a message or string field is not length-delimited")
    return value


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


# --- encoder ----------------------------------------------------------------------------------
@dataclass
class ProfileBuilder:
    """Accumulates samples and writes one pprof Profile message."""

    sample_types: Sequence[tuple[str, str]]
    period_type: tuple[str, str] = ("space", "bytes")
    period: int = 0
    time_nanos: int = 0
    duration_nanos: int = 0
    _strings: dict[str, int] = field(default_factory=lambda: {"": 0})
    _functions: dict[tuple[str, str], int] = field(default_factory=dict)
    _locations: dict[tuple[int, int], int] = field(default_factory=dict)
    _samples: list[bytes] = field(default_factory=list)
    # Packed location ids per stack, keyed by the identity of its frames tuple: the heap
    # sampler hands out one tuple per stack, and most samples share a stack (one per request
    # and span). The tuple is kept alongside so a recycled id() cannot alias.
    _stacks: dict[int, tuple[Sequence[Frame], bytes]] = field(default_factory=dict)

    def _s(self, text: str) -> int:
        idx = self._strings.get(text)
        if idx is None:
            idx = self._strings[text] = len(self._strings)
        return idx

    def _location(self, frame: Frame) -> int:
        fkey = (frame.function, frame.file)
        fid = self._functions.get(fkey)
        if fid is None:
            fid = self._functions[fkey] = len(self._functions) + 1
        lkey = (fid, frame.line)
        lid = self._locations.get(lkey)
        if lid is None:
            lid = self._locations[lkey] = len(self._locations) + 1
        return lid

    def add(
        self,
        frames: Sequence[Frame],
        values: Sequence[int],
        labels: Mapping[str, str] | None = None,
    ) -> None:
        if len(values) != len(self.sample_types):
            raise ValueError("one value per sample type")
        hit = self._stacks.get(id(frames))
        if hit is not None and hit[0] is frames:
            locs = hit[1]
        else:
            locs = _packed(1, [self._location(f) for f in frames])
            self._stacks[id(frames)] = (frames, locs)
        parts = [locs, _packed(2, values)]
        if labels:
            s = self._s
            for k, v in labels.items():
                # Label{key=1, str=2}: string ids are >= 1 here ("" is id 0 and never a key)
                msg = b"\x08" + _varint(s(k)) + b"\x10" + _varint(s(v))
                parts += (b"\x1a", _varint(len(msg)), msg)
        self._samples.append(b"".join(parts))

    def encode(self) -> bytes:
        out = bytearray()
        for typ, unit in self.sample_types:
            out += _len_field(
                _P_SAMPLE_TYPE, _int_field(1, self._s(typ)) + _int_field(2, self._s(unit))
            )
        for body in self._samples:
            out += _len_field(_P_SAMPLE, body)
        for (fid, line), lid in self._locations.items():
            line_msg = _int_field(1, fid) + _int_field(2, line)
            out += _len_field(_P_LOCATION, _int_field(1, lid) + _len_field(4, line_msg))
        for (name, filename), fid in self._functions.items():
            msg = _int_field(1, fid) + _int_field(2, self._s(name)) + _int_field(3, self._s(name))
            msg += _int_field(4, self._s(filename))
            out += _len_field(_P_FUNCTION, msg)
        period_type = _int_field(1, self._s(self.period_type[0])) + _int_field(
            2, self._s(self.period_type[1])
        )
        tail = _int_field(_P_TIME, self.time_nanos) + _int_field(_P_DURATION, self.duration_nanos)
        tail += _len_field(_P_PERIOD_TYPE, period_type) + _int_field(_P_PERIOD, self.period)
        # The string table goes last so every string used above is already interned.
        for text in self._strings:
            out += _len_field(_P_STRINGS, text.encode())
        return bytes(out + tail)

    def encode_gzip(self) -> bytes:
        # Level 1: trace and span ids (most of a heap profile's bytes) are random and do not
        # compress at any level; 6 cost 2.5x the CPU for 3 % fewer bytes.
        return gzip.compress(self.encode(), compresslevel=1)


# --- decoder ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DecodedSample:
    frames: tuple[Frame, ...]  # leaf first, as pprof stores them
    values: tuple[int, ...]
    labels: Mapping[str, str]


@dataclass(frozen=True)
class DecodedProfile:
    sample_types: tuple[tuple[str, str], ...]
    samples: tuple[DecodedSample, ...]
    period_type: tuple[str, str]
    period: int
    time_nanos: int
    duration_nanos: int

    def total(self, sample_type: str) -> int:
        idx = [t for t, _ in self.sample_types].index(sample_type)
        return sum(s.values[idx] for s in self.samples)

    def value(self, sample: DecodedSample, sample_type: str) -> int:
        return sample.values[[t for t, _ in self.sample_types].index(sample_type)]


def decode_profile(data: bytes) -> DecodedProfile:
    """Decode a pprof Profile, gzipped or not. Raises ValueError on malformed input."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:  # BadGzipFile is an OSError
            raise ValueError(f"not a gzip stream: {exc}") from None
    strings: list[str] = []
    raw_types: list[tuple[int, int]] = []
    raw_samples: list[tuple[list[int], list[int], list[tuple[int, int]]]] = []
    functions: dict[int, tuple[int, int]] = {}
    locations: dict[int, list[tuple[int, int]]] = {}
    period_type = (0, 0)
    period = time_nanos = duration_nanos = 0

    def pair(msg: bytes) -> tuple[int, int]:
        a = b = 0
        for f, _, v in iter_fields(msg):
            if f == 1:
                a = int(v)
            elif f == 2:
                b = int(v)
        return a, b

    for f, _wire, v in iter_fields(data):
        if f == _P_STRINGS:
            v = _message(v)
            strings.append(v.decode())
        elif f == _P_SAMPLE_TYPE:
            v = _message(v)
            raw_types.append(pair(v))
        elif f == _P_SAMPLE:
            v = _message(v)
            locs: list[int] = []
            vals: list[int] = []
            labels: list[tuple[int, int]] = []
            for sf, sw, sv in iter_fields(v):
                if sf == 1:
                    locs.extend(_unpack_ints(sw, sv))
                elif sf == 2:
                    vals.extend(_unpack_ints(sw, sv))
                elif sf == 3:
                    labels.append(pair(_message(sv)))
            raw_samples.append((locs, vals, labels))
        elif f == _P_LOCATION:
            v = _message(v)
            lid, lines = 0, []
            for lf, _, lv in iter_fields(v):
                if lf == 1:
                    lid = int(lv)
                elif lf == 4:
                    lines.append(pair(_message(lv)))
            locations[lid] = lines
        elif f == _P_FUNCTION:
            v = _message(v)
            fid = name = filename = 0
            for ff, _, fv in iter_fields(v):
                if ff == 1:
                    fid = int(fv)
                elif ff == 2:
                    name = int(fv)
                elif ff == 4:
                    filename = int(fv)
            functions[fid] = (name, filename)
        elif f == _P_PERIOD_TYPE:
            v = _message(v)
            period_type = pair(v)
        elif f == _P_PERIOD:
            period = _signed(int(v))
        elif f == _P_TIME:
            time_nanos = int(v)
        elif f == _P_DURATION:
            duration_nanos = int(v)

    def s(idx: int) -> str:
        if not 0 <= idx < len(strings):
            raise ValueError(f"string index {idx} out of range")
        return strings[idx]

    samples = []
    for locs, vals, labels in raw_samples:
        frames: list[Frame] = []
        for lid in locs:
            for fid, line in locations.get(lid, []):
                name, filename = functions.get(fid, (0, 0))
                frames.append(Frame(s(name), s(filename), line))
        samples.append(DecodedSample(tuple(frames), tuple(vals), {s(k): s(v) for k, v in labels}))
    return DecodedProfile(
        sample_types=tuple((s(a), s(b)) for a, b in raw_types),
        samples=tuple(samples),
        period_type=(s(period_type[0]), s(period_type[1])),
        period=period,
        time_nanos=time_nanos,
        duration_nanos=duration_nanos,
    )
