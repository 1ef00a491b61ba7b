"""Plain integer counters a pure core keeps instead of touching the Prometheus registry.

A key is ``(counter, label)``; the counter names are the short names of the connector's
``kxfeed_ws_*_total`` metrics (``"duplicates"`` is ``kxfeed_ws_duplicates_total``), the label
is the one label value those metrics take ("" for the unlabelled ones). Counts only grow: the
shell (:class:`services.connector.metrics.CountSync`) exports what grew since its last look,
and a test asserts on the core's own counts.
"""

from __future__ import annotations

from shared.counts import Counts

__all__ = ["NAMES", "Counts"]

#: The counters a core may add to, each exported as the Prometheus counter of the same short name.
NAMES = frozenset(
    {
        "messages",
        "bad_frames",
        "unknown_types",
        "duplicates",
        "reanchored",
        "gaps",
        "discarded",
        "resubscribes",
        "snapshot_requests",
        "commands",
        "command_errors",
        "splits",
        "command_waits",
    }
)
