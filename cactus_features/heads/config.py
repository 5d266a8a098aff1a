"""Head configuration: :class:`HeadConfig`, its validation and its short hash.

The same configuration gives the same head for every backbone; only the input
dimension differs. The configuration is saved in every run file (as a dict) and
its hash names the run file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from cactus_features.errors import ConfigError
from cactus_features.heads.prepare.class_weights import parse_class_weight

HEADS = ("linear", "mlp", "knn")
"""Head kinds: one logit (logistic regression), a ReLU MLP with dropout, or the kNN probe."""
SOLVERS = ("adam", "lbfgs", "knn")
"""Optimisers: Adam (any head), full-batch L-BFGS (linear head only); ``knn`` (the kNN
probe's own, :mod:`cactus_features.heads.solvers.knn`) is set by ``head="knn"``."""
SELECTS = ("val_auc", "val_loss", "last")
"""Which epoch's weights a run keeps."""
CLASS_WEIGHT_MODES = ("inverse", "balanced", "none")
"""Named class-weight rules (see :mod:`cactus_features.heads.prepare.class_weights`)."""

ClassWeightSpec = str | tuple[float, ...] | dict[str, float]

CLI = "cli"
"""Key of a field's :class:`CliOption` in its ``dataclasses.field`` metadata."""


@dataclass(frozen=True)
class CliOption:
    """How a :class:`HeadConfig` field appears on the command line (``--`` + its name
    with ``-`` for ``_``; the ``train`` and ``sweep`` commands build their options from it).

    Attributes:
        help: The option's help text.
        type: The value's type on the command line (``None`` for a choice or a flag).
        choices: The allowed values (a choice option).
        negate: A flag that sets the (true by default) field to false, e.g.
            ``--no-standardize``.
        parse: Turns the command-line text into the field's value.
        head_default: No default on the command line: the head kind's default applies
            (a linear head has no hidden layers nor dropout).
    """

    help: str | None = None
    type: type | None = None
    choices: tuple[str, ...] = ()
    negate: str | None = None
    parse: Callable[[str], Any] | None = None
    head_default: bool = False


def _cli(**option: Any) -> dict[str, CliOption]:
    """A field's metadata: its :class:`CliOption`."""
    return {CLI: CliOption(**option)}


@dataclass(frozen=True)
class HeadConfig:
    """Everything that determines a trained head, apart from the features.

    Attributes:
        head: ``"linear"`` (one logit), ``"mlp"`` (``D -> hidden... -> 1``, ReLU, dropout)
            or ``"knn"`` (cosine kNN probe on the raw embeddings; only ``class_weight``
            applies).
        epochs: Adam epochs, or the L-BFGS iteration limit.
        lr: Adam learning rate.
        weight_decay: Adam L2 weight decay (added to the gradient, as ``torch.optim.Adam``).
        batch_size: Mini-batch size, or ``None`` for full-batch training.
        seed: Seeds the initial weights, dropout masks and mini-batch order.
        class_weight: ``"inverse"``, ``"balanced"``, ``"none"``, explicit weights in
            class-index order, or a ``{class name: weight}`` mapping.
        standardize: Standardise inputs with the training split's mean and std.
        solver: ``"adam"`` or ``"lbfgs"`` (linear head only; sklearn's objective).
        C: Inverse L2 strength of the L-BFGS objective (as sklearn's ``C``).
        tol: L-BFGS stops when the largest gradient entry of the (weight-normalised)
            objective is below this.
        select: Keep the epoch with the best ``"val_auc"`` (ties: lower validation
            loss), the lowest ``"val_loss"``, or the ``"last"`` one. L-BFGS always
            keeps its last (converged) iterate.
        hidden: MLP hidden sizes (empty for the linear head).
        dropout: MLP dropout probability after each hidden ReLU (0 for the linear head).
    """

    head: str = field(default="linear", metadata=_cli(choices=HEADS))
    epochs: int = field(default=500, metadata=_cli(type=int, help="Adam epochs."))
    lr: float = field(default=5e-4, metadata=_cli(type=float, help="Adam learning rate."))
    weight_decay: float = field(default=0.0, metadata=_cli(type=float))
    batch_size: int | None = field(
        default=None, metadata=_cli(type=int, help="Mini-batch size (default: full batch).")
    )
    seed: int = field(default=0, metadata=_cli(type=int))
    class_weight: ClassWeightSpec = field(
        default="inverse",
        metadata=_cli(
            type=str,
            parse=parse_class_weight,
            help="inverse | balanced | none | values in class order, e.g. 0.75,0.25.",
        ),
    )
    standardize: bool = field(
        default=True, metadata=_cli(negate="--no-standardize", help="Train on raw embeddings.")
    )
    solver: str = field(default="adam", metadata=_cli(choices=SOLVERS))
    C: float = field(default=1.0, metadata=_cli(type=float, help="L-BFGS inverse L2 strength."))
    tol: float = 1e-6
    select: str = field(
        default="val_auc", metadata=_cli(choices=SELECTS, help="Which epoch's weights to keep.")
    )
    hidden: tuple[int, ...] = field(
        default=(512, 128),
        metadata=_cli(type=str, head_default=True, help="MLP hidden sizes (default 512,128)."),
    )
    dropout: float = field(
        default=0.2, metadata=_cli(type=float, head_default=True, help="MLP dropout (default 0.2).")
    )

    @classmethod
    def create(cls, head: str = "linear", **kwargs: Any) -> HeadConfig:
        """Build and validate a configuration, filling head-specific defaults.

        For the linear head ``hidden`` and ``dropout`` are fixed to ``()`` and ``0``
        (passing them is an error, also for ``knn``); for L-BFGS ``select`` is ``"last"``;
        ``head="knn"`` sets ``solver="knn"`` and ``standardize=False`` (cosine similarity of
        the raw embeddings beat standardised ones on the real caches, see
        :mod:`cactus_features.heads.solvers.knn`).

        Args:
            head: ``"linear"``, ``"mlp"`` or ``"knn"``.
            **kwargs: Any other :class:`HeadConfig` field.

        Returns:
            The validated configuration.

        Raises:
            ConfigError: On an unknown option or an invalid value.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ConfigError(
                f"unknown head option(s) {', '.join(unknown)}; "
                f"valid options are {', '.join(sorted(known - {'head'}))}"
            )
        if head in ("linear", "knn"):
            for name in ("hidden", "dropout"):
                if kwargs.get(name) not in (None, (), [], 0, 0.0):
                    raise ConfigError(
                        f"{name}={kwargs[name]!r} only applies to --head mlp; drop it or use mlp"
                    )
            kwargs["hidden"] = ()
            kwargs["dropout"] = 0.0
        else:
            for name in ("hidden", "dropout"):
                if kwargs.get(name) is None:
                    kwargs.pop(name, None)  # the MLP defaults
        if "class_weight" in kwargs:
            kwargs["class_weight"] = _freeze_class_weight(kwargs["class_weight"])
        if "hidden" in kwargs:
            kwargs["hidden"] = _int_tuple(kwargs["hidden"])
        if head == "knn":
            kwargs.update(solver="knn", standardize=False)
        if kwargs.get("solver") == "lbfgs":
            kwargs["select"] = "last"
        config = cls(head=head, **kwargs)
        config.validate()
        return config

    def validate(self) -> None:
        """Check every field.

        Raises:
            ConfigError: Naming the bad value and what to use instead.
        """
        if self.head not in HEADS:
            raise ConfigError(f"unknown head {self.head!r}; use one of {', '.join(HEADS)}")
        if self.solver not in SOLVERS:
            raise ConfigError(f"unknown solver {self.solver!r}; use one of {', '.join(SOLVERS)}")
        if self.solver == "lbfgs" and self.head != "linear":
            raise ConfigError("solver 'lbfgs' trains the linear head only; use --solver adam")
        if (self.solver == "knn") != (self.head == "knn"):
            raise ConfigError("solver 'knn' is the kNN probe's own; use --head knn")
        if self.solver == "lbfgs" and self.batch_size is not None:
            raise ConfigError("solver 'lbfgs' is full-batch; drop --batch-size")
        if self.select not in SELECTS:
            raise ConfigError(f"unknown select {self.select!r}; use one of {', '.join(SELECTS)}")
        _check(isinstance(self.epochs, int) and self.epochs >= 1, "epochs", self.epochs, ">= 1")
        _check(self.lr > 0, "lr", self.lr, "> 0")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        _check(self.C > 0, "C", self.C, "> 0")
        _check(self.tol > 0, "tol", self.tol, "> 0")
        _check(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "in [0, 1)")
        if self.batch_size is not None:
            _check(
                isinstance(self.batch_size, int) and self.batch_size >= 1,
                "batch_size",
                self.batch_size,
                ">= 1 (or None for full batch)",
            )
        if self.head == "mlp":
            _check(
                len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden),
                "hidden",
                self.hidden,
                "one or more positive sizes, e.g. 512,128",
            )
        cw = self.class_weight
        if isinstance(cw, str) and cw not in CLASS_WEIGHT_MODES:
            raise ConfigError(
                f"unknown class weight {cw!r}; use {', '.join(CLASS_WEIGHT_MODES)} "
                "or explicit values such as 0.75,0.25"
            )

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-ready plain types (saved as ``RunFile.config``)."""
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        if isinstance(self.class_weight, tuple):
            d["class_weight"] = list(self.class_weight)
        return d

    def short_hash(self) -> str:
        """Eight hex digits identifying the configuration (used in run file names)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]

    def with_(self, **changes: Any) -> HeadConfig:
        """A validated copy with some fields changed."""
        config = replace(self, **changes)
        config.validate()
        return config


def _check(ok: bool, name: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} is invalid; it must be {rule}")


def _int_tuple(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"hidden={value!r} is invalid; give sizes such as 512,128") from None


def _freeze_class_weight(value: Any) -> ClassWeightSpec:
    """Turn lists into tuples so the (frozen) config stays hashable-by-value."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {str(k): float(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        try:
            return tuple(float(v) for v in value)
        except (TypeError, ValueError):
            pass
    raise ConfigError(
        f"class_weight={value!r} is invalid; use inverse, balanced, none, a list of "
        "weights in class order, or a {class name: weight} mapping"
    )
