"""Who is in a consumer group now: the member ids of groups, read with DescribeGroups.

A member id is the broker's: the member's client id, a dash and a UUID (Apache Kafka and
the embedded broker alike), so the client id a process chose says what kind of member it
is (`streams/pipeline/identity_mode.py`). The embedded broker answers no subscriptions
(empty member metadata): the id is all there is to go by on both."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, for_code

from streams.config import Settings

#: The embedded broker answers a group it has never seen with this code and no group id
#: (Apache Kafka: no error, state "Dead", no members).
_UNKNOWN_SERVER_ERROR = -1


class GroupsUnknown(Exception):
    """The broker did not say who is in the groups (one line, for a warning)."""


def member_ids(
    settings: Settings, groups: Sequence[str], timeout: float = 10.0
) -> dict[str, list[str]]:
    """The ids of the members of each group now (an empty list: none, or no such group)."""
    return asyncio.run(members_now(settings, groups, timeout))


async def members_now(
    settings: Settings, groups: Sequence[str], timeout: float = 10.0
) -> dict[str, list[str]]:
    """`member_ids` on a running event loop (a worker's periodic check)."""
    try:
        return await asyncio.wait_for(_describe(settings, groups), timeout)
    except TimeoutError as exc:
        raise GroupsUnknown(f"no answer to DescribeGroups within {timeout:.0f} s") from exc
    except KafkaError as exc:
        raise GroupsUnknown(f"DescribeGroups failed: {exc}") from exc


async def _describe(settings: Settings, groups: Sequence[str]) -> dict[str, list[str]]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap(),
        client_id=f"{settings.app_id}-admin",
        **settings.kafka_security(),
    )
    try:
        # (started inside: a start cut short by the timeout must close what it opened)
        await admin.start()
        responses = await admin.describe_consumer_groups(list(groups))
    finally:
        await admin.close()
    found: dict[str, list[str]] = {group: [] for group in groups}
    for response in responses:
        # (error_code, group_id, state, protocol_type, protocol, members, ...) in every
        # version; a member is (member_id, client_id, client_host, metadata, assignment)
        for error_code, group_id, _state, _ptype, _protocol, members, *_ in response.groups:
            if error_code == _UNKNOWN_SERVER_ERROR and not group_id:
                continue
            if error_code:
                raise GroupsUnknown(f"DescribeGroups of {group_id}: {for_code(error_code)()}")
            found[group_id] = [member[0] for member in members]
    return found
