"""The training loop: loss terms, schedules, checkpoints, exact resume, NaN handling."""

import json

import pandas as pd
import pytest
import torch
from torch import nn

import racecar_core as rc
from racecar_core import metrics
from racecar_core.batches import TensorBatches
from racecar_core.training import NonFiniteLossError, TrainConfig, train


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 3))


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(40, 10, generator=g), torch.randint(0, 3, (40,), generator=g)


def accuracy_of(x, y):
    return lambda m: {"acc": metrics.accuracy(m, x, y), "snapshot": m(x[:2]).detach()}


CONFIG = TrainConfig(steps=24, lr=1e-2, lambda_rr=1e-2, lambda_ort=0.1, eval_every=5, checkpoint_every=7)


def same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_history_has_every_loss_term_and_metric(data):
    x, y = data
    result = train(make_model(), TensorBatches(x, y, 16, seed=3), CONFIG, evaluate=accuracy_of(x, y), progress=False)
    h = result.history
    assert list(h["step"]) == [0, 5, 10, 15, 20, 24]
    assert {"loss", "task", "rr", "ort", "lr", "acc"} <= set(h.columns)
    logged = h.dropna(subset=["loss"])
    assert (logged["loss"] - (logged["task"] + 1e-2 * logged["rr"] + 0.1 * logged["ort"])).abs().max() < 1e-4
    assert [s for s, _ in result.snapshots] == [0, 5, 10, 15, 20, 24]


def test_loss_terms_absent_when_weights_are_zero(data):
    x, y = data
    h = train(make_model(), (x, y), TrainConfig(steps=3, eval_every=1), progress=False).history
    assert "rr" not in h and "ort" not in h


@pytest.mark.parametrize("interrupt_at_eval", [2, 4, 6])
def test_resume_after_interruption_equals_uninterrupted_run(data, tmp_path, interrupt_at_eval):
    x, y = data
    source = TensorBatches(x, y, 16, seed=3)
    straight = train(make_model(), source, CONFIG, evaluate=accuracy_of(x, y), progress=False)
    calls = {"n": 0}

    def flaky(model):
        calls["n"] += 1
        if calls["n"] == interrupt_at_eval:
            raise KeyboardInterrupt
        return accuracy_of(x, y)(model)

    with pytest.raises(KeyboardInterrupt):
        train(make_model(), source, CONFIG, evaluate=flaky, run_dir=tmp_path, progress=False)
    assert (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "model.pt").exists()
    resumed = train(make_model(), source, CONFIG, evaluate=accuracy_of(x, y), run_dir=tmp_path, progress=False)
    assert resumed.resumed_from > 0
    assert same_weights(straight.model, resumed.model)
    pd.testing.assert_frame_equal(straight.history, resumed.history, check_exact=False, rtol=1e-6)
    assert [s for s, _ in straight.snapshots] == [s for s, _ in resumed.snapshots]


def test_resume_from_periodic_checkpoint_after_a_crash(data, tmp_path):
    x, y = data
    source = TensorBatches(x, y, 16, seed=3)
    straight = train(make_model(), source, CONFIG, progress=False)
    calls = {"n": 0}

    def crash(model):
        calls["n"] += 1
        if calls["n"] == 4:  # step 15: the last checkpoint is from step 14
            raise RuntimeError("power cut")
        return {}

    with pytest.raises(RuntimeError):
        train(make_model(), source, CONFIG, evaluate=crash, run_dir=tmp_path, progress=False)
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 14
    resumed = train(make_model(), source, CONFIG, run_dir=tmp_path, progress=False)
    assert same_weights(straight.model, resumed.model)


def test_finished_run_is_loaded_not_retrained(data, tmp_path):
    x, y = data
    first = train(make_model(), (x, y), CONFIG, run_dir=tmp_path, progress=False)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"model.pt", "history.csv", "config.json", "snapshots.pt"} <= files and "checkpoint.pt" not in files
    again = train(nn.Sequential(nn.Linear(10, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 3)),
                  (x, y), CONFIG, run_dir=tmp_path, progress=False)
    assert same_weights(first.model, again.model)
    assert len(again.history) == len(first.history)


def test_run_dir_with_other_config_is_refused(data, tmp_path):
    x, y = data
    train(make_model(), (x, y), TrainConfig(steps=2), run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="different configuration"):
        train(make_model(), (x, y), TrainConfig(steps=3), run_dir=tmp_path, progress=False)
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 2


def test_nan_loss_stops_with_a_message(data, tmp_path):
    x, y = data
    x = x.clone()
    x[0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 0") as error:
        train(make_model(), (x, y), TrainConfig(steps=5), run_dir=tmp_path, progress=False)
    assert error.value.step == 0
    assert not (tmp_path / "model.pt").exists()


def test_exploding_loss_is_caught(data):
    x, y = data
    with pytest.raises(NonFiniteLossError):
        train(make_model(), (x * 1e30, y), TrainConfig(steps=50, lr=1e3, lambda_rr=1e10), progress=False)


@pytest.mark.parametrize("bad", [dict(steps=0), dict(steps=1.5), dict(steps=5, lr=0), dict(steps=5, optimizer="lbfgs"),
                                 dict(steps=5, lambda_rr=-1), dict(steps=5, rr_mode="all"), dict(steps=5, lr_milestones=(1.5,)),
                                 dict(steps=5, warmup_steps=5)])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        TrainConfig(**bad)


def test_learning_rate_schedule_with_warmup_and_milestones():
    cfg = TrainConfig(steps=100, lr=0.1, warmup_steps=10, warmup_lr=0.01, lr_milestones=(0.5, 0.75))
    expected = [0.01, 0.01, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    assert [cfg.lr_at(s) for s in (0, 9, 10, 49, 50, 74, 75, 99)] == pytest.approx(expected)


def test_sgd_with_weight_decay_trains(data):
    x, y = data
    cfg = TrainConfig(steps=60, lr=0.1, optimizer="sgd", weight_decay=1e-4, eval_every=60)
    result = train(make_model(), (x, y), cfg, progress=False)
    assert result.history["task"].iloc[-1] < 1.0


def test_tensor_batches_cover_each_epoch_once_and_depend_on_seed_and_epoch():
    x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    source = TensorBatches(x, y, 4, seed=5)
    assert len(source) == 3
    epoch0 = torch.cat([b for _, b in source.batches(0)])
    assert sorted(epoch0.tolist()) == list(range(10))
    assert torch.equal(epoch0, torch.cat([b for _, b in source.batches(0)]))
    assert not torch.equal(epoch0, torch.cat([b for _, b in source.batches(1)]))
    assert len(TensorBatches(x, y, 4, drop_last=True)) == 2
    with pytest.raises(ValueError):
        TensorBatches(x, y[:3])


def test_run_dir_with_other_identity_is_refused(data, tmp_path):
    x, y = data
    train(make_model(), (x, y), TrainConfig(steps=2), run_dir=tmp_path, identity={"loss": "a"}, progress=False)
    with pytest.raises(ValueError, match="different configuration"):
        train(make_model(), (x, y), TrainConfig(steps=2), run_dir=tmp_path, identity={"loss": "b"}, progress=False)


def test_channels_last_and_amp_flags_train_the_same_model_on_cpu(data):
    x4 = torch.randn(16, 3, 6, 6)
    y4 = torch.randint(0, 2, (16,))

    def conv():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 2))

    base = TrainConfig(steps=5, lr=1e-2, lambda_rr=1e-3, eval_every=5)
    plain = train(conv(), (x4, y4), base, progress=False)
    flagged = train(conv(), (x4, y4), TrainConfig(**{**base.__dict__, "channels_last": True, "amp": True}), progress=False)
    assert flagged.model[0].weight.is_contiguous(memory_format=torch.channels_last)
    for p, q in zip(plain.model.parameters(), flagged.model.parameters()):
        assert torch.allclose(p, q, atol=1e-5)  # amp is CUDA-only; channels_last changes the layout, not the maths


# --------------------------------------------------------------------------------------------------
# Objectives: several optimisers in one loop (e.g. a GAN), with the loop's checkpoints and resume
# --------------------------------------------------------------------------------------------------


class TwoPlayers(rc.Objective):
    """A toy alternating objective: ``a`` fits the labels, then ``b`` fits ``a``'s detached outputs plus noise
    (uses the global RNG, which the loop must restore on resume)."""

    def optimizers(self, model, config):
        return {"a": rc.make_optimizer(model.a.parameters(), config), "b": rc.make_optimizer(model.b.parameters(), config)}

    def step(self, model, batch, ctx):
        x, y = batch
        loss_a = nn.functional.cross_entropy(model.a(x), y)
        ctx.update("a", loss_a, {"loss_a": loss_a})
        target = model.a(x).detach() + 0.1 * torch.randn(len(x), 3)
        loss_b = (model.b(x) - target).pow(2).mean()
        ctx.update("b", loss_b, {"loss_a": loss_a, "loss_b": loss_b})
        return {"loss_a": loss_a, "loss_b": loss_b}


def two_models():
    torch.manual_seed(0)
    return nn.ModuleDict({"a": nn.Linear(10, 3), "b": nn.Linear(10, 3)})


def test_objective_with_two_optimisers_resumes_exactly(data, tmp_path):
    x, y = data
    source = TensorBatches(x, y, 16, seed=3)
    cfg = TrainConfig(steps=20, lr=1e-2, eval_every=5, checkpoint_every=6, lr_milestones=(0.5,))
    straight = train(two_models(), source, cfg, objective=TwoPlayers(), progress=False)
    assert {"loss_a", "loss_b", "lr"} <= set(straight.history.columns)
    calls = {"n": 0}

    def flaky(model):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        train(two_models(), source, cfg, objective=TwoPlayers(), evaluate=flaky, run_dir=tmp_path, progress=False)
    resumed = train(two_models(), source, cfg, objective=TwoPlayers(), run_dir=tmp_path, progress=False)
    assert resumed.resumed_from > 0 and same_weights(straight.model, resumed.model)


def test_objective_nan_in_second_update_names_the_optimiser(data):
    class Bad(TwoPlayers):
        def step(self, model, batch, ctx):
            x, y = batch
            ctx.update("a", nn.functional.cross_entropy(model.a(x), y))
            ctx.update("b", model.b(x).sum() * float("nan"))
            return {}

    with pytest.raises(NonFiniteLossError, match=r"step 0 in the 'b' update \(b=nan\)"):
        train(two_models(), data, TrainConfig(steps=3), objective=Bad(), progress=False)


def test_loss_fn_and_objective_are_exclusive(data):
    with pytest.raises(TypeError, match="not both"):
        train(make_model(), data, TrainConfig(steps=1), loss_fn=rc.cross_entropy, objective=rc.Supervised(), progress=False)


def test_lambda_rr_warmup_ramps_linearly():
    cfg = TrainConfig(steps=10, lambda_rr=2.0, lambda_rr_warmup=4)
    assert [cfg.lambda_rr_at(s) for s in range(6)] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0, 2.0])
    assert TrainConfig(steps=10, lambda_rr=2.0).lambda_rr_at(0) == 2.0


def test_lambda_rr_warmup_weights_the_logged_loss(data):
    x, y = data
    h = train(make_model(), (x, y), TrainConfig(steps=2, lambda_rr=1e-2, lambda_rr_warmup=2, eval_every=1),
              progress=False).history.dropna(subset=["loss"])
    first = h.iloc[0]
    assert first["loss"] == pytest.approx(first["task"] + 0.5e-2 * first["rr"], rel=1e-5)


def test_grad_clip_bounds_the_update(data):
    x, y = data
    before = make_model()
    cfg = TrainConfig(steps=1, lr=1.0, optimizer="sgd", momentum=0.0, grad_clip=1e-3, lambda_rr=1.0)
    after = train(make_model(), (x * 100, y), cfg, progress=False).model
    moved = torch.cat([(p - q).flatten() for p, q in zip(after.parameters(), before.parameters())])
    assert moved.norm() <= 1e-3 + 1e-6


def test_update_bn_stats_switch_changes_only_the_running_statistics(data):
    x, y = data
    runs = {flag: train(make_model(), (x, y), TrainConfig(steps=3, lambda_rr=1e-2, update_bn_stats=flag), progress=False)
            for flag in (False, True)}
    a, b = runs[False].model, runs[True].model
    assert not torch.equal(a[1].running_mean, b[1].running_mean)  # the reverse batch entered BN_1's averages
    assert torch.equal(a[0].weight, b[0].weight)  # the training signal is the same either way


@pytest.mark.parametrize("bad", [dict(lambda_rr_warmup=-1), dict(grad_clip=-1.0), dict(betas=(0.9, 1.0))])
def test_new_config_fields_are_validated(bad):
    with pytest.raises(ValueError):
        TrainConfig(steps=5, **bad)
