"""A command's command line, derived from its class: one option per field, help from docstrings.

``--field VALUE`` per field (required fields are required options); a ``bool`` field is a flag,
a ``list`` field takes several values, a ``Literal`` field its choices. Values are parsed by
msgspec when the instance is built (:func:`from_namespace`), so the command line validates
exactly what the control socket validates. A field's help is the docstring under it in the
command's module (read from the source: one module per command).
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import json
import textwrap
import types
import typing
from functools import cache
from typing import Any, Literal, get_args, get_origin

import msgspec

from shared.commands.base import Command, decode


@cache
def field_docs(cls: type[Command]) -> dict[str, str]:
    """``{field: docstring}`` from the string literal under each field in the class body
    (and its command bases': ``fault`` documents ``inject``'s fields by inheriting them)."""
    out: dict[str, str] = {}
    for base in reversed(cls.__mro__[1:]):
        if isinstance(base, type) and issubclass(base, Command) and base is not Command:
            out.update(field_docs(base))
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for stmt, nxt in itertools.pairwise(body):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            out[stmt.target.id] = nxt.value.value
    return out


def _bare(tp: Any) -> Any:
    """``tp`` without ``Annotated`` and without ``| None``."""
    while get_origin(tp) is typing.Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (typing.Union, types.UnionType):
        rest = [a for a in get_args(tp) if a is not type(None)]
        if len(rest) == 1:
            return _bare(rest[0])
    return tp


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _value(text: str) -> Any:
    """A command-line value as JSON when it is JSON (numbers), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def add_arguments(parser: argparse.ArgumentParser, cls: type[Command]) -> None:
    """One option per field of ``cls`` on ``parser``."""
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in msgspec.structs.fields(cls):
        tp = _bare(hints[f.name])
        required = f.required
        default = None if required else f.default
        helptext = docs.get(f.name, "")
        if default is not None and default != []:
            helptext += f" (default {default})"
        kw: dict[str, Any] = {"dest": f.name, "help": helptext.strip() or None, "default": None}
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif get_origin(tp) is list:
            kw.update(nargs="+", metavar=f.name.upper().rstrip("S"))
        elif get_origin(tp) is Literal:
            kw.update(choices=[str(a) for a in get_args(tp)])
        elif tp is str:
            kw.update(metavar=f.name.upper())
        else:
            kw.update(type=_value, metavar=f.name.upper())
        parser.add_argument(_option(f.name), required=required, **kw)


def from_namespace(cls: type[Command], ns: argparse.Namespace) -> Command:
    """The command the options on ``ns`` describe (unset options keep the field's default).

    Raises :class:`~shared.commands.base.BadArgument` for a value the field refuses.
    """
    args = {
        f.name: getattr(ns, f.name)
        for f in msgspec.structs.fields(cls)
        if getattr(ns, f.name, None) is not None
    }
    return decode(cls, args)


def summary(cls: type[Command]) -> str:
    """The first line of the command's docstring (its one-line help)."""
    return (cls.__doc__ or "").strip().split("\n", 1)[0]


__all__ = ["add_arguments", "field_docs", "from_namespace", "summary"]
