#!/usr/bin/env bash
# Docker engine for the docker backend and its tests (filled in by the docker backend work).
exit 0
