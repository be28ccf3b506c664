"""metrics.input_reconstruction: which BatchNorm statistics the reverse pass sees at evaluation."""

import numpy as np
import pytest
import torch

from racecar_core import metrics, models, reverse_pass
from racecar_core.data import peak_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def spread(r: torch.Tensor) -> float:
    """Largest difference between two reconstructions at any pixel."""
    return float((r[:, None] - r[None]).abs().amax())


@pytest.fixture(scope="module")
def peak_test_images() -> torch.Tensor:
    split = peak_split(5, 5, seed=0)
    return torch.as_tensor(np.asarray(split["x_test"], dtype=np.float32).reshape(10, -1))


def peak_net_with_forward_statistics(x: torch.Tensor) -> torch.nn.Sequential:
    """The peak network in eval mode whose running statistics are those of the forward pass on ``x``
    (raw 0-255 pixels), as after training: BN_1's running variance is of order 10^3-10^4."""
    torch.manual_seed(0)
    model = models.peak_mlp()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for m in norms:
        m.momentum = 1.0
    with torch.no_grad():
        model.train()(x)
    for m in norms:
        m.momentum = 0.1
    return model.eval()


def test_batch_statistics_reconstruct_each_input_running_statistics_flatten_them(peak_test_images):
    x = peak_test_images
    model = peak_net_with_forward_statistics(x)
    assert float(model[1].running_var.min()) > 100  # the forward scale of raw pixels
    batch, running = metrics.input_reconstruction(model, x), metrics.input_reconstruction(model, x, bn="running")
    assert batch.shape == running.shape == x.shape
    # the reverse signal is tiny against the forward running statistics: nearly one image for every input
    assert spread(running) < 0.01 * spread(batch)
    assert spread(batch) > 1.0
    assert not torch.allclose(batch[0], batch[5])


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("bn", ["batch", "running"])
def test_reconstruction_leaves_running_statistics_and_modes_alone(peak_test_images, bn, training):
    model = peak_net_with_forward_statistics(peak_test_images).train(training)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    metrics.input_reconstruction(model, peak_test_images, bn=bn)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert all(m.training == training for m in model.modules())


def test_running_statistics_equal_the_eval_mode_reverse_pass(peak_test_images):
    model = peak_net_with_forward_statistics(peak_test_images)
    _, d_rec = reverse_pass(model, peak_test_images)[0]
    assert torch.allclose(metrics.input_reconstruction(model, peak_test_images, bn="running"), d_rec.detach())


def test_unknown_statistics_are_refused(peak_test_images):
    with pytest.raises(ValueError, match="bn must be one of"):
        metrics.input_reconstruction(models.peak_mlp(), peak_test_images, bn="eval")
