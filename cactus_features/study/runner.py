"""``run_study``: extract -> train -> compare, with the cache in between."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from cactus_features.backbones.weights import weights_unavailable
from cactus_features.data.readers import read_dataset
from cactus_features.errors import ConfigError, WeightsError
from cactus_features.extract.api import BackboneRequest, extract_features
from cactus_features.features import FeatureSet
from cactus_features.heads import TrainResult, train_head
from cactus_features.notices import warn
from cactus_features.report import ComparisonReport, compare
from cactus_features.report.label_efficiency import add_to_reports
from cactus_features.study.config import StudyConfig
from cactus_features.study.label_efficiency import LabelEfficiencyResult, study_label_efficiency
from cactus_features.study.support import check_heads_support

log = logging.getLogger("cactus_features")

TABLE_OPTIONS = frozenset(
    {"layout", "id_column", "label_column", "label_separator", "classes", "limit"}
)
"""``extract`` options that say how the dataset is read (read once, before extraction)."""


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
        label_efficiency: The label-efficiency curves (when the study asks for them).
    """

    features: list[FeatureSet]
    runs: dict[str, list[TrainResult]]
    comparisons: dict[str, ComparisonReport]
    reports: dict[str, Path]
    skipped: dict[str, str] = field(default_factory=dict)
    substituted: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    label_efficiency: LabelEfficiencyResult | None = None


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
    heads, and the log says so). Heads of one label share one comparison. The
    dataset is read first, and a task no head can train (multi-class, multi-label)
    is refused before anything is extracted.

    Args:
        config: The study.

    Returns:
        Features, runs, comparisons and report folders.
    """
    seconds: dict[str, float] = {}
    requests, skipped, substituted = resolve_backbones(config)
    t0 = time.perf_counter()
    table_options = {k: v for k, v in config.extract.items() if k in TABLE_OPTIONS}
    table = read_dataset(config.data, config.labels, **table_options)
    check_heads_support(table.task, table.class_names, config.heads)
    features = extract_features(
        table,
        requests,
        cache_dir=config.cache_dir,
        split=config.split,
        quiet=config.quiet,
        **{k: v for k, v in config.extract.items() if k not in TABLE_OPTIONS},
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
    curves = None
    if config.label_efficiency is not None:
        t0 = time.perf_counter()
        curves = study_label_efficiency(features, config.label_efficiency)
        add_to_reports(curves, out, [folder / "report.md" for folder in reports.values()])
        seconds["label_efficiency"] = time.perf_counter() - t0
    return StudyResult(features, runs, comparisons, reports, skipped, substituted, seconds, curves)
