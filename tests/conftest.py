"""Shared fixtures. Real parts only: see tests/integration/conftest.py for the live stack."""
