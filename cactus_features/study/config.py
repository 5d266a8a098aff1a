"""The study configuration: what to extract, which heads to train, how to compare.

A study can be written as a TOML file (see ``examples/``) so it can be versioned
and re-run exactly::

    data = "../shared/data/aerial-cactus/train"
    labels = "../shared/data/aerial-cactus/train.csv"
    out = "report/cactus"

    [[backbone]]
    name = "efficientnet_lite0"
    resolution = 128

    [[head]]
    head = "linear"
    epochs = 500
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cactus_features.data.split import SplitConfig
from cactus_features.errors import ConfigError
from cactus_features.extract.api import BackboneRequest
from cactus_features.heads.config import HeadConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MISSING_WEIGHTS = ("error", "skip", "random")


@dataclass
class StudyConfig:
    """Everything a study needs, with the library's defaults.

    Attributes:
        data: Image folder.
        labels: Label CSV (Kaggle layout).
        backbones: What to extract (``name@resolution`` strings or requests).
        heads: Head configurations, each a dict of :func:`train_head` keywords
            (``{"head": "linear"}``: the tuned protocol; ``{"head": "linear", "preset":
            "report"}``: the seed's Adam recipe; ``{"head": "mlp", "epochs": 300}``, ...).
        out: Report folder.
        cache_dir: Cache folder.
        missing_weights: When pretrained weights cannot be had: ``error``, ``skip``
            the backbone (one line says why) or run it as ``random`` initialisation
            (labelled so everywhere).
        allow_download: Whether torchvision weights may be downloaded.
        extract: More :func:`extract_features` keywords (``normalization``,
            ``precision``, ``batch_size``, ``device``, ``limit``, ``layout``, ...).
        split: Split ratios and seed shared by every backbone.
        compare: :func:`compare` keywords (``threshold``, ``n_bootstrap``, ``seed``).
        quiet: No progress bars.
        label_efficiency: Also draw label-efficiency curves into the report (``None``:
            no): :func:`~cactus_features.study.label_efficiency.study_label_efficiency`
            options (``fractions``, ``seeds`` (a count or a list), ``n_bootstrap``,
            ``min_per_class``, ``head`` and more :func:`train_head` options).
    """

    data: str
    labels: str | None = None
    backbones: list[BackboneRequest] = field(default_factory=list)
    heads: list[dict[str, Any]] = field(default_factory=lambda: [{"head": "linear"}])
    out: str = "report"
    cache_dir: str = "cache"
    missing_weights: str = "error"
    allow_download: bool = True
    extract: dict[str, Any] = field(default_factory=dict)
    split: SplitConfig = field(default_factory=SplitConfig)
    compare: dict[str, Any] = field(default_factory=dict)
    quiet: bool = False
    label_efficiency: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.missing_weights not in MISSING_WEIGHTS:
            raise ConfigError(
                f"missing_weights {self.missing_weights!r}: use {', '.join(MISSING_WEIGHTS)}"
            )
        if not self.backbones:
            raise ConfigError("a study needs at least one backbone")
        if not self.heads:
            raise ConfigError("a study needs at least one head")
        self.backbones = [BackboneRequest.parse(b) for b in self.backbones]
        for h in self.heads:
            if "head" not in h:
                raise ConfigError(f"head entry {h} has no 'head' (linear or mlp)")
            HeadConfig.create(**h)  # a bad option or preset fails here, before any extraction


def load_study(path: str | Path) -> StudyConfig:
    """Read a study from a TOML file; relative paths are taken from the file's folder.

    Raises:
        ConfigError: On a missing file, invalid TOML or unknown keys.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: study file does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    base = path.parent

    def resolve(p: str | None) -> str | None:
        if p is None:
            return None
        q = Path(p).expanduser()
        return os.path.normpath(q if q.is_absolute() else (base / q))

    known = {f.name for f in fields(StudyConfig)} | {"backbone", "head", "positive_class"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {', '.join(unknown)}; see examples/*.toml")
    if "data" not in raw:
        raise ConfigError(f'{path}: needs data = "<image folder>"')
    backbones = []
    for b in raw.get("backbone", []):
        if "name" not in b:
            raise ConfigError(f"{path}: every [[backbone]] needs a name")
        backbones.append(
            BackboneRequest(
                b["name"],
                b.get("weights", "DEFAULT"),
                resolve(b.get("weights_file")),
                b.get("resolution"),
                b.get("features", "last"),
            )
        )
    split = raw.get("split", {})
    try:
        split_config = SplitConfig(**split)
    except TypeError:
        raise ConfigError(f"{path}: [split] takes train, val, test and seed") from None
    return StudyConfig(
        data=resolve(raw["data"]) or "",
        labels=resolve(raw.get("labels")),
        backbones=backbones,
        heads=[
            # a top-level positive_class = "NAME" applies to every head that names none
            {"positive_class": raw["positive_class"], **h} if "positive_class" in raw else h
            for h in raw.get("head", [{"head": "linear"}])
        ],
        out=resolve(raw.get("out", "report")) or "report",
        cache_dir=resolve(raw.get("cache_dir", "cache")) or "cache",
        missing_weights=raw.get("missing_weights", "error"),
        allow_download=bool(raw.get("allow_download", True)),
        extract=dict(raw.get("extract", {})),
        split=split_config,
        compare=dict(raw.get("compare", {})),
        quiet=bool(raw.get("quiet", False)),
        label_efficiency=raw.get("label_efficiency"),
    )
