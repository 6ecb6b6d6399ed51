# ruff: noqa: RUF001 (Cyrillic and Armenian texts are meant)
"""The time of day a report's text states (streams/classify/time_of_day.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.classify.time_of_day import (
    AFTERNOON,
    EVENING,
    LATE_EVENING,
    MAX_CLOCK_SPAN,
    MORNING,
    NIGHT,
    NOON,
    clock_span,
    format_time_of_day,
    parse_time_of_day,
    stated_time_of_day,
)


@pytest.mark.parametrize(
    ("text", "span"),
    [
        # as ministries, agencies and ACLED's notes put it
        ("At around 12:30 p.m. local time on Saturday Azerbaijani forces fired", (750, 750)),
        ("On April 1, from 22:00 to 22:20, the units opened fire intermittently", (1320, 1340)),
        ("opened fire on Armenian positions at around 02:30 this morning", (150, 150)),
        ("On 13 September 2022, at around 00:05, forces launched an attack", (5, 5)),
        ("shelling reported at 9 pm near the village", (1260, 1260)),
        ("fire at 12:05 a.m.", (5, 5)),
        ("fire at 12:40 p.m.", (760, 760)),
        ("opened fire in the direction of Alibayli village on September 13 evening", EVENING),
        ("attempted this morning to seize another road", MORNING),
        ("Field team reports mine blast near Martuni in the afternoon", AFTERNOON),
        ("shelled the village overnight", NIGHT),
        ("intense artillery strikes the third night in a row", NIGHT),
        ("exchanged fire late in the evening", LATE_EVENING),
        ("exchanged fire late at night", LATE_EVENING),
        # across midnight: the night that ends the report's day
        ("from 23:40 to 00:20 the positions were shelled", (-20, 20)),
        ("fire from 11 pm until 1 am", (-60, 60)),
        ("between 22:00 and 01:30, and again at 23:15", (-120, 90)),
        # a bare hour after a word that introduces a time
        ("killed 2 AM soldiers at 9 pm", (1260, 1260)),
        ("at 9 pm 3 AZ and 2 AM soldiers were wounded", (1260, 1260)),
        # "and" / "to" with an upper-case AM / PM: a time where it ends a range
        ("fire from 10 PM to 2 AM", (-120, 120)),
        ("between 10 AM and 2 PM", (600, 840)),
        ("from 22:00 to 2 AM", (-120, 120)),
        ("between 9 and 10 AM", (600, 600)),
        ("the shelling went on from 11 p.m. to 1 a.m.", (-60, 60)),
        ("the shelling stopped and 2 a.m. was quiet", (120, 120)),  # dots: a time
        ("the shelling lasted until 4 a.m.", (240, 240)),
    ],
)
def test_stated_times_of_day(text: str, span: tuple[int, int]) -> None:
    assert stated_time_of_day(text) == span


@pytest.mark.parametrize(
    ("text", "span"),
    [
        # Russian: the peacekeepers' and the Russian defence ministry's bulletins
        ("Утром 12 сентября зафиксирован обстрел позиций", MORNING),
        ("вечером был открыт огонь из стрелкового оружия", EVENING),
        ("в ночь на 13 сентября подразделения обстреляли", NIGHT),
        ("после полудня зафиксировано нарушение", AFTERNOON),
        ("в полдень", NOON),
        ("поздно вечером", LATE_EVENING),
        ("в 21:40 по местному времени", (1300, 1300)),
        # Azerbaijani and Armenian statements
        ("axşam saatlarında atəşə tutulub", EVENING),
        ("gecə saatlarında", NIGHT),
        ("səhər", MORNING),
        ("առավոտյան կրակ են բացել", MORNING),
        ("երեկոյան", EVENING),
        ("գիշերը", NIGHT),
        ("at noon", NOON),
        ("in the afternoon, after noon prayers", AFTERNOON),
    ],
)
def test_parts_of_the_day_in_the_theatres_languages(text: str, span: tuple[int, int]) -> None:
    assert stated_time_of_day(text) == span


@pytest.mark.parametrize(
    "text",
    [
        None,
        "безвозвратные утраты составили два человека",  # a loss (утрата) is no morning
        "",
        "During the day, one violation was recorded in the Taghavard region.",  # no time
        "Azerbaijani forces continued construction on Thursday.",
        "reported on 13.09.2022",  # a dated day is no clock time
        "fire in the morning, again in the evening",  # two parts: says no one time
        "from 08:00 until 19:40 the sector was shelled",  # a day's events, not one time
        "14:30 p.m.",  # no such time
        "2 armoured vehicles and 5 ammunition trucks",
        "ratio 25:61",  # no clock time
        "2 AM soldiers were wounded",  # Armenian soldiers, no time
        # "and" / "to" join counts too: AM is Armenia's code there, not a time
        "3 AZ and 2 AM soldiers wounded",
        "3 AZ and 2 PM soldiers wounded",
        "losses rose from 3 AZ to 4 AM soldiers",
        "at the border 3 AZ and 2 AM soldiers were wounded",
        "killed 3 pm troops",  # a bare hour that no word introduces
        "from 23:00 until 07:30",  # across midnight, but longer than one time
    ],
)
def test_texts_that_state_no_time_of_day(text: str | None) -> None:
    assert stated_time_of_day(text) is None


spans = st.integers(-1439, 1439).flatmap(
    lambda start: st.tuples(st.just(start), st.integers(max(start, 0), 1440))
)


@given(spans)
def test_the_documents_form_reads_back(span: tuple[int, int]) -> None:
    assert parse_time_of_day(format_time_of_day(span)) == span


@pytest.mark.parametrize("value", ["", "12:30", "25:00-26:00", "12:60-13:00", "13:00-12:00", "x"])
def test_a_malformed_form_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="not a time of day"):
        parse_time_of_day(value)


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_any_text_gives_a_span_of_the_day_or_none(text: str) -> None:
    span = stated_time_of_day(text)
    if span is not None:
        start, end = span
        assert -1440 < start <= end <= 1440
        assert parse_time_of_day(format_time_of_day(span)) == span


@given(
    st.integers(0, 23),
    st.integers(0, 59),
    st.text(st.characters(categories=("L", "Zs")), max_size=40),
    st.text(st.characters(categories=("L", "Zs")), max_size=40),
)
def test_a_clock_time_among_words_is_found(hour: int, minute: int, before: str, after: str) -> None:
    # The comma keeps `after` from reading as a.m./p.m. ("09:00 pm...").
    text = f"{before} at {hour:02d}:{minute:02d}, {after}"
    span = stated_time_of_day(text)
    assert span == (hour * 60 + minute, hour * 60 + minute)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "text",
    [
        "1" + " " * 3999,
        "1 " * 2000,
        "12:" * 1333,
        "1:1" * 1333,
        "late " * 800,
        "p.m " * 1000,
        "9" * 4000,
        "at " * 1333,
        "- " * 2000,
        "23:00 " * 666,
    ],
    ids=[
        "spaces",
        "digits-spaces",
        "colons",
        "clock-chains",
        "late",
        "pm",
        "digits",
        "prepositions",
        "dashes",
        "clocks",
    ],
)
def test_hostile_descriptions_are_read_in_linear_time(text: str) -> None:
    """A description is up to 4,000 characters of anyone's text: no pattern backtracks
    on it (the module's timeout would stop a catastrophic one)."""
    for _ in range(50):
        span = stated_time_of_day(text)
    assert span is None or -1440 < span[0] <= span[1] <= 1440


@given(st.lists(st.integers(0, 1439), min_size=1, max_size=8))
def test_the_clock_span_is_the_shortest_that_holds_every_time(times: list[int]) -> None:
    """Whatever the order of the times, the span holds each of them (modulo a day) and no
    shorter span of the day does."""
    span = clock_span(times)
    arcs = []
    for first in set(times):
        arc = max((t - first) % 1440 for t in times)
        arcs.append(arc)
    shortest = min(arcs)
    if shortest > MAX_CLOCK_SPAN:
        assert span is None
        return
    assert span is not None
    start, end = span
    assert end - start == shortest
    assert -1440 < start <= end <= 1440
    assert all(start <= t <= end or start <= t - 1440 <= end for t in times)
    assert clock_span(list(reversed(times))) == span


_COUNTS = st.tuples(
    st.integers(1, 12),
    st.sampled_from(["AZ", "AM", "RU", "PM"]),
    st.sampled_from(["and", "to", "And"]),
    st.integers(1, 12),
    st.sampled_from(["AM", "PM"]),
    st.sampled_from(["soldiers", "servicemen were wounded", "troops", ""]),
)


@given(_COUNTS)
def test_counts_of_a_party_joined_by_and_or_to_are_no_time(
    parts: tuple[int, str, str, int, str, str],
) -> None:
    n, party, word, m, code, rest = parts
    assert stated_time_of_day(f"{n} {party} {word} {m} {code} {rest}") is None
