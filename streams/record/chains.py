"""Chains: components of the precise link graph past `LinkRule.chain_limit` reports (a day
of fire at one place, a report a minute), which link only within time blocks, and within
finer blocks where a piece is still past the limit (docs/record.md, "A chain").

Whether a component or a piece is past the limit depends on the current reports alone, so
the grouping stays a function of the set; `to_regroup` tells which reports a change can
regroup, so that a change in a chain costs the pieces it touches rather than the chain.
Plain functions over the linker's accessors (`streams.record.linking.ZoneLinker` wires them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from streams.record.model import Ident, ReportVersion

#: A current report's precise neighbours, each a (report, fit, order) tuple.
Linked = Callable[[ReportVersion], Sequence[tuple[ReportVersion, Any, Any]]]
#: Removed precise reports: identity -> the version removed and its precise neighbours then.
RemovedNear = dict[Ident, tuple[ReportVersion, list[ReportVersion]]]
N = TypeVar("N", bound=tuple[ReportVersion, Any, Any])


def at_level(
    neighbours: Callable[[ReportVersion], list[N]], blocks: Sequence[float], level: int
) -> Callable[[ReportVersion], list[N]]:
    """The links of a chain's level: a report's neighbours within its block of the level
    (`blocks[level - 1]`, aligned to the epoch); level 0: all of them."""
    if level == 0:
        return neighbours
    size = blocks[level - 1]

    def within(r: ReportVersion) -> list[N]:
        block = r.occurred // size
        return [n for n in neighbours(r) if n[0].occurred // size == block]

    return within


def units(
    reports: list[ReportVersion],
    neighbours: Callable[[ReportVersion], list[N]],
    limit: int,
    blocks: Sequence[float],
    level: int = 1,
) -> Iterator[tuple[list[ReportVersion], int]]:
    """A chain's units, each with its level: `reports` (a component of the links of
    level - 1, past the limit) split by the links within blocks of `level`; a piece
    still past the limit split again at the next level, except at the last."""
    within = at_level(neighbours, blocks, level)
    seen: set[Ident] = set()
    for r in reports:
        if r.ident in seen:
            continue
        seen.add(r.ident)
        piece = [r]
        for x in piece:
            for m, _f, _o in within(x):
                if m.ident not in seen:
                    seen.add(m.ident)
                    piece.append(m)
        if len(piece) > limit and level < len(blocks):
            yield from units(piece, neighbours, limit, blocks, level + 1)
        else:
            yield piece, level


def to_regroup(
    live: Mapping[Ident, ReportVersion],
    known_large: set[Ident],
    limit: float,
    blocks: Sequence[float],
    gone: set[Ident],
    removed_near: RemovedNear,
    inserted: list[ReportVersion],
    precise_neighbours: Linked,
) -> tuple[dict[Ident, ReportVersion], dict[Ident, int]]:
    """The precise reports a change can regroup, and the level of those in chains (their
    links are those within a block of it: `at_level`). A union of units (small
    components after the change, and pieces of chains at their level), which holds every
    incident the change can alter before it (but the removed reports) and after it: those
    of the reports whose links changed (`touched`), and of their components and pieces
    where those are, or were, small.

    Components and pieces are told apart by a traversal that stops past `limit` reports,
    or, for components, at a report in `known_large` (reports known to be in a chain:
    sound, not complete; trusted when the change only adds reports). `live`: the current
    reports, the change made; `blocks`: the chain's block lengths by level
    (`LinkRule.chain_blocks`); `precise_neighbours`: a current report's. Updates
    `known_large` with what the traversals found."""
    if not removed_near and len(inserted) == 1:
        # One report added (most changes): everything it touches is in its component,
        # so if that is small, it is the whole regrouping. (No closures: they cost
        # every call.)
        start = inserted[0]
        seen = {start.ident: start}
        queue = [start]
        known = known_large
        large = False
        for r in queue:
            for m, _f, _o in precise_neighbours(r):
                i = m.ident
                if i not in seen:
                    if i in known or len(seen) >= limit:
                        large = True
                        break
                    seen[i] = m
                    queue.append(m)
            if large:
                break
        if not large:
            return seen, {}
    last = len(blocks)  # the finest level: a piece whatever its size
    added = {r.ident for r in inserted}
    # the graph before the change: the current one without the added reports, with the
    # removed ones (a removed report's identity may be current again, as a revision)
    back: dict[Ident, list[ReportVersion]] = {}
    for r, rn in removed_near.values():
        for m in rn:
            back.setdefault(m.ident, []).append(r)

    def now(r: ReportVersion) -> list[ReportVersion]:
        return [m for m, _f, _o in precise_neighbours(r)]

    def then(r: ReportVersion) -> list[ReportVersion]:
        gone_near = removed_near.get(r.ident)
        if gone_near is not None and gone_near[0] is r:
            return gone_near[1]
        out = [m for m, _f, _o in precise_neighbours(r) if m.ident not in added]
        out.extend(back.get(r.ident, ()))
        return out

    def at(
        adjacent: Callable[[ReportVersion], list[ReportVersion]], level: int
    ) -> Callable[[ReportVersion], list[ReportVersion]]:
        if level == 0:
            return adjacent
        size = blocks[level - 1]

        def within(r: ReportVersion) -> list[ReportVersion]:
            block = r.occurred // size
            return [m for m in adjacent(r) if m.occurred // size == block]

        return within

    now_at = [at(now, k) for k in range(last + 1)]
    then_at = [at(then, k) for k in range(last + 1)]

    def extent(
        start: ReportVersion,
        adjacent: Callable[[ReportVersion], list[ReportVersion]],
        memo: dict[Ident, list[ReportVersion] | None],
        stop: set[Ident],
        bound: float,
    ) -> list[ReportVersion] | None:
        """start's component in `adjacent`, or None past `bound` reports (or reaching
        a report in `stop`, or one found past it before)."""
        if start.ident in memo:
            return memo[start.ident]
        seen = {start.ident: start}
        large = start.ident in stop
        queue = [start]
        for r in queue:  # breadth first: the nearest first (grows as it goes)
            if large:
                break
            for m in adjacent(r):
                i = m.ident
                if i in seen:
                    continue
                if i in stop or (i in memo and memo[i] is None):
                    large = True
                    break
                seen[i] = m
                queue.append(m)
                if len(seen) > bound:
                    large = True
                    break
        if large:
            for i in seen:
                memo[i] = None
            return None
        component = list(seen.values())
        for i in seen:
            memo[i] = component
        return component

    # After the change: adding reports only grows components, so a report known to be
    # in a chain still is; a removal may split one, so its parts are traversed afresh.
    nothing: set[Ident] = set()
    after_stop = [known_large if not removed_near else nothing] + [nothing] * last
    before_stop = [known_large] + [nothing] * last
    after_memo: list[dict[Ident, list[ReportVersion] | None]] = [{} for _ in range(last + 1)]
    before_memo: list[dict[Ident, list[ReportVersion] | None]] = [{} for _ in range(last + 1)]
    bounds = [limit] * last + [math.inf]

    regroup: dict[Ident, ReportVersion] = {}
    levels: dict[Ident, int] = {}

    def unit_now(x: ReportVersion, k: int) -> list[ReportVersion] | None:
        return extent(x, now_at[k], after_memo[k], after_stop[k], bounds[k])

    def add(unit: list[ReportVersion], k: int) -> None:
        if unit[0].ident in regroup:
            return  # (a unit is added whole or not at all)
        for m in unit:
            regroup[m.ident] = m
            if k:
                levels[m.ident] = k

    def place(x: ReportVersion) -> None:
        """x's unit into the regrouping: its component, or its piece of a chain."""
        for k in range(last + 1):
            unit = unit_now(x, k)
            if unit is not None:
                add(unit, k)
                return

    changed = [*inserted, *(r for r, _rn in removed_near.values())]
    changed_blocks: list[set[float]] = [set()]
    changed_blocks.extend({r.occurred // b for r in changed} for b in blocks)
    touched = list(inserted)
    for r in inserted:
        touched.extend(now(r))
    for _r, rn in removed_near.values():
        touched.extend(rn)
    for t in touched:
        if live.get(t.ident) is not t:
            continue  # a removed version
        for k in range(last + 1):
            unit = unit_now(t, k)
            if unit is not None:  # small at this level (or the finest): whole
                add(unit, k)
                break
            if t.ident in added:
                continue  # past the limit at this level: its piece at the next
            # Past the limit now. Was it small before the change?
            earlier = extent(t, then_at[k], before_memo[k], before_stop[k], limit)
            if earlier is not None:
                # Small then, so grouped whole at this level; now by finer pieces: all
                # of it again.
                for m in earlier:
                    if live.get(m.ident) is m:
                        place(m)
                break
            # Past it then too: its links across the next level's blocks were cut then
            # and are now, so its piece changed only if the change is in its block.
            if t.occurred // blocks[k] not in changed_blocks[k + 1]:
                break
    known_large.difference_update(gone)
    for i, component in after_memo[0].items():
        if component is None:
            known_large.add(i)
        else:
            known_large.discard(i)
    return regroup, levels
