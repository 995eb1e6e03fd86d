import numpy as np
import pytest
from PIL import Image

from sonokit.data.io import read_image, read_mask, write_png
from sonokit.errors import DataError

from ..conftest import save


def test_gray_rgb_and_16bit(tmp_path):
    g = (np.arange(12 * 10) % 256).astype(np.uint8).reshape(12, 10)
    img, info = read_image(save(tmp_path / "g.png", g))
    assert img.shape == (12, 10) and img.dtype == np.float32 and np.allclose(img * 255, g)
    rgb = np.stack([g, g, g], -1)
    img2, info2 = read_image(save(tmp_path / "rgb_gray.png", rgb))
    assert np.allclose(img2, img) and not info2.get("colour")
    rgb[0, 0] = (255, 0, 0)  # a colour overlay
    img3, info3 = read_image(save(tmp_path / "rgb.png", rgb))
    assert info3["colour"] and abs(img3[0, 0] - 0.299) < 1e-3
    g16 = (np.arange(120).reshape(12, 10) * 500).astype(np.uint16)
    img4, info4 = read_image(save(tmp_path / "g16.png", g16))
    assert info4["bit_depth"] == 16 and np.allclose(img4, g16 / 65535.0, atol=1e-6)


def test_rgba_opaque_ok_transparent_error(tmp_path):
    a = np.full((8, 8, 4), 200, np.uint8)
    a[..., 3] = 255
    img, info = read_image(save(tmp_path / "opaque.png", a))
    assert info["alpha_dropped"] and np.allclose(img, 200 / 255)
    a[0, 0, 3] = 0
    with pytest.raises(DataError, match=r"transparent.png.*RGBA with 1 transparent pixels; expected an opaque"):
        read_image(save(tmp_path / "transparent.png", a))


def test_truncated_and_empty_png(tmp_path):
    p = save(tmp_path / "ok.png", np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    data = p.read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cannot read image '.*trunc.png'.*truncated or corrupt"):
        read_image(tmp_path / "trunc.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match="empty file"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "junk.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="junk.png"):
        read_image(tmp_path / "junk.png")


def test_masks_binary_and_nonbinary(tmp_path):
    m = np.zeros((6, 6), np.uint8)
    m[1:3, 1:3] = 1  # {0, 1} 8-bit
    out, nb = read_mask(save(tmp_path / "m01.png", m))
    assert out.sum() == 4 and not nb
    one_bit = Image.fromarray(m.astype(bool))
    one_bit.save(tmp_path / "m1bit.png")
    assert read_mask(tmp_path / "m1bit.png")[0].sum() == 4
    m[4, 4] = 100
    m[1:3, 1:3] = 255
    out, nb = read_mask(save(tmp_path / "mnb.png", m))
    assert nb and out.sum() == 4


def test_write_png_roundtrip(tmp_path):
    x = np.linspace(0, 1, 30, dtype=np.float32).reshape(5, 6)
    p = write_png(tmp_path / "sub" / "x.png", x)
    assert np.abs(read_image(p)[0] - x).max() <= 0.5 / 255 + 1e-6
    assert not list((tmp_path / "sub").glob("*.tmp"))


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os
    import stat

    from sonokit.data.io import write_png
    from sonokit.runs.callbacks import AtomicCheckpointIO

    umask = os.umask(0o022)
    try:
        write_png(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
        AtomicCheckpointIO().save_checkpoint({"x": 1}, tmp_path / "b.ckpt")
    finally:
        os.umask(umask)
    for name in ("a.png", "b.ckpt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644  # not mkstemp's 0600
