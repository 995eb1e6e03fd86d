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
