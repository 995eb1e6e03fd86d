"""The classifier on every encoder: logits, gradients, and the names a linear probe relies on."""
import pytest
import torch

from sonokit.errors import ConfigError
from sonokit.models import ClassificationModel, create_model

from ._util import assert_every_param_gets_grad, encoder_params


@pytest.mark.parametrize("encoder", encoder_params())
def test_classifier_on_every_encoder(encoder):
    torch.manual_seed(0)
    m = create_model("classifier", encoder=encoder, img_size=32, num_classes=3, dropout=0.1)
    assert isinstance(m, ClassificationModel)
    y = assert_every_param_gets_grad(m, torch.rand(2, 1, 32, 32))
    assert y.shape == (2, 3)
    assert {n.split(".")[0] for n, _ in m.named_parameters()} == {"encoder", "head"}
    assert m.head.in_features == m.encoder.out_channels[-1]


def test_classifier_checks_its_arguments():
    with pytest.raises(ConfigError, match="dropout must be in \\[0, 1\\), found 1.5"):
        create_model("classifier", encoder="resnet10t", dropout=1.5)
    with pytest.raises(ConfigError, match="num_classes must be a positive integer; found 0"):
        create_model("classifier", num_classes=0)


def test_probe_norm_standardises_the_pooled_features_and_only_adds_statistics():
    torch.manual_seed(0)
    plain = create_model("classifier", encoder="resnet10t", num_classes=3)
    probe = create_model("classifier", encoder="resnet10t", num_classes=3, probe_norm=True)
    assert not any(k.startswith("head_norm.") for k in plain.state_dict())  # older checkpoints still load
    assert {k for k in probe.state_dict() if k.startswith("head_norm.")} == {
        "head_norm.running_mean", "head_norm.running_var", "head_norm.num_batches_tracked"}
    assert [n for n, _ in probe.named_parameters() if n.startswith("head_norm")] == []  # no affine parameters
    seen = {}
    probe.head.register_forward_hook(lambda mod, inp, out: seen.update(x=inp[0].detach()))
    probe.train()
    probe(torch.rand(16, 1, 32, 32) + 5.0)  # a large shared offset, as a frozen ViT's pooled tokens have
    x = seen["x"]
    assert x.mean(0).abs().max() < 1e-4
    assert torch.allclose(x.var(0, unbiased=False), torch.ones(x.shape[1]), atol=1e-2)
