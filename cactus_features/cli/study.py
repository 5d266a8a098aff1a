"""CLI commands for whole studies: ``run``, ``demo``, ``predict``."""

from __future__ import annotations

from pathlib import Path

import click

from cactus_features.cli.options import setup_logging


def _print_study(result, out: Path) -> None:
    """One line per backbone and head, then where the report is."""
    for label, comparison in result.comparisons.items():
        click.echo(f"\nhead {label}:")
        click.echo(comparison.to_text())
    for name, reason in result.skipped.items():
        click.echo(f"skipped {name}: {reason}")
    for name, reason in result.substituted.items():
        click.echo(f"{name} ran with random initialisation (labelled 'random init'): {reason}")
    for label, folder in result.reports.items():
        click.echo(f"report ({label}): {folder / 'report.md'}")


@click.command("run")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="Study TOML file.")
@click.option("--data", help="Image folder (Kaggle layout with --labels, or class folders).")
@click.option("--labels", help="Label CSV.")
@click.option("--backbone", "backbones", multiple=True, help="NAME[@RESOLUTION]; repeat.")
@click.option("--weights", default="DEFAULT", show_default=True)
@click.option("--resolution", type=int, help="Default input side for every backbone.")
@click.option("--head", "heads", multiple=True, help="linear or mlp; repeat for several.")
@click.option("--epochs", type=int, default=500, show_default=True)
@click.option("--lr", type=float, default=5e-4, show_default=True)
@click.option("--out", default="report", show_default=True)
@click.option("--cache-dir", default="cache", show_default=True)
@click.option(
    "--missing-weights",
    type=click.Choice(["error", "skip", "random"]),
    default="error",
    show_default=True,
    help="What to do when pretrained weights cannot be had.",
)
@click.option("--limit", type=int, help="Use only the first N images.")
@click.option("--device", default=None)
@click.option("--quiet", "-q", is_flag=True)
def run(**kw) -> None:
    """Extract -> train -> compare in one go, re-using whatever is cached."""
    from cactus_features.errors import ConfigError
    from cactus_features.study.config import StudyConfig, load_study
    from cactus_features.study.runner import run_study

    setup_logging(kw["quiet"])
    if kw["config_file"]:
        config = load_study(kw["config_file"])
        config.quiet = config.quiet or kw["quiet"]
    else:
        if not kw["data"] or not kw["backbones"]:
            raise ConfigError("give --config STUDY.toml, or --data and at least one --backbone")
        extract = {k: kw[k] for k in ("limit", "device") if kw[k] is not None}
        from cactus_features.extract.api import BackboneRequest

        config = StudyConfig(
            data=kw["data"],
            labels=kw["labels"],
            backbones=[
                BackboneRequest.parse(b, weights=kw["weights"], resolution=kw["resolution"])
                for b in kw["backbones"]
            ],
            heads=[
                {"head": h, "epochs": kw["epochs"], "lr": kw["lr"]}
                for h in (kw["heads"] or ("linear",))
            ],
            out=kw["out"],
            cache_dir=kw["cache_dir"],
            missing_weights=kw["missing_weights"],
            extract=extract,
            quiet=kw["quiet"],
        )
    result = run_study(config)
    _print_study(result, Path(config.out))


@click.command()
@click.option(
    "--dataset",
    type=click.Choice(["aerial", "digits"]),
    default="aerial",
    show_default=True,
    help="aerial: a generated Kaggle-layout cactus set (2 classes); digits: scikit-learn's "
    "8x8 digit scans as class folders (10 classes).",
)
@click.option("--out", help="Report folder (default report/demo, report/demo-digits).")
@click.option("--cache-dir", default="cache", show_default=True)
@click.option("--n-train", type=int, default=2000, show_default=True, help="Aerial only.")
@click.option("--resolution", type=int, help="Input side (default 96 aerial, 64 digits).")
@click.option("--quiet", "-q", is_flag=True)
def demo(
    dataset: str, out: str | None, cache_dir: str, n_train: int, resolution: int | None, quiet: bool
) -> None:
    """The whole study offline, on generated aerial images or on scikit-learn's digits."""
    from cactus_features.study.demo import run_demo

    setup_logging(quiet)
    result = run_demo(
        dataset=dataset,
        out=out,
        cache_dir=cache_dir,
        n_train=n_train,
        resolution=resolution,
        quiet=quiet,
    )
    folder = result.out
    _print_study(result.study, folder)
    if result.held_out_accuracy is not None:
        click.echo(
            f"submission for the {len(result.submission.ids)} held-out digits: "
            f"{result.submission.path} (top-1 accuracy {result.held_out_accuracy:.3f} against "
            f"{result.data_root / 'test_labels.csv'})"
        )
    else:
        click.echo(f"submission for the generated test images: {result.submission.path}")
    first = next(iter(result.study.reports.values()), folder)
    click.echo(f"done: open {first / 'report.md'}")


@click.command()
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--data", required=True, help="Folder of unlabelled images (e.g. test/).")
@click.option("--out", default="submission.csv", show_default=True)
@click.option("--sample-submission", help="CSV whose id order the output follows.")
@click.option("--id-column", default="id", show_default=True)
@click.option("--score-column", help="Default: the training CSV's label column.")
@click.option(
    "--write",
    type=click.Choice(["proba", "label"]),
    default="proba",
    show_default=True,
    help="proba: probabilities (one column per class or label for K classes and "
    "multi-label); label: one column of predictions (the most probable class; the labels "
    "of probability >= 0.5 joined by the dataset's separator, else a space).",
)
@click.option("--device", default=None)
@click.option("--quiet", "-q", is_flag=True)
def predict(run_file: str, **kw) -> None:
    """Score unlabelled images with a trained head; writes Kaggle's id,<label> format."""
    from cactus_features.study.predict import predict_folder

    setup_logging(kw["quiet"])
    sub = predict_folder(run_file, **kw)
    click.echo(f"wrote {len(sub.ids)} scores to {sub.path}")


COMMANDS = [run, demo, predict]
