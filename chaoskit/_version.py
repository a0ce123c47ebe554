"""The package version, apart so every module can read it without importing the API."""

__version__ = "0.1.0"
