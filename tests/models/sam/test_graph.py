"""ONNX export of SF-RecSAM: the FFT filter as matrix products, the base network's graph and what it leaves out."""
import numpy as np
import pytest
import torch

from sonokit.models.sam.fusion import frequency_filter, frequency_filter_dft
from sonokit.models.sam.graph import BaseNetworkGraph

from ._util import tiny


@pytest.mark.parametrize("h,w", [(8, 8), (32, 32), (6, 7), (5, 9)])
def test_dft_filter_equals_the_fft_filter(h, w):
    g = torch.Generator().manual_seed(h * w)
    x, k = torch.randn(2, 3, h, w, generator=g), torch.randn(3, h, w // 2 + 1, 2, generator=g)
    torch.testing.assert_close(frequency_filter_dft(x, k), frequency_filter(x, k), atol=1e-5, rtol=1e-5)


def _trained_like(**kw) -> torch.nn.Module:
    """A tiny model with its zero-initialised parts (adapters, fusion projections, filters) moved, so the graph
    test does not pass on identity modules."""
    m = tiny("sfrecsam", **kw).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "adapter" in n or "fusion" in n:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
    return m


def test_graph_module_is_the_initial_mask_with_an_all_pixel_box():
    m = _trained_like(box_component="all", corrector="dual", mc_samples=2)
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(BaseNetworkGraph(m)(x), m(x)["initial_logits"])


def test_onnx_export_of_the_base_network_says_what_it_leaves_out(tmp_path):
    onnx = pytest.importorskip("onnx", reason="ONNX export is the optional extra sonokit[onnx]")
    from sonokit.export import export_onnx

    m = _trained_like(box_component="all", corrector="dual", mc_samples=2)
    note = export_onnx(m, 64, tmp_path / "m.onnx")
    assert "'dual' corrector (stochastic passes) is NOT exported" in note and "largest" not in note
    model = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(model)
    assert {p.key: p.value for p in model.metadata_props}["sonokit_note"] == note
    shape = model.graph.input[0].type.tensor_type.shape.dim
    assert shape[0].dim_param == "batch" and [d.dim_value for d in shape[2:]] == [64, 64]  # fixed size
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime runs the exported graph")
    x = torch.rand(3, 1, 64, 64)  # another batch size than the traced one
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        ref = m(x)["initial_logits"].numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_the_note_names_the_largest_component_box_and_no_corrector_when_there_is_none():
    note = tiny("sfrecsam", corrector="none").onnx_module()["note"]  # the default box_component: largest
    assert "not the 'largest' connected component" in note and "corrector" not in note
