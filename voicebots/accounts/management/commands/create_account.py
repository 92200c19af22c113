import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from voicebots.accounts.services import add_member, create_account


class Command(BaseCommand):
    help = ('Create an account and print {"auth_id", "auth_token", "name", "members"} as JSON (the token is '
            "shown only here). --member adds existing users to it, who may then use the admin for it.")

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--member", action="append", default=[], metavar="USERNAME",
                            help="An existing user to add as a member (repeat for several).")

    def handle(self, *args, name, member, **options):
        users = get_user_model().objects
        found = {user.username: user for user in users.filter(username__in=member)}
        unknown = [username for username in member if username not in found]
        if unknown:
            raise CommandError(f"No user named {', '.join(unknown)}; create them first (createsuperuser, or the "
                               "admin's Users page). No account was created.")
        with transaction.atomic():
            account, token = create_account(name)
            for username in dict.fromkeys(member):
                add_member(account, found[username])
        self.stdout.write(json.dumps({"auth_id": account.auth_id, "auth_token": token, "name": account.name,
                                      "members": list(dict.fromkeys(member))}))
