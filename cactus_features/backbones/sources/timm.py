"""Every timm model as ``timm/<model>``; optional (``pip install "cactus-features[timm]"``).

Names are ``timm/`` plus any ``timm.list_models()`` entry, listed only when
asked (importing the registry does not import timm). Models are built headless
with ``timm.create_model(name, pretrained=False, num_classes=0)``, so they
return timm's pooled features; their default resolution, mean/std and
interpolation come from the model's default pretrained config. Models that
timm marks as fixed-size (ViTs, Swins) are built with ``dynamic_img_size`` where
the architecture supports it, so they take other resolutions too (position
embeddings resampled); the others only take their pretrained size.

Weights: ``DEFAULT`` (timm's default pretrained tag) or any tag of the
architecture (``a1_in1k``), read from the Hugging Face cache (or, for weights
timm only publishes by URL, from ``$TORCH_HOME/hub/checkpoints``) and fetched
there when missing; a local file (``--weights-file``, ``.safetensors`` or a
``torch.save`` state dict, with or without the classifier); or ``none``. The
identity in cache keys is the tag plus the weights file's SHA-256.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import torch
from torch import nn

from cactus_features.backbones.architecture import build_meta
from cactus_features.backbones.spec import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneSpec,
    SourceDefaults,
    WeightsSpec,
)
from cactus_features.backbones.statedict import load_strict, read_state_dict, sha256_file
from cactus_features.errors import ConfigError, WeightsError

PREFIX = "timm/"
INSTALL_HINT = 'pip install "cactus-features[timm]"'
_HF_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm itself looks for, in order
_SHA256 = re.compile(r"[0-9a-f]{64}")
_INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
_MIN_RESOLUTION = 32


def import_timm() -> ModuleType:
    """Import timm, or say in one line how to install it.

    Raises:
        ConfigError: If timm is not installed.
    """
    try:
        import timm
    except ImportError:
        raise ConfigError(
            f"{PREFIX}<model> backbones need timm, which is not installed: {INSTALL_HINT}"
        ) from None
    return timm


@cache
def _model_names() -> tuple[str, ...]:
    return tuple(PREFIX + n for n in import_timm().list_models())


def _arch(name: str) -> str:
    return name.removeprefix(PREFIX)


def _pretrained_cfgs(name: str) -> dict[str, Any]:
    """The architecture's pretrained configs that have weights, by tag, timm's default first."""
    from timm.models import get_arch_pretrained_cfgs

    cfgs = get_arch_pretrained_cfgs(_arch(name))
    return {
        key.partition(".")[2]: cfg
        for key, cfg in cfgs.items()
        if cfg.hf_hub_id or cfg.url or cfg.file
    }


def _default_cfg(name: str) -> Any:
    from timm.models import get_pretrained_cfg

    return get_pretrained_cfg(_arch(name))


def _hf_cache_dir(cache_dir: Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def read_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a ``torch.save`` file (``weights_only``).

    Raises:
        WeightsError: If the file cannot be read as a state dict of tensors.
    """
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise WeightsError(
                f"{path}: not a readable safetensors file ({type(exc).__name__}); "
                "fetch it again or pass another --weights-file"
            ) from None
    state = read_state_dict(path)
    if isinstance(state.get("state_dict_ema"), dict):  # timm training checkpoints
        state = state["state_dict_ema"]
    return state


def _without_classifier(state: dict[str, torch.Tensor], cfg: Any) -> dict[str, torch.Tensor]:
    """Drop the classifier tensors (named by the pretrained config) from a full checkpoint."""
    heads = cfg.classifier if cfg is not None else None
    heads = (heads,) if isinstance(heads, str) else tuple(heads or ())
    drop = {f"{h}.{p}" for h in heads for p in ("weight", "bias")}
    return {k: v for k, v in state.items() if k not in drop}


@dataclass(frozen=True)
class TimmSource(SourceDefaults):
    """The timm models, under the ``timm/`` prefix (built headless, pooled features).

    Attributes:
        cache_dir: Hugging Face hub cache to read and fetch weights in; ``None``
            is the default (``$HF_HUB_CACHE``, ``~/.cache/huggingface/hub``).
    """

    cache_dir: Path | None = None
    label: ClassVar[str] = "timm"
    prefix: ClassVar[str] = PREFIX
    # Resolving named weights may fetch the file (the cache key needs its hash).

    def names(self) -> tuple[str, ...]:
        """``timm/`` plus every ``timm.list_models()`` entry (imports timm).

        Raises:
            ConfigError: If timm is not installed.
        """
        return _model_names()

    def preview(self, name: str) -> tuple[int, tuple[str, ...]]:
        """Default resolution and weights names, from the configs alone (no model built)."""
        cfg = _default_cfg(name)
        tags = tuple(_pretrained_cfgs(name))
        return (int(cfg.input_size[-1]) if cfg is not None else 224), (
            ("DEFAULT", *tags) if tags else ()
        )

    def unknown_hint(self, name: str) -> str | None:
        """A hint for a ``timm/`` name timm does not know, e.g. one with a weights tag."""
        arch, dot, tag = _arch(name).partition(".")
        if dot and PREFIX + arch in self.names():
            return f"use --backbone {PREFIX}{arch} --weights {tag}"
        return None

    def _kwargs(self, name: str) -> dict[str, Any]:
        """Keyword arguments of ``create_model``: dynamic image size for fixed-size models."""
        cfg = _default_cfg(name)
        if cfg is not None and cfg.fixed_input_size:
            return {"dynamic_img_size": True, "dynamic_img_pad": True}
        return {}

    def _create(self, name: str) -> nn.Module:
        timm = import_timm()
        kwargs = self._kwargs(name)
        try:
            return timm.create_model(_arch(name), pretrained=False, num_classes=0, **kwargs)
        except TypeError:
            if not kwargs:
                raise
            return timm.create_model(_arch(name), pretrained=False, num_classes=0)

    def build(self, name: str) -> nn.Module:
        """The untrained model, built headless (``num_classes=0``: pooled features)."""
        return self._create(name)

    def strip_classifier(self, model: nn.Module) -> nn.Module:
        """Remove the classifier the timm way (``reset_classifier(0)``), in place."""
        model.reset_classifier(0)
        return model

    def spec(self, name: str) -> BackboneSpec:
        """Dimension from a ``meta`` build; resolution and preprocessing from the default config."""
        model = _build_meta(lambda: self._create(name))
        cfg = _default_cfg(name)
        resolution, weights = self.preview(name)
        dynamic = bool(getattr(model, "dynamic_img_size", False))
        fixed = bool(cfg is not None and cfg.fixed_input_size and not dynamic)
        if fixed:
            minimum = resolution
        elif dynamic:  # one patch
            patch = getattr(getattr(model, "patch_embed", None), "patch_size", _MIN_RESOLUTION)
            minimum = int(patch[0] if isinstance(patch, tuple | list) else patch)
        elif cfg is not None and cfg.min_input_size:
            minimum = int(cfg.min_input_size[-1])
        else:
            minimum = _MIN_RESOLUTION
        interpolation = getattr(cfg, "interpolation", "bilinear")
        return BackboneSpec(
            name,
            int(getattr(model, "head_hidden_size", None) or model.num_features),
            resolution,
            minimum,
            fixed,
            weights,
            self.label,
            mean=tuple(getattr(cfg, "mean", IMAGENET_MEAN)),  # type: ignore[arg-type]
            std=tuple(getattr(cfg, "std", IMAGENET_STD)),  # type: ignore[arg-type]
            interpolation=interpolation if interpolation in _INTERPOLATIONS else "bilinear",
            offline=False,
        )

    def _tag(self, name: str, weights: str) -> tuple[str, Any]:
        cfgs = _pretrained_cfgs(name)
        if not cfgs:
            raise WeightsError(
                f"{name} has no pretrained weights in timm; "
                "use --weights none or --weights-file PATH"
            )
        if weights.upper() == "DEFAULT":
            tag = _default_cfg(name).tag
            return (tag, cfgs[tag]) if tag in cfgs else next(iter(cfgs.items()))
        wanted = weights.lower()
        if wanted not in cfgs:
            raise WeightsError(
                f"{name} has no weights {weights!r}; choose one of DEFAULT, "
                f"{', '.join(cfgs)} or none"
            )
        return wanted, cfgs[wanted]

    def _local_file(self, cfg: Any) -> Path | None:
        """The weights file timm would load, when it is already on this machine."""
        if cfg.file and Path(cfg.file).is_file():
            return Path(cfg.file)
        if cfg.hf_hub_id:
            from huggingface_hub import try_to_load_from_cache

            for filename in (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HF_FILES:
                found = try_to_load_from_cache(cfg.hf_hub_id, filename, cache_dir=self.cache_dir)
                if isinstance(found, str):
                    return Path(found)
        if cfg.url:
            cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
            if cached.is_file():
                return cached
        return None

    def _where(self, name: str, tag: str, cfg: Any) -> str:
        """How to get the weights file of ``tag`` onto this machine, as one clause."""
        if cfg.hf_hub_id:
            filename = cfg.hf_hub_filename or _HF_FILES[0]
            folder = "models--" + cfg.hf_hub_id.replace("/", "--")
            return (
                f"on a machine with internet run `huggingface-cli download {cfg.hf_hub_id} "
                f"{filename}` and copy the folder {folder} of its cache into "
                f"{_hf_cache_dir(self.cache_dir)}, or pass --weights-file PATH (that {filename})"
            )
        target = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
        return f"download {cfg.url} to {target}, or pass --weights-file PATH"

    def _fetch(self, name: str, tag: str, cfg: Any) -> Path:
        """Download the weights file into the hub cache (or ``$TORCH_HOME``)."""
        try:
            if cfg.hf_hub_id:
                import huggingface_hub
                from huggingface_hub.errors import EntryNotFoundError

                files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HF_FILES
                for filename in files:
                    try:
                        return Path(
                            huggingface_hub.hf_hub_download(
                                cfg.hf_hub_id, filename, cache_dir=self.cache_dir
                            )
                        )
                    except EntryNotFoundError:
                        if filename == files[-1]:
                            raise
            target = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(cfg.url, str(target), progress=False)
            return target
        except Exception as exc:  # network, hub and disk errors all end the same way
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise WeightsError(
                f"could not get {name} weights {tag} ({type(exc).__name__}: {first[:120]}); "
                f"{self._where(name, tag, cfg)}"
            ) from None

    def resolve_weights(
        self, name: str, weights: str, *, allow_download: bool = True
    ) -> WeightsSpec:
        """``DEFAULT`` or a pretrained tag; fetches the file if needed, to know its hash.

        Args:
            name: ``timm/<model>``.
            weights: ``DEFAULT`` or a tag (case-insensitive).
            allow_download: Whether a missing file may be fetched; without it a
                missing file is a :class:`WeightsError` saying where to put it.

        Raises:
            WeightsError: Unknown tag, or the file is missing and cannot be fetched.
        """
        tag, cfg = self._tag(name, weights)
        path = self._local_file(cfg)
        if path is None:
            if not allow_download:
                raise WeightsError(
                    f"{name} weights {tag} are not in {_hf_cache_dir(self.cache_dir)} and "
                    f"downloads are off; {self._where(name, tag, cfg)}"
                )
            path = self._fetch(name, tag, cfg)
        return WeightsSpec(tag, _file_sha256(path), tuple(cfg.mean), tuple(cfg.std), False)  # type: ignore[arg-type]

    def _load_state(self, model: nn.Module, name: str, path: Path, cfg: Any) -> None:
        state = _without_classifier(read_weights_file(path), cfg)
        hint = "; is it the weights of another timm model?"
        load_strict(model, state, path, name, hint)

    def load_weights(self, model: nn.Module, name: str, weights: WeightsSpec) -> None:
        """Load the resolved tag's file strictly (its classifier dropped), checking its hash."""
        tag, cfg = self._tag(name, weights.label)
        path = self._local_file(cfg) or self._fetch(name, tag, cfg)
        digest = _file_sha256(path)
        if digest != weights.sha256:
            raise WeightsError(
                f"{path}: SHA-256 {digest[:12]}... is not the {weights.sha256[:12]}... resolved "
                f"for {name} {tag}; the file changed, run again"
            )
        self._load_state(model, name, path, cfg)

    def load_file(self, model: nn.Module, name: str, path: Path) -> str:
        """A timm state dict (``.safetensors`` or ``.pth``), with or without classifier."""
        digest = sha256_file(path)
        self._load_state(model, name, path, _default_cfg(name))
        return digest

    def weights_unavailable(
        self, name: str, weights: WeightsSpec, *, allow_download: bool
    ) -> str | None:
        """Resolved weights are on this machine (resolving fetched them if allowed)."""
        tag, cfg = self._tag(name, weights.label)
        if self._local_file(cfg) is None:
            return f"{name} weights {tag} are not in {_hf_cache_dir(self.cache_dir)}"
        return None


def _file_sha256(path: Path) -> str:
    """SHA-256 of a weights file; a hub-cache blob is named by it, so it is not re-read."""
    blob = Path(os.path.realpath(path)).name
    return blob if _SHA256.fullmatch(blob) else sha256_file(path)


def _build_meta(build: Any) -> nn.Module:
    """:func:`build_meta`, falling back to the CPU for builders that compute on tensors."""
    try:
        return build_meta(build)
    except RuntimeError:
        return build()
