"""Faults: the Toxiproxy client, domain faults through /admin, the timeline applying them.

Private: the public names are re-exported from ``chaoskit``. Nothing is imported here, so
importing one module of this package does not pull in the others."""
