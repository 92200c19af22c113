from django.db import migrations


class Migration(migrations.Migration):
    """Pending analyses are found by the sweep without scanning every call: a partial index on calls."""

    dependencies = [("calls", "0002_web_direction_and_analysis")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS analysis_pending_calls ON calls_call (ended_at) "
            "WHERE (analysis ->> 'status') = 'pending'",
            "DROP INDEX IF EXISTS analysis_pending_calls",
        ),
    ]
