"""All workers of a cluster must run the identity stage the same way
(`CEASEFIRE_IDENTITY_PROCESS`): in a process of its own it reads its input in the group
`<app id>-identity`, inside the worker in the worker's group `<app id>`. Two groups each
take every partition, so a mix applies every report twice (counted twice, for good).

`run` asks the broker who is in those groups before it starts (`streams/cli/worker.py`);
this module says what their member ids mean. A worker's Faust client id names its mode
(the broker builds member ids from client ids), and an identity process is a member of
`<app id>-identity` by being one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from streams.config import Settings


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

    def why(self) -> str:
        return (
            f"{self.found()}; this one would run it {self.mine}: the two would each apply "
            "every report, and count it twice. Set the same CEASEFIRE_IDENTITY_PROCESS on "
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
