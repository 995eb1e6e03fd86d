"""Registered enhancement networks: forward on odd sizes, backward, every parameter gets a gradient, errors."""
import pytest
import torch

from sonokit.enhance import create_enhancer, list_enhancers
from sonokit.errors import CheckpointError, ConfigError
from sonokit.tiling import tiled_apply


def test_registry_lists_the_papers_models():
    assert {"scunet", "scunet_small", "dncnn", "restormer"} <= set(list_enhancers())
    with pytest.raises(ConfigError, match="did you mean 'scunet'"):
        create_enhancer("scunett")


@pytest.mark.parametrize("name", [n for n in list_enhancers() if n.endswith("_small")] + ["scunet"])
def test_enhancer_forward_backward_any_size(name):
    torch.manual_seed(0)
    model = create_enhancer(name)
    x = torch.rand(2, 1, 40, 52)  # not a multiple of anything: padded and cropped back
    y = model(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, no_grad[:5]


def test_enhancer_tiled_matches_whole_image_away_from_seams():
    torch.manual_seed(0)
    model = create_enhancer("dncnn_small").eval()  # 10 3x3 convs: receptive-field radius 10
    x = torch.rand(1, 1, 120, 150)
    with torch.no_grad():
        assert torch.allclose(tiled_apply(model, x, tile=64, overlap=24), model(x), atol=1e-5)


def test_enhancer_bad_input_and_weights(tmp_path):
    model = create_enhancer("dncnn_small")
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        model(torch.rand(1, 3, 32, 32))
    with pytest.raises(CheckpointError, match="does not exist"):
        create_enhancer("dncnn_small", weights=tmp_path / "nope.pth")
    torch.save(create_enhancer("dncnn").net.state_dict(), tmp_path / "big.pth")
    with pytest.raises(CheckpointError, match="do not fit 'dncnn_small'"):
        create_enhancer("dncnn_small", weights=tmp_path / "big.pth")
    torch.save(model.net.state_dict(), tmp_path / "ok.pth")
    again = create_enhancer("dncnn_small", weights=tmp_path / "ok.pth")
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def test_drunet_blind_by_default_and_published_weights_run_non_blind(tmp_path):
    torch.manual_seed(0)
    blind = create_enhancer("drunet_small").eval()
    torch.save(blind.net.net.state_dict(), tmp_path / "drunet_gray.pth")  # deepinv's DRUNet layout (published weights)
    fixed = create_enhancer("drunet_small", weights=tmp_path / "drunet_gray.pth", noise_level=25 / 255).eval()
    x = torch.rand(1, 1, 48, 40)
    with torch.no_grad():
        # blind: the noise-level channel is 0; non-blind: deepinv's own forward with that sigma
        assert torch.allclose(blind(x), blind.net.net(x, 0.0), atol=1e-6)
        assert torch.allclose(fixed(x), blind.net.net(x, 25 / 255), atol=1e-6)
        assert not torch.allclose(fixed(x), blind(x), atol=1e-4)
    with pytest.raises(ValueError, match=r"noise_level must be in \[0, 1\].*found 25"):
        create_enhancer("drunet_small", noise_level=25)
