"""Metrics (client ticks + server /stats, merged per second), and the post-run audit.

Private: the public names are re-exported from ``chaoskit``. Nothing is imported here, so
importing one module of this package does not pull in the others."""
