"""Root conftest: see tests/support.py for the service helpers."""
