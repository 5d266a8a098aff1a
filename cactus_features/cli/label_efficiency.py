"""CLI command ``label-efficiency``: the default probe on growing shares of the training split."""

from __future__ import annotations

from pathlib import Path

import click

from cactus_features.errors import ConfigError

DEFAULT_FRACTIONS = "0.01,0.02,0.05,0.1,0.25,0.5,1"
"""The ``--fractions`` default (:data:`~cactus_features.study.label_efficiency.FRACTIONS`)."""


def parse_fractions(text: str) -> tuple[float, ...]:
    """``"0.01,0.1,1"`` -> ``(0.01, 0.1, 1.0)``.

    Raises:
        ConfigError: If a value is not a number.
    """
    try:
        return tuple(float(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise ConfigError(
            f"--fractions {text!r} is invalid; give shares such as 0.01,0.1,1"
        ) from None


@click.command("label-efficiency")
@click.argument("caches", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--fractions",
    default=DEFAULT_FRACTIONS,
    show_default=True,
    help="Shares of the training split, comma-separated, each in (0, 1].",
)
@click.option("--seeds", type=int, default=3, show_default=True, help="Subsampling seeds 0..N-1.")
@click.option(
    "--head",
    type=click.Choice(["linear", "mlp", "knn"]),
    default="linear",
    show_default=True,
    help="The probe (trained with its defaults).",
)
@click.option(
    "--min-per-class",
    type=int,
    default=2,
    show_default=True,
    help="Fewest training rows of each class in any subsample.",
)
@click.option("--n-bootstrap", type=int, default=2000, show_default=True)
@click.option("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if any).")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for label_efficiency.md, .csv and .png.",
)
@click.option("--quiet", "-q", is_flag=True, help="Only print the table.")
def label_efficiency(
    caches: tuple[Path, ...],
    fractions: str,
    seeds: int,
    head: str,
    min_per_class: int,
    n_bootstrap: int,
    device: str | None,
    out: Path,
    quiet: bool,
) -> None:
    """Train the probe on nested stratified subsamples of each CACHE's training split.

    One line per backbone in the table and the figure: test AUC and accuracy
    against the share of training rows, mean over seeds with bootstrap CIs.
    """
    from cactus_features.report.formatting import table
    from cactus_features.report.label_efficiency import rows, write_label_efficiency
    from cactus_features.study.label_efficiency import label_efficiency as run

    if seeds < 1:
        raise ConfigError(f"--seeds {seeds} is invalid; give 1 or more (3 or more for a spread)")
    if min_per_class < 1:
        raise ConfigError(f"--min-per-class {min_per_class} is invalid; give 1 or more")
    if n_bootstrap < 0:
        raise ConfigError(f"--n-bootstrap {n_bootstrap} is invalid; give 0 or more")
    result = run(
        list(caches),
        parse_fractions(fractions),
        tuple(range(seeds)),
        n_bootstrap=n_bootstrap,
        min_per_class=min_per_class,
        head=head,
        device=device,
        progress=None if quiet else (lambda line: click.echo(line, err=True)),
    )
    paths = write_label_efficiency(result, out)
    headers, body = rows(result)
    click.echo(table(headers, body, markdown=False))
    click.echo(
        f"\n{result.seconds:.1f}s; written {paths['markdown']}, {paths['csv']}, {paths['figure']}"
    )


COMMANDS = [label_efficiency]
