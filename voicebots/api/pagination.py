from __future__ import annotations

from urllib.parse import urlencode

from rest_framework.exceptions import ValidationError

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_OFFSET = 1_000_000_000  # PostgreSQL's OFFSET is a bigint: a client's 2**63 must be a 400, not a 500


def _int_param(request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValidationError({name: [f"Must be a whole number {bound}."]})
    return value


def paginate(request, queryset, list_key: str, serialize) -> dict:
    """Plivo-style page: {"meta": {limit, offset, total_count, next, previous}, list_key: [...]}."""
    limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0, MAX_OFFSET)
    total = queryset.count()
    items = list(queryset[offset : offset + limit])

    def page_url(new_offset: int) -> str:
        params = {k: v for k, v in request.query_params.items() if k not in ("limit", "offset")}
        params.update(limit=limit, offset=new_offset)
        return f"{request.path}?{urlencode(params)}"

    return {
        "meta": {
            "limit": limit,
            "offset": offset,
            "total_count": total,
            "next": page_url(offset + limit) if offset + limit < total else None,
            "previous": page_url(max(offset - limit, 0)) if offset > 0 else None,
        },
        list_key: [serialize(item) for item in items],
    }
