from django.conf import settings
from rest_framework import serializers

from voicebots.api.serializers import StrictSerializer

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


class SearchRequestSerializer(StrictSerializer):
    query = serializers.CharField(max_length=2000)
    knowledgebase_ids = serializers.ListField(child=serializers.UUIDField(), required=False, allow_empty=False)
    top_k = serializers.IntegerField(required=False, default=5, min_value=1, max_value=20)

    def validate_knowledgebase_ids(self, ids):
        ids = list(dict.fromkeys(ids))
        owned = set(Knowledgebase.objects.filter(account=self.context["account"], pk__in=ids)
                    .values_list("pk", flat=True))
        missing = [str(i) for i in ids if i not in owned]
        if missing:
            raise serializers.ValidationError(f"No Knowledgebase with id {', '.join(missing)} in this account.")
        return ids


class SearchHitSerializer(serializers.Serializer):
    text = serializers.CharField()
    score = serializers.FloatField()
    knowledgebase_id = serializers.UUIDField()
    name = serializers.CharField()
    page = serializers.IntegerField(allow_null=True)
    heading_path = serializers.ListField(child=serializers.CharField())
