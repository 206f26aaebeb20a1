"""Properties of the pprof codec and of the `k=v,...` parser (hypothesis)."""

from __future__ import annotations

import gzip
import urllib.parse

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from leaktrace.envparse import parse_key_values
from leaktrace.profiling.pprof import MEMORY_SAMPLE_TYPES, ProfileBuilder, decode_profile
from leaktrace.profiling.samples import Frame

# --- pprof ------------------------------------------------------------------------------------

texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
frames = st.builds(Frame, texts, texts, st.integers(0, 2**31))
stacks = st.lists(frames, max_size=5).map(tuple)
int64 = st.integers(-(2**63), 2**63 - 1)
samples = st.tuples(
    stacks,
    st.lists(int64, min_size=len(MEMORY_SAMPLE_TYPES), max_size=len(MEMORY_SAMPLE_TYPES)),
    st.dictionaries(texts, texts, max_size=3),
)


@given(
    st.lists(samples, max_size=8),
    st.integers(0, 2**62),
    st.integers(0, 2**62),
    int64,
    st.sampled_from([("space", "bytes"), ("objects", "count"), ("", "")]),
    st.booleans(),
)
def test_a_profile_decodes_to_what_was_encoded(
    added: list[tuple[tuple[Frame, ...], list[int], dict[str, str]]],
    time_nanos: int,
    duration_nanos: int,
    period: int,
    period_type: tuple[str, str],
    gzipped: bool,
) -> None:
    builder = ProfileBuilder(
        MEMORY_SAMPLE_TYPES, period_type=period_type, period=period, time_nanos=time_nanos,
        duration_nanos=duration_nanos,
    )  # fmt: skip
    for stack, values, labels in added:
        builder.add(stack, values, labels)
    # The same stack object added twice takes the encoder's shared-stack path.
    if added:
        builder.add(added[0][0], added[0][1], added[0][2])
        added = [*added, added[0]]
    data = builder.encode_gzip() if gzipped else builder.encode()
    profile = decode_profile(data)
    assert profile.sample_types == MEMORY_SAMPLE_TYPES
    assert [(s.frames, list(s.values), dict(s.labels)) for s in profile.samples] == added
    assert (profile.period_type, profile.period) == (period_type, period)
    assert (profile.time_nanos, profile.duration_nanos) == (time_nanos, duration_nanos)
    for i, (sample_type, _) in enumerate(MEMORY_SAMPLE_TYPES):
        assert profile.total(sample_type) == sum(values[i] for _, values, _ in added)


@given(st.binary(max_size=200))
@example(b"\x08\x01")  # sample_type (a message) sent as a varint
@example(b"\x32\x02\xff\xfe")  # a string that is not UTF-8
@example(b"\x1f\x8b\x08\x00")  # a truncated gzip stream
@example(gzip.compress(b"\x12\x05\x0a\x03\x01\x02"))  # a sample naming a location that is absent
def test_any_bytes_decode_or_raise_value_error(data: bytes) -> None:
    try:
        decode_profile(data)
    except ValueError:
        pass


# --- k=v,... (OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_*HEADERS) -------------------------

keys = st.text(st.characters(blacklist_characters=",=%", blacklist_categories=("Cs",)), min_size=1)
keys = keys.filter(lambda k: k.strip() == k)
values = st.text(st.characters(blacklist_categories=("Cs",)))


@given(st.dictionaries(keys, values, max_size=6))
def test_percent_encoded_pairs_parse_back_to_the_same_mapping(pairs: dict[str, str]) -> None:
    raw = ",".join(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in pairs.items())
    assert parse_key_values(raw) == pairs


@given(
    st.dictionaries(keys, values, max_size=6),
    st.lists(st.sampled_from([" ", "\t", ""]), min_size=4),
)
def test_blanks_around_entries_and_empty_entries_change_nothing(
    pairs: dict[str, str], pads: list[str]
) -> None:
    plain = ",".join(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in pairs.items())
    padded = (
        f",{pads[0]},"
        + ",".join(
            f"{pads[1]}{k}{pads[2]}={pads[3]}{urllib.parse.quote(v, safe='')}{pads[1]}"
            for k, v in pairs.items()
        )
        + ","
    )
    assert parse_key_values(padded) == parse_key_values(plain) == pairs


@given(st.lists(st.tuples(keys, values), min_size=1, max_size=6))
def test_a_repeated_key_keeps_its_last_value(items: list[tuple[str, str]]) -> None:
    raw = ",".join(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in items)
    assert parse_key_values(raw) == dict(items)


@given(st.text(max_size=60))
@example("a")
@example("=v")
@example("a=1,,b")
def test_any_text_parses_or_raises_value_error_naming_the_entry(raw: str) -> None:
    try:
        parsed = parse_key_values(raw)
    except ValueError as exc:
        assert "entry" in str(exc)
        return
    assert all(key and key == key.strip() for key in parsed)
    with pytest.raises(ValueError):
        parse_key_values(raw + ",no-equals-sign")
