"""Who sees which account in the console: members see the accounts they belong to; superusers (the platform's
operators) see every account. (Every user of an account is `is_staff` so that they can use the admin, so
staff status alone opens nothing.)"""
from __future__ import annotations

from django.http import Http404

from voicebots.accounts.models import Account
from voicebots.accounts.services import accounts_of_user


def visible_accounts(user):
    if user.is_authenticated and user.is_superuser:
        return Account.objects.all()
    return accounts_of_user(user)


def account_for(user, auth_id: str) -> Account:
    """The account named in the URL, if the user may see it; 404 otherwise (as for an unknown one)."""
    account = visible_accounts(user).filter(auth_id=auth_id).first()
    if account is None:
        raise Http404("No such account.")
    return account
