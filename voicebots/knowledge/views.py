from django.db import transaction
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from voicebots.api.parsers import SafeJSONParser
from voicebots.api.views import AccountResourceViewSet
from voicebots.vendors.registry import ProviderUnavailable

from . import filetypes
from .embeddings import EmbeddingError
from .models import Knowledgebase
from .retrieval import search
from .serializers import KnowledgebaseSerializer, SearchHitSerializer, SearchRequestSerializer
from .services import schedule_processing
from .uploads import check_upload, safe_file_name


class EmbeddingUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE


class KnowledgebaseViewSet(AccountResourceViewSet):
    model = Knowledgebase
    serializer_class = KnowledgebaseSerializer
    list_key = "documents"
    label = "Knowledgebase"

    parser_classes = [MultiPartParser, FormParser, SafeJSONParser]
    rate_classes = {"create": "upload", "partial_update": "upload", "search": "search"}  # see api/rate_limits.py
    # The same file twice (409); the embedding provider unavailable (503). See api/openapi_hooks.py.
    error_statuses = {"create": (409,), "partial_update": (409,), "search": (503,)}

    def get_queryset(self):
        return super().get_queryset().select_related("account")

    @extend_schema(request={"multipart/form-data": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}})
    def create(self, request, *args, **kwargs):
        """Upload a document (multipart `file`: PDF, DOCX, Markdown, plain text or HTML, recognised by content).
        It is processed in the background: `status` goes from `processing` to `ready` or `failed`."""
        checked = check_upload(request, request.account)
        with transaction.atomic():
            document = Knowledgebase(
                account=request.account, name=checked.name, size=checked.size,
                content_type=checked.content_type, checksum=checked.checksum,
            )
            document.file.save(checked.name, checked.file, save=False)
            document.save()
            schedule_processing(document)
        return Response(self.serialize(document), status=status.HTTP_201_CREATED)

    @extend_schema(request={"multipart/form-data": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}})
    def partial_update(self, request, *args, **kwargs):
        """Replace the document's file (multipart `file`); it is processed again. Answers 204 with no body."""
        document = self.get_object()
        checked = check_upload(request, request.account, replacing=document)
        with transaction.atomic():
            document = Knowledgebase.objects.select_for_update().get(pk=document.pk)
            old_file = document.file.name
            document.file.save(checked.name, checked.file, save=False)
            document.name, document.size = checked.name, checked.size
            document.content_type, document.checksum = checked.content_type, checked.checksum
            document.status, document.error = Knowledgebase.Status.PROCESSING, ""
            document.chunks_done = document.chunks_total = document.processing_attempts = 0
            document.version += 1
            document.save()
            schedule_processing(document)
            transaction.on_commit(lambda: document.file.storage.delete(old_file))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def destroy(self, request, *args, **kwargs):
        document = self.get_object()
        stored = document.file.name
        document.delete()
        transaction.on_commit(lambda: document.file.storage.delete(stored))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={(200, *filetypes.CONTENT_TYPES): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def download(self, request, *args, **kwargs):
        """The original file as uploaded."""
        document = self.get_object()
        try:
            handle = document.file.open("rb")
        except FileNotFoundError:
            raise exceptions.NotFound("The stored file of this document is missing.")
        return FileResponse(handle, as_attachment=True, filename=safe_file_name(document.name),
                            content_type=document.content_type)

    @extend_schema(request=SearchRequestSerializer, responses=inline_serializer("SearchResults", {
        "results": SearchHitSerializer(many=True),
        "timings_ms": serializers.DictField(child=serializers.FloatField(), help_text="embed_ms, query_ms, total_ms"),
    }))
    @action(detail=False, methods=["post"])
    def search(self, request, *args, **kwargs):
        """What a bot would find: hybrid search over the account's (or the given) documents."""
        query = SearchRequestSerializer(data=request.data, context=self.get_serializer_context())
        query.is_valid(raise_exception=True)
        document_ids = query.validated_data.get("knowledgebase_ids") or list(
            self.get_queryset().values_list("id", flat=True)
        )
        try:
            result = search(request.account.pk, query.validated_data["query"], document_ids,
                            top_k=query.validated_data["top_k"])
        except (EmbeddingError, ProviderUnavailable) as error:  # the embedding provider, not the request
            raise EmbeddingUnavailable(f"The question could not be embedded: {error.message}") from error
        return Response({"results": SearchHitSerializer(result.hits, many=True).data,
                         "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()}})
