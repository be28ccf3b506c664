"""Chapter parameters, presets and the `racecar` command's checks (before any work starts)."""


import nbformat
import papermill
import pytest
import yaml

from racecar_core import cli
from racecar_core.chapters import PRESETS, Chapter, MissingDataError, Param, ParameterError
from racecar_core.experiments import chapters, get_chapter
from racecar_core.runs import REPO_ROOT


@pytest.mark.parametrize("name", list(chapters()))
def test_every_chapter_is_complete(name):
    """One name per chapter: notebook, module, test module, table of contents and README row."""
    import racecar_core.experiments as experiments

    chapter = get_chapter(name)
    module = experiments.chapter_module(name)
    assert chapter.notebook == f"book/{name}.ipynb" and chapter.notebook_path().is_file()
    assert module.__name__ == f"racecar_core.experiments.{name}"
    assert callable(module.claims) and callable(module.setting), "claims() and setting() turn results into the check"
    assert (REPO_ROOT / "tests" / f"test_experiment_{name}.py").is_file(), "the chapter's claims need unit tests"
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text())
    assert f"book/{name}" in [entry["file"] for entry in toc["chapters"]]
    readme_rows = [line for line in (REPO_ROOT / "README.md").read_text().splitlines() if line.startswith("| `")]
    assert any(line.startswith(f"| `{name}` |") for line in readme_rows), "README's chapter table needs a row"


@pytest.mark.parametrize("name", list(chapters()))
def test_notebook_parameters_cell_is_generated_from_the_spec(name):
    chapter = get_chapter(name)
    nb = nbformat.read(chapter.notebook_path(), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1 and nb.cells.index(cells[0]) == 1
    assert cells[0].source == chapter.parameters_cell(), "run: python scripts/sync_notebooks.py"
    declared = papermill.inspect_notebook(str(chapter.notebook_path()))
    expected = {"preset": "cpu", "run_dir": "", **{p.name: p.default for p in chapter.params}}
    assert {k: eval(v["default"]) for k, v in declared.items()} == expected  # noqa: S307 (literal defaults)
    assert "configure_from(globals())" in nb.cells[2].source, "the notebook reads every parameter back"
    checks = [c for c in nb.cells if c.cell_type == "markdown" and f"({name}-check)=\n## Reproduction check" in c.source]
    assert len(checks) == 1, "the scorecard links to the label above the reproduction check's heading"


def test_configure_from_reads_every_parameter_and_ignores_other_names():
    peak = get_chapter("peak")
    cfg = peak.configure_from({"preset": "smoke", "steps": 7, "np": object(), "lr": 1e-3})
    assert (cfg.preset, cfg.steps, cfg.lr, cfg.seeds) == ("smoke", 7, 1e-3, 1)
    assert peak.configure_from({}).preset == "cpu"
    with pytest.raises(ParameterError, match="expects int"):
        peak.configure_from({"steps": "7"})


@pytest.mark.parametrize("name", list(chapters()))
def test_every_preset_resolves_and_validates(name):
    chapter = get_chapter(name)
    for preset in PRESETS:
        try:
            cfg = chapter.configure(preset)
        except MissingDataError as error:
            # only the paper preset may need the user's own files (e.g. CIFAR); smoke and cpu run anywhere
            assert preset == "paper" and "data" in str(error), (preset, error)
            continue
        assert cfg.preset == preset and set(chapter.param_names) <= set(cfg)


def test_configure_rejects_unknown_names_types_ranges_and_presets():
    peak = get_chapter("peak")
    with pytest.raises(ParameterError, match="no parameter 'step'.*steps"):
        peak.configure(step=3)
    with pytest.raises(ParameterError, match="expects int"):
        peak.configure(steps=3.5)
    with pytest.raises(ParameterError, match="expects int"):
        peak.configure(steps=True)
    with pytest.raises(ParameterError, match=">= 1"):
        peak.configure(steps=0)
    with pytest.raises(ParameterError, match="one of"):
        peak.configure(loss="mse")
    with pytest.raises(ParameterError, match="finite"):
        peak.configure(lr=float("nan"))
    with pytest.raises(ParameterError, match="preset"):
        peak.configure("gpu")
    with pytest.raises(ParameterError, match="does not exist.*tum-pbs/racecar"):
        peak.configure(data_dir="/no/such/folder")
    assert peak.configure(lambda_rr=0).lambda_rr == 0.0  # ints widen to float


def test_param_parse_from_text():
    assert Param("n", int, 1, "").parse("12") == 12
    assert Param("x", float, 1.0, "").parse("1e-5") == 1e-5
    assert Param("b", bool, True, "").parse("false") is False
    assert Param("n", int, None, "").parse("None") is None
    with pytest.raises(ParameterError, match="expects int, got 'ten'"):
        Param("n", int, 1, "").parse("ten")


def test_chapter_spec_is_checked():
    with pytest.raises(ValueError, match="its default must be None"):
        Chapter("x", "X", "x.ipynb", (Param("n", int, 1, ""),), {"smoke": {"n": 2}, "cpu": {}, "paper": {}})
    with pytest.raises(ValueError, match="set by every chapter"):
        Chapter("x", "X", "x.ipynb", (Param("run_dir", str, "", ""),), {"smoke": {}, "cpu": {}, "paper": {}})
    with pytest.raises(ValueError, match="preset 'paper' missing"):
        Chapter("x", "X", "x.ipynb", (Param("n", int, 1, ""),), {"smoke": {}, "cpu": {}})
    with pytest.raises(ValueError, match="defaults to None"):
        Chapter("x", "X", "x.ipynb", (Param("n", int, None, ""),), {"smoke": {"n": 1}, "cpu": {}, "paper": {}})


def test_default_run_dir_is_deterministic():
    peak = get_chapter("peak")
    a = cli.default_run_dir(peak, "paper", {"seeds": 3, "lambda_rr": 1e-5})
    b = cli.default_run_dir(peak, "paper", {"lambda_rr": 1e-5, "seeds": 3})
    assert a == b == REPO_ROOT / "runs" / "peak" / "paper-lambda_rr=1e-05-seeds=3"
    # values equal to the preset's (or None: the preset's) name no new folder
    same = [cli.default_run_dir(peak, "cpu", v) for v in ({}, {"steps": None}, {"lr": 1e-4}, {"seeds": 5})]
    assert set(same) == {REPO_ROOT / "runs" / "peak" / "cpu"}


def test_cli_list_names_every_chapter(capsys):
    assert cli.main(["list"]) == 0
    text = capsys.readouterr().out
    assert all(f"{name}:" in text for name in chapters()) and "-p steps" in text
