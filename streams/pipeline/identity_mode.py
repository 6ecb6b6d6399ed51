"""All workers of a cluster must run the identity stage the same way
(`CEASEFIRE_IDENTITY_PROCESS`): in a process of its own it reads its input in the group
`<app id>-identity`, inside the worker in the worker's group `<app id>`. Two groups each
take every partition, so a mix applies every report twice (counted twice, for good).

`run` asks the broker who is in those groups before it starts (`streams/cli/worker.py`),
and a running worker asks again every session timeout (`ModeWatch`); this module says
what their member ids mean. A worker's Faust client id names its mode
(the broker builds member ids from client ids), and an identity process is a member of
`<app id>-identity` by being one."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from streams import metrics
from streams.config import Settings
from streams.kafka.group_members import GroupsUnknown

log = logging.getLogger(__name__)

#: `group_members.members_now`: the member ids of each group now.
Describe = Callable[[Settings, Sequence[str]], Awaitable[Mapping[str, Sequence[str]]]]


def identity_group(settings: Settings) -> str:
    """The identity processes' consumer group (and their Faust app id)."""
    return f"{settings.app_id}-identity"


def worker_client_id(settings: Settings) -> str:
    """The client id of a worker's Faust app: says whether its identity stage runs inside."""
    return _client_id(settings.app_id, inside=not settings.identity_process)


def _client_id(app_id: str, *, inside: bool) -> str:
    return f"{app_id}-worker-with-identity" if inside else f"{app_id}-worker"


def groups_to_ask(settings: Settings) -> list[str]:
    """The group in which a worker of the other mode would show."""
    return [settings.app_id if settings.identity_process else identity_group(settings)]


@dataclass(frozen=True)
class Mix:
    """Workers of the other mode in the cluster."""

    app_id: str
    workers: int
    #: how they run the identity stage
    theirs: str
    #: how this worker would
    mine: str

    def found(self) -> str:
        many = "1 worker" if self.workers == 1 else f"{self.workers} workers"
        run = "runs" if self.workers == 1 else "run"
        cluster = f"of this cluster (app id {self.app_id})"
        return f"{many} {cluster} {run} the identity stage {self.theirs}"

    def why(self, *, running: bool = False) -> str:
        """Why this worker must not start (or, `running`, why the cluster counts wrong)."""
        counts = (
            f"this one runs it {self.mine}: the two each apply every report, and count it twice"
            if running
            else f"this one would run it {self.mine}: the two would each apply every report, "
            "and count it twice"
        )
        return (
            f"{self.found()}; {counts}. Set the same CEASEFIRE_IDENTITY_PROCESS on "
            "every worker (to change it, stop every worker first: docs/operations.md, "
            "'Processes of a worker')."
        )


def mixed_modes(settings: Settings, members: Mapping[str, Sequence[str]]) -> Mix | None:
    """Workers of the other mode among the members of `groups_to_ask`, or None.

    A worker running its identity stage inside shows in the worker group with its client
    id; workers older than that id (`faust-...`) say nothing of their mode and are let be.
    """
    if settings.identity_process:
        inside = f"{_client_id(settings.app_id, inside=True)}-"
        others = [m for m in members.get(settings.app_id, []) if m.startswith(inside)]
        theirs = "inside the worker (CEASEFIRE_IDENTITY_PROCESS=false)"
        mine = "in a process of its own"
    else:
        others = list(members.get(identity_group(settings), []))
        theirs = f"in a process of its own (group {identity_group(settings)})"
        mine = "inside (CEASEFIRE_IDENTITY_PROCESS=false)"
    return Mix(settings.app_id, len(others), theirs, mine) if others else None


class ModeWatch:
    """A running worker's look for workers of the other mode, every session timeout.

    `run` refuses to start beside them, but two workers started within the same second
    see nothing of each other, and a start whose DescribeGroups went unanswered was let
    be. The gauge says how many the last look found (CeasefireIdentityModesMixed pages on
    it); the log says a mix once as it appears and once as it ends. A stopped worker's
    member stays listed until its session ends, so one look may count a worker that has
    just stopped (the alert waits minutes)."""

    def __init__(self, settings: Settings, describe: Describe) -> None:
        self.settings = settings
        self._describe = describe
        #: what the last look found: the mix, and why it could not look (said once)
        self.found: Mix | None = None
        self._unknown: str | None = None

    async def look(self) -> None:
        try:
            members = await self._describe(self.settings, groups_to_ask(self.settings))
        except GroupsUnknown as exc:
            if str(exc) != self._unknown:
                log.warning(
                    "Could not check that the workers of this cluster run the identity stage "
                    "alike (asked again every %.0f s): %s",
                    self.settings.session_timeout,
                    exc,
                )
            self._unknown = str(exc)
            return
        self._unknown = None
        mix = mixed_modes(self.settings, members)
        metrics.IDENTITY_MODE_MIXED.set(0 if mix is None else mix.workers)
        if mix is not None and (self.found is None or self.found.workers != mix.workers):
            log.error("%s", mix.why(running=True))
        elif mix is None and self.found is not None:
            log.warning("No worker of this cluster runs the identity stage the other way any more.")
        self.found = mix
