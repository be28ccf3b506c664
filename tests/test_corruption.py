"""Input corruptions for denoising autoencoders: what each does, and that a seeded generator makes them repeatable."""

import pytest
import torch

from racecar_core.corruption import Corruption, block_mask, gaussian_noise, masking_noise

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_gaussian_noise_adds_zero_mean_noise_of_the_given_std():
    x = torch.full((400, 250), 3.0)
    noisy = gaussian_noise(x, 0.5, gen())
    diff = noisy - x
    assert abs(float(diff.mean())) < 0.01 and float(diff.std()) == pytest.approx(0.5, rel=0.02)
    assert torch.equal(x, torch.full((400, 250), 3.0))  # the input is not changed


def test_masking_noise_zeroes_the_same_number_of_elements_in_every_example():
    x = torch.rand(50, 7, 8) + 1.0  # no zeros of its own
    noisy = masking_noise(x, 0.25, gen())
    zeros = (noisy == 0).reshape(50, -1).sum(1)
    assert (zeros == 14).all()  # round(0.25 * 56)
    kept = noisy != 0
    assert torch.equal(noisy[kept], x[kept])
    assert not torch.equal(noisy[0] == 0, noisy[1] == 0)  # chosen per example


def test_block_mask_blanks_one_square_per_image_in_every_channel():
    x = torch.rand(20, 3, 12, 10) + 1.0
    out = block_mask(x, 4, gen())
    hole = out == 0
    assert (hole.all(1) == hole.any(1)).all()  # the same pixels in every channel
    for image in hole[:, 0]:
        rows, cols = image.any(1).nonzero().flatten(), image.any(0).nonzero().flatten()
        assert len(rows) == 4 and len(cols) == 4 and int(image.sum()) == 16
        assert int(rows[-1] - rows[0]) == 3 and int(cols[-1] - cols[0]) == 3  # one contiguous square
    with pytest.raises(ValueError, match="does not fit"):
        block_mask(x, 11, gen())
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        block_mask(torch.rand(4, 10), 2, gen())


@pytest.mark.parametrize("corruption", [Corruption("gaussian", 0.3), Corruption("masking", 0.5), Corruption("block", 3)])
def test_same_generator_state_same_corruption(corruption):
    x = torch.rand(6, 2, 8, 8)
    a, b = corruption(x, gen(5)), corruption(x, gen(5))
    assert torch.equal(a, b) and not torch.equal(a, corruption(x, gen(6))) and not torch.equal(a, x)


def test_no_corruption_and_zero_amounts_leave_the_input():
    x = torch.rand(4, 3, 8, 8)
    for c in (Corruption(), Corruption("gaussian", 0.0), Corruption("masking", 0.0), Corruption("block", 0)):
        assert torch.equal(c(x, gen()), x)


@pytest.mark.parametrize("kind,amount,message", [
    ("salt", 0.1, "kind must be one of"),
    ("gaussian", -1.0, "standard deviation"),
    ("masking", 1.5, r"fraction of elements set to 0\) must be in \[0, 1\]"),
    ("block", 2.5, "whole number"),
])
def test_bad_corruptions_are_refused(kind, amount, message):
    with pytest.raises(ValueError, match=message):
        Corruption(kind, amount)
