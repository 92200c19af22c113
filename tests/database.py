"""Emptying the test database after a transactional test (`django_db(transaction=True)`), cheaper than Django's
flush with the same result.

Django's flush TRUNCATEs every table (about 40), which gives each table and index a new file: ~0.3 s a test,
most of it for tables the test never wrote. Then it re-creates content types and permissions (post_migrate).
Here only the tables that hold rows are emptied, with DELETE in one transaction (foreign keys are checked at its
end, as Django makes them deferrable), and content types and permissions stay: they are the rows post_migrate
would write back. A test that changed those two tables gets Django's own flush.
"""
from __future__ import annotations

import psycopg
from django.db import OperationalError, connections, transaction
from django.db.backends.base.creation import TEST_DATABASE_PREFIX
from django.test import TransactionTestCase

KEPT = ("django_content_type", "auth_permission")  # post_migrate's rows, identical after a flush
DEADLOCK_RETRIES = 3

_django_fixture_teardown = TransactionTestCase._fixture_teardown
_kept_counts: dict[str, tuple[int, ...]] = {}  # per database alias, as migrations left them


def _count_kept(cursor) -> tuple[int, ...]:
    cursor.execute("SELECT " + ", ".join(f"(SELECT count(*) FROM {table})" for table in KEPT))
    return tuple(cursor.fetchone())


def _all_foreign_keys_deferrable(cursor) -> bool:
    cursor.execute("SELECT bool_and(condeferrable) FROM pg_constraint WHERE contype = 'f' "
                   "AND connamespace = 'public'::regnamespace")
    return cursor.fetchone()[0] is not False


def empty_tables(alias: str) -> bool:
    """Delete every row the tests may have written to the database `alias`; False (nothing done) when this
    cannot give what Django's flush gives, so that the caller flushes."""
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return False
    quote = connection.ops.quote_name
    tables = [table for table in connection.introspection.django_table_names(only_existing=True,
                                                                              include_views=False)
              if table not in KEPT]
    if alias not in _kept_counts:
        return False
    for attempt in range(DEADLOCK_RETRIES + 1):
        try:
            with transaction.atomic(using=alias), connection.cursor() as cursor:
                if _count_kept(cursor) != _kept_counts[alias]:
                    return False
                cursor.execute("SELECT " + ", ".join(f"EXISTS (SELECT FROM {quote(table)})" for table in tables))
                written = [quote(table) for table, has_rows in zip(tables, cursor.fetchone()) if has_rows]
                if written:
                    # As TRUNCATE would, wait for writers still at work (a web server a module shares, a call's
                    # thread) and keep new ones out until the rows are gone.
                    cursor.execute(f"LOCK TABLE {', '.join(written)} IN SHARE ROW EXCLUSIVE MODE")
                    cursor.execute("SET CONSTRAINTS ALL DEFERRED")
                    cursor.execute("; ".join(f"DELETE FROM {table}" for table in written))
            return True
        except OperationalError as error:
            # A writer holding one table and wanting another that is locked here: PostgreSQL ends one of the
            # two transactions; when it is this one, try again.
            if not isinstance(error.__cause__, psycopg.errors.DeadlockDetected) or attempt == DEADLOCK_RETRIES:
                raise
    return True


def _fixture_teardown(self: TransactionTestCase) -> None:
    if self.available_apps is not None or self.serialized_rollback or self.reset_sequences:
        return _django_fixture_teardown(self)
    for alias in self._databases_names(include_mirrors=False):
        if not empty_tables(alias):
            _django_fixture_teardown(self)
            return


def is_test_database(connection) -> bool:
    """Whether `connection` points at its test database (pytest-django creates it only when a test uses it).
    Once created, it is the connection's NAME: the TEST NAME pytest-django gives each xdist worker, or Django's
    prefix and the development database's name."""
    name = connection.settings_dict["NAME"]
    return name == connection.settings_dict.get("TEST", {}).get("NAME") or name.startswith(TEST_DATABASE_PREFIX)


def install() -> None:
    """Use `empty_tables` for the test databases as they are now (migrated), and empty them: a database kept
    from an earlier run (pytest.ini's --reuse-db) may hold the rows of a run that was cut off."""
    for connection in connections.all():
        if connection.vendor != "postgresql" or not is_test_database(connection):
            continue
        with connection.cursor() as cursor:
            if _all_foreign_keys_deferrable(cursor):
                _kept_counts[connection.alias] = _count_kept(cursor)
        empty_tables(connection.alias)
    TransactionTestCase._fixture_teardown = _fixture_teardown


def uninstall() -> None:
    TransactionTestCase._fixture_teardown = _django_fixture_teardown
    _kept_counts.clear()
