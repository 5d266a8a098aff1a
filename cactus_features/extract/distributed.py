"""Multi-process extraction under ``torchrun``: which rank does what.

Every rank reads the same dataset table. Work is sharded by chunk
(chunk ``c`` belongs to rank ``c % world_size``), so each rank writes its own
chunk files into the entry's parts folder, and rank 0 assembles the one final
file once every rank is done. Chunk boundaries and batch composition are the
same as in a single-process run, so the result is bitwise identical to it.
A rank that dies leaves the other ranks' chunks in place; a re-run computes
only the missing ones.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from cactus_features import errors
from cactus_features.errors import ConfigError, UserError

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """This process's place in a (possibly single-process) extraction.

    Attributes:
        rank: Global rank.
        world_size: Number of processes.
        local_rank: Rank on this node (selects the GPU).
        local_world_size: Processes on this node (shares the CPU cores).
        backend: ``gloo`` or ``nccl``; ``""`` when not distributed.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str = ""

    @property
    def active(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (which locks, assembles and reports)."""
        return self.rank == 0

    def owns(self, chunk: int) -> bool:
        """Whether chunk ``chunk`` is this rank's to compute."""
        return chunk % self.world_size == self.rank

    def barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        if self.active:
            dist.barrier()

    def all_gather(self, obj: Any) -> list[Any]:
        """Gather one picklable object from every rank, in rank order."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's object, on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def launched_by_torchrun() -> bool:
    """Whether the environment says this process is one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: str | None, *, timeout_minutes: float = 60) -> DistContext:
    """Join the process group that ``torchrun`` set up (env:// rendezvous).

    Uses NCCL when the processes run on CUDA, gloo otherwise. On the CPU each
    rank gets an equal share of the node's cores (torchrun would otherwise pin
    every rank to one thread).

    Args:
        device: The requested device (``None``/``auto``, ``cpu``, ``cuda``).
        timeout_minutes: How long a collective may wait for a slow rank.

    Returns:
        The context of this rank.
    """
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if world <= 1:
        return DistContext()
    use_cuda = torch.cuda.is_available() and str(device or "auto") in ("auto", "cuda")
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    elif "OMP_NUM_THREADS" not in os.environ or os.environ.get("OMP_NUM_THREADS") == "1":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ:
            raise ConfigError(
                "WORLD_SIZE is set but MASTER_ADDR is not: start multi-process extraction with "
                "torchrun (see the README)"
            )
        kwargs = {"device_id": torch.device("cuda", local_rank)} if use_cuda else {}
        dist.init_process_group(
            backend=backend, timeout=timedelta(minutes=timeout_minutes), **kwargs
        )
    return DistContext(rank, world, local_rank, local_world, backend)


def rank_device(ctx: DistContext, device: str | None) -> str | None:
    """The device of this rank: its own GPU under NCCL, else what was asked."""
    if ctx.backend == "nccl":
        return f"cuda:{ctx.local_rank}"
    return device


def shutdown(ctx: DistContext) -> None:
    """Leave the process group if this module joined one."""
    if ctx.active and dist.is_initialized():
        dist.destroy_process_group()


def on_main(ctx: DistContext, work: Callable[[], T]) -> T:
    """Run ``work`` on rank 0 only and give its result to every rank.

    A :class:`~cactus_features.errors.UserError` raised by ``work`` is raised on
    every rank with the same type and message (see :func:`encode_error`), so all
    ranks stop with the error rank 0 found. Other exceptions are not caught.

    Args:
        ctx: This rank's context.
        work: What rank 0 does; its result must be picklable.

    Returns:
        The result of ``work`` (on rank 0 and, by broadcast, on every other rank).
    """
    if not ctx.active:
        return work()
    outcome: tuple[Any, tuple[str, str] | None] = (None, None)
    failure: UserError | None = None
    if ctx.is_main:
        try:
            outcome = (work(), None)
        except UserError as exc:
            failure = exc
            outcome = (None, encode_error(exc))
    result, error = ctx.broadcast(outcome)
    if failure is not None:
        raise failure
    if error is not None:
        raise decode_error(error)
    return result


def encode_error(exc: UserError) -> tuple[str, str]:
    """``(class name, message)`` of a user error, to send to other ranks.

    The name is that of the nearest class in the error's ancestry that
    :mod:`cactus_features.errors` defines, so :func:`decode_error` can rebuild it.
    """
    known = next(c for c in type(exc).__mro__ if getattr(errors, c.__name__, None) is c)
    return known.__name__, str(exc)


def decode_error(encoded: tuple[str, str]) -> UserError:
    """The user error that :func:`encode_error` described, of the same class."""
    name, message = encoded
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, UserError)):
        cls = UserError
    return cls(message)
