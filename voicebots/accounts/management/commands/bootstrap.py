"""First-run setup: an account and a superuser linked to it, credentials printed once."""
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from voicebots.accounts.services import create_account, create_member


class Command(BaseCommand):
    help = "Create the first account and admin user if there is no user yet; prints their credentials once."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--site-url", default="http://127.0.0.1:8000", help="Where the product is served.")

    @transaction.atomic
    def handle(self, *args, username, site_url, **options):
        if get_user_model().objects.exists():
            return
        account, token = create_account("Default account")
        password = secrets.token_urlsafe(12)
        create_member(account, username, password, superuser=True)
        self.stdout.write(self.style.SUCCESS("First run: created an account and an admin user. Save these now:"))
        self.stdout.write(f"  Admin login   {site_url.rstrip('/')}/admin/  user {username}  password {password}")
        self.stdout.write(f"  API account   auth_id {account.auth_id}  auth_token {token}")
