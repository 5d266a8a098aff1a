"""CLI commands of stage one: ``extract``, ``backbones``, ``info``, ``verify``."""

from __future__ import annotations

import json

import click

from cactus_features.cli.options import DATA_OPTIONS, apply, setup_logging


@click.command()
@apply(DATA_OPTIONS)
@click.option(
    "--backbone",
    "backbones",
    multiple=True,
    required=True,
    help="Registry name, optionally NAME@RESOLUTION[+FEATURES] (FEATURES: last, stage-K, "
    "concatN); repeat for several (decoded once for all).",
)
@click.option(
    "--weights",
    default="DEFAULT",
    show_default=True,
    help="Weights name (DEFAULT, IMAGENET1K_V2, ...) or none for random initialisation.",
)
@click.option(
    "--weights-file", type=click.Path(dir_okay=False), help="Local state dict to load instead."
)
@click.option(
    "--resolution", type=int, help="Input side in px (default: each backbone's pretrained one)."
)
@click.option(
    "--normalization",
    type=click.Choice(["weights", "dataset", "none"]),
    default="weights",
    show_default=True,
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default="auto",
    show_default=True,
    help="auto: bf16 on CUDA, fp32 on CPU.",
)
@click.option("--channels-last/--no-channels-last", default=None, help="Default: on for CUDA.")
@click.option("--batch-size", type=int, help="Images per forward pass (default 256 CUDA, 64 CPU).")
@click.option("--chunk-size", type=int, default=1024, show_default=True, help="Resume unit.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, mps.")
@click.option("--cache-dir", default="cache", show_default=True, type=click.Path(file_okay=False))
@click.option("--split", "split_ratios", default="0.7,0.15,0.15", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Split seed.")
@click.option(
    "--fingerprint", type=click.Choice(["content", "size"]), default="content", show_default=True
)
@click.option("--skip-bad-images", is_flag=True, help="Leave undecodable images out, recorded.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32")
@click.option("--workers", type=int, help="Decoder threads.")
@click.option("--lock-timeout", type=float, help="Seconds to wait for another extracting process.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar, warnings only.")
@click.option("--compile", is_flag=True, help="Run models through torch.compile (GPUs).")
@click.option(
    "--launcher",
    type=click.Choice(["none", "torchrun"]),
    default="none",
    show_default=True,
    help="torchrun: start --nproc-per-node processes that share the work by chunk.",
)
@click.option("--nproc-per-node", type=int, default=2, show_default=True)
def extract(**kw) -> None:
    """Extract pooled embeddings of a dataset into the cache, once per backbone.

    Under torchrun (`torchrun --nproc-per-node N -m cactus_features extract ...`)
    each rank computes its share of the chunks and rank 0 writes the one cache file.
    """
    from cactus_features.data.split import SplitConfig
    from cactus_features.errors import ConfigError
    from cactus_features.extract.api import extract_features
    from cactus_features.extract.distributed import launched_by_torchrun

    launcher, nproc = kw.pop("launcher"), kw.pop("nproc_per_node")
    if launcher == "torchrun" and not launched_by_torchrun():
        _relaunch_with_torchrun(nproc)
        return
    setup_logging(kw["quiet"])
    try:
        ratios = [float(r) for r in kw.pop("split_ratios").split(",")]
        if len(ratios) != 3:
            raise ValueError
    except ValueError:
        raise ConfigError("--split must be three numbers, e.g. 0.7,0.15,0.15") from None
    split = SplitConfig(*ratios, seed=kw.pop("seed"))
    classes = kw.pop("classes")
    device = kw.pop("device")
    columns = kw.pop("label_columns")
    if columns:
        kw["label_column"] = [c.strip() for c in columns.split(",")]
    sets = extract_features(
        kw.pop("data"),
        list(kw.pop("backbones")),
        classes=classes.split(",") if classes else None,
        device=None if device == "auto" else device,
        split=split,
        **kw,
    )
    for fs in sets:
        t = fs.attrs.get("timings", {})
        click.echo(
            f"{fs.name:<28} {fs.attrs.get('weights_label', ''):<14} dim {fs.dim:<5} "
            f"{len(fs):>7} images  {t.get('images_per_second', 0):>8.1f} img/s  {fs.path}"
        )


def _relaunch_with_torchrun(nproc: int) -> None:
    """Run this same command under ``torch.distributed.run`` with ``nproc`` processes."""
    import subprocess
    import sys

    from cactus_features.errors import ConfigError

    if nproc < 1:
        raise ConfigError(f"--nproc-per-node {nproc}: must be at least 1")
    args = sys.argv[1:]
    forwarded, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg in ("--launcher", "--nproc-per-node"):
            skip = True
            continue
        if arg.startswith(("--launcher=", "--nproc-per-node=")):
            continue
        forwarded.append(arg)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "cactus_features",
        *forwarded,
    ]
    click.echo(f"launching: {' '.join(command[2:])}", err=True)
    sys.exit(subprocess.call(command))


@click.command()
@click.argument("pattern", required=False)
@click.option(
    "--source",
    type=click.Choice(["torchvision", "lite", "timm"]),
    help="List one source only (timm: the optional timm/<model> names).",
)
@click.option(
    "--dims",
    is_flag=True,
    help="Also compute timm models' dimensions (builds each one on the meta device: slow).",
)
def backbones(pattern: str | None, source: str | None, dims: bool) -> None:
    """List the registry: name, embedding dimension, default resolution, weights.

    PATTERN filters names (fnmatch, e.g. 'resnet*' or 'timm/convnext_*'). timm
    rows show their dimension with --dims only; the rest come from timm's configs.
    """
    import importlib.util

    from cactus_features.backbones.registry import list_backbones, preview
    from cactus_features.backbones.sources.timm import INSTALL_HINT

    names = list_backbones(source, pattern)
    click.echo(f"{'name':<40} {'dim':>5} {'res':>5}  weights")
    for name in names:
        row = preview(name, dims=dims)
        offline = "  (offline)" if row.offline else ""
        dim = "-" if row.dim is None else str(row.dim)
        weights = ", ".join(row.weights) or "(none: random init or --weights-file)"
        click.echo(f"{name:<40} {dim:>5} {row.default_resolution:>5}  {weights}{offline}")
    if not names:
        click.echo("no backbone matches", err=True)
    if source is None and importlib.util.find_spec("timm") is None:
        click.echo(f"timm/<model> backbones: timm is not installed ({INSTALL_HINT})", err=True)


@click.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def info(path: str, as_json: bool) -> None:
    """Print what a cache file holds."""
    import numpy as np

    from cactus_features.features import SPLIT_NAMES, load_features
    from cactus_features.notices import collapse_message, is_collapsed

    fs = load_features(path)
    if as_json:
        click.echo(json.dumps({"key": fs.key, "attrs": fs.attrs}, indent=2, default=str))
        return
    click.echo(f"file        {fs.path}")
    click.echo(f"backbone    {fs.key.get('backbone')}  weights {fs.key.get('weights')}")
    click.echo(
        f"input       {fs.key.get('resolution')} px, normalisation {fs.key.get('normalization')}, "
        f"precision {fs.key.get('precision')}"
    )
    click.echo(f"embeddings  {len(fs)} x {fs.dim} ({fs.key.get('dtype')})")
    click.echo(f"classes     {', '.join(fs.class_names) or '(unlabelled)'} ({fs.task})")
    for code, name in enumerate(SPLIT_NAMES):
        m = fs.split == code
        if fs.label_matrix is not None:
            counts, per = fs.label_matrix[m].sum(axis=0), "per label"
        else:
            counts = np.bincount(fs.labels[m], minlength=len(fs.class_names)) if m.any() else []
            per = "per class"
        click.echo(f"{name:<11} {int(m.sum()):>6} images  {per} {list(map(int, counts))}")
    click.echo(f"dataset     {fs.attrs.get('dataset_root')} ({fs.key.get('dataset_fingerprint')})")
    health = fs.attrs.get("health", {})
    if is_collapsed(fs.attrs):
        click.echo(f"health      {collapse_message(fs.name, health, fs.key)}")
    else:
        click.echo(f"health      {health.get('message', '?')}")
    t = fs.attrs.get("timings", {})
    click.echo(
        f"timings     {t.get('seconds', 0):.1f}s model stage, "
        f"{t.get('images_per_second', 0):.1f} img/s"
    )
    click.echo(f"versions    {fs.attrs.get('versions', {})}")


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--cache-dir", default="cache", show_default=True, help="Used when no path is given.")
@click.option("--no-dataset", is_flag=True, help="Skip re-reading the dataset (staleness check).")
def verify(paths: tuple[str, ...], cache_dir: str, no_dataset: bool) -> None:
    """Re-check cache files: format, completeness, checksum, finiteness, stale dataset."""
    import sys
    from pathlib import Path

    from cactus_features.errors import CacheError
    from cactus_features.extract.verify import verify_file

    files = [Path(p) for p in paths] or sorted(
        p for p in Path(cache_dir).glob("*/*.h5") if not p.name.startswith(".")
    )
    if not files:
        raise CacheError(f"{cache_dir}: no cache files to verify")
    failed = 0
    for path in files:
        report = verify_file(path, check_dataset=not no_dataset)
        status = click.style("ok", fg="green") if report.ok else click.style("FAIL", fg="red")
        click.echo(f"{status:<4} {path}")
        for line in report.problems:
            click.echo(f"     problem: {line}")
        for line in report.notes:
            click.echo(f"     {line}")
        failed += not report.ok
    if failed:
        click.echo(f"{failed} of {len(files)} files failed verification", err=True)
        sys.exit(1)


COMMANDS = [extract, backbones, info, verify]
