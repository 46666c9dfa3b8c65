"""`genlab report` on bad input keeps genlab's promise: one `genlab: error:` line naming the argument or file and
the fix (or, for one unreadable run among readable ones, a report of the others that lists it), never a
traceback; and it never replaces a file it did not write, nor leaves anything behind when it refuses.

Run folders are written by hand, as genlab train leaves them (summary.json, .hydra/, csv/, samples/): no training.
"""

from __future__ import annotations

import csv
import json
import shlex
from pathlib import Path

import pytest

from tests.conftest import Finished, run_genlab


def report(*args: str | Path, cwd: Path) -> Finished:
    return run_genlab("report", *map(str, args), cwd=cwd)


def make_run(folder: Path, overrides: list[str], metrics: dict[str, float] | None = None, status: str = "completed",
             error: str | None = None, curve: bool = False, grid: bool = False) -> Path:
    """A run folder as genlab train leaves it: summary.json, Hydra's record of the run, and optionally a CSV
    curve of val/fid and a last sample grid."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("model:\n  latent_dim: 8\nseed: 0\n")
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "summary.json").write_text(json.dumps({"status": status, "overrides": overrides, "optimized_metric": None,
                                                     "metrics": metrics or {}, "error": error}))
    if curve:
        (folder / "csv").mkdir()
        fid = (metrics or {}).get("val/fid", 1.0)
        (folder / "csv" / "metrics.csv").write_text(f"epoch,step,val/fid\n0,10,{fid + 5}\n1,20,{fid}\n")
    if grid:
        from PIL import Image

        (folder / "samples").mkdir()
        Image.new("RGB", (8, 8), (200, 0, 0)).save(folder / "samples" / "last.png")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` (hidden ones included) by its relative path, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_one_error_line(result: Finished, *names: str) -> str:
    """A refused command: a non-zero exit and exactly one stderr line, `genlab: error: ...`, holding `names`."""
    assert result.returncode != 0, result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("genlab: error: "), result.stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def csv_runs(folder: Path) -> list[str]:
    with open(folder / "report.csv") as handle:
        return [row["run"] for row in csv.DictReader(handle)]


# case 1: a run whose files cannot be read is left out and named; the others are reported

BAD_RUN_FILES = [
    pytest.param("summary.json", '{"status": "compl', "is not valid JSON (line 1", id="summary-truncated"),
    pytest.param("summary.json", "", "is empty", id="summary-empty"),
    pytest.param("summary.json", "[1, 2]", "holds a list, not an object", id="summary-a-list"),
    pytest.param("summary.json", '{"metrics": {"val/fid": 1.0}}', 'has no "status"', id="summary-without-status"),
    pytest.param("summary.json", '{"status": "completed", "metrics": {"val/fid": "abc"}}',
                 'metrics["val/fid"] = "abc", which is not a number', id="summary-metric-not-a-number"),
    pytest.param("summary.json", '{"status": "completed", "metrics": [1.0]}', '"metrics": [1.0], which is not an object',
                 id="summary-metrics-a-list"),
    pytest.param(".hydra/config.yaml", "model: [dcgan\n", "is not valid YAML (line 2", id="config-not-yaml"),
    pytest.param(".hydra/config.yaml", "- model=dcgan\n", "holds a list, not a mapping", id="config-a-list"),
    pytest.param(".hydra/overrides.yaml", "- seed=1\n  - x: [\n", "is not valid YAML", id="overrides-not-yaml"),
    pytest.param(".hydra/overrides.yaml", "seed: 1\n", "holds an object, not a list of key=value overrides",
                 id="overrides-a-mapping"),
]


@pytest.mark.parametrize("name, content, problem", BAD_RUN_FILES)
def test_an_unreadable_run_is_listed_with_its_file_and_fault_and_the_others_are_reported(tmp_path, name, content, problem):
    make_run(tmp_path / "0_seed=1", ["seed=1"], {"val/fid": 3.0})
    make_run(tmp_path / "1_seed=2", ["seed=2"], {"val/fid": 2.0})
    (tmp_path / "1_seed=2" / name).write_text(content)
    result = report(tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (warning,) = result.stderr.splitlines()  # one line per unreadable run, and nothing else
    assert warning.startswith("genlab report: warning: ") and f"1_seed=2/{name}" in warning and problem in warning
    markdown = (tmp_path / "report.md").read_text()
    section = markdown[markdown.index("## Unreadable runs"):]
    assert f"- `1_seed=2`: `1_seed=2/{name}` " in section and problem in section and "repair or remove" in section
    assert csv_runs(tmp_path) == ["0_seed=1"]
    assert "1 unreadable" in result.stdout


def test_a_folder_whose_every_run_is_unreadable_is_one_error_and_writes_nothing(tmp_path):
    for name in ("0_seed=1", "1_seed=2"):
        make_run(tmp_path / name, ["seed=1"])
        (tmp_path / name / "summary.json").write_text("")
    before = snapshot(tmp_path)
    line = assert_one_error_line(report(tmp_path, cwd=tmp_path), "0_seed=1/summary.json is empty", "and 1 more", "repair or remove")
    assert "no run below" in line
    assert snapshot(tmp_path) == before


def test_a_damaged_metrics_table_costs_the_run_its_curve_not_its_row(tmp_path):
    make_run(tmp_path / "0_seed=1", ["seed=1"], {"val/fid": 3.0}, curve=True)
    make_run(tmp_path / "1_seed=2", ["seed=2"], {"val/fid": 2.0}, curve=True)
    (tmp_path / "1_seed=2" / "csv" / "metrics.csv").write_text("epoch,step,val/fid\n0,ten,abc\n")
    result = report(tmp_path, cwd=tmp_path)
    assert result.returncode == 0
    (warning,) = result.stderr.splitlines()
    assert warning.startswith("genlab report: warning: no curve of run 1_seed=2") and "1_seed=2/csv/metrics.csv" in warning
    assert csv_runs(tmp_path) == ["1_seed=2", "0_seed=1"] and (tmp_path / "report_val_fid.png").is_file()


def test_a_sweep_record_that_is_not_hydras_leaves_out_only_the_sweeps_command(tmp_path):
    make_run(tmp_path / "0_seed=1", ["seed=1"], {"val/fid": 3.0})
    make_run(tmp_path / "1_seed=2", ["seed=2"], status="failed", error="boom")
    (tmp_path / "multirun.yaml").write_text("hydra:\n  overrides:\n    task: [seed=1,2]\n")  # YAML reads 2 as a number
    result = report(tmp_path, cwd=tmp_path)
    assert result.returncode == 0
    (warning,) = result.stderr.splitlines()
    assert "multirun.yaml does not hold hydra.overrides.task" in warning
    assert "re-run: `genlab train seed=2`" in (tmp_path / "report.md").read_text()


def test_a_study_record_that_cannot_be_read_leaves_out_the_study_section_with_one_warning(tmp_path):
    make_run(tmp_path / "trial_0", ["optimizer.lr=0.1"], {"val/loss": 2.0})
    make_run(tmp_path / "trial_1", ["optimizer.lr=0.2"], {"val/loss": 1.0})
    (tmp_path / "study.yaml").write_text("study_name: [s\n")
    result = report(tmp_path, cwd=tmp_path)
    assert result.returncode == 0
    (warning,) = result.stderr.splitlines()
    assert warning.startswith("genlab report: warning: the study recorded in") and "study.yaml" in warning
    assert csv_runs(tmp_path) == ["trial_1", "trial_0"] and "## Study" not in (tmp_path / "report.md").read_text()


# case 2: genlab report replaces only files it wrote itself, and refuses before writing anything


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Two recipes over two seeds, each run with a val/fid curve and a sample grid."""
    folder = tmp_path / "sweep"
    for number, (recipe, seed) in enumerate((("a", 0), ("a", 1), ("b", 0), ("b", 1))):
        make_run(folder / f"{number}_recipe={recipe},seed={seed}", [f"recipe={recipe}", f"seed={seed}"],
                 {"val/fid": 10.0 + number}, curve=True, grid=True)
    return folder


@pytest.mark.parametrize("name", ["report.md", "report.csv", "report_val_fid.png", "report_groups.csv",
                                  "report_grids.png", "grids/recipe=a.png", ".genlab-report.json"])
def test_a_users_file_with_a_report_files_name_refuses_the_report_before_it_writes_anything(tmp_path, sweep, name):
    mine = tmp_path / "mine"
    (mine / name).parent.mkdir(parents=True, exist_ok=True)
    (mine / name).write_text("my own file\n")
    (mine / "notes.txt").write_text("keep me\n")
    before, runs = snapshot(mine), snapshot(sweep)
    assert_one_error_line(report(sweep, "--out", mine, "--mean-over", "seed", cwd=tmp_path), str(mine / name), "--out")
    assert snapshot(mine) == before and snapshot(sweep) == runs


def test_a_report_md_genlab_did_not_write_in_the_runs_folder_is_kept(tmp_path, sweep):
    (sweep / "report.md").write_text("# my notes on this sweep\n")
    before = snapshot(sweep)
    assert_one_error_line(report(sweep, cwd=tmp_path), f"{sweep / 'report.md'} exists and genlab report did not write it",
                          "--out <folder>")
    assert snapshot(sweep) == before


def test_a_report_genlab_wrote_is_replaced_but_not_once_someone_edited_it(tmp_path, sweep):
    assert report(sweep, "--mean-over", "seed", cwd=tmp_path).returncode == 0
    make_run(sweep / "4_recipe=c,seed=0", ["recipe=c", "seed=0"], {"val/fid": 1.0}, curve=True, grid=True)
    again = report(sweep, "--mean-over", "seed", cwd=tmp_path)
    assert again.returncode == 0 and again.stderr == ""
    assert csv_runs(sweep)[0] == "4_recipe=c,seed=0"  # replaced: the new run is in it
    with open(sweep / "report.md", "a") as handle:
        handle.write("my conclusion: recipe c\n")
    edited = snapshot(sweep)
    assert_one_error_line(report(sweep, cwd=tmp_path), "report.md exists and genlab report did not write it (or it changed since)")
    assert snapshot(sweep) == edited


def test_a_report_cut_short_while_its_files_went_in_can_be_written_again(tmp_path, sweep, monkeypatch):
    import genlab.commands.report_files as report_files

    assert report(sweep, cwd=tmp_path).returncode == 0
    make_run(sweep / "4_recipe=c,seed=0", ["recipe=c", "seed=0"], {"val/fid": 1.0})
    write = report_files.atomic_write

    def crash_at_report_md(path, content):
        if Path(path).name == "report.md":
            raise OSError(28, "No space left on device")
        return write(path, content)

    monkeypatch.setattr(report_files, "atomic_write", crash_at_report_md)
    old_markdown = (sweep / "report.md").read_text()
    assert_one_error_line(report(sweep, cwd=tmp_path), f"cannot write the report into {sweep}", "No space left on device")
    assert (sweep / "report.md").read_text() == old_markdown  # the old version whole, no half of the new one
    assert not [p for p in sweep.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(report_files, "atomic_write", write)
    assert report(sweep, cwd=tmp_path).returncode == 0  # report.csv went in already: still genlab's to replace
    assert "`recipe=c seed=0`" in (sweep / "report.md").read_text()


def test_a_report_into_a_new_out_folder_links_the_runs_grids_from_there(tmp_path, sweep):
    out = tmp_path / "reports" / "today"
    result = report(sweep, "--out", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    links = [line.split("![](")[1].split(")")[0] for line in (out / "report.md").read_text().splitlines() if "![](" in line]
    assert len(links) == 4 and all((out / link).resolve().is_file() for link in links)
    assert snapshot(out).keys() == {".genlab-report.json", "report.md", "report.csv", "report_val_fid.png"}


@pytest.mark.parametrize("where, names", [
    ("a-file", ["is a file, not a folder", "give a folder"]),
    ("below-a-file", ["which is a file", "give a folder"]),
])
def test_an_out_that_is_no_folder_is_one_error_and_the_file_is_kept(tmp_path, sweep, where, names):
    (tmp_path / "results.txt").write_text("mine\n")
    out = tmp_path / "results.txt" if where == "a-file" else tmp_path / "results.txt" / "report"
    before = snapshot(tmp_path)
    assert_one_error_line(report(sweep, "--out", out, cwd=tmp_path), f"--out {out}", *names)
    assert snapshot(tmp_path) == before


def test_an_out_folder_that_cannot_be_written_is_one_error(tmp_path, sweep, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)  # the probe genlab report writes first: as a read-only disk answers
    before = snapshot(tmp_path)
    assert_one_error_line(report(sweep, "--out", tmp_path / "ro", cwd=tmp_path), f"--out {tmp_path / 'ro'} cannot be written",
                          "Permission denied", "--out <folder>")
    assert snapshot(tmp_path) == before and not (tmp_path / "ro").exists()


@pytest.mark.parametrize("folder, names", [
    ("missing", ["missing does not exist", "give the folder of a sweep"]),
    ("empty", ["no runs (no summary.json) found below", "give the folder of a sweep"]),
    ("a-file", ["is a file, not a folder", "give the folder of a sweep"]),
])
def test_a_folder_argument_without_runs_is_one_error(tmp_path, folder, names):
    (tmp_path / "empty").mkdir()
    (tmp_path / "a-file").write_text("{}")
    before = snapshot(tmp_path)
    assert_one_error_line(report(tmp_path / folder, cwd=tmp_path), *names)
    assert snapshot(tmp_path) == before


# case 3: fifty runs, a readable plot


def test_a_plot_of_fifty_runs_names_the_best_ten_outside_the_axes_and_draws_the_rest_thin(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from genlab.commands.report import LABELLED_CURVES, Run, plot_curves

    seen = {}

    def inspect(figure, *args, **kwargs):
        figure.canvas.draw()
        axes = figure.axes[0]
        legend = axes.get_legend()
        seen.update(labels=[t.get_text() for t in legend.get_texts()], title=legend.get_title().get_text(),
                    outside=legend.get_window_extent().x0 >= axes.get_window_extent().x1,
                    thin=sum(line.get_linewidth() < 1 and line.get_label().startswith("_") for line in axes.lines))

    monkeypatch.setattr(Figure, "savefig", inspect)
    runs = [Run(tmp_path / str(n), str(n), "completed", [f"seed={n}"], {"val/fid": float(n)}, "val/fid", None,
                {"val/fid": [(0, 100.0 + n), (10, float(n))]}, f"seed={n}") for n in range(50)]  # in the report's order
    plot_curves(runs, "val/fid", tmp_path / "plot.png", ranked_by="val/fid")
    assert seen["labels"] == [f"seed={n}" for n in range(LABELLED_CURVES)]
    assert seen["title"] == "best 10 of 50 runs by val/fid;\nthe other 40: thin grey lines"
    assert seen["outside"] and seen["thin"] == 40


# case 4: the report's own arguments


@pytest.mark.parametrize("args, names", [
    (["--metric", "val/fidd"], ["--metric val/fidd", "no run logged it", "choose one of: val/fid"]),
    (["--mean-over", "sed"], ["--mean-over sed", "no run set it", "recipe, seed"]),
    (["--mode", "x"], ["--mode", "invalid choice: 'x'", "'min', 'max'"]),
    (["--out"], ["--out", "expected one argument"]),
])
def test_a_bad_argument_is_one_line_naming_it_and_its_choices(tmp_path, sweep, args, names):
    before = snapshot(tmp_path)
    assert_one_error_line(report(sweep, *args, cwd=tmp_path), *names)
    assert snapshot(tmp_path) == before


# case 5: the commands report.md prints survive the shell, spaces and all


def command_after(markdown: str, prefix: str) -> str:
    (line,) = [line.strip() for line in markdown.splitlines() if line.strip().startswith(prefix)]
    return line[len(prefix):].strip().strip("`")


def test_the_commands_in_report_md_split_back_to_their_argv_in_a_folder_with_spaces(tmp_path):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweep = tmp_path / "my sweeps" / "lr 1e-3"
    interrupted = make_run(sweep / "0_seed=1 again", ["seed=1"], status="interrupted", error="SIGINT received")
    (interrupted / "checkpoints").mkdir()
    (interrupted / "checkpoints" / "interrupted.ckpt").write_bytes(b"")
    make_run(sweep / "1_seed=2", ["seed=2", "data.root=/my data"], status="failed", error="no data")
    make_run(sweep / "2_seed=3 x", ["seed=3"], {"val/fid": 1.0}, grid=True)
    (sweep / "multirun.yaml").write_text("hydra:\n  overrides:\n    hydra: []\n    task: ['seed=1,2,3']\n")
    assert report(sweep, cwd=tmp_path).returncode == 0
    markdown = (sweep / "report.md").read_text()
    parse = OverridesParser.create().parse_override

    *words, override = shlex.split(command_after(markdown, "resume:"))
    assert words == ["genlab", "train", "seed=1"]
    assert parse(override).key_or_group == "ckpt_path"
    assert parse(override).value() == str(interrupted / "checkpoints" / "interrupted.ckpt")
    assert shlex.split(command_after(markdown, "re-run:")) == ["genlab", "train", "seed=2", "data.root=/my data"]
    (again,) = [line.strip() for line in markdown.splitlines() if line.strip().startswith("genlab train -m")]
    *words, sweep_dir = shlex.split(again)
    assert words == ["genlab", "train", "-m", "seed=1,2,3", "resume_sweep=true"] and parse(sweep_dir).value() == str(sweep)
    # the sample grid's link is one Markdown destination despite its spaces, and leads to the grid
    assert "![](<2_seed=3 x/samples/last.png>)" in markdown

