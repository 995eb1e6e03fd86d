import pytest

from sonokit.errors import ConfigError
from sonokit.models import create_model, list_models
from sonokit.registry import Registry


def test_register_create_list():
    r = Registry("thing")

    @r.register("alpha")
    def alpha(x=1):
        return x

    assert r.create("alpha", x=3) == 3
    assert r.list("al*") == ["alpha"]
    with pytest.raises(ConfigError, match="registered twice"):
        r.register("alpha")(alpha)


def test_unknown_model_suggests():
    with pytest.raises(ConfigError, match=r"unknown model 'resunet_resnet5O'; did you mean 'resunet_resnet50'\?"):
        create_model("resunet_resnet5O")
    assert "resunet_resnet50" in list_models("resunet*")
