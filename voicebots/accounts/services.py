from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from voicebots.core.ids import new_auth_id, random_string

from .models import Account, Membership

TOKEN_LENGTH = 40
PLIVO_CHECK_TIMEOUT_S = 10


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def assign_credentials(account: Account) -> str:
    """Give an unsaved account its auth_id, token hash and webhook secret; returns the token."""
    token = random_string(TOKEN_LENGTH)
    account.auth_id = new_auth_id()
    account.auth_token_hash = hash_token(token)
    account.webhook_secret = secrets.token_urlsafe(32)
    return token


def create_account(name: str) -> tuple[Account, str]:
    """Create an account; returns it with its API token, which is never stored in clear."""
    account = Account(name=name)
    token = assign_credentials(account)
    account.save()
    return account, token


def reissue_token(account: Account) -> str:
    """Replace the account's API token; the old one stops working at once."""
    token = random_string(TOKEN_LENGTH)
    account.auth_token_hash = hash_token(token)
    account.save(update_fields=["auth_token_hash", "updated_at"])
    return token


def rotate_webhook_secret(account: Account) -> str:
    account.webhook_secret = secrets.token_urlsafe(32)
    account.save(update_fields=["webhook_secret", "updated_at"])
    return account.webhook_secret


def authenticate(auth_id: str, token: str) -> Account | None:
    account = Account.objects.filter(auth_id=auth_id).first()
    if account is None or not hmac.compare_digest(account.auth_token_hash, hash_token(token)):
        return None
    return account


def accounts_of_user(user):
    """The accounts a signed-in user belongs to (none for anonymous users)."""
    if not user or not user.is_authenticated:
        return Account.objects.none()
    return Account.objects.filter(memberships__user=user)


def account_of_user(user) -> Account | None:
    """The account a user works in by default: the first they joined."""
    if not user or not user.is_authenticated:
        return None
    membership = Membership.objects.filter(user=user).select_related("account").first()
    return membership.account if membership else None


def is_member(user, account: Account) -> bool:
    return bool(user and user.is_authenticated) and Membership.objects.filter(user=user, account=account).exists()


def add_member(account: Account, user) -> None:
    """Make `user` a member of `account`, and staff so that they can use the admin for it."""
    Membership.objects.get_or_create(user=user, account=account)
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])


@transaction.atomic
def create_member(account: Account, username: str, password: str, *, superuser: bool = False):
    users = get_user_model().objects
    create = users.create_superuser if superuser else users.create_user
    user = create(username=username, password=password, is_staff=True)
    Membership.objects.create(user=user, account=account)
    return user


class PlivoCredentialsRefused(Exception):
    """Plivo did not accept the credentials; the message says what it said."""


class PlivoUnreachable(Exception):
    """Plivo could not be asked; nothing was changed."""


def check_plivo_credentials(auth_id: str, auth_token: str) -> None:
    """Ask Plivo for the account's details with these credentials (a cheap authenticated GET)."""
    from voicebots.providers.plivo_api import PlivoApi, PlivoApiError

    try:
        PlivoApi(auth_id, auth_token, settings.PLIVO_API_BASE_URL, timeout=PLIVO_CHECK_TIMEOUT_S).get_account()
    except PlivoApiError as error:
        if error.retryable:
            raise PlivoUnreachable(f"Plivo could not be reached to check the credentials, so nothing was changed "
                                   f"({error.message}). Try again.") from error
        raise PlivoCredentialsRefused(f"Plivo did not accept these credentials: {error.message}") from error


def update_account(account: Account, changes: dict) -> Account:
    """Apply `changes` (validated fields); new Plivo credentials are checked with Plivo first."""
    plivo_id = changes.get("plivo_auth_id", account.plivo_auth_id)
    plivo_token = changes.get("plivo_auth_token", account.plivo_auth_token)
    new_pair = (plivo_id, plivo_token) != (account.plivo_auth_id, account.plivo_auth_token)
    if new_pair and plivo_id and plivo_token:
        check_plivo_credentials(plivo_id, plivo_token)  # before the transaction: it may take seconds
    with transaction.atomic():
        account = Account.objects.select_for_update().get(pk=account.pk)
        for field, value in changes.items():
            setattr(account, field, value)
        account.save()
    return account
