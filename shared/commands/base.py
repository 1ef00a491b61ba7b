"""What a control command is: a msgspec Struct in one tagged union (tag field ``cmd``).

A command's class is its whole contract: the tag is the command's name on the wire and on the
command line, the fields are its arguments (types and ``msgspec.Meta`` ranges are the
validation), the docstring documents the control message and the ``kxfeed ctl`` subcommand at
once, and ``served_by`` names the workers that answer it. A worker registers a handler against
the class (:class:`shared.commands.table.CommandTable`); the handler receives a decoded,
validated instance, never a dict.

On the wire a request stays ``{"cmd": "<tag>", "args": {<fields>}}`` (:mod:`shared.control`):
the envelope is what tells garbage (``decode``) from a request naming an unknown command or
bad arguments, which are counted apart (:mod:`shared.control_server`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

#: ``served_by`` of the commands every worker (and the supervisor) answers.
EVERY_WORKER = "*"


class Command(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    omit_defaults=True,
    tag_field="cmd",
):
    """Base of every control command (not a command itself: it has no tag)."""

    #: Workers that answer this command (names as in ``services.registry``, ``supervisor``, or
    #: :data:`EVERY_WORKER`). A test checks each one registers a handler for it.
    served_by: ClassVar[tuple[str, ...]] = ()
    #: The type of the answer's ``result`` (a Struct where the answer has a fixed shape): what
    #: :func:`shared.control.call` converts the result to. ``Any``: a free-form JSON answer.
    reply: ClassVar[Any] = Any

    @classmethod
    def command_name(cls) -> str:
        tag = cls.__struct_config__.tag
        assert isinstance(tag, str), f"{cls.__name__} has no tag"
        return tag

    def wire_args(self) -> dict[str, Any]:
        """The request's ``args`` object: the fields that differ from their defaults."""
        out: dict[str, Any] = msgspec.to_builtins(self)
        out.pop("cmd", None)
        return out


class Reply(msgspec.Struct, frozen=True, kw_only=True):
    """Base of a command's typed answer (encoded as a JSON object in the reply's ``result``)."""


class BadArgument(ValueError):
    """A request's arguments do not decode into its command (answered as ``bad_args``)."""

    def __init__(self, cmd: str, message: str, field: str = "") -> None:
        super().__init__(f"{cmd}: {message}")
        self.field = field


def _field_of(message: str) -> str:
    """The argument a msgspec validation message is about (``at `$.depth```, ``field `ticker```)."""
    for marker in ("- at `$.", "field `"):
        _, sep, tail = message.partition(marker)
        if sep:
            return tail.split("`", 1)[0].split(".", 1)[0].split("[", 1)[0]
    return ""


def decode(cls: type[Command], args: dict[str, Any]) -> Command:
    """``args`` as a ``cls``: types, ranges and unknown fields checked, or :class:`BadArgument`."""
    name = cls.command_name()
    if "cmd" in args:
        raise BadArgument(name, "unknown argument 'cmd' (the command is named by the envelope)", "cmd")
    try:
        return msgspec.convert(args, cls)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = _field_of(message)
        text = f"bad argument {field!r}: {message}" if field else message
        raise BadArgument(name, text, field) from None


__all__ = ["EVERY_WORKER", "BadArgument", "Command", "Reply", "decode"]
