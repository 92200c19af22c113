"""Transactional tests end with the database as Django's flush would leave it (tests/database.py)."""
import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection

from tests import database
from voicebots.accounts.services import create_account, create_member
from voicebots.bots.models import Voicebot
from voicebots.calls.models import Call, CallTurn

pytestmark = pytest.mark.django_db(transaction=True)


def rows_per_table() -> dict[str, int]:
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"(SELECT count(*) FROM {connection.ops.quote_name(table)})"
                                             for table in tables))
        return dict(zip(tables, cursor.fetchone()))


def test_every_table_written_is_emptied_and_post_migrates_rows_stay():
    before = rows_per_table()
    account, _ = create_account("Acme")
    member = create_member(account, "member", "a-long-password-123")
    member.user_permissions.add(Permission.objects.first())  # a row referring to a kept table
    bot = Voicebot.objects.create(account=account, name="Desk")
    call = Call.objects.create(account=account, voicebot=bot, status="completed")
    CallTurn.objects.create(call=call, index=0, caller_text="Hello?", bot_text="Hi.")
    written = {table for table, count in rows_per_table().items() if count > before[table]}
    assert {"accounts_account", "auth_user", "auth_user_user_permissions", "bots_voicebot", "calls_call",
            "calls_callturn"} <= written

    assert database.empty_tables("default")  # rows referring to each other: deleted in any order

    after = rows_per_table()
    assert {table: count for table, count in after.items() if count and table not in database.KEPT} == {}
    assert all(after[table] == before[table] > 0 for table in database.KEPT)


def test_a_test_that_changed_content_types_gets_djangos_flush():
    ContentType.objects.create(app_label="elsewhere", model="thing")

    assert not database.empty_tables("default")  # the caller flushes: post_migrate rewrites them


def test_a_kept_database_starts_each_run_empty():
    """Under --reuse-db, the rows a cut-off run left behind are gone when the next run sets up."""
    account, _ = create_account("Left over")
    Voicebot.objects.create(account=account, name="Desk")
    database.uninstall()
    database.install()  # as the session does at the start of a run
    assert not Voicebot.objects.exists() and not type(account).objects.exists()
