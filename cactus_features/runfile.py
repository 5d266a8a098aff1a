"""The run file: everything one head-training run produced, in one HDF5 file.

The public import path of :mod:`cactus_features.store.runs`, where the code
and the layout description live.
"""

from __future__ import annotations

from cactus_features.store.runs import (
    RUN_FORMAT_VERSION,
    RUN_KIND,
    Predictions,
    RunFile,
    load_run,
    save_run,
)

__all__ = ["RUN_FORMAT_VERSION", "RUN_KIND", "Predictions", "RunFile", "load_run", "save_run"]
