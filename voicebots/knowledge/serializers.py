from django.conf import settings
from rest_framework import serializers

from .models import Knowledgebase


class KnowledgebaseSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="Downloads the original file (authenticated).")
    progress = serializers.SerializerMethodField(help_text="Chunks embedded of the total, while processing.")

    class Meta:
        model = Knowledgebase
        fields = [
            "id", "name", "url", "status", "error", "chunk_count", "progress", "size", "content_type", "checksum",
            "created_at", "updated_at",
        ]
        read_only_fields = fields

    def get_url(self, obj) -> str:
        return f"{settings.PUBLIC_BASE_URL}/v1/Account/{obj.account.auth_id}/Knowledgebase/{obj.id}/file"

    def get_progress(self, obj) -> dict:
        return {"chunks_done": obj.chunks_done, "chunks_total": obj.chunks_total}
