"""Contacts from CSV: a phone column (E.164), an optional timezone column, every other column a variable.

Every bad row is reported with its line number; none is dropped silently. A file that cannot be read as
CSV at all raises CsvFileError.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from voicebots.calls.phone_numbers import e164_problem
from voicebots.calls.templating import VARIABLE_NAME

from .windows import zone

MAX_ROWS = 100_000
PHONE_COLUMNS = ("phone", "phone_number")
TIMEZONE_COLUMNS = ("timezone", "time_zone")


class CsvFileError(ValueError):
    """The file as a whole is unusable (encoding, header, structure)."""


@dataclass(frozen=True)
class ContactRow:
    line: int
    phone_number: str
    timezone: str
    variables: dict


@dataclass(frozen=True)
class RowError:
    line: int
    error: str  # a sentence
    phone_number: str = ""


@dataclass
class ParsedContacts:
    rows: list[ContactRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CsvFileError(f"The file is not UTF-8 text (byte {error.start} cannot be read); save the CSV as UTF-8.")


def _dialect(text: str):
    try:
        return csv.Sniffer().sniff(text[:4096].split("\n", 1)[0] or ",", delimiters=",;\t")
    except csv.Error:
        return csv.excel


def _header(names: list[str]) -> tuple[int, int | None, list[tuple[int, str]]]:
    """Positions of the phone and timezone columns, and the (position, name) of the variable columns."""
    names = [name.strip() for name in names]
    if any("\x00" in name for name in names):
        raise CsvFileError("The header contains a NUL character; save the CSV as plain UTF-8 text.")
    lowered = [name.lower() for name in names]
    phone = next((lowered.index(c) for c in PHONE_COLUMNS if c in lowered), None)
    if phone is None:
        raise CsvFileError(
            f"The header has no phone column (expected 'phone'); it has: {', '.join(names) or 'nothing'}.")
    tz = next((lowered.index(c) for c in TIMEZONE_COLUMNS if c in lowered), None)
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise CsvFileError(f"The header names {', '.join(duplicates)} more than once.")
    variables = []
    for position, name in enumerate(names):
        if position in (phone, tz):
            continue
        if not VARIABLE_NAME.match(name):
            raise CsvFileError(f"Column '{name}' cannot be a {{{{variable}}}}: use letters, digits and _ "
                               f"(not starting with a digit), e.g. {'_'.join(name.split()) or 'name'}.")
        variables.append((position, name))
    return phone, tz, variables


def parse(data: bytes, *, required: list[str], existing_numbers: set[str]) -> ParsedContacts:
    """Rows of `data`, checked: E.164 phone, known time zone, a value for each `required` variable, no
    number twice (in the file or already in `existing_numbers`)."""
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""), _dialect(text), strict=True)
    parsed, seen = ParsedContacts(), {}
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise CsvFileError("The file is empty; the first line must be a header with a 'phone' column.")
        phone_at, tz_at, variable_columns = _header(header)
        line = reader.line_num
        for cells in reader:
            start, line = line + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue  # a blank line is not a contact
            if len(parsed.rows) + len(parsed.errors) >= MAX_ROWS:
                raise CsvFileError(f"The file has more than {MAX_ROWS:,} contacts; split it.")
            row, problem = _row(start, cells, len(header), phone_at, tz_at, variable_columns, required)
            if problem is None and row.phone_number in existing_numbers:
                problem = f"{row.phone_number} is already a contact of this campaign."
            elif problem is None and row.phone_number in seen:
                problem = f"{row.phone_number} repeats the number of line {seen[row.phone_number]}."
            if problem is None:
                seen[row.phone_number] = start
                parsed.rows.append(row)
            else:
                parsed.errors.append(RowError(start, problem, cells[phone_at].strip() if phone_at < len(cells) else ""))
    except csv.Error as error:
        raise CsvFileError(f"Malformed CSV at line {reader.line_num}: {error}.")
    if not parsed.rows and not parsed.errors:
        raise CsvFileError("The file has a header but no contacts.")
    return parsed


def _row(line, cells, width, phone_at, tz_at, variable_columns, required) -> tuple[ContactRow | None, str | None]:
    if len(cells) != width:
        return None, f"It has {len(cells)} fields where the header has {width}."
    if any("\x00" in cell for cell in cells):
        return None, "It contains a NUL character, which cannot be stored; remove it."
    phone = cells[phone_at].strip()
    if not phone:
        return None, "It has no phone number."
    problem = e164_problem(phone)
    if problem:
        return None, problem
    tz = cells[tz_at].strip() if tz_at is not None else ""
    if tz:
        try:
            zone(tz)
        except ValueError as error:
            return None, str(error)
    variables = {name: cells[position].strip() for position, name in variable_columns if cells[position].strip()}
    missing = [name for name in required if name not in variables]
    if missing:
        return None, "It has no value for " + ", ".join("{{" + name + "}}" for name in missing) + "."
    return ContactRow(line, phone, tz, variables), None
