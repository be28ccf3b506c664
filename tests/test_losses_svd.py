"""SRIP (the Ort baseline), the task losses and the SVD analysis."""

import numpy as np
import pytest
import torch
from torch import nn

import racecar_core as rc
from racecar_core import svd
from racecar_core.losses import srip_term


def test_srip_is_zero_for_orthonormal_rows():
    q, _ = torch.linalg.qr(torch.randn(20, 6))
    assert srip_term(q.t()).item() < 1e-10


def test_srip_of_a_scaled_identity_is_exact():
    # W Wᵀ − I = 3 I: every vector is a top singular vector, so one power step is exact
    assert srip_term(2.0 * torch.eye(5)).item() == pytest.approx(9.0, rel=1e-5)


def test_srip_one_power_step_underestimates_the_spectral_norm():
    w = torch.randn(8, 30, dtype=torch.float64)
    a = w @ w.t() - torch.eye(8, dtype=torch.float64)
    true = torch.linalg.matrix_norm(a, ord=2).item() ** 2
    estimates = [srip_term(w, torch.Generator().manual_seed(i)).item() for i in range(20)]
    assert all(0 <= e <= true * (1 + 1e-9) for e in estimates)
    assert max(estimates) > 0.5 * true


def test_srip_loss_covers_linear_and_conv_layers_and_has_gradients():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    loss = rc.srip_loss(model, torch.Generator().manual_seed(0))
    loss.backward()
    assert model[0].weight.grad.abs().sum() > 0 and model[3].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        rc.srip_loss(nn.Sequential(nn.ReLU()))


def test_double_softmax_saturates_where_cross_entropy_does_not():
    logits = torch.tensor([[50.0, -50.0]])
    label = torch.tensor([0])
    assert rc.cross_entropy(logits, label).item() < 1e-6
    # softmax of probabilities (1, 0): −log(e/(e+1)) ≈ 0.3133, the floor of the authors' loss
    assert rc.double_softmax_cross_entropy(logits, label).item() == pytest.approx(np.log1p(np.exp(-1.0)), rel=1e-5)


def test_principal_angles_and_similarity():
    e = np.eye(5)
    assert np.allclose(svd.principal_angles(e[:2], e[:2]), 0)
    assert np.allclose(svd.principal_angles(e[:2], e[2:4]), 90)
    assert svd.subspace_similarity(e[:2], e[[0, 2]]) == pytest.approx(0.5)
    rotated = np.array([[1, 1, 0, 0, 0], [0, 0, 1, 0, 0]]) / np.array([[np.sqrt(2)], [1]])
    assert np.allclose(svd.principal_angles(e[:1], rotated[:1]), 45)


def test_data_embedding_finds_data_inside_weight_rows():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(3, 40))
    q, _ = np.linalg.qr(data.T)
    weight = np.diag([3.0, 2.0, 1.5]) @ q.T  # rows span the data, σ = 3, 2, 1.5
    emb = svd.data_embedding(weight, data, 3)
    assert emb.angles.max() < 1e-5 and emb.similarity == pytest.approx(1.0)
    assert np.allclose(emb.singular_values, [3, 2, 1.5])
    assert svd.rowspace_energy(weight, data) == pytest.approx(1.0)
    other = rng.normal(size=(3, 40))
    assert svd.rowspace_energy(weight, other) < 0.5


def test_data_alignment_and_image_helpers():
    data = np.zeros((2, 16))
    data[0, 0], data[1, 5] = 1, 1
    vectors = np.eye(16)[[0, 5, 9]]
    assert np.allclose(svd.data_alignment(vectors, data, 2), [1, 1, 0])
    flipped = svd.oriented(-vectors[:2], data.sum(0))
    assert (flipped.sum(axis=1) > 0).all()
    images = svd.as_images(np.vstack([np.linspace(-1, 1, 16)]), (4, 4))
    assert images.shape == (1, 4, 4) and images.min() == 0 and images.max() == 1
