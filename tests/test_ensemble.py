"""Geometric self-ensemble: exact inverse transforms, and the average it is supposed to be."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from imgdiff.ensemble import ORDER, _forward, _inverse, dihedral_mean


def test_every_transform_is_undone_and_all_eight_are_distinct():
    x = torch.arange(2 * 4 * 6, dtype=torch.float32).reshape(1, 2, 4, 6)
    seen = set()
    for i in ORDER:
        t = _forward(x, i)
        assert torch.equal(_inverse(t, i), x)
        seen.add((*t.shape[-2:], *t.flatten().tolist()))
    assert len(seen) == 8 and sorted(ORDER) == list(range(8))


def test_full_ensemble_of_a_convolution_is_the_symmetrised_kernel():
    """T^-1 conv_k(T x) = conv_{T^-1 k}(x), so the 8-mean is a convolution with the group-averaged kernel."""
    torch.manual_seed(0)
    k = torch.randn(1, 1, 3, 3)
    x = torch.randn(1, 1, 12, 9)  # not square: rotated tiles change shape
    out = dihedral_mean(lambda a, c: F.conv2d(a, k, padding=1), x, None, 8)
    k_sym = torch.stack([_forward(k, i) for i in range(8)]).mean(0)
    assert torch.allclose(out, F.conv2d(x, k_sym, padding=1), atol=1e-5)
    single = dihedral_mean(lambda a, c: F.conv2d(a, k, padding=1), x, None, 1)
    assert torch.allclose(single, F.conv2d(x, k, padding=1))
    assert not torch.allclose(out, single, atol=1e-2)


def test_condition_is_transformed_with_the_input():
    x, cond = torch.randn(1, 3, 8, 10), torch.randn(1, 3, 8, 10)
    out = dihedral_mean(lambda a, c: a - c, x, cond, 4)  # equivariant: every transform agrees
    assert torch.allclose(out, x - cond, atol=1e-6)
    with pytest.raises(ValueError):
        dihedral_mean(lambda a, c: a, x, None, 9)
