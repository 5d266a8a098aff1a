"""``run_study``: extract -> train -> compare, with the cache in between."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from cactus_features.backbones.weights import weights_unavailable
from cactus_features.errors import ConfigError, WeightsError
from cactus_features.extract.api import BackboneRequest, extract_features
from cactus_features.features import FeatureSet
from cactus_features.heads import TrainResult, train_head
from cactus_features.notices import warn
from cactus_features.report import ComparisonReport, compare
from cactus_features.study.config import StudyConfig

log = logging.getLogger("cactus_features")


@dataclass
class StudyResult:
    """What a study produced.

    Attributes:
        features: The feature set of each backbone that ran.
        runs: The training result of each (head, backbone) pair, by head label.
        comparisons: The comparison of all backbones, one per head label.
        reports: The report folder of each head label.
        skipped: Backbones left out, with the reason.
        substituted: Backbones run with random initialisation instead of
            unavailable pretrained weights, with the reason.
        seconds: Wall time of each stage.
    """

    features: list[FeatureSet]
    runs: dict[str, list[TrainResult]]
    comparisons: dict[str, ComparisonReport]
    reports: dict[str, Path]
    skipped: dict[str, str] = field(default_factory=dict)
    substituted: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def resolve_backbones(
    config: StudyConfig,
) -> tuple[list[BackboneRequest], dict[str, str], dict[str, str]]:
    """Apply the missing-weights policy before anything runs.

    Returns:
        The requests to run, the skipped ones and the substituted ones (name -> reason).

    Raises:
        WeightsError: Under the ``error`` policy, for the first unavailable weights.
    """
    keep, skipped, substituted = [], {}, {}
    for req in config.backbones:
        reason = weights_unavailable(
            req.name, req.weights, req.weights_file, allow_download=config.allow_download
        )
        if reason is None:
            keep.append(req)
        elif config.missing_weights == "skip":
            skipped[req.name] = reason
            warn(f"skipping {req.name}: {reason}")
        elif config.missing_weights == "random":
            substituted[req.name] = reason
            warn(f"{req.name}: {reason}; running it as random initialisation (labelled so)")
            keep.append(replace(req, weights="none", weights_file=None))
        else:
            raise WeightsError(
                f"{reason}; pass --weights-file, or --missing-weights skip|random to go on"
            )
    if not keep:
        raise ConfigError("no backbone left to run: " + "; ".join(skipped.values()))
    return keep, skipped, substituted


def head_label(head: dict) -> str:
    """A folder-safe label of a head config, e.g. ``linear`` or ``mlp-e300``."""
    parts = [str(head["head"])]
    for k in sorted(head):
        if k != "head":
            parts.append(f"{k}{head[k]}".replace(".", "p").replace("/", "_"))
    return "-".join(parts)


def run_study(config: StudyConfig) -> StudyResult:
    """Run a whole study: extract every backbone once, train each head on each, compare.

    Cached embeddings are re-used (a second study with a new head only trains
    heads, and the log says so). Heads of one label share one comparison.

    Args:
        config: The study.

    Returns:
        Features, runs, comparisons and report folders.
    """
    seconds: dict[str, float] = {}
    requests, skipped, substituted = resolve_backbones(config)
    t0 = time.perf_counter()
    features = extract_features(
        config.data,
        requests,
        labels=config.labels,
        cache_dir=config.cache_dir,
        split=config.split,
        quiet=config.quiet,
        **config.extract,
    )
    seconds["extract"] = time.perf_counter() - t0  # extract_features warned of collapses

    runs: dict[str, list[TrainResult]] = {}
    comparisons: dict[str, ComparisonReport] = {}
    reports: dict[str, Path] = {}
    out = Path(config.out)
    labels = [head_label(h) for h in config.heads]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"two heads have the same settings: {labels}")
    t0 = time.perf_counter()
    for label, head in zip(labels, config.heads, strict=True):
        kwargs = dict(head)
        kind = kwargs.pop("head")
        runs[label] = []
        for fs in features:
            result = train_head(fs, head=kind, quiet=True, **kwargs)
            runs[label].append(result)
            log.info(
                "trained %s head on %s: %d epochs in %.2fs, best epoch %d, val AUC %.4f",
                label,
                fs.name,
                len(result.history.get("train_loss", [])),
                result.seconds,
                result.best_epoch,
                result.val_auc,
            )
    seconds["train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for label, results in runs.items():
        folder = out if len(runs) == 1 else out / label
        comparisons[label] = compare([r.run for r in results], out=folder, **config.compare)
        reports[label] = folder
    seconds["compare"] = time.perf_counter() - t0
    return StudyResult(features, runs, comparisons, reports, skipped, substituted, seconds)
