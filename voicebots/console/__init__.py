"""The console: a web UI for an account's people to see their calls (overview, list, and one call's inspector)."""
