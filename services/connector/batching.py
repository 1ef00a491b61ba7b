"""Order a drained batch for publishing: equal topics adjacent, book order untouched."""

from __future__ import annotations

from shared.messages import BookDelta, BookSnapshot, BookState, Gap, MarketLifecycle, MarketMeta, Message

#: Kinds whose order relative to a market's book frames matters (they share its group).
_BOOK_ORDERED = frozenset({BookSnapshot, BookDelta, BookState, MarketLifecycle, MarketMeta})


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
    for m in msgs:
        t = type(m)
        if t is Gap:
            for run in groups.values():
                out.extend(run)
            groups.clear()
            out.append(m)
            continue
        key = m.ticker if t in _BOOK_ORDERED else m.topic()  # type: ignore[union-attr]
        group = groups.get(key)
        if group is None:
            groups[key] = [m]
        else:
            group.append(m)
    for g in groups.values():
        out.extend(g)
    return out
