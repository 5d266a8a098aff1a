"""Taking the writer locks of the entries to extract (rank 0 only under ``torchrun``)."""

from __future__ import annotations

import logging
from contextlib import ExitStack

from cactus_features.extract.cache import PartStore, entry_lock
from cactus_features.extract.distributed import on_main
from cactus_features.extract.plan import Entry, ExtractPlan
from cactus_features.store.entries import is_complete

log = logging.getLogger("cactus_features")


def lock_entries(
    stack: ExitStack, plan: ExtractPlan, entries: list[Entry], n_rows: int
) -> list[Entry]:
    """Lock every entry (in path order) and prepare the parts folder of each still missing.

    Rank 0 takes the locks (held until ``stack`` closes) and prepares the folders;
    the other ranks learn which entries remain, or the error, by broadcast.

    Args:
        stack: Where the locks are held.
        plan: The extraction.
        entries: The entries that had no finished file.
        n_rows: Number of images to embed.

    Returns:
        The entries still to extract, in path order (another process may have
        finished some meanwhile), on every rank.

    Raises:
        CacheError: An entry is locked past the timeout, or its folder is unusable.
    """
    config = plan.config
    order = sorted(range(len(entries)), key=lambda i: str(entries[i].path))

    def take() -> list[int]:
        todo = []
        for i in order:
            entry = entries[i]
            stack.enter_context(entry_lock(entry.path, timeout=config.lock_timeout))
            if is_complete(entry.path):
                parts = PartStore.for_entry(
                    entry.path, entry.key, n_rows, config.chunk_size, plan.batch_size
                )
                parts.remove()
                log.info("cache hit: %s (%s), finished by another process", entry.name, entry.path)
                continue
            PartStore.for_entry(
                entry.path,
                entry.key,
                n_rows,
                config.chunk_size,
                plan.batch_size,
                plan.channels_last,
                config.compile,
            ).open()
            todo.append(i)
        return todo

    return [entries[i] for i in on_main(plan.ctx, take)]
