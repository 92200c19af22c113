"""The base of every account-scoped resource: the five operations with the contract's conventions."""
from __future__ import annotations

import uuid

from django.db import transaction
from rest_framework import exceptions, status, viewsets
from rest_framework.response import Response

from .pagination import paginate


class AccountResourceViewSet(viewsets.GenericViewSet):
    """Subclasses set `model`, `serializer_class`, `list_key` and `label`.

    Every query goes through `request.account` (set by the permission class), so an object of
    another account is indistinguishable from a missing one: both are 404.
    """

    model = None
    list_key = ""
    label = ""
    lookup_url_kwarg = "pk"

    def get_queryset(self):
        return self.model.objects.filter(account=self.request.account)

    def get_object(self):
        raw = self.kwargs[self.lookup_url_kwarg]
        try:
            pk = uuid.UUID(str(raw))
        except ValueError:
            pk = None
        obj = self.get_queryset().filter(pk=pk).first() if pk else None
        if obj is None:
            raise exceptions.NotFound(f"{self.label} {raw} not found.")
        return obj

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["account"] = getattr(self.request, "account", None)
        return context

    def serialize(self, obj, *, summary: bool = False) -> dict:
        """The object's JSON; `summary` (lists) lets serializers shorten long texts, which details give whole."""
        return self.get_serializer(obj, context={**self.get_serializer_context(), "summary": summary}).data

    def list(self, request, *args, **kwargs):
        return Response(paginate(request, self.get_queryset().order_by("-created_at"), self.list_key,
                                 lambda obj: self.serialize(obj, summary=True)))

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            obj = serializer.save(account=request.account)
        return Response(self.serialize(obj), status=status.HTTP_201_CREATED)

    def retrieve(self, request, *args, **kwargs):
        return Response(self.serialize(self.get_object()))

    def partial_update(self, request, *args, **kwargs):
        serializer = self.get_serializer(self.get_object(), data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        with transaction.atomic():
            serializer.save()
        return Response(status=status.HTTP_204_NO_CONTENT)

    def destroy(self, request, *args, **kwargs):
        self.get_object().delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


COLLECTION_ACTIONS = {"get": "list", "post": "create"}
ITEM_ACTIONS = {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}
