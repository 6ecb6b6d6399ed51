"""The exported JSON Schema's patterns read in ECMA 262 (JSON Schema's regex dialect, what
JavaScript clients run) as the validator reads the values: with the `u` flag and without it,
where a character above U+FFFF is two UTF-16 code units (a class range of such characters,
`[X-Y]`, is a syntax error there). Run in Node.js when it is installed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import unicodedata

import pytest

from schemas.report import INVISIBLE_RANGES, nfkc_stable, report_json_schema
from schemas.validation import Rejection
from tests.test_validation import report, validated

pytestmark = pytest.mark.timeout(120)

NODE = shutil.which("node")

_JS = """
const d = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = {};
for (const flags of ['', 'u']) {
  const re = new RegExp(d.pattern, flags);
  out[flags || 'none'] = d.values.map((v) => re.test(v));
}
process.stdout.write(JSON.stringify(out));
"""


def _ecma(pattern: str, values: list[str]) -> dict[str, list[bool]]:
    assert NODE is not None
    done = subprocess.run(
        [NODE, "-e", _JS],
        input=json.dumps({"pattern": pattern, "values": values}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, list[bool]] = json.loads(done.stdout)
    return result


def _identities() -> list[str]:
    codes = {c for a, b in INVISIBLE_RANGES for c in range(a - 1, b + 2)}
    codes |= {c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Cf"}
    codes |= set(range(0x20, 0x3000, 3)) | {0x1F600, 0x10000, 0x10FFFD, 0xE0000, 0xE0080}
    codes -= set(range(0xD800, 0xE000))
    values = [f"op{chr(c)}-1" for c in sorted(codes)]
    return [*values, "op-1", " ", "\u3000", "a\n", "\U0001f600", "r1\U000e0031", "\u2800"]


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_the_identity_pattern_reads_alike_in_ecma_262_with_and_without_u() -> None:
    pattern = report_json_schema()["$defs"]["Report"]["properties"]["report_id"]["pattern"]
    # NFC and NFKC: no regex says them
    values = [v for v in _identities() if nfkc_stable(v)]
    valid = [not isinstance(validated(report(report_id=v)), Rejection) for v in values]
    assert any(valid) and not all(valid)
    for flags, matched in _ecma(pattern, values).items():
        wrong = [ascii(v) for v, m, ok in zip(values, matched, valid, strict=True) if m != ok]
        assert not wrong, (flags, wrong[:10])


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
@pytest.mark.parametrize(
    ("shape", "field"),
    [("Report", "perpetrator"), ("Report", "description"), ("Location", "place")],
)
def test_the_free_text_patterns_read_alike_in_ecma_262(shape: str, field: str) -> None:
    prop = report_json_schema()["$defs"][shape]["properties"][field]
    pattern = next(p["pattern"] for p in prop["anyOf"] if "pattern" in p)
    values = [*_identities(), "a\tb\nc\r\n", "\u200f\u05e9\u200e", "\x85", "\x9f", "\xa0"]

    def doc(value: str) -> dict[str, object]:
        return report(location={"place": value}) if field == "place" else report(**{field: value})

    valid = [not isinstance(validated(doc(v)), Rejection) for v in values]
    assert any(valid) and not all(valid)
    for flags, matched in _ecma(pattern, values).items():
        wrong = [ascii(v) for v, m, ok in zip(values, matched, valid, strict=True) if m != ok]
        assert not wrong, (flags, wrong[:10])


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_the_time_pattern_reads_alike_in_ecma_262() -> None:
    pattern = report_json_schema()["$defs"]["Report"]["properties"]["occurred_at"]["pattern"]
    values = [
        f"2021-05-11T10:00:00{sign}{h:02d}:{m:02d}"
        for sign in "+-"
        for h in range(24)
        for m in (0, 30, 45, 59)
    ]
    valid = [not isinstance(validated(report(occurred_at=v)), Rejection) for v in values]
    for flags, matched in _ecma(pattern, values).items():
        wrong = [v for v, m, ok in zip(values, matched, valid, strict=True) if m != ok]
        assert not wrong, (flags, wrong[:10])
