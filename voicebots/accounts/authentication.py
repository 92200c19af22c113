"""API authentication: HTTP Basic with an account's auth_id and auth_token, and the account on the path."""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from rest_framework import authentication, exceptions, permissions

from . import services
from .models import Account


@dataclass(frozen=True)
class AccountPrincipal:
    """The caller of an API request authenticated with account credentials."""

    account: Account
    is_authenticated: bool = True
    is_superuser: bool = False


class AccountBasicAuthentication(authentication.BaseAuthentication):
    www_authenticate_realm = "Voicebots API"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        if not header:
            return None
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            auth_id, sep, token = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed("The Authorization header is not valid HTTP Basic.")
        if not sep:
            raise exceptions.AuthenticationFailed("The Authorization header is not valid HTTP Basic.")
        account = services.authenticate(auth_id, token)
        if account is None:
            raise exceptions.AuthenticationFailed("Invalid auth_id or auth_token.")
        return AccountPrincipal(account), account

    def authenticate_header(self, request):
        return f'Basic realm="{self.www_authenticate_realm}"'


class IsAccountOnPath(permissions.BasePermission):
    """The caller must belong to the account named in the URL (superusers may act for any account).

    Sets `request.account`, the one account every query of the view is scoped to.
    """

    message = "These credentials do not belong to the account in the URL."

    def has_permission(self, request, view):
        if request.user is None or not request.user.is_authenticated:
            raise exceptions.NotAuthenticated("Authentication credentials were not provided.")
        path_auth_id = view.kwargs.get("auth_id")
        user = request.user
        if isinstance(user, AccountPrincipal):
            account = user.account if user.account.auth_id == path_auth_id else None
        else:  # a signed-in browser user acts for any account they belong to
            account = services.accounts_of_user(user).filter(auth_id=path_auth_id).first()
        if account is not None:
            request.account = account
            return True
        if getattr(request.user, "is_superuser", False):
            request.account = Account.objects.filter(auth_id=path_auth_id).first()
            return request.account is not None
        return False
