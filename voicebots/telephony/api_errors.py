"""How a Plivo failure reads in our API: the account's Plivo setup (409), Plivo unavailable after retries
(502), or what Plivo refused (400, 404), each with one clear sentence."""
from rest_framework import exceptions, status

from voicebots.api.errors import Conflict
from voicebots.providers.plivo_api import PlivoApiError

from .rest import PlivoNotConfigured


class PlivoUnavailable(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "Plivo is unavailable; try again later."


def api_error(error: Exception, *, not_found: str = "") -> exceptions.APIException:
    if isinstance(error, PlivoNotConfigured):
        return Conflict(str(error))
    if error.kind == PlivoApiError.AUTH:
        return Conflict("Plivo refused this account's Plivo credentials: check its Plivo auth id and auth token "
                        "(admin: Accounts).")
    if error.kind == PlivoApiError.UNAVAILABLE:
        return PlivoUnavailable(f"Plivo is unavailable ({error.message}); tried several times, try again later.")
    if error.kind == PlivoApiError.NOT_FOUND and not_found:
        return exceptions.NotFound(not_found)
    return exceptions.ValidationError({"non_field_errors": [f"Plivo refused the request: {error.message}"]})
