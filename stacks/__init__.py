"""Typed per-environment settings: `settings` (the model) and `loader` (from Pulumi config)."""
