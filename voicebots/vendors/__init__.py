"""The vendor registry: every provider the platform can use, its settings, validation and adapters."""
