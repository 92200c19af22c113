"""Admin forms validated by the API's own serializers, so the admin accepts exactly what the API accepts.

A form gathers its cleaned values into the request body the API would get, runs the model's API serializer
on it with the object's account (so related objects of another account are refused as in the API), then
keeps the serializer's canonical values (a legacy model name becomes the model id). The serializer's errors
are shown on the form fields they concern.
"""
from __future__ import annotations

from django import forms
from django.db import models
from rest_framework import serializers

from .errors import flatten_details


def api_paths(serializer: serializers.Serializer) -> dict[str, str]:
    """{model field: where the API takes it}, e.g. {"call_timeout": "callTimeout", "llm_model": "answer_llm.model"}."""
    paths = {}
    for name, field in serializer.fields.items():
        if field.read_only:
            continue
        columns = getattr(field, "columns", None)  # a settings object kept as columns (bots' SettingsGroupField)
        if columns:
            paths.update({column: f"{name}.{key}" for key, column in columns.items()})
        elif field.source != "*":
            paths[field.source] = name
    return paths


def api_value(value):
    """A cleaned form value as the API's JSON would carry it: related objects by their ids."""
    if isinstance(value, models.Model):
        return str(value.pk)
    if isinstance(value, models.QuerySet):
        return [str(v.pk) for v in value]
    return value


def _put(body: dict, path: str, value) -> None:
    *parents, key = path.split(".")
    for parent in parents:
        body = body.setdefault(parent, {})
    body[key] = value


class ApiValidatedForm(forms.ModelForm):
    serializer_class: type[serializers.Serializer] = None
    # The account the object belongs to, set by the admin for members; superusers pick it in the form.
    owner_account = None

    def clean(self):
        data = super().clean()
        account = self.owner_account or data.get("account")
        if account is None:
            return data  # the account field says what is missing
        paths = {field: path for field, path in api_paths(self.serializer_class()).items() if field in self.fields}
        body: dict = {}
        for field, path in paths.items():
            if field in data:
                _put(body, path, api_value(data[field]))
        instance = None if self.instance._state.adding else self.instance
        serializer = self.serializer_class(instance, data=body, context={"account": account})
        if serializer.is_valid():
            canonical = serializer.validated_data
            data.update({field: canonical[field] for field in paths if field in canonical})
        else:
            self._show_api_errors(flatten_details(serializer.errors), paths)
        return data

    def _show_api_errors(self, details: dict[str, list[str]], paths: dict[str, str]) -> None:
        by_path = sorted(((path, field) for field, path in paths.items()), key=lambda item: -len(item[0]))
        for where, messages in details.items():
            field, rest = None, where
            for path, candidate in by_path:
                if where == path or where.startswith((path + ".", path + "[")):
                    field, rest = candidate, where[len(path):].lstrip(".")
                    break
            if field is not None and field in self.errors:
                continue  # the form field's own error already says what is wrong
            prefix = f"{rest}: " if rest else ""
            if field is None and where != "non_field_errors":
                prefix = f"{where}: "
            self.add_error(field, [prefix + message for message in messages])
