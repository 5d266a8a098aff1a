"""The options of one ``extract_features`` call: :class:`ExtractConfig`, :class:`BackboneRequest`.

The config holds the options exactly as given; :meth:`ExtractConfig.validate`
checks them and :meth:`ExtractConfig.entry_key` derives the cache key of one
backbone (everything that determines its embeddings).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cactus_features.backbones.preprocessing import Preprocessing, choose_normalization
from cactus_features.backbones.registry import build_on_meta, get_spec
from cactus_features.backbones.stages import LAST, FeatureSelection, select_features
from cactus_features.backbones.weights import describe_weights, weights_stats
from cactus_features.data.classes import MULTILABEL
from cactus_features.data.readers import read_dataset
from cactus_features.data.split import SplitConfig
from cactus_features.data.table import ImageTable
from cactus_features.errors import ConfigError


@dataclass(frozen=True)
class BackboneRequest:
    """One backbone to extract, with its own weights and resolution.

    Attributes:
        name: Registry name.
        weights: Weights name (``DEFAULT``, ``IMAGENET1K_V2``, ...) or ``none``.
        weights_file: Local state dict to load instead.
        resolution: Input side; ``None`` means the weights' training resolution.
        features: Which layer the embedding is pooled from: ``last`` (default),
            ``stage-K`` or ``concatN`` (see :mod:`cactus_features.backbones.stages`).
    """

    name: str
    weights: str | None = "DEFAULT"
    weights_file: str | None = None
    resolution: int | None = None
    features: str = "last"

    @classmethod
    def parse(
        cls,
        text: str | BackboneRequest,
        *,
        weights: str | None = "DEFAULT",
        weights_file: str | None = None,
        resolution: int | None = None,
    ) -> BackboneRequest:
        """Parse ``name[@resolution][+features]``, e.g. ``efficientnet_lite0@64+stage-2``.

        The rest comes from the defaults.
        """
        if isinstance(text, BackboneRequest):
            return text
        text, _, features = str(text).partition("+")
        name, _, res = text.partition("@")
        if res:
            try:
                resolution = int(res.removesuffix("px"))
            except ValueError:
                raise ConfigError(
                    f"backbone {text!r}: resolution after '@' must be a number"
                ) from None
        selection = FeatureSelection.parse(features.strip() or None)
        return cls(name.strip(), weights, weights_file, resolution, selection.text)


@dataclass(frozen=True)
class ExtractConfig:
    """The options of one extraction, as given to :func:`~cactus_features.extract_features`.

    Every attribute is the keyword argument of the same name; see that function.
    """

    data: str | Path | ImageTable
    backbones: str | BackboneRequest | list[str | BackboneRequest]
    labels: str | Path | None = None
    layout: str = "auto"
    id_column: str = "id"
    label_column: str | list[str] = "has_cactus"
    label_separator: str | None = None
    classes: list[str] | None = None
    limit: int | None = None
    weights: str | None = "DEFAULT"
    weights_file: str | None = None
    resolution: int | None = None
    normalization: str = "weights"
    precision: str = "auto"
    channels_last: bool | None = None
    batch_size: int | None = None
    chunk_size: int = 1024
    device: str | None = None
    cache_dir: str | Path = "cache"
    split: SplitConfig | None = None
    fingerprint: str = "content"
    skip_bad_images: bool = False
    dtype: str = "float32"
    workers: int | None = None
    lock_timeout: float | None = None
    quiet: bool = False
    distributed: bool | None = None
    compile: bool = False

    @property
    def split_config(self) -> SplitConfig:
        """:attr:`split`, or the default 70/15/15 split with seed 0."""
        return self.split or SplitConfig()

    def validate(self) -> None:
        """Check the options that need no dataset and no backbone.

        Raises:
            ConfigError: No backbone, an unknown ``dtype``, or a size below 1.
        """
        if not self.backbone_list:
            raise ConfigError("no backbone given; pass at least one --backbone")
        if self.dtype not in ("float32", "float16"):
            raise ConfigError(f"--dtype {self.dtype!r}: use float32 or float16")
        for option, value in (
            ("--chunk-size", self.chunk_size),
            ("--batch-size", self.batch_size),
            ("--workers", self.workers),
        ):
            if value is not None and value < 1:
                raise ConfigError(f"{option} {value}: must be at least 1")

    @property
    def backbone_list(self) -> list[str | BackboneRequest]:
        """:attr:`backbones` as a list (a single name or request becomes one item)."""
        if isinstance(self.backbones, str | BackboneRequest):
            return [self.backbones]
        return list(self.backbones)

    def requests(self) -> list[BackboneRequest]:
        """One request per backbone, the default weights and resolution filled in."""
        return [
            BackboneRequest.parse(
                b, weights=self.weights, weights_file=self.weights_file, resolution=self.resolution
            )
            for b in self.backbone_list
        ]

    def read_table(self) -> ImageTable:
        """The dataset's image table (read from :attr:`data` unless it already is one)."""
        if isinstance(self.data, ImageTable):
            return self.data
        return read_dataset(
            self.data,
            self.labels,
            layout=self.layout,
            id_column=self.id_column,
            label_column=self.label_column,
            label_separator=self.label_separator,
            classes=self.classes,
            limit=self.limit,
        )

    def entry_key(
        self,
        request: BackboneRequest,
        *,
        dataset_fingerprint: str,
        precision: str,
        labels: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The cache key of one backbone: everything that determines its embeddings.

        The key's JSON (and so :func:`~cactus_features.store.format.key_hash` and the
        file name) must not change for the same inputs, or existing caches miss. It
        records the pre-processing that is applied (numeric mean/std, interpolation,
        antialiasing, resize policy and the pre-processing version, see
        :class:`~cactus_features.backbones.preprocessing.Preprocessing`), so entries
        written before that was recorded (or by other pre-processing code) never match.

        Args:
            request: The backbone.
            dataset_fingerprint: The dataset's fingerprint.
            precision: The resolved precision (``fp32``, ``bf16``, ``fp16``).
            labels: Multi-label data only: its label spec
                (:func:`~cactus_features.data.multilabel.label_spec`), stored with the
                task kind; single-label keys have neither, so they are unchanged.

        Raises:
            ConfigError: Unknown backbone or normalisation, or a resolution below 1.
            WeightsError: Unknown weights or missing weights file.
        """
        spec = get_spec(request.name)
        if request.resolution is not None and request.resolution < 1:
            raise ConfigError(
                f"{request.name}: resolution {request.resolution} must be at least 1 px"
            )
        res = int(request.resolution if request.resolution is not None else spec.default_resolution)
        selection = FeatureSelection.parse(request.features)
        if selection.text != LAST:
            select_features(build_on_meta(request.name), selection)  # refuses what cannot be cut
        w_label, w_sha = describe_weights(request.name, request.weights, request.weights_file)
        mean, std = choose_normalization(
            self.normalization,
            weights_stats(request.name, request.weights, request.weights_file),
            None,
        )
        key = {
            "backbone": request.name,
            "weights": w_label,
            "weights_sha256": w_sha,
            "init_seed": 0 if w_label == "random init" else None,
            "resolution": res,
            "normalization": self.normalization,
            "preprocessing": Preprocessing(mean, std, spec.interpolation).as_key(),
            "precision": precision,
            "dtype": self.dtype,
            "dataset_fingerprint": dataset_fingerprint,
            "fingerprint_mode": self.fingerprint,
            "split": self.split_config.as_dict(),
            "skip_bad_images": bool(self.skip_bad_images),
            "features": selection.text,
            "name": f"{request.name}@{res}"
            + ("" if selection.text == LAST else f"+{selection.text}"),
        }
        if labels is not None:
            key.update(task=MULTILABEL, label_spec=labels)
        return key
