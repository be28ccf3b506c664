"""Greedy layer-wise autoencoder pretraining (the baseline Pre): each layer learns to reconstruct its input."""

import pytest
import torch
from torch import nn

from racecar_core.pretrain import layer_reconstruction_errors, pretrain_layerwise

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
