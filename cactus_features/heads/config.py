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
SOLVERS = ("adam", "lbfgs", "grid", "knn")
"""Optimisers: Adam (any head), full-batch L-BFGS (linear head only), ``grid``: a grid of
L2 strengths chosen on validation (:mod:`cactus_features.heads.solvers.grid`); ``knn`` (the
kNN probe's own, :mod:`cactus_features.heads.solvers.knn`) is set by ``head="knn"``."""
SCALES = ("feature", "global")
"""Standardisation: each feature by its own std, or all by one (the root mean variance)."""
LINEAR_L2_GRID = tuple(float(10.0 ** (-k / 2)) for k in range(9))
"""Default L2 strengths of the linear head's grid: 1, 10^-0.5, ..., 1e-4 (9, log-spaced)."""
MLP_L2_GRID = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
"""Default Adam weight decays of the MLP head's grid."""
PRESETS: dict[str, dict[str, Any]] = {
    "tuned": {
        "solver": "grid",
        "standardize": True,
        "scale": "global",
        "class_weight": "inverse",
        "select": "val_loss",
        "tol": 1e-5,
    },
    "report": {
        "solver": "adam",
        "lr": 5e-4,
        "epochs": 500,
        "weight_decay": 0.0,
        "batch_size": None,
        "class_weight": "inverse",
        "standardize": True,
        "scale": "feature",
        "select": "val_auc",
    },
}
"""Named protocols. ``tuned`` (the default): per-feature centring and one global scale, a grid
of L2 strengths (:data:`LINEAR_L2_GRID`; MLP: :data:`MLP_L2_GRID`), each fitted to convergence
(MLP: Adam, best validation epoch), chosen by validation log loss. ``report``: the seed
study's recipe (Adam, lr 5e-4, 500 full-batch epochs, no weight decay, inverse class weights,
per-feature standardisation, best validation-AUC epoch)."""
DEFAULT_PRESET = "tuned"
"""The preset a configuration gets when it names neither a preset nor a solver."""
ADAM_ONLY = ("lr", "weight_decay", "batch_size")
"""Fields that only the Adam solver reads: given without a preset they select Adam (no
preset); given with the ``tuned`` preset of a linear head they are refused."""
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

    The dataclass defaults are the seed's recipe (the ``report`` preset);
    :meth:`create` applies the ``tuned`` preset unless told otherwise.

    Attributes:
        head: ``"linear"`` (one logit), ``"mlp"`` (``D -> hidden... -> 1``, ReLU, dropout)
            or ``"knn"`` (cosine kNN probe on the raw embeddings; only ``class_weight``
            applies).
        epochs: Adam epochs, or the L-BFGS iteration limit (per strength for ``grid``).
        lr: Adam learning rate.
        weight_decay: Adam L2 weight decay (added to the gradient, as ``torch.optim.Adam``).
        batch_size: Mini-batch size, or ``None`` for full-batch training.
        seed: Seeds the initial weights, dropout masks and mini-batch order.
        class_weight: ``"inverse"``, ``"balanced"``, ``"none"``, explicit weights in
            class-index order, or a ``{class name: weight}`` mapping. Multi-label data:
            each label weighted by the binary rule on its own column (``"inverse"``: a
            present label ``1 - p``, an absent one ``p``, with ``p`` the label's share of
            training images; ``"balanced"``: ``n / (2 n_c)``; ``"none"``: ones); explicit
            weights are refused.
        standardize: Standardise inputs with the training split's mean and std.
        solver: ``"adam"``, ``"lbfgs"`` (linear head only; sklearn's objective) or
            ``"grid"`` (the tuned protocol: one fit per strength of ``l2_grid``, the best
            on validation kept).
        C: Inverse L2 strength of the L-BFGS objective (as sklearn's ``C``).
        tol: L-BFGS stops when the largest gradient entry of the (weight-normalised)
            objective is below this.
        select: Keep the epoch with the best ``"val_auc"`` (ties: lower validation
            loss), the lowest ``"val_loss"``, or the ``"last"`` one. L-BFGS always
            keeps its last (converged) iterate.
        hidden: MLP hidden sizes (empty for the linear head).
        dropout: MLP dropout probability after each hidden ReLU (0 for the linear head).
        scale: ``"feature"``: standardise each feature by its own std (sklearn's
            ``StandardScaler``); ``"global"``: centre each feature, divide all by one
            std (the root of the mean per-feature variance), keeping the backbone's
            relative feature scales while making L2 strengths scale-free.
        l2_grid: The ``grid`` solver's L2 strengths ``lam`` (empty: the head's default,
            :data:`LINEAR_L2_GRID` or :data:`MLP_L2_GRID`). The objective is the
            class-weighted MEAN log loss (weights divided by their sum, so their
            normalisation does not matter) plus ``lam / 2 * ||w||^2`` on (standardised)
            inputs, so ``lam`` means the same whatever the feature scale, the class-weight
            normalisation and the number of rows; sklearn's ``C`` is
            ``1 / (lam * sum of sample weights)``. For the MLP, ``lam`` is Adam's weight
            decay on the same mean loss.
        preset: The named preset (:data:`PRESETS`) the configuration was built from, or
            ``""`` for none; fields given beside it override it (see :func:`protocol_label`).
        positive_class: Binary tasks: the name of the class the head scores (``None``:
            :func:`~cactus_features.data.classes.positive_class_index`'s rule). Left out
            of :meth:`to_dict` (and so of the hash) when ``None``.
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
            help="inverse | balanced | none | values in class order, e.g. 0.75,0.25. "
            "Multi-label: each label by the binary rule on its own column (inverse: present "
            "1-p, absent p, p its training share); no explicit values.",
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
    scale: str = field(
        default="feature",
        metadata=_cli(choices=SCALES, help="Standardise per feature or by one global std."),
    )
    l2_grid: tuple[float, ...] = field(
        default=(),
        metadata=_cli(
            type=str,
            parse=lambda text: _float_tuple(text, "l2_grid"),
            help="L2 strengths of --solver grid, e.g. 1,0.1,0.01 (default: 9 from 1 to 1e-4).",
        ),
    )
    preset: str = field(
        default="",
        metadata=_cli(
            choices=tuple(PRESETS),
            help="Named protocol: tuned (the default) or report (the seed's Adam recipe).",
        ),
    )
    positive_class: str | None = field(
        default=None,
        metadata=_cli(
            type=str,
            help="Binary tasks: the class scores are the probability of (default: a label "
            "1/true/yes, X of X and no_X, else the second class).",
        ),
    )

    @classmethod
    def create(cls, head: str = "linear", preset: str | None = None, **kwargs: Any) -> HeadConfig:
        """Build and validate a configuration, filling preset and head-specific defaults.

        The preset's fields come first (:data:`PRESETS`; with no ``preset``,
        :data:`DEFAULT_PRESET` unless ``solver`` or an Adam-only field
        (:data:`ADAM_ONLY`) is given: then no preset), then ``kwargs`` override them. For the
        linear head ``hidden`` and ``dropout`` are fixed to ``()`` and ``0`` (passing
        them is an error, also for ``knn``); for L-BFGS ``select`` is ``"last"``; the ``grid``
        solver's empty ``l2_grid`` becomes the head's default grid. ``head="knn"`` takes no
        preset (the probe chooses its ``k`` on validation), and sets ``solver="knn"`` and
        ``standardize=False`` (cosine similarity of the raw embeddings beat standardised ones
        on the real caches, see :mod:`cactus_features.heads.solvers.knn`).

        Args:
            head: ``"linear"``, ``"mlp"`` or ``"knn"``.
            preset: ``"tuned"``, ``"report"``, ``""`` (none: the dataclass defaults) or
                ``None`` (see above).
            **kwargs: Any other :class:`HeadConfig` field (``None`` values are ignored).

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
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if head == "knn":
            if preset:
                raise ConfigError(
                    f"preset {preset!r} applies to the linear and mlp heads; the kNN probe "
                    "chooses its k on validation: drop --preset for --head knn"
                )
            preset = ""
        if preset is None:
            adam = any(n in kwargs for n in ADAM_ONLY)
            preset = "" if "solver" in kwargs or adam else DEFAULT_PRESET
        if preset:
            _choice("preset", preset, tuple(PRESETS))
        values = dict(PRESETS.get(preset, {}))
        if values.get("solver") == "grid" and kwargs.get("solver", "grid") == "grid":
            given = [n for n in ADAM_ONLY if n in kwargs] if head == "linear" else []
            if given:
                raise ConfigError(
                    f"{', '.join(given)} only apply to --solver adam; the tuned linear head "
                    "fits each L2 strength to convergence (use --preset report for Adam)"
                )
        values.update(kwargs)
        kwargs = {**values, "preset": preset}
        if kwargs.get("solver") == "grid" and not kwargs.get("l2_grid"):
            kwargs["l2_grid"] = LINEAR_L2_GRID if head == "linear" else MLP_L2_GRID
        if "l2_grid" in kwargs:
            kwargs["l2_grid"] = _float_tuple(kwargs["l2_grid"], "l2_grid")
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
        _choice("head", self.head, HEADS)
        _choice("solver", self.solver, SOLVERS)
        if self.solver == "lbfgs" and self.head != "linear":
            raise ConfigError("solver 'lbfgs' trains the linear head only; use --solver adam")
        if (self.solver == "knn") != (self.head == "knn"):
            raise ConfigError("solver 'knn' is the kNN probe's own; use --head knn")
        if self.solver == "lbfgs" and self.batch_size is not None:
            raise ConfigError("solver 'lbfgs' is full-batch; drop --batch-size")
        if self.solver == "grid" and self.head == "linear" and self.batch_size is not None:
            raise ConfigError("the linear grid solver is full-batch; drop --batch-size")
        _choice("scale", self.scale, SCALES)
        if self.preset:
            _choice("preset", self.preset, tuple(PRESETS))
        if self.solver == "grid":
            _check(
                len(self.l2_grid) >= 1 and all(v >= 0 for v in self.l2_grid),
                "l2_grid",
                self.l2_grid,
                "one or more strengths >= 0, e.g. 1,0.1,0.01",
            )
            if self.select == "last":
                raise ConfigError("solver 'grid' chooses on validation; use --select val_loss")
        _choice("select", self.select, SELECTS)
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
        d["l2_grid"] = list(self.l2_grid)
        if isinstance(self.class_weight, tuple):
            d["class_weight"] = list(self.class_weight)
        if d["positive_class"] is None:  # runs of the rule keep their config and hash
            del d["positive_class"]
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


def _choice(name: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"unknown {name} {value!r}; use one of {', '.join(allowed)}")


def _check(ok: bool, name: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{name}={value!r} is invalid; it must be {rule}")


def protocol_label(config: Mapping[str, Any]) -> str:
    """A run's protocol for tables: the preset's name, plus the fields that override it.

    Args:
        config: A configuration dict (``HeadConfig.to_dict()``, as saved in run files).

    Returns:
        e.g. ``"tuned"``, ``"report"``, ``"report (epochs=100)"``, or the solver's name
        (``"adam"``, ``"lbfgs"``) for a configuration built without a preset.
    """
    name = str(config.get("preset") or "")
    if not name or name not in PRESETS:
        return str(config.get("solver", "adam"))
    changed = [
        f"{k}={config.get(k)}"
        for k, v in PRESETS[name].items()
        if k in config and _normal(config[k]) != _normal(v)
    ]
    return name + (f" ({', '.join(changed)})" if changed else "")


def _normal(value: Any) -> Any:
    """Lists and tuples compare equal; numbers compare as floats."""
    if isinstance(value, (list, tuple)):
        return tuple(_normal(v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def _float_tuple(value: Any, name: str) -> tuple[float, ...]:
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r} is invalid; give numbers such as 1,0.1,0.01") from None


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
