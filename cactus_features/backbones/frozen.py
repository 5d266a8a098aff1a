"""A frozen backbone that maps uint8 image batches to pooled embeddings."""

from __future__ import annotations

import dataclasses
import logging
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cactus_features.backbones.preprocessing import Preprocessing, choose_normalization
from cactus_features.backbones.registry import (
    BackboneSpec,
    build_architecture,
    get_spec,
    strip_head,
)
from cactus_features.backbones.stages import FeatureSelection, select_features
from cactus_features.backbones.weights import LoadedWeights, load_weights
from cactus_features.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")

log = logging.getLogger("cactus_features")


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm that follows a convolution into its weights.

    The frozen model computes the same function with one pass over each
    activation less (measured on this project's 2-core CPU: ResNet-50 +12 %,
    EfficientNet-B0 +37 % images per second in fp32); outputs change by float
    rounding only (relative difference ~1e-7). Models that ``torch.fx`` cannot
    trace are returned unchanged.
    """
    from torch.fx.experimental.optimization import fuse

    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model
    try:
        return fuse(model.eval())
    except Exception as exc:  # tracing limits differ per architecture; folding is optional
        log.debug("batch-norm folding skipped for %s: %s", type(model).__name__, exc)
        return model


class FrozenBackbone(nn.Module):
    """Pre-processing plus a frozen model: ``uint8 [B, H, W, 3]`` in, ``float32 [B, D]`` out.

    Images are converted, resized (with the spec's interpolation, antialiased when
    shrinking) and normalised on the model's device, so only compact uint8 batches
    cross the bus.

    Args:
        model: The model with its classifier removed.
        spec: Its registry description.
        weights: Which weights it carries.
        resolution: Square input side the images are resized to.
        mean: Normalisation mean (RGB, on the 0-1 scale).
        std: Normalisation std.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast).
        channels_last: Run convolutions in channels-last memory format.
        compile: Run the model through ``torch.compile`` (first batches of each
            shape pay the compilation; worth it for long runs on CUDA).
        fold_bn: Fold batch norms into the preceding convolutions (see
            :func:`fold_batchnorm`).
    """

    def __init__(
        self,
        model: nn.Module,
        spec: BackboneSpec,
        weights: LoadedWeights,
        *,
        resolution: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        precision: str = "fp32",
        channels_last: bool = False,
        compile: bool = False,
        fold_bn: bool = True,
    ) -> None:
        super().__init__()
        model = model.eval().requires_grad_(False)
        self._num_params = sum(p.numel() for p in model.parameters())
        self.model = fold_batchnorm(model) if fold_bn else model
        self.spec = spec
        self.weights = weights
        self.resolution = int(resolution)
        self.precision = precision
        self.channels_last = channels_last
        self.compiled = bool(compile)
        self._stats = (tuple(float(v) for v in mean), tuple(float(v) for v in std))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        # Kept out of the module tree (no duplicate parameters in state_dict).
        self.__dict__["_run"] = torch.compile(self.model, dynamic=False) if compile else self.model
        self.eval()

    @property
    def device(self) -> torch.device:
        """Device the model lives on."""
        return self.mean.device

    @property
    def preprocessing(self) -> Preprocessing:
        """What :meth:`preprocess` applies (the cache key records the same)."""
        return Preprocessing(*self._stats, self.spec.interpolation)

    @property
    def num_features(self) -> int:
        """Embedding dimension ``D`` (timm's name for it)."""
        return self.spec.dim

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8 [B, H, W, 3]`` -> normalised ``float32 [B, 3, R, R]`` on the same device.

        Scaling to 0-1 and normalising are one fused multiply-add, applied on
        whichever side of the resize has fewer pixels (the resize is linear with
        weights summing to one, so the order changes float rounding only): for
        32 px images upscaled to 224 px that saves three passes over the large
        tensor. The NHWC batch viewed as NCHW already has channels-last strides,
        which every step keeps, so a channels-last model gets it without a copy.
        """
        x = images.permute(0, 3, 1, 2).float()
        scale = (255.0 * self.std).reciprocal()
        shift = -self.mean / self.std
        h, w = x.shape[-2:]
        r = self.resolution
        if (h, w) == (r, r):
            x = torch.addcmul(shift, x, scale)
        else:
            grow = h * w <= r * r
            if grow:
                x = torch.addcmul(shift, x, scale)
            x = F.interpolate(
                x,
                size=(r, r),
                mode=self.spec.interpolation,
                align_corners=False,
                antialias=h > r or w > r,
            )
            if not grow:
                x = torch.addcmul(shift, x, scale)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _autocast(self):
        if self.precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embed a batch of same-sized uint8 images; returns float32 ``[B, D]``."""
        x = self.preprocess(images.to(self.device, non_blocking=True))
        with self._autocast():
            out = self._run(x)
        return out.flatten(1).float()

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Alias of :meth:`forward` (timm's name for pooled features)."""
        return self(images)

    def count_flops(self) -> int:
        """FLOPs of one image at :attr:`resolution` (a multiply-add counts as 2)."""
        x = torch.zeros(1, 3, self.resolution, self.resolution, device=self.device)
        from torch.utils.flop_counter import FlopCounterMode  # imports triton: only when counting

        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            self.model(x)
        return int(counter.get_total_flops())

    def num_params(self) -> int:
        """Number of parameters of the backbone (classifier removed, before BN folding)."""
        return self._num_params


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Pick the device: the given one, else CUDA, then MPS, then CPU."""
    if device is not None and str(device) != "auto":
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise ConfigError(
                f"--device {device!r}: unknown device; use auto, cpu, cuda, cuda:N or mps"
            ) from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available here; use cpu or auto")
        return dev
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` means bf16 on CUDA and fp32 elsewhere (bf16 on CPU is opt-in).

    bf16 moves single embeddings beyond a cosine of 0.999 (against fp32 on the
    Kaggle images, EfficientNet-Lite0 at 64 / 224 px: minimum cosine 0.970 /
    0.980, median 0.9990) but not what a probe learns: test AUC 0.9719 vs 0.9717
    and 0.9955 vs 0.9955 (DeLong p 0.84, 0.89), fewer flipped test predictions
    than a different head seed (``benchmarks/bench_precision.py``, bf16 on this
    CPU's AVX-512 BF16 as a proxy for CUDA). So CUDA defaults to bf16 for its
    speed. On the CPU it is opt-in: it runs 1.3-2.4x faster only where the CPU
    has native bf16 (AVX512-BF16 / AMX).
    """
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision!r}: use auto, {', '.join(PRECISIONS)}")
    return precision


def build_backbone(
    name: str,
    *,
    weights: str | None = "DEFAULT",
    weights_file: str | Path | None = None,
    resolution: int | None = None,
    normalization: str = "weights",
    dataset_stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
    precision: str = "fp32",
    channels_last: bool | None = None,
    device: str | torch.device | None = None,
    init_seed: int = 0,
    compile: bool = False,
    features: str = "last",
) -> FrozenBackbone:
    """Build a frozen feature extractor from the registry.

    Args:
        name: Registry name (``resnet50``, ``efficientnet_lite0``, ...).
        weights: Weights name, or ``"none"`` for random initialisation.
        weights_file: A local state dict to load instead of downloading.
        resolution: Input side; defaults to the weights' training resolution.
        normalization: ``weights`` (the backbone's own mean/std), ``dataset``
            (``dataset_stats``) or ``none``.
        dataset_stats: ``(mean, std)`` of the training split, for ``dataset``.
        precision: ``fp32``, ``bf16`` or ``fp16``.
        channels_last: Channels-last memory format; default on for CUDA and CPU (on
            the CPU oneDNN's channels-last convolutions measured 1.2x (ResNet-50)
            to 1.5x (EfficientNet) faster than NCHW).
        device: Where to run; see :func:`resolve_device`.
        init_seed: Seed of the random initialisation (used when no weights are loaded).
        compile: Wrap the model in ``torch.compile``.
        features: Which layer the embedding is pooled from (``last``, ``stage-K``,
            ``concatN``; see :mod:`cactus_features.backbones.stages`).

    Returns:
        The frozen backbone, in eval mode, on its device.

    Raises:
        ConfigError: Unknown name, normalisation or a resolution the model cannot take.
        WeightsError: Weights that cannot be had or do not fit.
    """
    spec = get_spec(name)
    resolution = int(resolution or spec.default_resolution)
    if spec.fixed_resolution and resolution != spec.default_resolution:
        raise ConfigError(
            f"{name} only takes {spec.default_resolution} px inputs; got --resolution {resolution}"
        )
    if resolution < spec.min_resolution:
        raise ConfigError(
            f"{name} needs inputs of at least {spec.min_resolution} px; "
            f"got --resolution {resolution}"
        )
    dev = resolve_device(device)
    # Random initialisation is seeded, so "random init" names one reproducible model
    # (needed for cache keys and resume); the caller's RNG state is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = build_architecture(name)
    loaded = load_weights(model, name, weights, weights_file)
    strip_head(name, model)
    selection = FeatureSelection.parse(features)
    if selection.stages:
        model = select_features(model.eval(), selection)
        with torch.no_grad():
            dim = model(torch.zeros(1, 3, spec.min_resolution, spec.min_resolution)).shape[1]
        spec = dataclasses.replace(spec, dim=int(dim))
    if normalization == "dataset" and dataset_stats is None:
        raise ConfigError("normalization 'dataset' needs the training split's statistics")
    mean, std = choose_normalization(normalization, (loaded.mean, loaded.std), dataset_stats)
    if channels_last is None:
        channels_last = dev.type in ("cuda", "cpu")
    return FrozenBackbone(
        model,
        spec,
        loaded,
        resolution=resolution,
        mean=tuple(mean),
        std=tuple(std),
        precision=precision,
        channels_last=channels_last,
        compile=compile,
    ).to(dev)
