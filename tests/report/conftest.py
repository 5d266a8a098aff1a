"""The synthetic run files of the metrics tests, shared with the report tests."""

from __future__ import annotations

from tests.metrics.conftest import make_run, new_class_run, new_run

__all__ = ["make_run", "new_class_run", "new_run"]
