"""RecordPlan (opt-in): the replayed tape is record()'s, bit for bit; anything it does not cover falls back."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import racecar_core as rc
from racecar_core.models import peak_mlp
from racecar_core.reverse import RecordPlan, reconstruction_loss, record, reverse


def conv_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU()),  # nested
        nn.Flatten(), nn.Dropout(0.0), nn.Linear(8 * 7 * 7, 10),
    )


CASES = {
    "peak_mlp": (peak_mlp, lambda g: torch.rand(32, 784, generator=g) * 255, 2),
    "conv_net": (conv_net, lambda g: torch.rand(16, 1, 14, 14, generator=g), 10),
}


def assert_same_tape(a, b):
    assert a.calls == b.calls and a.model is b.model
    assert list(a.inputs) == list(b.inputs) and list(a.outputs) == list(b.outputs)
    for m in a.calls:
        assert torch.equal(a.inputs[m], b.inputs[m]) and torch.equal(a.outputs[m], b.outputs[m])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("mode", ["full", "first", "local"])
def test_replayed_tape_and_pairs_are_bit_identical(case, mode):
    make_model, make_x, _ = CASES[case]
    torch.manual_seed(0)
    model = make_model()
    x = make_x(torch.Generator().manual_seed(1))
    plan = RecordPlan(model)
    assert plan.replays
    torch.manual_seed(2)
    out_a, tape_a = record(model, x)
    torch.manual_seed(2)
    out_b, tape_b = plan.record(x)
    assert torch.equal(out_a, out_b)
    assert_same_tape(tape_a, tape_b)
    for (d_a, r_a), (d_b, r_b) in zip(reverse(tape_a, mode), reverse(tape_b, mode), strict=True):
        assert torch.equal(d_a, d_b) and torch.equal(r_a, r_b)


@pytest.mark.parametrize("case", CASES)
def test_training_with_the_plan_is_bit_identical(case):
    make_model, make_x, classes = CASES[case]
    g = torch.Generator().manual_seed(3)
    x, y = make_x(g), torch.randint(0, classes, (len(make_x(g)),), generator=g)
    models = []
    for use_plan in (False, True):
        torch.manual_seed(0)
        model = make_model()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        plan = RecordPlan(model)
        for _ in range(5):
            out, tape = plan.record(x) if use_plan else record(model, x)
            loss = F.cross_entropy(out, y) + 1e-3 * reconstruction_loss(reverse(tape))
            opt.zero_grad()
            loss.backward()
            opt.step()
        models.append(model)
    for p, q in zip(models[0].state_dict().values(), models[1].state_dict().values(), strict=True):
        assert torch.equal(p, q)


def test_models_that_are_not_chains_fall_back_to_record():
    torch.manual_seed(0)
    resnet = rc.cifar_resnet(8)  # residual blocks are not leaves
    plan = RecordPlan(resnet)
    assert not plan.replays
    x = torch.randn(4, 3, 32, 32)
    out_a, tape_a = record(resnet, x)
    out_b, tape_b = plan.record(x)
    assert torch.equal(out_a, out_b)
    assert_same_tape(tape_a, tape_b)

    class Custom(nn.Sequential):  # a subclass may change forward: not replayed
        pass

    assert not RecordPlan(Custom(nn.Linear(2, 2))).replays
    relu = nn.ReLU()
    reused = nn.Sequential(nn.Linear(3, 3), relu, nn.Linear(3, 3), relu)
    assert not RecordPlan(reused).replays
    with pytest.raises(RuntimeError, match="called twice"):
        RecordPlan(reused).record(torch.randn(2, 3))


def test_hooks_or_a_changed_structure_switch_the_plan_off():
    torch.manual_seed(0)
    model = peak_mlp()
    plan = RecordPlan(model)
    x = torch.rand(8, 784)
    handle = model[2].register_forward_hook(lambda m, a, out: out * 2)  # record() sees the output before the hook
    assert not plan.replays
    assert_same_tape(record(model, x)[1], plan.record(x)[1])
    handle.remove()
    assert plan.replays
    handle = nn.modules.module.register_module_forward_hook(lambda m, a, out: None)
    assert not plan.replays
    handle.remove()
    model[1] = nn.Identity()  # the plan was made for a BatchNorm here
    assert not plan.replays
    assert_same_tape(record(model, x)[1], plan.record(x)[1])


def test_model_returning_a_non_tensor_raises_as_record_does():
    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    model = nn.Sequential(nn.Linear(2, 2), Pair())
    with pytest.raises(TypeError, match="one tensor"):
        RecordPlan(model).record(torch.randn(3, 2))
    with pytest.raises(TypeError, match="one tensor"):
        record(model, torch.randn(3, 2))
