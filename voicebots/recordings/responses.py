"""The audio of a recording as an HTTP response, whole (200) or one byte range (206), streamed from storage."""
from __future__ import annotations

from django.http import HttpResponse, StreamingHttpResponse

from . import storage
from .models import Recording
from .ranges import Unsatisfiable, byte_range


def audio_response(recording: Recording, range_header: str | None, *, filename: str) -> HttpResponse:
    """Raises FileNotFoundError when the stored file is gone."""
    size = recording.size_bytes or storage.size(recording.name)
    try:
        wanted = byte_range(range_header, size)
    except Unsatisfiable:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        response["Accept-Ranges"] = "bytes"
        return response
    start, end = wanted if wanted is not None else (0, size - 1)
    response = StreamingHttpResponse(storage.read_range(recording.name, start, end), content_type="audio/wav",
                                     status=206 if wanted is not None else 200)
    response["Content-Length"] = str(end - start + 1)
    response["Accept-Ranges"] = "bytes"
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    response["Cache-Control"] = "private, no-cache"
    if wanted is not None:
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    return response
