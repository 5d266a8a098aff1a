"""CLI commands: ``compare`` (several runs, full report) and ``metrics`` (one run)."""

from __future__ import annotations

from pathlib import Path

import click


def _threshold(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from cactus_features.errors import ConfigError
    from cactus_features.metrics.compare import parse_threshold

    try:
        return parse_threshold(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("report"),
    show_default=True,
    help="Folder for report.md, metrics.csv, pairwise.csv, efficiency.csv and PNG figures.",
)
@click.option(
    "--threshold",
    default="val",
    show_default=True,
    callback=_threshold,
    help="Primary threshold rule: 'val' (chosen on each run's validation split) or a number "
    "such as 0.5. Metrics at 0.5 and at 'val' are always both reported.",
)
@click.option(
    "--val-criterion",
    type=click.Choice(["youden", "f1"]),
    default="youden",
    show_default=True,
    help="How the validation threshold is chosen: max Youden's J or max F1.",
)
@click.option(
    "--bootstrap",
    "n_bootstrap",
    type=click.IntRange(min=0),
    default=2000,
    show_default=True,
    help="Paired bootstrap resamples of the test set for CIs (0: no intervals).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option(
    "--ci",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=0.95,
    show_default=True,
    help="Confidence level of the intervals.",
)
def compare(
    runs: tuple[Path, ...],
    out: Path,
    threshold: str,
    val_criterion: str,
    n_bootstrap: int,
    seed: int,
    ci: float,
) -> None:
    """Compare backbones from their run files (same test images required).

    Prints a summary table and writes a report folder with Markdown, CSV
    tables and figures (ROC, precision-recall, training curves, confusion
    matrices).
    """
    from cactus_features import report

    result = report.compare(
        list(runs),
        out=out,
        threshold=threshold,
        n_bootstrap=n_bootstrap,
        seed=seed,
        ci=ci,
        val_criterion=val_criterion,  # type: ignore[arg-type]
    )
    click.echo(result.to_text())


@click.command("metrics")
@click.argument("run", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--val-criterion",
    type=click.Choice(["youden", "f1"]),
    default="youden",
    show_default=True,
    help="How the validation threshold is chosen: max Youden's J or max F1.",
)
@click.option(
    "--split",
    type=click.Choice(["test", "val", "train"]),
    default="test",
    show_default=True,
    help="Split to evaluate.",
)
def metrics(run: Path, val_criterion: str, split: str) -> None:
    """Print one run's confusion matrix and metrics at 0.5 and at the validation threshold."""
    from cactus_features import report

    click.echo(report.evaluate_run(run, val_criterion=val_criterion, split=split).to_text())  # type: ignore[arg-type]


COMMANDS = [compare, metrics]
