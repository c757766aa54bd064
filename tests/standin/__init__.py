"""Test stand-ins for external systems (never used by the server itself)."""
