"""Greedy layer-wise autoencoder pretraining (the baseline Pre): each layer learns to reconstruct its input."""

import pandas as pd
import pytest
import torch
from torch import nn

from racecar_core import NonFiniteLossError, TensorBatches, TrainConfig
from racecar_core.corruption import Corruption
from racecar_core.pretrain import layer_pair, layer_reconstruction_errors, pretrain_layer, pretrain_layerwise
from racecar_core.reverse import reconstruction_loss, reverse_pass

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 10), nn.Tanh(), nn.Linear(10, 7), nn.Tanh(), nn.Linear(7, 5), nn.Tanh(),
                         nn.Linear(5, 2))


@pytest.fixture
def x():
    return (torch.rand(256, 12, generator=torch.Generator().manual_seed(1)) > 0.5).float()


def test_each_pretrained_layer_reconstructs_its_input_better(x):
    model = make_model()
    history = pretrain_layerwise(model, x, steps_per_layer=150, lr=1e-2, layers=[0, 1, 2])
    after = layer_reconstruction_errors(model, x)
    assert len(after) == 4 and sorted(history.layer.unique()) == [0, 1, 2]
    for m in (0, 1, 2):
        rows = history[history.layer == m]
        first, last = rows.iloc[0], rows.iloc[-1]  # before its first step (its input already pretrained) and after
        assert first.step == 0 and last.step == 150
        assert last.loss < 0.7 * first.loss, (m, first.loss, last.loss)
        # layer m depends only on layers <= m, which no later layer changes: the history's error is the final one
        assert last.loss == pytest.approx(after[m], rel=1e-5)


def test_only_the_chosen_layers_change_and_flags_are_restored(x):
    model = make_model()
    model[2].weight.requires_grad_(False)  # a frozen parameter stays frozen afterwards
    model.eval()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    pretrain_layerwise(model, x, steps_per_layer=5, lr=1e-2, layers=[1])
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, start[k])}
    assert changed == {"2.weight", "2.bias"}
    assert model[2].weight.requires_grad is False and model[0].weight.requires_grad is True
    assert not model.training


def test_zero_steps_changes_nothing_and_logs_the_initial_error(x):
    model = make_model()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    history = pretrain_layerwise(model, x, steps_per_layer=0, layers=[0])
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())
    assert list(history.columns) == ["layer", "step", "loss"] and len(history) == 1


@pytest.mark.parametrize("kwargs,message", [
    ({"steps_per_layer": -1}, "steps_per_layer"),
    ({"steps_per_layer": 1, "lr": 0.0}, "lr must be > 0"),
    ({"steps_per_layer": 1, "layers": [4]}, "layers must be indices in 0..3"),
])
def test_bad_arguments_fail_before_any_training(x, kwargs, message):
    model = make_model()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        pretrain_layerwise(model, x, **kwargs)
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())


# --------------------------------------------------------------------------------------------------
# On the training loop: the same results as a plain Adam loop, denoising, resume, NaN stop
# --------------------------------------------------------------------------------------------------

def plain_adam_pretraining(model, x, steps, lr, layers):
    """The algorithm before it moved onto the training loop: per layer, a fresh Adam over that layer only,
    full batch, the local pair's loss; returns each layer's loss before its first and after its last step."""
    weight_layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    losses = {}
    for index in layers:
        params = list(weight_layers[index].parameters())
        optimizer = torch.optim.Adam(params, lr=lr)
        for p in model.parameters():
            p.requires_grad_(any(p is q for q in params))
        first = None
        for _ in range(steps):
            loss = reconstruction_loss([reverse_pass(model, x, "local")[index]], "mean")
            first = float(loss.detach()) if first is None else first
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            losses[index] = (first, float(reconstruction_loss([reverse_pass(model, x, "local")[index]], "mean")))
    for p in model.parameters():
        p.requires_grad_(True)
    return losses


def test_same_losses_and_weights_as_a_plain_adam_loop(x):
    reference = make_model()
    expected = plain_adam_pretraining(reference, x, 40, 1e-2, [0, 1, 2])
    model = make_model()
    history = pretrain_layerwise(model, x, steps_per_layer=40, lr=1e-2, layers=[0, 1, 2])
    for m, (first, last) in expected.items():
        rows = history[history.layer == m]
        assert list(rows.step) == [0, 40]
        # the loop's Adam is the fused kernel, whose rounding differs from the plain one in the last bits
        assert rows.loss.tolist() == pytest.approx([first, last], rel=1e-5)
    for p, q in zip(model.parameters(), reference.parameters()):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-6)


def test_log_every_logs_the_clean_loss_after_that_many_steps(x):
    history = pretrain_layerwise(make_model(), x, steps_per_layer=10, lr=1e-2, layers=[1], log_every=4)
    assert list(history.step) == [0, 4, 8, 10] and (history.layer == 1).all()


def test_denoising_pair_encodes_the_corrupted_input_and_targets_the_clean_one(x):
    model = make_model()
    layer = model[2]
    noise = Corruption("masking", 0.5)
    d, d_rec = layer_pair(model, x, layer, lambda t: noise(t, torch.Generator().manual_seed(3)))
    with torch.no_grad():
        clean = torch.tanh(model[0](x))
        corrupted = noise(clean, torch.Generator().manual_seed(3))
        code = torch.tanh(layer(corrupted))
        expected = torch.tanh((code - layer.bias) @ layer.weight)  # f_{m-1}(W_mᵀ(d_{m+1} − b_m))
    assert torch.equal(d, clean) and torch.allclose(d_rec, expected, atol=1e-6)
    assert not torch.allclose(d_rec, layer_pair(model, x, layer)[1])  # the clean pair differs


class Interrupted(TensorBatches):
    """Raises KeyboardInterrupt (as a Ctrl-C would) before batch ``stop`` of the run."""

    def __init__(self, *args, stop, **kwargs):
        super().__init__(*args, **kwargs)
        self.stop, self.served = stop, 0

    def batches(self, epoch):
        for batch in super().batches(epoch):
            if self.served == self.stop:
                raise KeyboardInterrupt
            self.served += 1
            yield batch


def test_denoising_layer_pretraining_is_seeded_and_resumes_exactly(x, tmp_path):
    config = TrainConfig(steps=12, lr=1e-2, eval_every=4, checkpoint_every=5, seed=2)
    y = torch.zeros(len(x))
    noise = Corruption("masking", 0.3)

    def run(data, run_dir=None):
        model = make_model()
        result = pretrain_layer(model, data, model[2], config, corruption=noise, eval_x=x, run_dir=run_dir)
        return model, result

    straight, result = run(TensorBatches(x, y, 64, seed=2))
    again, _ = run(TensorBatches(x, y, 64, seed=2))
    assert all(torch.equal(p, q) for p, q in zip(straight.parameters(), again.parameters()))
    assert {"ae", "loss"} <= set(result.history.columns) and list(result.history.step) == [0, 4, 8, 12]
    with pytest.raises(KeyboardInterrupt):
        run(Interrupted(x, y, 64, seed=2, stop=8), tmp_path)
    resumed, resumed_result = run(TensorBatches(x, y, 64, seed=2), tmp_path)
    assert resumed_result.resumed_from == 8  # the Ctrl-C checkpointed the last completed step
    assert all(torch.equal(p, q) for p, q in zip(straight.parameters(), resumed.parameters()))
    pd.testing.assert_frame_equal(resumed_result.history, result.history)


def test_layerwise_run_dir_reloads_finished_layers(x, tmp_path):
    kwargs = dict(steps_per_layer=6, lr=1e-2, layers=[0, 1], corruption=Corruption("gaussian", 0.2), batch_size=64,
                  seed=1, run_dir=tmp_path)
    first = make_model()
    history = pretrain_layerwise(first, x, **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer0", "layer1"]
    assert (tmp_path / "layer1" / "model.pt").exists() and not (tmp_path / "layer1" / "checkpoint.pt").exists()
    second = make_model()
    torch.manual_seed(123)  # reloading does not depend on the global RNG
    pd.testing.assert_frame_equal(pretrain_layerwise(second, x, **kwargs), history)
    assert all(torch.equal(p, q) for p, q in zip(first.parameters(), second.parameters()))
    with pytest.raises(ValueError, match="different configuration"):
        pretrain_layerwise(make_model(), x, **{**kwargs, "corruption": Corruption("gaussian", 0.3)})


def test_non_finite_input_stops_pretraining_with_a_message(x):
    bad = x.clone()
    bad[3, 2] = float("nan")
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 0"):
        pretrain_layerwise(make_model(), bad, steps_per_layer=3, lr=1e-2, layers=[0])


def test_batchnorm_model_pretrains_and_evaluation_leaves_running_statistics(x):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Linear(10, 7), nn.BatchNorm1d(7),
                          nn.ReLU(), nn.Linear(7, 2))
    history = pretrain_layerwise(model, x, steps_per_layer=0, layers=[0, 1])
    assert model[1].running_mean.abs().max() == 0 and int(model[1].num_batches_tracked) == 0
    history = pretrain_layerwise(model, x, steps_per_layer=60, lr=1e-2, layers=[0, 1])
    assert int(model[1].num_batches_tracked) == 120  # one forward per training step of each layer, none for the logs
    for m in (0, 1):
        before, after = history[history.layer == m].loss.iloc[[0, -1]]
        assert after < before
