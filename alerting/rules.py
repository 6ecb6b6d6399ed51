"""The alert rule file: pydantic models, durations, and a loader with readable errors.

A rule file is YAML:

    version: 1
    rules:
      - name: zone-surge
        kind: threshold
        window: 1h
        threshold: 10
        severity: high

Five rule kinds (`incident`, `threshold`, `escalation`, `quiet_broken`, `fatality_peak`) share a
`name`, a `severity`, an optional `match` block (which incidents the rule looks at)
and `group_by` (which labels an alert carries; `zone` always). See docs/alerting.md.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from schemas.codes import Category, Party, Severity, Verification
from schemas.incident import CIVILIANS

#: The rule set that ships with the project.
DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.yaml")

#: Labels a rule may group by. `zone` is always among them.
GROUP_LABELS: tuple[str, ...] = ("zone", "party", "category")

#: The `zone` label of an alert about the whole theatre (every zone together), e.g. a
#: `fatality_peak` rule with `scope: theatre`. No zone of the catalogue may be called so.
THEATRE = "theatre"

#: Default bound on the incidents one zone's alert state remembers (see docs/alerting.md).
DEFAULT_MAX_INCIDENTS_PER_ZONE = 2000

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_KINDS = ("incident", "threshold", "escalation", "quiet_broken", "fatality_peak")
_DAY = 86_400
#: The longest duration a rule may give: ten years (a 3-year lookback is the longest shipped);
#: beyond, times computed from it leave what a date can hold.
MAX_DURATION_SECONDS = 3650 * _DAY


#: Validation context key: the file loader (`parse_rules`) makes the checks across rules
#: itself (duplicate names, counts against max_incidents_per_zone), so that they run beside
#: the schema's errors and name the line and rule; `RuleSet` built otherwise makes them.
_LOADER_CHECKS = "loader_checks"


class RuleFileError(ValueError):
    """The rule file cannot be used; the message names the file, the rule and the field."""


@dataclass(frozen=True, slots=True)
class Duration:
    """A positive duration as written in the rule file (`30m`, `1h`, `24h`, `7d`)."""

    text: str
    seconds: int

    def __str__(self) -> str:
        return self.text

    @property
    def timedelta(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    @classmethod
    def parse(cls, value: object) -> Duration:
        if isinstance(value, Duration):
            return value
        if isinstance(value, bool) or not isinstance(value, str):
            raise ValueError(
                f"a duration must be a number with a unit (30m, 1h, 24h, 7d), not {value!r}"
            )
        m = _DURATION.match(value)
        if m is None:
            raise ValueError(
                f"invalid duration {value!r}; use a number and a unit: s, m, h, d or w "
                "(e.g. 30m, 1h, 24h, 7d)"
            )
        digits = m.group(1).lstrip("0") or "0"
        # (a huge number of digits: no int of it, it is too long anyway)
        if len(digits) > 12 or int(digits) * _UNIT_SECONDS[m.group(2)] > MAX_DURATION_SECONDS:
            raise ValueError(f"duration {value!r} is too long; at most 3650d (ten years)")
        seconds = int(digits) * _UNIT_SECONDS[m.group(2)]
        if seconds <= 0:
            raise ValueError(f"duration {value!r} must be positive")
        return cls(f"{int(m.group(1))}{m.group(2)}", seconds)


DurationField = Annotated[
    Duration,
    BeforeValidator(Duration.parse),
    PlainSerializer(str, return_type=str),
]

GroupLabel = Literal["zone", "party", "category"]

_STRICT = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
# (The counts and factors of the models below are `strict` fields: lax, YAML's `yes` or
# `true`, or "5", read as a count of 1 or 5 where a number belongs, and `.inf` as a factor.)


class Match(BaseModel):
    """Conditions an incident must meet for a rule to consider it. All given ones must hold;
    a list matches any of its values."""

    model_config = _STRICT

    category: list[Category] | None = None
    zone: list[Annotated[str, Field(min_length=1)]] | None = None
    #: The alleged perpetrator's party code.
    party: list[Party] | None = None
    #: The target: a party code or `civilians`.
    target: list[str] | None = None
    verification: list[Verification] | None = None
    min_severity: Severity | None = None
    min_killed: Annotated[int, Field(ge=0, strict=True)] = 0
    min_wounded: Annotated[int, Field(ge=0, strict=True)] = 0
    #: killed + wounded at least this many.
    min_casualties: Annotated[int, Field(ge=0, strict=True)] = 0
    #: Only incidents whose casualties are (true) or are not (false) civilians.
    civilian: bool | None = None

    @field_validator("category", "zone", "party", "target", "verification")
    @classmethod
    def _non_empty(cls, value: list[Any] | None) -> list[Any] | None:
        if value is not None and not value:
            raise ValueError("an empty list matches nothing; leave the condition out instead")
        return value

    @field_validator("target")
    @classmethod
    def _known_target(cls, value: list[str] | None) -> list[str] | None:
        allowed = [p.value for p in Party] + [CIVILIANS]
        for t in value or []:
            if t not in allowed:
                raise ValueError(f"unknown target {t!r}; use one of {', '.join(allowed)}")
        return value


class _RuleBase(BaseModel):
    model_config = _STRICT

    name: str
    description: str | None = None
    #: Set to false to keep a rule in the file without evaluating it.
    enabled: bool = True
    severity: Severity
    match: Match = Field(default_factory=Match)
    group_by: list[GroupLabel] = Field(default_factory=lambda: list[GroupLabel](["zone"]))

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"rule name {value!r} must be 1-63 lowercase letters, digits, '-' or '_'"
            )
        return value

    @field_validator("group_by")
    @classmethod
    def _zone_first(cls, value: list[GroupLabel]) -> list[GroupLabel]:
        if len(set(value)) != len(value):
            raise ValueError("group_by lists a label twice")
        # Labels always include the zone; keep a canonical order.
        present: set[str] = {*value, "zone"}
        order: tuple[GroupLabel, ...] = ("zone", "party", "category")
        return [label for label in order if label in present]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.group_by)


class IncidentRule(_RuleBase):
    """Fires on a single matching incident; resolves `hold` after the last matching one."""

    kind: Literal["incident"]
    hold: DurationField = Field(default_factory=lambda: Duration.parse("6h"))
    #: Late incidents that occurred longer ago than this do not fire (default: `hold`).
    max_age: DurationField | None = None
    #: When set, an incident with anyone killed raises the alert to this severity
    #: (the alert then carries a `severity` label, so each severity is its own alert).
    severity_when_killed: Severity | None = None

    @field_validator("severity_when_killed")
    @classmethod
    def _raises(cls, value: Severity | None, info: ValidationInfo) -> Severity | None:
        severity = info.data.get("severity")  # absent: its own error is reported
        if value is not None and isinstance(severity, Severity) and value.rank <= severity.rank:
            raise ValueError(
                f"must rank above the rule's severity {severity.value!r} (it raises the "
                f"severity of an alert when someone is killed; {value.value!r} would not)"
            )
        return value

    @property
    def max_age_seconds(self) -> int:
        return (self.max_age or self.hold).seconds


class ThresholdRule(_RuleBase):
    """Fires when the matching incidents in `window` reach `threshold` for one label group."""

    kind: Literal["threshold"]
    window: DurationField
    threshold: Annotated[int, Field(ge=1, strict=True)]
    #: Per-zone thresholds, zone code -> threshold.
    overrides: dict[str, Annotated[int, Field(ge=1, strict=True)]] = Field(default_factory=dict)

    def threshold_for(self, zone: str) -> int:
        return self.overrides.get(zone, self.threshold)


class EscalationRule(_RuleBase):
    """Fires when the count in `window` is at least `factor` times the mean count of the
    trailing `baseline` (split into windows of the same length) and at least `min_count`."""

    kind: Literal["escalation"]
    window: DurationField
    baseline: DurationField
    factor: Annotated[float, Field(gt=0, strict=True, allow_inf_nan=False)]
    min_count: Annotated[int, Field(ge=1, strict=True)]

    @model_validator(mode="after")
    def _whole_windows(self) -> EscalationRule:
        if self.baseline.seconds % self.window.seconds != 0:
            raise ValueError(
                f"baseline {self.baseline} must be a whole number of windows of {self.window}"
            )
        return self

    @property
    def baseline_windows(self) -> int:
        return self.baseline.seconds // self.window.seconds


class QuietBrokenRule(_RuleBase):
    """Fires on the first matching incident of a label group after `quiet` without one;
    resolves `hold` later."""

    kind: Literal["quiet_broken"]
    quiet: DurationField
    hold: DurationField = Field(default_factory=lambda: Duration.parse("6h"))
    #: Late incidents that occurred longer ago than this do not fire (default: `hold`).
    max_age: DurationField | None = None

    @property
    def max_age_seconds(self) -> int:
        return (self.max_age or self.hold).seconds


class FatalityPeakRule(_RuleBase):
    """Fires when a zone's fatalities over `window` reach the highest `window` sum of the
    trailing `lookback`, and at least `minimum`; not again within `cooldown` of the last
    firing (HDX Signals' test: `alerting/fatality.py`). Counts every incident's `killed`
    once, by UTC day of event time; needs the whole lookback observed. `scope: theatre`
    runs the same test over the sum of every zone (`alerting/theatre.py`); its alerts carry
    the zone label `theatre`."""

    kind: Literal["fatality_peak"]
    #: `zone`: one alert per zone; `theatre`: over all zones together.
    scope: Literal["zone", "theatre"] = "zone"
    window: DurationField = Field(default_factory=lambda: Duration.parse("30d"))
    lookback: DurationField
    minimum: Annotated[int, Field(ge=1, strict=True)]
    cooldown: DurationField = Field(default_factory=lambda: Duration.parse("180d"))

    @model_validator(mode="after")
    def _whole_days(self) -> FatalityPeakRule:
        for name in ("window", "lookback", "cooldown"):
            value: Duration = getattr(self, name)
            if value.seconds % _DAY:
                raise ValueError(f"{name} {value} must be a whole number of days (e.g. 30d)")
        if self.lookback.seconds < self.window.seconds:
            raise ValueError(f"lookback {self.lookback} must be at least the window {self.window}")
        if self.match != Match():
            raise ValueError("fatality_peak counts every incident's deaths; it takes no `match`")
        if self.group_by != ["zone"]:
            raise ValueError(
                "fatality_peak is per zone (or the theatre: scope: theatre); "
                "group_by can only be [zone]"
            )
        return self

    @property
    def window_days(self) -> int:
        return self.window.seconds // _DAY

    @property
    def lookback_days(self) -> int:
        return self.lookback.seconds // _DAY

    @property
    def cooldown_days(self) -> int:
        return self.cooldown.seconds // _DAY


AnyRule = IncidentRule | ThresholdRule | EscalationRule | QuietBrokenRule | FatalityPeakRule
Rule = Annotated[AnyRule, Field(discriminator="kind")]


class RuleSet(BaseModel):
    """A validated rule file."""

    model_config = _STRICT

    version: Literal[1] = 1
    #: Bound on the incidents one zone's state remembers; the oldest go first beyond it.
    max_incidents_per_zone: Annotated[int, Field(ge=100, strict=True)] = (
        DEFAULT_MAX_INCIDENTS_PER_ZONE
    )
    rules: list[Rule]

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, value: list[Any], info: ValidationInfo) -> list[Any]:
        if _LOADER_CHECKS in (info.context or {}):
            return value  # `parse_rules` checks it itself, with the line of each rule
        seen: set[str] = set()
        for rule in value:
            if rule.name in seen:
                raise ValueError(f"rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return value

    @model_validator(mode="after")
    def _counts_fit(self, info: ValidationInfo) -> RuleSet:
        if _LOADER_CHECKS in (info.context or {}):
            return self  # `parse_rules` checks it itself, with the line of each rule
        cap = self.max_incidents_per_zone
        for r in self.rules:
            counts: list[int] = []
            if isinstance(r, ThresholdRule):
                counts = [r.threshold, *r.overrides.values()]
            elif isinstance(r, EscalationRule):
                counts = [r.min_count]
            if counts and max(counts) > cap:
                raise ValueError(
                    f"rule {r.name!r} needs {max(counts)} incidents, more than "
                    f"max_incidents_per_zone ({cap}) lets a zone remember"
                )
        return self

    def rule(self, name: str) -> AnyRule | None:
        """The enabled rule called `name`, if any."""
        for r in self.rules:
            if r.name == name and r.enabled:
                return r
        return None

    @property
    def active_rules(self) -> list[AnyRule]:
        return [r for r in self.rules if r.enabled]

    @property
    def retention_seconds(self) -> int:
        """How far back (event time, before the state's clock) incidents can still matter.
        Fatality-peak rules keep their own, smaller ledger (`fatality_days`)."""
        longest = 0
        for r in self.active_rules:
            if isinstance(r, IncidentRule):
                longest = max(longest, r.max_age_seconds)
            elif isinstance(r, ThresholdRule):
                longest = max(longest, r.window.seconds)
            elif isinstance(r, EscalationRule):
                longest = max(longest, r.window.seconds + r.baseline.seconds)
            elif isinstance(r, QuietBrokenRule):
                longest = max(longest, r.quiet.seconds, r.max_age_seconds)
        return longest

    @property
    def fatality_rules(self) -> list[FatalityPeakRule]:
        return [r for r in self.active_rules if isinstance(r, FatalityPeakRule)]

    @property
    def zone_fatality_rules(self) -> list[FatalityPeakRule]:
        """fatality_peak rules evaluated per zone (by the zone's own state)."""
        return [r for r in self.fatality_rules if r.scope == "zone"]

    @property
    def theatre_fatality_rules(self) -> list[FatalityPeakRule]:
        """fatality_peak rules over the whole theatre (`alerting/theatre.py`)."""
        return [r for r in self.fatality_rules if r.scope == "theatre"]

    @property
    def fatality_days(self) -> int:
        """How many days of fatalities (before the clock's day) the rules can look at; 0:
        no fatality-peak rule, no ledger kept. Theatre rules count too: a zone's ledger is
        what the theatre's sums are made of."""
        return max((r.lookback_days + r.window_days for r in self.fatality_rules), default=0)


def load_rules(path: Path | None, *, known_zones: Collection[str] | None = None) -> RuleSet:
    """Read and validate a rule file (`None`: the shipped default rules).

    With `known_zones` (the zone catalogue's codes), a rule naming any other zone is an
    error too. Raises `RuleFileError` with a message naming the file, rule and field."""
    source = path if path is not None else DEFAULT_RULES_PATH
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuleFileError(f"rule file {source}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(f"rule file {source}: cannot read it: {exc}") from None
    return parse_rules(text, source=str(source), known_zones=known_zones)


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeys(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping: PyYAML keeps the last
    value and says nothing, so a second `rules:` section dropped every rule above it, and a
    repeated `threshold:` silently replaced the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                # `<<: *defaults`: the keys it brings are defaults the mapping's own keys
                # override, as YAML means them (the safe loader flattens them below); a key
                # given twice is one given twice among the mapping's own
                continue
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                again = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: PyYAML's own error names it below
                continue
            if again:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
        return super().construct_mapping(node, deep)


def parse_rules(
    text: str, *, source: str = "<rules>", known_zones: Collection[str] | None = None
) -> RuleSet:
    """Validate rule-file text; see `load_rules`."""
    try:
        data = yaml.load(text, Loader=_UniqueKeys)  # a safe loader
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleFileError(f"rule file {source}: not valid YAML{where}: {problem}") from None
    if data is None:
        raise RuleFileError(f"rule file {source}: the file is empty; it needs a `rules:` list")
    if not isinstance(data, dict):
        raise RuleFileError(
            f"rule file {source}: the top level must be a mapping with a `rules:` list, "
            f"not {type(data).__name__}"
        )
    # `x-...` keys at the top level are for the file's own use: anchors that rules merge
    # (`x-held: &held {hold: 6h}`, then `<<: *held` in a rule)
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    try:
        root = yaml.compose(text, Loader=_UniqueKeys)
    except yaml.YAMLError:  # it loaded: not expected
        root = None
    # Every error of the file in one pass: the schema's, and the checks across rules
    # (duplicate names, unknown zones, counts) on every rule they can be made on.
    errors: list[tuple[int | None, str]] = []
    ruleset: RuleSet | None = None
    try:
        ruleset = RuleSet.model_validate(data, context={_LOADER_CHECKS: True})
    except ValidationError as exc:
        errors += _describe(exc, data, root)
    errors += _cross_check(data, root, known_zones)
    if errors:
        # (stable: within a line, in the order found)
        errors.sort(key=lambda e: -1 if e[0] is None else e[0])
        lines = [f"{'' if line is None else f'line {line}: '}{msg}" for line, msg in errors]
        head = f"rule file {source}: {len(lines)} error{'s' if len(lines) != 1 else ''}"
        raise RuleFileError(head + "\n  " + "\n  ".join(lines))
    assert ruleset is not None
    return ruleset


_RULE_ADAPTER: TypeAdapter[AnyRule] = TypeAdapter(Rule)


def _where(raw: object, index: int) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return f"rule {name!r} (rules[{index}])" if name else f"rules[{index}]"


def _cross_check(
    data: dict[str, Any], root: yaml.Node | None, known_zones: Collection[str] | None
) -> list[tuple[int | None, str]]:
    """The checks across the rules of a file, made on every rule they can be made on,
    whatever errors the others have: a name used before, a zone the catalogue lacks (by
    the text of the rule), a count beyond `max_incidents_per_zone` (on the rules that are
    valid), a theatre rule beside a zone called `theatre`."""
    raw_rules = data.get("rules")
    if not isinstance(raw_rules, list):
        return []
    out: list[tuple[int | None, str]] = []
    first: dict[str, int] = {}
    for index, raw in enumerate(raw_rules):
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            before = first[name]
            at = _line_of(root, ["rules", before, "name"])
            out.append(
                (
                    _line_of(root, ["rules", index, "name"]),
                    f"{_where(raw, index)}: name: rule name {name!r} is used twice (first by "
                    f"rules[{before}]{'' if at is None else f', line {at}'})",
                )
            )
        else:
            first[name] = index
    if known_zones is not None:
        known = set(known_zones)
        for index, raw in enumerate(raw_rules):
            if not isinstance(raw, dict):
                continue
            named: list[tuple[list[str | int], object]] = []
            match = raw.get("match")
            zones = match.get("zone") if isinstance(match, dict) else None
            if isinstance(zones, list):
                named += [(["match", "zone", j], z) for j, z in enumerate(zones)]
            overrides = raw.get("overrides")
            if isinstance(overrides, dict):
                named += [(["overrides", z], z) for z in overrides]
            for path, zone in named:
                if isinstance(zone, str) and zone not in known:
                    field = "match.zone" if path[0] == "match" else "overrides"
                    out.append(
                        (
                            _line_of(root, ["rules", index, *path]),
                            f"{_where(raw, index)}: {field}: unknown zone {zone!r}; the "
                            f"zone catalogue has {', '.join(sorted(known))}",
                        )
                    )
    cap_given = data.get("max_incidents_per_zone", DEFAULT_MAX_INCIDENTS_PER_ZONE)
    cap = cap_given if isinstance(cap_given, int) and not isinstance(cap_given, bool) else None
    theatre = False
    for index, raw in enumerate(raw_rules):
        try:
            r = _RULE_ADAPTER.validate_python(raw)
        except ValidationError:
            continue  # its own errors are the schema's
        theatre = theatre or (
            isinstance(r, FatalityPeakRule) and r.enabled and r.scope == "theatre"
        )
        counts: list[int] = []
        if isinstance(r, ThresholdRule):
            counts = [r.threshold, *r.overrides.values()]
        elif isinstance(r, EscalationRule):
            counts = [r.min_count]
        if cap is not None and cap >= 100 and counts and max(counts) > cap:
            out.append(
                (
                    _line_of(root, ["rules", index]),
                    f"{_where(raw, index)}: it needs {max(counts)} incidents, "
                    f"more than max_incidents_per_zone ({cap}) lets a zone remember",
                )
            )
    if theatre and known_zones is not None and THEATRE in known_zones:
        out.append(
            (
                None,
                f"the zone catalogue has a zone called {THEATRE!r}, the label reserved for "
                "alerts over the whole theatre (scope: theatre)",
            )
        )
    return out


def _line_of(root: yaml.Node | None, path: list[str | int]) -> int | None:
    """The line (1-based) of the node at `path` in the file's node tree, or of the deepest
    node on the way there that the tree holds (a missing field: its rule's); None: none."""
    node, line = root, None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            node = next(
                (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part),
                None,
            )
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if 0 <= part < len(node.value) else None
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def _describe(
    exc: ValidationError, data: dict[str, Any], root: yaml.Node | None
) -> list[tuple[int | None, str]]:
    lines: list[tuple[int | None, str]] = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        line = None
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            # a discriminated union's kind in the location is no key of the file
            path = loc[:2] + [p for p in loc[2:3] if p not in _KINDS] + loc[3:]
            line = _line_of(root, path)
        where = ""
        raw_rules = data.get("rules")
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            index = loc[1]
            raw = raw_rules[index] if isinstance(raw_rules, list) else None
            name = raw.get("name") if isinstance(raw, dict) else None
            where = f"rule {name!r} (rules[{index}])" if name else f"rules[{index}]"
            loc = loc[2:]
            # A discriminated union puts the kind into the location; it says nothing here.
            if loc and loc[0] in _KINDS:
                loc = loc[1:]
        field = ".".join(str(part) for part in loc)
        message = err["msg"]
        if err["type"] == "union_tag_invalid":
            field = field or "kind"
            given = err.get("input", {}).get("kind") if isinstance(err.get("input"), dict) else None
            message = f"unknown rule kind {given!r}; use one of {', '.join(_KINDS)}"
        elif err["type"] == "union_tag_not_found":
            field = field or "kind"
            message = f"missing `kind`; use one of {', '.join(_KINDS)}"
        elif err["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; see docs/alerting.md)"
        elif err["type"] == "missing":
            message = "required field is missing"
        else:
            if message.startswith("Value error, "):
                message = message[len("Value error, ") :]
            given = err.get("input")
            if isinstance(given, str | int | float) and repr(given) not in message:
                message += f" (got {given!r})"
        parts = [p for p in (where, field) if p]
        lines.append((line, f"{': '.join(parts) or 'file'}: {message}"))
    return lines
