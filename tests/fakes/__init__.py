"""Local fakes of the services the app talks to (Anthropic, function handlers)."""
