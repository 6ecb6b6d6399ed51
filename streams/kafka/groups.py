"""Consumer-group members leave their group on close, also from its first generation.

aiokafka 0.14 sends LeaveGroup when a consumer closes only if `generation > 0`
(`GroupCoordinator._maybe_leave_group`): Apache Kafka numbers a group's generations
from 1, but the embedded broker (Tansu) numbers them from 0. So the first member of
every group on the embedded broker never left it on a clean stop. The next worker's
join then waited for that member's session to expire, and the group rebalanced again:
a worker restarted with 30 s sessions was ready after 72 s instead of 33 s (issue 9,
docs/operations.md "Membership changes"). aiokafka's "no generation" is -1
(`reset_generation`), so a member of generation 0 has joined and must leave; on Apache
Kafka nothing changes.

`leave_from_first_generation()` installs that one-line difference for every aiokafka
consumer of the process (the worker's Faust consumer and its ingest consumer).
"""

from __future__ import annotations

import logging

from aiokafka import errors
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.protocol.group import LeaveGroupRequest

log = logging.getLogger(__name__)


async def _maybe_leave_group(self: GroupCoordinator) -> None:
    # aiokafka's own method, with `generation >= 0` for its `generation > 0`.
    if self.generation >= 0 and self._group_instance_id is None:
        # A minimal-effort attempt, as aiokafka's: no resend if it fails or times out
        # (and no LeaveGroup for a static member, which keeps its place on purpose).
        request = LeaveGroupRequest(self.group_id, self.member_id)
        try:
            await self._send_req(request)
        except errors.KafkaError as err:
            log.error("LeaveGroup request failed: %s", err)
        else:
            log.info("LeaveGroup request succeeded")
    self.reset_generation()


def leave_from_first_generation() -> None:
    """Make every aiokafka consumer of this process leave its group on close, whatever
    its generation number (idempotent)."""
    GroupCoordinator._maybe_leave_group = _maybe_leave_group  # type: ignore[method-assign]
