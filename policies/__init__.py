"""The opencode-sandbox CrossGuard policy pack (see README.md); `__main__.py` is what Pulumi runs."""
