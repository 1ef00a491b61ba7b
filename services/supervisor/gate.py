"""The start gate, pure: may a pending child start now, given where the others are?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from services.supervisor.model import Child


def may_start(order: Sequence[str], children: Mapping[str, Child], c: Child, now: float) -> bool:
    """``c`` is pending, its backoff is over and nothing it waits for is in the way."""
    return c.state == "pending" and not c.removed and now >= c.not_before and not blocked(order, children, c)


def blocked(order: Sequence[str], children: Mapping[str, Child], c: Child) -> bool:
    """True while ``c`` must wait: an earlier child is still starting (one comes up at a time,
    in order), an earlier member of its restart group has not started yet, or a member of its
    group is still being stopped."""
    for name in order:
        other = children[name]
        if other is c:
            break
        if other.state == "starting":
            return True
        if other.group == c.group and other.state == "pending":
            return True
    return any(
        other.group == c.group and (other.doomed or other.state == "stopping") for other in children.values()
    )
