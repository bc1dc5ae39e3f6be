"""Runs a module's tests for each form of its operations on each database that runs it."""

import pytest

# On SQLite, on PostgreSQL, and on PostgreSQL again with only the portable forms of the operations that have a
# one-statement form there (kit.db.one_statement); the grpc_service fixture takes `portable_only`.
each_form = pytest.mark.parametrize(
    ("settings", "portable_only"), [("sqlite", False), ("postgres", False), ("postgres", True)],
    indirect=["settings"], ids=["sqlite", "postgres", "postgres-portable"])
