"""Plain integer counters a pure core keeps instead of touching the Prometheus registry.

A key is ``(counter, label)``: the short name of the metric a shell exports and its one label
value ("" for unlabelled ones). Counts only grow; the shell exports them, a test asserts on them.
"""

from __future__ import annotations


class Counts(dict[tuple[str, str], int]):
    __slots__ = ()

    def add(self, name: str, label: str = "", n: int = 1) -> None:
        key = (name, label)
        self[key] = self.get(key, 0) + n

    def of(self, name: str, label: str = "") -> int:
        return self.get((name, label), 0)

    def total(self, name: str) -> int:
        """One counter summed over its labels. Iterates a copy: a metrics collector may read it
        from the exporter's thread while the core adds a new key."""
        return sum(n for (k, _), n in list(self.items()) if k == name)
