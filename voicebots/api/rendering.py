import uuid

from rest_framework.renderers import JSONRenderer


class ApiJSONRenderer(JSONRenderer):
    """Every JSON object the API returns carries a fresh `api_id`, as Plivo's do."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict) and "api_id" not in data:
            data = {"api_id": str(uuid.uuid4()), **data}
        return super().render(data, accepted_media_type, renderer_context)
