"""The ResNet chapter's reproduction check: each claim's threshold on small hand-made results."""

import pandas as pd
import pytest

from racecar_core import report
from racecar_core.chapters import ParameterError
from racecar_core.experiments import resnet

CPU = resnet.CHAPTER.configure("cpu")
WHERE = resnet.setting(CPU, "MNIST digits padded to 32×32", 0.1)


def results(acc=None, sim=None, rr_err=0.5, std_err=2.0, moved=None):
    acc = acc or {"Std": 0.90, "Ort": 0.91, "RR": 0.93}
    sim = sim or {"Std": 0.2, "Ort": 0.2, "RR": 0.5}
    moved = moved or {"Scratch": 0.3, "Std": 0.4, "Ort": 0.4, "RR": 0.5}
    seeds = range(3)
    frame = pd.DataFrame([{"variant": v, "seed": s, "test_acc": acc[v], "first_layer_similarity": sim[v],
                           "rec_err_mean": rr_err if v == "RR" else std_err} for v in ("Std", "Ort", "RR") for s in seeds])
    layers = pd.DataFrame([{"variant": v, "seed": s, "layer": m, "rel_err": rr_err if v == "RR" else std_err}
                           for v in ("Std", "Ort", "RR") for s in seeds for m in (1, 2, 3)])
    transfer = pd.DataFrame([{"start": k, "seed": s, "test_acc": v} for k, v in moved.items() for s in seeds])
    return frame, layers, transfer


def verdicts(*args, cfg=CPU):
    return {c.key: c.verdict for c in resnet.claims(*args, cfg, WHERE)}


def test_the_paper_accuracy_claim_is_not_testable_on_a_stand_in():
    v = verdicts(*results())
    assert v == {"accuracy": "not testable here", "layers": "reproduced", "first_layer": "reproduced",
                 "transfer": "reproduced"}
    claim = resnet.claims(*results(), CPU, WHERE)[0]
    assert claim.paper == "Std 92.1%, Ort 92.5%, RR 92.8%" and claim.source.startswith("Fig. 1c")


def test_accuracy_is_judged_in_the_paper_setting():
    cfg = CPU.__class__({**CPU, "dataset": "cifar10", "depth": 110, "n_train": 0, "n_test": 0})
    assert resnet.paper_setting(cfg)
    assert verdicts(*results(), cfg=cfg)["accuracy"] == "reproduced"
    assert verdicts(*results(acc={"Std": 0.93, "Ort": 0.91, "RR": 0.92}), cfg=cfg)["accuracy"] == "not reproduced"


def test_layers_partly_when_rr_is_below_std_but_not_below_one():
    assert verdicts(*results(rr_err=1.5, std_err=2.0))["layers"] == "partly reproduced"
    assert verdicts(*results(rr_err=2.5, std_err=2.0))["layers"] == "not reproduced"


def test_first_layer_and_transfer_thresholds():
    assert verdicts(*results(sim={"Std": 0.2, "Ort": 0.6, "RR": 0.5}))["first_layer"] == "partly reproduced"
    assert verdicts(*results(moved={"Scratch": 0.3, "Std": 0.6, "Ort": 0.4, "RR": 0.5}))["transfer"] == "not reproduced"


def test_headline_numbers_for_sweeps():
    frame, _, transfer = results()
    h = resnet.headline(frame, transfer, 0.1)
    assert h["test_acc RR"] == 0.93 and h["transfer_acc Scratch"] == 0.3 and h["lambda_rr"] == 0.1


# --------------------------------------------------------------------------------------------------
# Gradient clipping (the recipe of scripts/resnet_recipe.py) and the verdict map across λ
# --------------------------------------------------------------------------------------------------


def test_grad_clip_defaults_to_the_recorded_recipe_and_reaches_the_train_config():
    record = resnet.load_recipe()
    assert record["results"]["rule_met"] and record["results"]["chosen_settings"] == {"grad_clip": resnet.GRAD_CLIP}
    for preset in ("smoke", "cpu"):
        assert resnet.CHAPTER.configure(preset).grad_clip == resnet.GRAD_CLIP == 5.0
    assert resnet.base_config(CPU, 60, 10).grad_clip == 5.0
    off = resnet.CHAPTER.configure("cpu", grad_clip=0.0)
    assert resnet.base_config(off, 60, 10).grad_clip == 0.0
    assert resnet.base_config(off, 20, 20, lr=0.01, warmup=False).grad_clip == 0.0


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), "5", True])
def test_grad_clip_must_be_a_finite_number_at_least_zero(value):
    with pytest.raises(ParameterError, match="grad_clip"):
        resnet.CHAPTER.configure("cpu", grad_clip=value)


def test_grad_clip_from_the_command_line():
    param = next(p for p in resnet.CHAPTER.params if p.name == "grad_clip")
    assert param.check(param.parse("2.5")) == 2.5 and param.check(param.parse("0")) == 0.0
    with pytest.raises(ParameterError, match="grad_clip"):
        param.parse("off")


@pytest.mark.parametrize("text", ["", "0.1,0", "1,x", "-1", "nan"])
def test_map_lambdas_are_checked_before_work_starts(text):
    with pytest.raises(ParameterError, match="map_lambdas"):
        resnet.CHAPTER.configure("cpu", map_lambdas=text)


def test_map_lambdas_include_the_chosen_lambda_once_ascending():
    assert resnet.map_lambdas(CPU, 0.01) == [0.01, 1.0, 3.0]
    assert resnet.map_lambdas(CPU, 1.0) == [1.0, 3.0]


def test_recipe_table_shows_every_recipe_and_divergence():
    record = resnet.load_recipe()
    table = resnet.recipe_table(record)
    assert list(table.columns) == list(record["params"]["recipes"])
    seeds = record["params"]["seeds"]
    assert len(table) == (1 + len(record["params"]["lambda_grid"])) * len(seeds)
    assert table.index[0][0] == "Std" and (table.loc["Std"] != "–").all().all()  # Std shared by recipes
    cells = table.to_numpy().ravel().tolist()
    diverged = [r for r in record["results"]["rr_runs"] if r["diverged"]]
    assert sum(c.startswith("NaN@") for c in cells) == len(diverged)
    assert "Under recipe clip" in resnet.recipe_summary(record)


def lambda_row(rr_acc, rr_err=0.5, rr_moved=0.5, seeds=range(3)):
    """A LambdaRow whose Std and Ort are those of :func:`results`, RR as given."""
    frame, layers, transfer = results(acc={"Std": 0.90, "Ort": 0.91, "RR": rr_acc}, rr_err=rr_err,
                                      moved={"Scratch": 0.3, "Std": 0.4, "Ort": 0.4, "RR": rr_moved})
    keep = lambda f: f[f.seed.isin(list(seeds))]  # noqa: E731
    return resnet.LambdaRow(keep(frame), keep(layers), keep(transfer))


def test_claims_by_lambda_give_one_verdict_per_claim_and_lambda():
    rows = {1.0: lambda_row(0.5, rr_err=1.5, rr_moved=0.2), 0.1: lambda_row(0.93)}
    by_lambda = resnet.claims_by_lambda(rows, CPU, WHERE)
    assert list(by_lambda) == [0.1, 1.0]  # ascending
    assert [c.lambda_rr for c in by_lambda[1.0]] == ["1"] * 4
    table = report.verdict_map(by_lambda)
    assert list(table.columns) == ["0.1", "1"]
    assert table.loc["layers"].tolist() == ["reproduced", "partly reproduced"]
    assert table.loc["transfer"].tolist() == ["reproduced", "not reproduced"]
    assert table.loc["accuracy"].tolist() == ["not testable here"] * 2  # a stand-in at every λ


def test_headline_claims_carry_the_map_and_belong_to_the_chosen_lambda():
    rows = {0.1: lambda_row(0.93), 1.0: lambda_row(0.5, rr_err=1.5, rr_moved=0.2)}
    claims = {c.key: c for c in resnet.headline_claims(rows, CPU, WHERE, 1.0)}
    assert claims["layers"].verdict == "partly reproduced" and claims["layers"].lambda_rr == "1"
    assert claims["layers"].across_lambda == (("0.1", "reproduced"), ("1", "partly reproduced"))
    assert report.lambda_summary(claims["transfer"]) == "reproduced at λ 0.1; not at λ 1"
    with pytest.raises(KeyError, match="headline λ 3"):
        resnet.headline_claims(rows, CPU, WHERE, 3.0)


def test_a_verdict_map_needs_the_same_seeds_at_every_lambda():
    rows = {0.1: lambda_row(0.93), 1.0: lambda_row(0.93, seeds=range(2))}
    with pytest.raises(ValueError, match="same seeds"):
        resnet.claims_by_lambda(rows, CPU, WHERE)
    with pytest.raises(ValueError, match="same seeds"):
        resnet.claims_by_lambda({}, CPU, WHERE)


def test_rr_by_lambda_lists_rr_at_each_lambda_then_std_and_ort():
    rows = {1.0: lambda_row(0.5), 0.1: lambda_row(0.93)}
    table = resnet.rr_by_lambda(rows)
    assert table.index.tolist() == ["RR, λ 0.1", "RR, λ 1", "Std", "Ort", "Scratch"]
    assert table.loc["RR, λ 1", "test_acc"] == "0.5 ± 0" and table.loc["Std", "test_acc"] == "0.9 ± 0"
    assert table.loc["Scratch", "transfer_acc"] == "0.3 ± 0" and table.loc["Scratch", "test_acc"] == "–"


def test_lambda_rows_train_only_rr_and_share_std_ort_and_scratch(tmp_path):
    cfg = resnet.CHAPTER.configure("smoke", seeds=2, map_lambdas="1")
    data = resnet.load_data(cfg)
    grid = resnet.run(cfg, data, 0.1, run_dir=str(tmp_path), progress=False)
    moved = resnet.transfer(cfg, data, grid, run_dir=str(tmp_path), progress=False)
    rows = resnet.lambda_rows(cfg, data, grid, moved, 0.1, run_dir=str(tmp_path), progress=False)
    assert list(rows) == [0.1, 1.0]
    assert rows[0.1].frame.equals(grid.frame) and rows[0.1].transfer.equals(moved.frame)
    at_one = rows[1.0]
    assert sorted(at_one.frame.seed.unique()) == [0, 1] and sorted(at_one.frame.variant.unique()) == ["Ort", "RR", "Std"]
    shared = lambda f, col: f[f[col] != "RR"].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(shared(at_one.frame, "variant"), shared(grid.frame, "variant"))
    pd.testing.assert_frame_equal(shared(at_one.transfer, "start"), shared(moved.frame, "start"))
    assert sorted(p.name for p in (tmp_path / "main").iterdir() if p.name.startswith("lambda")) == [
        "lambda1-RR-seed0", "lambda1-RR-seed1"]  # only RR is trained again, into its own folders
    assert len(at_one.layers) == len(rows[0.1].layers)
    verdicts = report.verdict_map(resnet.claims_by_lambda(rows, cfg, resnet.setting(cfg, data.name, 0.1)))
    assert list(verdicts.columns) == ["0.1", "1"] and set(verdicts.index) == {"accuracy", "layers", "first_layer", "transfer"}
