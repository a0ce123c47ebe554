"""`chaoskit up`, `down`, `status`: the stack's lifecycle."""

from __future__ import annotations

from chaoskit.cli._app import app  # noqa: F401
