"""The schema's MetaData (with its constraint naming) and its column shapes, shared by the
table modules (:mod:`schema`, :mod:`schema_account`)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, MetaData, Text

from shared.store.types import UtcTimestamp

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


def ts_col(name: str, nullable: bool = False) -> Column[object]:
    return Column(name, UtcTimestamp(), nullable=nullable)


def int_col(name: str, nullable: bool = False) -> Column[int]:
    return Column(name, BigInteger(), nullable=nullable)


def text_col(name: str, nullable: bool = False) -> Column[str]:
    return Column(name, Text(), nullable=nullable)


def bool_col(name: str, nullable: bool = False) -> Column[bool]:
    return Column(name, Boolean(), nullable=nullable)
