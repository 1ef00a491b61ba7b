"""Export stored market data to Parquet or CSV for research tools (DuckDB, pandas, Polars).

Streaming: rows come from :func:`shared.store.history.batches` (one server-side cursor) and
go out a batch at a time (a Parquet row group, or CSV lines), so memory is bounded by the
batch whatever the window holds. Exact: prices and counts stay integers (prices in $0.0001,
counts in hundredths of a contract); each column's unit is in the Parquet field metadata and
the file's ``kxfeed`` metadata (for CSV, in the ``.meta.json`` written beside it). Times are
Parquet ``timestamp[us, UTC]``; in CSV, integer microseconds since the Unix epoch (UTC).

Beside the data goes the gap table of the same window and markets (``<name>.gaps.<ext>``):
where the connector recorded the record as incomplete. Files are written under a temporary
name and renamed when complete: a failed export leaves no partial file under the name asked.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.store import deltapack, deltaread, history, history_csv
from shared.units import COUNT_SCALE, PRICE_SCALE

Format = Literal["parquet", "csv"]
FORMATS: tuple[Format, ...] = ("parquet", "csv")
#: Rows per batch (a Parquet row group): ~10 MB of Python objects at the widest kind.
BATCH = 50_000


class ExportUnavailable(RuntimeError):
    """Parquet asked for without pyarrow installed (the ``export`` extra)."""


@dataclass
class ExportResult:
    path: Path
    gaps_path: Path
    rows: int
    gaps: int
    extra: list[Path] = field(default_factory=list)  # CSV: the .meta.json files


def gaps_path(out: Path) -> Path:
    """``deltas.parquet`` -> ``deltas.gaps.parquet`` (the gap table beside the data)."""
    return out.with_name(f"{out.stem}.gaps{out.suffix}" if out.suffix else f"{out.name}.gaps")


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def describe(kind: history.Kind, q: history.Query | None) -> dict[str, Any]:
    """What a reader needs to interpret the file: kind, window, units of every column."""
    return {
        "kind": kind.name,
        "ticker": q.ticker if q else None,
        "series": q.series if q else None,
        "since": _iso(q.since) if q else None,
        "until": _iso(q.until) if q else None,
        "window": "[since, until) on ts (exchange time, else receive time)",
        "order": list(kind.order),
        "price_scale": PRICE_SCALE,
        "count_scale": COUNT_SCALE,
        "columns": {c.name: {"type": c.type, "unit": c.unit, "nullable": c.nullable} for c in kind.columns},
    }


# ---- Parquet ----------------------------------------------------------------------------------


def _arrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportUnavailable(
            "Parquet export needs pyarrow: pip install 'kxfeed[export]' (or use --format csv)"
        ) from None
    return pa, pq


def _has_arrow() -> bool:
    try:
        _arrow()
    except ExportUnavailable:
        return False
    return True


def arrow_schema(kind: history.Kind, q: history.Query | None) -> Any:
    pa, _ = _arrow()
    types = {
        "int": pa.int64(),
        "str": pa.string(),
        "levels": pa.string(),
        "bool": pa.bool_(),
        "ts": pa.timestamp("us", tz="UTC"),
    }
    fields = [
        pa.field(c.name, types[c.type], nullable=c.nullable, metadata={"unit": c.unit} if c.unit else None)
        for c in kind.columns
    ]
    return pa.schema(fields, metadata={"kxfeed": json.dumps(describe(kind, q))})


class _ParquetSink:
    def __init__(self, path: Path, kind: history.Kind, q: history.Query | None) -> None:
        self.pa, pq = _arrow()
        self.schema = arrow_schema(kind, q)
        self.types = [f.type for f in self.schema]
        # zstd's fastest level: half the size of snappy's output, at a fraction of level 3's time.
        self.writer = pq.ParquetWriter(str(path), self.schema, compression="zstd", compression_level=1)
        self.kind = kind
        self._csv: tuple[Any, Any, Any] | None = None

    def _csv_options(self) -> tuple[Any, Any, Any]:
        if self._csv is None:
            from pyarrow import csv as pacsv

            pa = self.pa
            # Times arrive as integer microseconds: parsed as int64, then cast (exact).
            types = {f.name: (pa.int64() if pa.types.is_timestamp(f.type) else f.type) for f in self.schema}
            self._csv = (
                pacsv.ReadOptions(column_names=list(self.kind.names), block_size=1 << 26),
                pacsv.ParseOptions(newlines_in_values=True),
                pacsv.ConvertOptions(
                    column_types=types,
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                    null_values=[""],
                    true_values=["true"],
                    false_values=["false"],
                ),
            )
        return self._csv

    def write_csv(self, rows: int, text: bytes) -> None:
        """A batch as the store's CSV text (:func:`history_csv.csv_chunks`), parsed by Arrow in C."""
        from pyarrow import csv as pacsv

        read, parse, convert = self._csv_options()
        table = pacsv.read_csv(self.pa.BufferReader(text), read, parse, convert)
        if table.num_rows != rows:
            raise RuntimeError(f"export: {rows} rows read, {table.num_rows} parsed")
        cols = [col.cast(f.type) for col, f in zip(table.columns, self.schema, strict=True)]
        self.writer.write_table(self.pa.Table.from_arrays(cols, schema=self.schema), row_group_size=rows)

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        pa = self.pa
        cols = list(zip(*rows, strict=True))
        arrays = [pa.array(col, type=t) for col, t in zip(cols, self.types, strict=True)]
        self.writer.write_batch(pa.record_batch(arrays, schema=self.schema))

    def write_table(self, table: Any) -> None:
        self.writer.write_table(table.cast(self.schema), row_group_size=max(table.num_rows, 1))

    def close(self) -> None:
        self.writer.close()


# ---- CSV --------------------------------------------------------------------------------------


class _CsvSink:
    def __init__(self, path: Path, kind: history.Kind, q: history.Query | None) -> None:
        self.file = path.open("w", newline="", encoding="utf-8")
        self.out = csv.writer(self.file, lineterminator="\n")
        self.out.writerow(kind.names)
        # Booleans as true/false (what DuckDB and pandas read as booleans), not Python's True.
        self.bools = [i for i, c in enumerate(kind.columns) if c.type == "bool"]

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        if self.bools:
            fixed = []
            for r in rows:
                r = list(r)
                for i in self.bools:
                    r[i] = "true" if r[i] else "false"
                fixed.append(r)
            self.out.writerows(fixed)
        else:
            self.out.writerows(rows)

    def write_csv(self, rows: int, text: bytes) -> None:
        """A batch as the store's CSV text: already this file's format."""
        self.file.flush()
        self.file.buffer.write(text)

    def write_table(self, table: Any) -> None:
        """An Arrow table (deltas), written by Arrow's CSV writer: strings quoted, times as
        integer microseconds like the rest of this format."""
        pa, _ = _arrow()
        from pyarrow import csv as pacsv

        cols = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in table.columns]
        self.file.flush()
        out = pa.Table.from_arrays(cols, names=table.column_names)
        pacsv.write_csv(out, self.file.buffer, pacsv.WriteOptions(include_header=False))

    def close(self) -> None:
        self.file.close()


# ---- deltas: runs to Arrow without a Python object per value ------------------------------------


class _DeltaArrow:
    """Stored runs as Arrow record batches in KINDS["deltas"] column order: each column of a
    run (:func:`deltapack.decode`'s sections) becomes an Arrow array over the body's own bytes,
    widened to int64 and offset by its base in C."""

    def __init__(self, pa: Any, names: dict[int, str], schema: Any) -> None:
        import pyarrow.compute as pc

        self.pa, self.pc, self.schema = pa, pc, schema
        top = max(names, default=0)
        self.tickers = pa.array([names.get(i) for i in range(top + 1)], pa.string())
        self.sides = pa.array(deltapack.SIDES, pa.string())
        self.ints = {1: pa.int8(), 2: pa.int16(), 4: pa.int32(), 8: pa.int64()}
        self.ts = pa.timestamp("us", tz="UTC")

    def _col(self, buf: Any, d: deltapack.Decoded, name: str) -> Any:
        pa, pc = self.pa, self.pc
        sec = d.sections[name]
        raw = pa.Array.from_buffers(self.ints[sec.width], d.n, [None, buf.slice(sec.offset, sec.width * d.n)])
        wide = raw.cast(pa.int64())
        return pc.add_checked(wide, pa.scalar(sec.base, pa.int64())) if sec.base else wide

    def batch(self, run: Sequence[Any]) -> Any:
        pa = self.pa
        c, sid, body = run[0], run[1], run[-1]
        d = deltapack.decode(body)
        buf = pa.py_buffer(body)
        n = d.n
        ticker = self.tickers.take(self._col(buf, d, "market"))
        cols = [
            ticker,
            pa.repeat(pa.scalar(c, pa.int64()), n),
            pa.repeat(pa.scalar(sid, pa.int64()), n),
            self._col(buf, d, "xseq"),
            self.sides.take(self._col(buf, d, "side")),
            self._col(buf, d, "price"),
            self._col(buf, d, "delta"),
            self._col(buf, d, "ts").cast(self.ts),
            self._col(buf, d, "recv").cast(self.ts),
        ]
        return pa.record_batch(cols, schema=self.schema)

    def rows(self, rows: list[deltapack.DeltaTuple]) -> Any:
        """Deltas already unpacked (runs that overlapped, merged in Python)."""
        cols = list(zip(*[[r[i] for i in (3, 0, 1, 2, 4, 5, 6, 7, 8)] for r in rows], strict=True))
        arrays = [self.pa.array(col, type=f.type) for col, f in zip(cols, self.schema, strict=True)]
        return self.pa.record_batch(arrays, schema=self.schema)

    def keep(self, rb: Any, f: deltaread.DeltaFilter, keep: frozenset[str] | None) -> Any:
        pc, pa = self.pc, self.pa
        masks = []
        if keep is not None:
            masks.append(pc.is_in(rb.column(0), value_set=pa.array(sorted(keep), pa.string())))
        ts = rb.column(7).cast(pa.int64())
        if f.ts_since is not None:
            masks.append(pc.greater_equal(ts, f.ts_since))
        if f.ts_until is not None:
            masks.append(pc.less(ts, f.ts_until))
        if not masks:
            return rb
        mask = masks[0]
        for m in masks[1:]:
            mask = pc.and_(mask, m)
        return rb.filter(mask)


async def _delta_arrow(
    engine: AsyncEngine, q: history.Query, sink: _ParquetSink | _CsvSink, batch: int
) -> int:
    """Deltas of ``q`` into ``sink`` as Arrow tables of ``batch`` rows (a Parquet row group)."""
    pa, _ = _arrow()
    schema = arrow_schema(history.KINDS["deltas"], q)
    f = history.delta_filter(q)
    rows = 0
    async with engine.connect() as conn:
        keep = await deltaread.wanted(conn, f)
        if keep is not None and not keep:
            return 0
        names = await deltaread.names(conn)
        conv = _DeltaArrow(pa, names, schema)
        group: list[Any] = []  # runs of one subscription that overlap (held until the next starts past)
        ready: list[Any] = []
        held = 0

        def flush_group() -> None:
            nonlocal held
            if len(group) == 1:
                rb = conv.batch(group[0])
            else:  # a later run filled a hole of an earlier one: merge them in xseq order
                merged = sorted(
                    (r for run in group for r in deltapack.rows_of(run, names.__getitem__)),
                    key=lambda r: r[2],
                )
                rb = conv.rows(merged)
            rb = conv.keep(rb, f, keep)
            if rb.num_rows:
                ready.append(rb)
                held += rb.num_rows
            group.clear()

        def write(upto: int) -> None:
            """Row groups of ``batch`` rows while ``upto`` or more are held."""
            nonlocal held, rows
            while held >= upto and held:
                table = pa.Table.from_batches(ready, schema=schema)
                head = table.slice(0, batch)
                sink.write_table(head)
                rows += head.num_rows
                held -= head.num_rows
                ready[:] = table.slice(batch).to_batches() if held else []

        async for run in deltaread.runs(conn, f):
            if group and (
                (group[0][0], group[0][1]) != (run[0], run[1]) or run[2] > max(g[3] for g in group)
            ):
                flush_group()
                write(batch)
            group.append(run)
        if group:
            flush_group()
        write(1)
    return rows


def _sink(fmt: Format, path: Path, kind: history.Kind, q: history.Query | None) -> _ParquetSink | _CsvSink:
    if fmt == "parquet":
        return _ParquetSink(path, kind, q)
    return _CsvSink(path, kind, q)


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.part")


def _write_meta(path: Path, meta: dict[str, Any]) -> Path:
    target = path.with_name(f"{path.name}.meta.json")
    tmp = _tmp(target)
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


async def export(
    engine: AsyncEngine, q: history.Query, fmt: Format, out: Path, *, batch: int = BATCH
) -> ExportResult:
    """Write ``q``'s rows to ``out`` and the window's gap records beside it."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        _arrow()  # fail before touching the database or the disk
    kind = history.KINDS[q.kind]
    out.parent.mkdir(parents=True, exist_ok=True)
    gp = gaps_path(out)
    tmp, gtmp = _tmp(out), _tmp(gp)
    rows = 0
    try:
        sink = _sink(fmt, tmp, kind, q)
        try:
            if q.kind == "deltas" and (fmt == "parquet" or _has_arrow()):
                rows = await _delta_arrow(engine, q, sink, batch)
            elif history_csv.csv_ready(engine, q.kind):
                async for n, text in history_csv.csv_chunks(engine, q, size=batch):
                    sink.write_csv(n, text)
                    rows += n
            else:
                async for part in history.batches(engine, q, size=batch):
                    sink.write(part)
                    rows += len(part)
        finally:
            sink.close()
        gap_rows = await history.gap_rows(
            engine, ticker=q.ticker, series=q.series, since=q.since, until=q.until
        )
        gsink = _sink(fmt, gtmp, history.GAPS, q)
        try:
            if gap_rows:
                gsink.write(gap_rows)
        finally:
            gsink.close()
        os.replace(gtmp, gp)
        os.replace(tmp, out)
    finally:
        for p in (tmp, gtmp):
            p.unlink(missing_ok=True)
    extra = []
    if fmt == "csv":
        extra = [_write_meta(out, describe(kind, q)), _write_meta(gp, describe(history.GAPS, q))]
    return ExportResult(out, gp, rows, len(gap_rows), extra)
