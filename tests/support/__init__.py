"""Test support shared by the suites (not part of the deployed program)."""
