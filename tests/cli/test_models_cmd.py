"""`sonokit models --kind`: every registry is listed, with its config keys on request."""
import pytest
from typer.testing import CliRunner

from sonokit.cli import KINDS, app
from sonokit.errors import ConfigError

from ..conftest import ok

runner = CliRunner()


@pytest.mark.parametrize("kind,expect", [("model", "resunet_resnet18"), ("encoder", "vit_small_patch16"),
                                         ("decoder", "upernet"), ("loss", "dice_ce"), ("enhancer", "scunet"),
                                         ("classical", "bm3d"), ("format", "ddti"), ("ssl", "rcl+perceptual")])
def test_every_registry_is_listed(kind, expect):
    assert expect in ok(runner.invoke(app, ["models", "--kind", kind]))


def test_all_kinds_with_parameters():
    out = ok(runner.invoke(app, ["models", "--kind", "all", "--params"]))
    for k in KINDS:
        assert f"# {k}" in out
    assert "decoder_channels" in out and "class_weights" in out
    r = runner.invoke(app, ["models", "--kind", "modle"])
    assert isinstance(r.exception, ConfigError) and "did you mean 'model'" in str(r.exception)
