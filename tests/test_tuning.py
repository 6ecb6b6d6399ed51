"""Process-wide settings the worker applies at start (streams/pipeline/tuning.py)."""

from __future__ import annotations

import gc
import io
import logging
import time
from collections.abc import Iterator

import pytest
from faust.utils.terminal import Spinner, SpinnerHandler

from streams.pipeline import tuning
from streams.pipeline.tuning import GC_THRESHOLDS, restore_root_level, tune_for_throughput

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    """The root logger; its level, handlers and the GC thresholds restored after the test.
    (pytest adds its capture handler, at NOTSET, around the test itself: the tests clear
    the handlers first.)"""
    logger = logging.getLogger()
    level, handlers, thresholds = logger.level, list(logger.handlers), gc.get_threshold()
    try:
        yield logger
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        gc.set_threshold(*thresholds)


def test_the_debug_level_faust_leaves_for_its_spinner_is_undone(root: logging.Logger) -> None:
    # What faust.Worker does at loglevel "warning": handler at WARNING, spinner at DEBUG,
    # root at DEBUG (so every log.debug builds a record no handler emits).
    root.handlers.clear()
    stream = logging.StreamHandler(io.StringIO())
    stream.setLevel(logging.WARNING)
    root.addHandler(stream)
    root.addHandler(SpinnerHandler(Spinner(file=io.StringIO()), level=logging.DEBUG))
    root.setLevel(logging.DEBUG)
    assert logging.getLogger("aiokafka").isEnabledFor(logging.DEBUG)
    tune_for_throughput()
    assert root.level == logging.WARNING
    assert not logging.getLogger("aiokafka").isEnabledFor(logging.DEBUG)
    assert gc.get_threshold() == GC_THRESHOLDS


def test_a_debug_handler_keeps_debug(root: logging.Logger) -> None:
    root.handlers.clear()
    stream = logging.StreamHandler(io.StringIO())
    stream.setLevel(logging.DEBUG)  # `run --loglevel debug`
    root.addHandler(stream)
    root.setLevel(logging.DEBUG)
    restore_root_level()
    assert root.level == logging.DEBUG
    root.setLevel(logging.INFO)  # not lowered by Faust: left as set
    restore_root_level()
    assert root.level == logging.INFO


def test_release_free_memory_trims_at_most_once_per_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def trim(pad: int) -> int:
        calls.append(pad)
        return 1

    monkeypatch.setattr(tuning, "_TRIM", trim)
    monkeypatch.setattr(tuning, "_last_trim", 0.0)
    clock = iter([1000.0, 1000.5, 1001.2])
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    tuning.release_free_memory()
    tuning.release_free_memory()  # within TRIM_EVERY of the first: skipped
    tuning.release_free_memory()
    assert calls == [0, 0]


def test_release_free_memory_without_glibc_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tuning, "_TRIM", None)
    tuning.release_free_memory()


def test_malloc_arenas_are_limited_unless_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert tuning.limit_malloc_arenas() is True  # glibc here: mallopt accepted it
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert tuning.limit_malloc_arenas() is False  # the operator's setting stands
