"""``-q`` silences progress bars, also for a study given as a TOML file."""

from __future__ import annotations

from cactus_features.cli import main


def test_run_with_a_study_file_and_quiet_prints_no_progress_bar(kaggle_data, tmp_path, capsys):
    img_dir, csv_path = kaggle_data
    study = tmp_path / "study.toml"
    study.write_text(
        f'data = "{img_dir}"\nlabels = "{csv_path}"\n'
        f'cache_dir = "{tmp_path / "cache"}"\nout = "{tmp_path / "r"}"\n'
        '[[backbone]]\nname = "resnet18"\nweights = "none"\nresolution = 16\n'
        '[[head]]\nhead = "linear"\n'
    )
    try:
        main(["run", "--config", str(study), "-q"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    captured = capsys.readouterr()
    assert "report (linear)" in captured.out
    assert "img/s" not in captured.err and "%|" not in captured.err
