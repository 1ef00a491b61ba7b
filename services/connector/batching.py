"""Order a drained batch for publishing: equal topics adjacent, book order untouched."""

from __future__ import annotations

from shared.messages import (
    KINDS,
    TOPIC_FIELDS,
    BookDelta,
    BookSnapshot,
    BookState,
    Gap,
    MarketLifecycle,
    MarketMeta,
    Message,
)

#: Kinds whose order relative to a market's book frames matters (they share its group).
_BOOK_ORDERED = frozenset({BookSnapshot, BookDelta, BookState, MarketLifecycle, MarketMeta})
#: Per class, what its group key is built of: (prefix, field). A book-ordered kind groups by its
#: ticker alone (prefix ""), any other by its topic, built without a method call per message.
_KEY_OF: dict[type, tuple[str, str]] = {
    cls: ("", "ticker") if cls in _BOOK_ORDERED else (f"{kind}.", TOPIC_FIELDS[cls])
    for kind, cls in KINDS.items()
    if cls in TOPIC_FIELDS
}


def by_market(msgs: list[Message]) -> list[Message]:
    """Regroup a batch so equal topics are adjacent, without changing what a book depends on.

    The publisher sends one bus frame per run of equal topics; a drained batch interleaves
    many markets and kinds, so grouping turns thousands of one-message frames into a few
    long ones. A market's book frames, BookStates, lifecycle and metadata stay in one group
    in their original order; tickers and trades (which no book depends on) group by topic.
    A Gap is a barrier: nothing moves across it, so it is never seen after a snapshot
    that repaired what it announces.
    """
    if len(msgs) < 3:
        return msgs
    out: list[Message] = []
    groups: dict[str, list[Message]] = {}
    key_of = _KEY_OF
    for m in msgs:
        t = type(m)
        if t is Gap:
            for run in groups.values():
                out.extend(run)
            groups.clear()
            out.append(m)
            continue
        how = key_of.get(t)
        key = m.topic() if how is None else how[0] + getattr(m, how[1])
        group = groups.get(key)
        if group is None:
            groups[key] = [m]
        else:
            group.append(m)
    for g in groups.values():
        out.extend(g)
    return out
