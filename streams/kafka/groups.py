"""When a consumer-group member sends LeaveGroup on close: two differences from aiokafka,
both for the embedded broker (Tansu 0.6).

1. **From the first generation.** aiokafka 0.14 sends LeaveGroup when a consumer closes
   only if `generation > 0` (`GroupCoordinator._maybe_leave_group`): Apache Kafka numbers a
   group's generations from 1, but the embedded broker numbers them from 0. So the first
   member of every group on the embedded broker never left it on a clean stop. The next
   worker's join then waited for that member's session to expire, and the group rebalanced
   again: a worker restarted with 30 s sessions was ready after 72 s instead of 33 s (issue
   9, docs/operations.md "Membership changes"). aiokafka's "no generation" is -1
   (`reset_generation`), so a member of generation 0 has joined and must leave; on Apache
   Kafka nothing changes.

2. **Not as the leader, on the embedded broker.** When a group's leader leaves while a
   newcomer's join has put the group back to forming, Tansu removes the member but keeps it
   as the group's leader (`Inner<O, Forming>::leave` never clears the leader; a stable
   group's leave and an eviction by session timeout do): every later join names the
   departed member leader, every live member is a follower waiting for an assignment no one
   makes, and the group never settles again while the broker runs (measured: a worker never
   ready; two plain consumers, the leader stopping 0.1 to 0.3 s after the other subscribed:
   never assigned, 3 of 3). So with `leader_leaves=False` a member leaves only when its last
   join ended with it synced as a follower; the leader, or a member mid-join (which the
   broker may just have made leader), goes by its session timeout instead (6 s with the
   embedded broker's timings), which clears the leader. `Settings.with_embedded_timing`
   sets it; on Apache Kafka the leader leaves at once as usual.

`install(leader_leaves)` patches every aiokafka consumer of the process (the worker's Faust
consumer, the ingest and identity processes' consumers).
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import errors
from aiokafka.consumer.group_coordinator import CoordinatorGroupRebalance, GroupCoordinator
from aiokafka.protocol.group import LeaveGroupRequest

from streams.kafka import fetcher_close

log = logging.getLogger(__name__)

_aiokafka_join = CoordinatorGroupRebalance.perform_group_join
_aiokafka_on_join_follower = CoordinatorGroupRebalance._on_join_follower
#: Whether a group's leader sends LeaveGroup on close (`install`).
_leader_leaves = True
#: Set on a coordinator: its last join ended with it synced as a follower.
_FOLLOWER = "_ceasefire_synced_follower"


async def _perform_group_join(self: CoordinatorGroupRebalance) -> Any:
    setattr(self._coordinator, _FOLLOWER, False)  # the broker may make this member leader
    return await _aiokafka_join(self)


async def _on_join_follower(self: CoordinatorGroupRebalance) -> Any:
    assignment = await _aiokafka_on_join_follower(self)
    setattr(self._coordinator, _FOLLOWER, assignment is not None)
    return assignment


async def _maybe_leave_group(self: GroupCoordinator) -> None:
    # aiokafka's own method, with `generation >= 0` for its `generation > 0`, and the
    # leader's exception above.
    if not _leader_leaves and not getattr(self, _FOLLOWER, False):
        log.info(
            "not leaving group %s explicitly (its leader, or joining): it goes by its session "
            "timeout, as the embedded broker would keep a departed leader",
            self.group_id,
        )
    elif self.generation >= 0 and self._group_instance_id is None:
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


def install(leader_leaves: bool) -> None:
    """Patch every aiokafka consumer of this process (idempotent; the last call's
    `leader_leaves` holds)."""
    global _leader_leaves
    _leader_leaves = leader_leaves
    fetcher_close.install()  # and stopped cleanly with the broker gone
    GroupCoordinator._maybe_leave_group = _maybe_leave_group  # type: ignore[method-assign]
    CoordinatorGroupRebalance.perform_group_join = _perform_group_join  # type: ignore[method-assign]
    CoordinatorGroupRebalance._on_join_follower = _on_join_follower  # type: ignore[method-assign]
