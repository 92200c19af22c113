from __future__ import annotations

import hashlib
import hmac
import secrets

from django.contrib.auth import get_user_model
from django.db import transaction

from voicebots.core.ids import new_auth_id, random_string

from .models import Account, Membership

TOKEN_LENGTH = 40


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
