"""Automatic prompts: boxes of the largest component, scaling, clipping, replayable jitter, empty-mask fallback."""
import pytest
import torch

from sonokit.errors import ConfigError
from sonokit.models.sam.prompts import (
    auto_box,
    centroid_points,
    jitter_boxes,
    largest_component,
    mask_boxes,
    scale_boxes,
    select_pixels,
)


def two_blobs() -> torch.Tensor:
    m = torch.zeros(1, 64, 64, dtype=torch.bool)
    m[0, 20:41, 10:31] = True  # 21 x 21 lesion: x 10..30, y 20..40
    m[0, 2:5, 55:60] = True  # a small spurious blob
    return m


def test_box_of_the_largest_component_or_of_all_foreground():
    m = two_blobs()
    assert largest_component(m).sum() == 21 * 21
    boxes, found = mask_boxes(select_pixels(m, "largest"))
    assert found.tolist() == [True] and boxes.tolist() == [[10, 20, 30, 40]]  # inclusive pixel indices
    assert mask_boxes(select_pixels(m, "all"))[0].tolist() == [[10, 2, 59, 40]]
    with pytest.raises(ConfigError, match="largest, all"):
        select_pixels(m, "biggest")


def test_scaling_is_about_the_centre_and_clipped():
    b = torch.tensor([[10.0, 20.0, 30.0, 40.0], [0.0, 50.0, 20.0, 63.0]])
    s = scale_boxes(b, 1.3, (64, 64))
    assert torch.allclose(s[0], torch.tensor([7.0, 17.0, 33.0, 43.0]))  # centre (20, 30), half side 10 -> 13
    assert torch.allclose(s[1], torch.tensor([0.0, 48.05, 23.0, 63.0]))  # clipped at the image border


def test_jitter_is_replayable_from_a_generator_and_stays_in_the_image():
    b = torch.tensor([[10.0, 20.0, 30.0, 40.0]]).repeat(8, 1)
    a = jitter_boxes(b, 0.1, (64, 64), torch.Generator().manual_seed(3))
    again = jitter_boxes(b, 0.1, (64, 64), torch.Generator().manual_seed(3))
    other = jitter_boxes(b, 0.1, (64, 64), torch.Generator().manual_seed(4))
    assert torch.equal(a, again) and not torch.equal(a, other)
    assert (a - b).abs().max() <= 0.1 * 20 + 1e-5 and (a - b).abs().max() > 0
    assert torch.equal(jitter_boxes(b, 0.0, (64, 64)), b)
    wild = jitter_boxes(torch.tensor([[0.0, 0.0, 63.0, 63.0]]), 1.0, (64, 64), torch.Generator().manual_seed(0))
    assert (wild >= 0).all() and (wild <= 63).all() and (wild[:, 2:] >= wild[:, :2]).all()


def test_empty_mask_gets_a_centred_quarter_box_unscaled():
    m = torch.zeros(2, 64, 64, dtype=torch.bool)
    m[1, 30:34, 30:34] = True
    boxes, pixels = auto_box(m, scale=1.3)
    side = boxes[0, 2:] - boxes[0, :2]
    assert torch.allclose(side, torch.tensor([16.0, 16.0])) and torch.allclose(boxes[0, :2] + side / 2,
                                                                                torch.tensor([31.5, 31.5]))
    assert torch.allclose(boxes[1], torch.tensor([29.55, 29.55, 33.45, 33.45]))  # 30..33 scaled 1.3
    assert pixels[0].sum() == 0 and pixels[1].sum() == 16


def test_centroid_point_prompt():
    m = two_blobs()
    pts, labels = centroid_points(largest_component(m))
    assert pts.tolist() == [[[20.0, 30.0]]] and labels.tolist() == [[1]]
    pts, labels = centroid_points(torch.zeros(1, 9, 9, dtype=torch.bool))
    assert pts.tolist() == [[[4.0, 4.0]]] and labels.tolist() == [[-1]]  # SAM ignores label -1
