"""A worker's commands: each command class registered with its handler.

The table is the dispatcher's handler (:data:`shared.control_server.Handler`): it finds the
class for the request's ``cmd`` (else :class:`~shared.control_server.UnknownCommand`), decodes
the arguments into it (else :class:`~shared.commands.base.BadArgument`, a ``ValueError``: the
caller's mistake) and awaits the handler with the instance.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from shared.commands.base import Command, decode
from shared.control_server import UnknownCommand

C = TypeVar("C", bound=Command)
CommandHandler = Callable[[Any], Awaitable[Any]]


class CommandTable:
    def __init__(self) -> None:
        self._types: dict[str, type[Command]] = {}
        self._handlers: dict[str, CommandHandler] = {}

    def register(self, cls: type[C], handler: Callable[[C], Awaitable[Any]]) -> None:
        name = cls.command_name()
        if name in self._types and self._types[name] is not cls:
            raise ValueError(f"two commands named {name!r}: {self._types[name].__name__}, {cls.__name__}")
        self._types[name] = cls
        self._handlers[name] = handler

    def commands(self) -> dict[str, type[Command]]:
        return dict(self._types)

    async def __call__(self, cmd: str, args: dict[str, Any]) -> Any:
        cls = self._types.get(cmd)
        if cls is None:
            raise UnknownCommand(cmd)
        return await self._handlers[cmd](decode(cls, dict(args)))


__all__ = ["CommandHandler", "CommandTable"]
