import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from sonokit.data.preprocess import Letterbox, letterbox, unletterbox
from sonokit.metrics import aggregate, segmentation_metrics
from sonokit.models import create_model, list_models
from sonokit.errors import CheckpointError


@pytest.mark.parametrize("name", ["resunet_resnet10t", "resunet_resnet18"])
def test_model_forward_backward_all_params_get_grad(name):
    torch.manual_seed(0)
    m = create_model(name, decoder_channels=(32, 16, 16, 8, 8))
    x = torch.rand(2, 1, 40, 56)  # not a multiple of 32
    y = m(x)
    assert y.shape == (2, 1, 40, 56) and torch.isfinite(y).all()
    # timm zero-initialises each residual block's last BN scale, so the block's inner convolutions get their
    # first gradient only after one step: take one SGD step, then check that every parameter gets a gradient
    target = torch.randn_like(y)
    (y * target).sum().backward()
    torch.optim.SGD(m.parameters(), lr=0.1).step()
    m.zero_grad()
    (m(x) * target).sum().backward()
    missing = [n for n, p in m.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing, missing


def test_every_registered_model_builds():
    for name in list_models():
        m = create_model(name, decoder_channels=(16, 16, 16, 16, 16)).eval()
        with torch.no_grad():
            assert m(torch.rand(1, 1, 64, 64)).shape == (1, 1, 64, 64)


def test_encoder_checkpoint_roundtrip_and_mismatch(tmp_path):
    a = create_model("resunet_resnet10t")
    torch.save({"encoder": a.encoder.state_dict()}, tmp_path / "enc.pt")
    b = create_model("resunet_resnet10t", encoder_checkpoint=str(tmp_path / "enc.pt"))
    for (k, v), (_, w) in zip(a.encoder.state_dict().items(), b.encoder.state_dict().items()):
        assert torch.equal(v, w), k
    with pytest.raises(CheckpointError, match="does not fit encoder 'resnet18'"):
        create_model("resunet_resnet18", encoder_checkpoint=str(tmp_path / "enc.pt"))
    with pytest.raises(CheckpointError, match="do not exist"):
        create_model("resunet_resnet18", encoder_weights=str(tmp_path / "nope.pth"))


def test_encoder_imagenet_style_weights_from_local_file(tmp_path):
    import timm

    ref = timm.create_model("resnet10t", num_classes=1000)  # a 3-channel "ImageNet" checkpoint
    torch.save(ref.state_dict(), tmp_path / "r10t.pth")
    m = create_model("resunet_resnet10t", encoder_weights=str(tmp_path / "r10t.pth"))
    stem = m.encoder.model.conv1[0].weight  # (32, 1, 3, 3): RGB summed into one gray channel
    assert stem.shape[1] == 1
    assert torch.allclose(stem[:, 0], ref.conv1[0].weight.sum(1), atol=1e-5)


def test_letterbox_roundtrip():
    x = torch.zeros(1, 30, 50)
    x[:, 5:20, 10:40] = 1
    y, box = letterbox(x, 64)
    assert y.shape == (1, 64, 64) and box == Letterbox.fit(30, 50, 64)
    assert box.new_w == 64 and box.new_h == 38 and box.top == 13
    assert y[:, :box.top].abs().sum() == 0  # padding
    back = unletterbox(y, box)
    assert back.shape == (1, 30, 50)
    assert ((back > 0.5) == (x > 0.5)).float().mean() > 0.97


def test_metrics_hand_computed():
    gt = np.zeros((20, 20), bool)
    gt[5:15, 5:15] = True  # 100 px
    pred = np.zeros_like(gt)
    pred[5:15, 10:20] = True  # 100 px, 50 overlap
    m = segmentation_metrics(pred, gt)
    assert m["dice"] == pytest.approx(0.5) and m["iou"] == pytest.approx(50 / 150)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    # independent HD95: 95th percentile of symmetric boundary-to-boundary distances
    def border(a):
        return a & ~ndimage.binary_erosion(a)

    dt_gt = ndimage.distance_transform_edt(~border(gt))
    dt_pr = ndimage.distance_transform_edt(~border(pred))
    d = np.concatenate([dt_gt[border(pred)], dt_pr[border(gt)]])
    assert m["hd95"] == pytest.approx(np.percentile(d, 95), abs=0.6)
    m2 = segmentation_metrics(pred, gt, spacing=(0.5, 0.5))
    assert m2["hd95"] == pytest.approx(m["hd95"] * 0.5, rel=1e-5)


def test_empty_mask_rule():
    z = np.zeros((8, 8), bool)
    o = z.copy()
    o[2:4, 2:4] = True
    assert segmentation_metrics(z, z) == {"dice": 1.0, "iou": 1.0, "precision": 1.0, "recall": 1.0, "hd95": 0.0}
    for p, g in ((o, z), (z, o)):
        m = segmentation_metrics(p, g)
        assert m["dice"] == m["iou"] == m["precision"] == m["recall"] == 0.0 and math.isnan(m["hd95"])
    agg = aggregate([segmentation_metrics(o, o), segmentation_metrics(z, o)])
    assert agg["dice"]["mean"] == 0.5 and agg["hd95"]["n"] == 1
