"""Stacks chaoskit runs against: target files, backends (local, docker, attach), endpoints.

Private: the public names are re-exported from ``chaoskit``. Nothing is imported here, so
importing one module of this package does not pull in the others."""
