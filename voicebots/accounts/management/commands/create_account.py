import json

from django.core.management.base import BaseCommand

from voicebots.accounts.services import create_account


class Command(BaseCommand):
    help = 'Create an account and print {"auth_id": ..., "auth_token": ...} as JSON (the token is shown only here).'

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        account, token = create_account(name)
        self.stdout.write(json.dumps({"auth_id": account.auth_id, "auth_token": token, "name": account.name}))
