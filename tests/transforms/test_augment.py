import pytest
import torch

from sonokit.transforms import SegAugment


def test_augment_same_params_for_image_and_mask_and_replayable():
    aug = SegAugment(rotate=15, noise=0.0, brightness=0.0, contrast=0.0, gamma=(1.0, 1.0))
    img = torch.zeros(4, 1, 32, 32)
    img[:, :, 8:20, 10:24] = 1.0
    mask = (img > 0.5).float()
    a1, m1 = aug(img, mask, torch.Generator().manual_seed(3))
    a2, m2 = aug(img, mask, torch.Generator().manual_seed(3))
    assert torch.equal(a1, a2) and torch.equal(m1, m2)
    assert ((a1 > 0.5).float() == m1).float().mean() > 0.97  # geometry applied identically
    assert set(m1.unique().tolist()) <= {0.0, 1.0}
    a3, _ = aug(img, mask, torch.Generator().manual_seed(4))
    assert not torch.equal(a1, a3)


def test_augment_bad_options():
    with pytest.raises(ValueError, match="hflip is a probability"):
        SegAugment(hflip=1.5)
    with pytest.raises(ValueError, match="scale and gamma"):
        SegAugment(scale=(1.2, 0.8))
