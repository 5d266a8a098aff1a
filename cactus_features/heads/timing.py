"""One-off costs inside a training loop: Numba compiling or loading cached kernels.

The first head trained in a process pays for the native kernels once (compiled,
or loaded from Numba's disk cache); later heads do not. :func:`one_off_time`
records Numba's ``numba:compile`` events (which cover cache loads too) while a
loop runs, so the loop's time can be reported without them and the one-off cost
beside it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class OneOff:
    """Seconds spent compiling or loading kernels (filled when the context exits)."""

    seconds: float = 0.0


@contextlib.contextmanager
def one_off_time() -> Iterator[OneOff]:
    """Measure the wall time covered by Numba compilations (the union of their intervals,
    across threads) inside the ``with`` block; 0 when Numba is absent."""
    result = OneOff()
    try:
        from numba.core import event
    except ImportError:  # pragma: no cover - numba is a declared dependency
        yield result
        return
    with event.install_recorder("numba:compile") as recorder:
        yield result
    depth, since, total = 0, 0.0, 0.0
    for stamp, ev in sorted(recorder.buffer, key=lambda item: item[0]):
        if ev.is_start:
            if depth == 0:
                since = stamp
            depth += 1
        elif depth > 0:
            depth -= 1
            if depth == 0:
                total += stamp - since
    result.seconds = total
