"""GET/PATCH /v1/Account/{auth_id}/: the account itself, as Plivo's own account resource."""
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.response import Response

from . import services
from .serializers import AccountChangesSerializer, AccountSerializer


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A service this request needs is unavailable; try again."


class AccountViewSet(viewsets.ViewSet):
    serializer_class = AccountSerializer
    label = "Account"
    error_statuses = {"partial_update": (503,)}  # Plivo unreachable; see api/openapi_hooks.py

    @extend_schema(responses={200: AccountSerializer})
    def retrieve(self, request, *args, **kwargs):
        """The account itself; no secret is ever shown."""
        return Response(AccountSerializer(request.account).data)

    @extend_schema(request=AccountChangesSerializer, responses={204: None})
    def partial_update(self, request, *args, **kwargs):
        """Change the name, the Plivo credentials (checked with Plivo first) or the recording retention."""
        changes = AccountChangesSerializer(data=request.data, context={"account": request.account})
        changes.is_valid(raise_exception=True)
        try:
            services.update_account(request.account, changes.validated_data)
        except services.PlivoCredentialsRefused as error:
            field = "plivo_auth_token" if "plivo_auth_token" in changes.validated_data else "plivo_auth_id"
            raise exceptions.ValidationError({field: [str(error)]})
        except services.PlivoUnreachable as error:
            raise ServiceUnavailable(str(error))
        return Response(status=status.HTTP_204_NO_CONTENT)
