"""A report table written as XLSX, CSV or JSON into a temporary file, row by row (no table is held in memory).

XLSX is written with openpyxl's write-only mode (rows go to a temporary sheet file as they come, the zip is made
at the end), the header frozen, typed cells (numbers as numbers, times as Excel date-times in Asia/Shanghai, which
Excel cannot hold with a zone), the note row after the data. CSV is UTF-8 with a byte-order mark, so Excel opens
the Chinese text as UTF-8. JSON is an object with the columns, the notes and the rows (English keys).
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import IO, Any, Protocol

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from pydantic import BaseModel

#: A report up to this size stays in memory; a larger one spills to a temporary file.
SPOOL_BYTES = 8 * 1024 * 1024


class ReportFormat(StrEnum):
    """The formats of a report export."""

    XLSX = "xlsx"
    CSV = "csv"
    JSON = "json"

    @property
    def media_type(self) -> str:
        """The Content-Type of the format."""
        return MEDIA_TYPES[self]


MEDIA_TYPES = {
    ReportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ReportFormat.CSV: "text/csv; charset=utf-8",
    ReportFormat.JSON: "application/json",
}


class TableRow(Protocol):
    """A report row: a pydantic model whose :meth:`cells` are the table's values in column order."""

    def cells(self) -> list[Any]: ...  # pragma: no cover - protocol

    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...  # pragma: no cover - protocol


@dataclass(frozen=True)
class Table:
    """What is written: the sheet title, the columns (key, label), the notes and what the JSON envelope adds."""

    title_zh: str
    columns: Sequence[tuple[str, str]]
    notes: Sequence[str]
    meta: dict[str, Any]
    widths: Sequence[int] = ()


@dataclass
class Written:
    """The written export, rewound, and how many data rows it holds."""

    file: IO[bytes]
    rows: int


def _spool() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, mode="w+b")


def _excel_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)  # already Asia/Shanghai; Excel has no zones
    return value


def write_xlsx(table: Table, rows: Iterable[TableRow]) -> Written:
    """The table as an XLSX workbook of one sheet (write-only: constant memory in the number of rows)."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=table.title_zh[:31].replace('"', "")[:31] or "report")
    sheet.freeze_panes = "A2"
    for index, width in enumerate(table.widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    bold = Font(bold=True)
    header = []
    for _key, label in table.columns:
        cell = WriteOnlyCell(sheet, value=label)
        cell.font, cell.alignment = bold, Alignment(wrap_text=True, vertical="center")
        header.append(cell)
    sheet.append(header)
    count = 0
    for row in rows:
        # a datetime value gets openpyxl's date-time number format (yyyy-mm-dd h:mm:ss) without a styled cell
        sheet.append([_excel_value(value) for value in row.cells()])
        count += 1
    for note in table.notes:
        sheet.append([note])
    out = _spool()
    workbook.save(out)  # type: ignore[arg-type]
    out.seek(0)
    return Written(out, count)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return value


def write_csv(table: Table, rows: Iterable[TableRow]) -> Written:
    """The table as CSV: UTF-8 with a BOM, the header row, the rows, then the note row."""
    out = _spool()
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="")  # utf-8-sig writes the BOM first
    writer = csv.writer(text)
    writer.writerow([label for _key, label in table.columns])
    count = 0
    for row in rows:
        writer.writerow([_csv_value(value) for value in row.cells()])
        count += 1
    for note in table.notes:
        writer.writerow([note])
    text.flush()
    text.detach()
    out.seek(0)
    return Written(out, count)


def write_json(table: Table, rows: Iterable[TableRow]) -> Written:
    """The table as one JSON object: ``meta`` fields, ``title_zh``, ``columns``, ``notes``, ``rows``."""
    out = _spool()
    head = {**table.meta, "title_zh": table.title_zh,
            "columns": [{"key": key, "label_zh": label} for key, label in table.columns], "notes": list(table.notes)}
    opening = json.dumps(head, ensure_ascii=False)[:-1] + ', "rows": ['
    out.write(opening.encode("utf-8"))
    count = 0
    for row in rows:
        if count:
            out.write(b",")
        out.write(_model_json(row))
        count += 1
    out.write(b"]}")
    out.seek(0)
    return Written(out, count)


def _model_json(row: TableRow) -> bytes:
    if isinstance(row, BaseModel):
        return row.model_dump_json().encode("utf-8")
    return json.dumps(row.model_dump(mode="json"), ensure_ascii=False).encode("utf-8")


WRITERS = {ReportFormat.XLSX: write_xlsx, ReportFormat.CSV: write_csv, ReportFormat.JSON: write_json}


def write(table: Table, rows: Iterable[TableRow], report_format: ReportFormat) -> Written:
    """The table in ``report_format``."""
    return WRITERS[report_format](table, rows)


def negotiate(requested: ReportFormat | None, accept: str | None, default: ReportFormat) -> ReportFormat:
    """``format=`` when given, else the first of the three media types the ``Accept`` header names (by its
    quality values), else ``default`` (also for ``*/*``, no header, or only other types: the server's choice)."""
    if requested is not None:
        return requested
    ranked: list[tuple[float, int, ReportFormat]] = []
    for position, part in enumerate((accept or "").split(",")):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        for candidate, media_type in MEDIA_TYPES.items():
            if media.lower() == media_type.split(";")[0] and quality > 0:
                ranked.append((-quality, position, candidate))
    return min(ranked)[2] if ranked else default
