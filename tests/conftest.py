"""Shared fixtures. Real parts only: see tests/integration/conftest.py for the live stack."""

# pytester runs the chaoskit pytest plugin in a pytest of its own (tests/e2e/test_pytest_plugin.py).
pytest_plugins = ["pytester"]
