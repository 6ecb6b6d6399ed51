"""The identity stage in a process of its own (`streams/pipeline/identity_process.py`)
keeps the state it has in the worker: the same changelog, known to Faust as a changelog.
The process on a real broker: `test_ingest_process.py` (killed, replaced, nothing lost)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from streams.config import Settings
from streams.pipeline import identity_process
from streams.pipeline.child_process import PACE, START, STOP, Order
from streams.pipeline.faust_app import faust_app
from streams.pipeline.identity_mode import identity_group
from streams.pipeline.identity_stage import IdentityStage
from streams.pipeline.stage import Ports


async def _never(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("not used here")


def _stage(settings: Settings, app_id: str, changelog_app_id: str | None) -> IdentityStage:
    app = faust_app(settings, app_id, client_id=app_id, web=False)
    ports = Ports(
        settings=settings,
        app=app,
        producer=_never,
        partitions_of=_never,
        dead_letter=_never,
        readiness_changed=lambda: None,
    )
    return IdentityStage(ports, changelog_app_id=changelog_app_id)


def test_the_identity_process_writes_the_workers_changelog(tmp_path: Path) -> None:
    settings = Settings(app_id="mission", data_dir=tmp_path)
    in_worker = _stage(settings, "mission", None)
    apart = _stage(settings, identity_group(settings), changelog_app_id="mission")
    name = "mission-identity-state-changelog"
    assert identity_group(settings) == "mission-identity"
    assert in_worker.store.topic == apart.store.topic == name
    # Faust pauses its tables' changelogs by name: one it did not know was consumed as a
    # stream, every state record through Faust (the process then cost a core)
    assert apart.ports.app.tables.changelog_topics == {name}


def test_the_child_serves_until_stop_and_exits_if_its_app_crashed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(identity_process, "WATCH_EVERY", 0.01)
    app = SimpleNamespace(crashed=False, crash_reason=None)

    async def serve(*orders: Order, crash_after: float | None = None) -> None:
        queue: asyncio.Queue[Order] = asyncio.Queue()
        for o in orders:
            queue.put_nowait(o)
        if crash_after is not None:

            def crash() -> None:
                app.crashed, app.crash_reason = True, RuntimeError("an agent failed")

            asyncio.get_running_loop().call_later(crash_after, crash)
        await asyncio.wait_for(identity_process.serve(app, queue), timeout=5)

    asyncio.run(serve(START, (PACE, 3), STOP))  # returns
    with pytest.raises(identity_process.AppCrashed, match="an agent failed"):
        asyncio.run(serve(START, crash_after=0.05))
