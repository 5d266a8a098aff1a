"""Exceptions that carry a user-facing message.

Every error a user can fix (bad data, bad option, missing file) is raised as a
:class:`UserError` subclass. The CLI prints its message on one line and exits
with code 2, without a traceback; library callers can catch it by type.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by input the user can fix; the message says what and how."""

    exit_code: int = 2


class DataError(UserError):
    """The dataset (folder, CSV, images) is unusable as given."""


class ConfigError(UserError):
    """An option or configuration value is invalid."""


class CacheError(UserError):
    """A cache or run file is missing, damaged, stale, locked or of an unknown format."""


class WeightsError(UserError):
    """Pretrained weights cannot be found, downloaded or loaded."""
