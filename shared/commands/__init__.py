"""The control commands: one module per command, each one msgspec Struct (:mod:`.base`).

:func:`all_commands` lists them (every module of this package but the machinery), which is
what ``kxfeed ctl`` builds its subcommands from and what the tests check each worker against.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from shared.commands.base import EVERY_WORKER, Command

#: Modules of this package that are machinery, not commands.
_MACHINERY = frozenset({"base", "table", "cli"})


@cache
def all_commands() -> tuple[type[Command], ...]:
    """Every command class, in module order (one class per module)."""
    found: list[type[Command]] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _MACHINERY:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found += [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, Command) and obj.__module__ == module.__name__
        ]
    return tuple(found)


def served_by(worker: str) -> dict[str, type[Command]]:
    """The commands ``worker`` answers, by name (the ones every worker answers included)."""
    return {
        cls.command_name(): cls
        for cls in all_commands()
        if worker in cls.served_by or EVERY_WORKER in cls.served_by
    }


__all__ = ["EVERY_WORKER", "Command", "all_commands", "served_by"]
