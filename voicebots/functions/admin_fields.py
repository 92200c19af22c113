"""Form fields that edit a function's parameters as rows of inputs instead of raw JSON.

They only turn rows into the API's JSON shape and back; what is valid is the API serializer's decision.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from django import forms
from django.utils.html import format_html, format_html_join

from .serializers import PARAMETER_TYPES

BLANK_ROWS = 3  # room to add parameters; more appear after saving


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    choices: tuple[str, ...] = ()
    checkbox: bool = False


class SubmittedRows(list):
    """Rows as the browser sent them (text), as opposed to the stored values they are shown from."""


class RowsWidget(forms.Widget):
    """A table with one row of inputs per item, named `{name}-{row}-{key}`, plus blank rows to add more."""

    def __init__(self, columns: tuple[Column, ...], attrs=None):
        super().__init__(attrs)
        self.columns = columns

    def value_from_datadict(self, data, files, name) -> SubmittedRows:
        rows, index = SubmittedRows(), 0
        while any(f"{name}-{index}-{column.key}" in data for column in self.columns):
            rows.append({column.key: (f"{name}-{index}-{column.key}" in data) if column.checkbox
                         else data.get(f"{name}-{index}-{column.key}", "").strip() for column in self.columns})
            index += 1
        return rows

    def value_omitted_from_data(self, data, files, name) -> bool:
        return not any(key.startswith(f"{name}-") for key in data)

    def _input(self, name: str, column: Column, value) -> str:
        if column.checkbox:
            return format_html('<input type="checkbox" name="{}"{}>', name, " checked" if value else "")
        if column.choices:
            options = format_html_join("", '<option value="{}"{}>{}</option>', (
                (choice, " selected" if choice == value else "", choice) for choice in ("", *column.choices)))
            return format_html('<select name="{}">{}</select>', name, options)
        return format_html('<input type="text" name="{}" value="{}">', name, value or "")

    def render(self, name, value, attrs=None, renderer=None):
        rows = list(value or []) + [{}] * BLANK_ROWS
        head = format_html_join("", "<th>{}</th>", ((column.label,) for column in self.columns))
        body = format_html_join("", "<tr>{}</tr>", (
            (format_html_join("", "<td>{}</td>", (
                (self._input(f"{name}-{index}-{column.key}", column, row.get(column.key)),)
                for column in self.columns)),)
            for index, row in enumerate(rows)))
        return format_html('<table class="parameter-rows"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
                           head, body)


class RowsField(forms.Field):
    """Rows of a parameter table as a list of objects; rows left blank are dropped."""

    columns: tuple[Column, ...] = ()

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(widget=RowsWidget(self.columns), **kwargs)

    def to_python(self, rows) -> list[dict]:
        filled = [row for row in rows or [] if any(row.get(c.key) for c in self.columns if not c.checkbox)]
        return [self.from_row(row) for row in filled]

    def prepare_value(self, value):
        if isinstance(value, SubmittedRows):  # shown again as typed, after an error
            return value
        return [self.to_row(item) for item in value or [] if isinstance(item, dict)]

    def from_row(self, row: dict) -> dict:
        return row

    def to_row(self, item: dict) -> dict:
        return item


class UserParametersField(RowsField):
    """What the model fills in: name, type, description and whether it is required."""

    columns = (Column("name", "Name"), Column("type", "Type", choices=PARAMETER_TYPES),
               Column("description", "Description"), Column("required", "Required", checkbox=True))

    def to_row(self, item: dict) -> dict:
        return {**item, "required": bool(item.get("required"))}


def literal_value(text: str):
    """A fixed value as typed: JSON (42, true, "quoted text", {...}) when it reads as JSON, otherwise the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def typed_value(value) -> str:
    """The text that `literal_value` reads back as `value`."""
    if isinstance(value, str) and literal_value(value) == value:
        return value
    return json.dumps(value)


class FixedParametersField(RowsField):
    """Constants sent with every call of the function and never shown to the model."""

    columns = (Column("name", "Name"), Column("value", "Value (42, true and \"quoted\" are JSON; other text is text)"))

    def from_row(self, row: dict) -> dict:
        return {"name": row["name"], "value": literal_value(row["value"])}

    def to_row(self, item: dict) -> dict:
        if "value" not in item:
            return item
        return {"name": item.get("name", ""), "value": typed_value(item["value"])}
