"""Collector identity: the publisher names of the connector processes, and the line a name is.

A *collector* is one set of connector processes (one per shard) feeding the same markets; two
collectors of the same markets (other hosts, other keys) are redundant *lines* of one feed. Every
connector's publisher name says both, so two collectors never share a journal directory, a
JetStream msg id (publisher:epoch:kind:seq) or a bus sequence:

==================  ==========  ===========
name                collector   shard
==================  ==========  ===========
connector           ""          only one
connector-3         ""          3 of N
connector-a         "a"         only one
connector-a-3       "a"         3 of N
==================  ==========  ===========

A collector name starts with a letter, so it is never read as a shard index, and holds no
``-``, so a name splits one way only.
"""

from __future__ import annotations

import re

CONNECTOR = "connector"
#: What ``[connector] collector`` may be (empty: the one unnamed collector).
COLLECTOR_PATTERN = r"^([a-z][a-z0-9_]{0,23})?$"
_VALID = re.compile(COLLECTOR_PATTERN)


def valid_collector(name: str) -> bool:
    return _VALID.match(name) is not None


def instance(collector: str, shard_index: int | None) -> str:
    """The ``--instance`` part of the worker id (the Actor prefixes ``connector-``)."""
    parts = [collector] if collector else []
    if shard_index is not None:
        parts.append(str(shard_index))
    return "-".join(parts)


def connector_id(collector: str, shard_index: int | None) -> str:
    """The publisher / worker id of one connector process (``shard_index`` None: not sharded)."""
    inst = instance(collector, shard_index)
    return f"{CONNECTOR}-{inst}" if inst else CONNECTOR


def connector_ids(collector: str, shard_count: int) -> list[str]:
    """Every connector id of one collector of ``shard_count`` shards."""
    if shard_count <= 1:
        return [connector_id(collector, None)]
    return [connector_id(collector, i) for i in range(shard_count)]


def parse_instance(text: str) -> tuple[str | None, int | None]:
    """``--instance`` as (collector, shard index): "3" -> (None, 3), "a" -> ("a", None),
    "a-3" -> ("a", 3). Anything else: ValueError naming what is wrong."""
    if not text:
        return None, None
    if text.isdigit():
        return None, int(text)
    name, sep, index = text.partition("-")
    if not name or not valid_collector(name) or (sep and not index.isdigit()):
        raise ValueError(
            f"connector instance {text!r}: want N (shard), NAME (collector) or NAME-N "
            f"(collector NAME, shard N); NAME matches {COLLECTOR_PATTERN}"
        )
    return name, int(index) if index else None


def line_of(pub: str) -> str | None:
    """The collector line a publisher feeds: "" for the unnamed collector, the name for a named
    one, None for a publisher that is not a connector (gap filler, poller, orderbook...)."""
    if pub == CONNECTOR:
        return ""
    if not pub.startswith("connector-"):
        return None
    rest = pub[10:]
    name, sep, index = rest.partition("-")
    if name.isdigit() and not sep:
        return ""
    if name and valid_collector(name) and (not sep or index.isdigit()):
        return name
    return None
