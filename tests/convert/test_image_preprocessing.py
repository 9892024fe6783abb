"""How HF / timm preprocessing configs become a `zoo.data.ImagePreprocessor`."""

import numpy as np
import pytest

from zoo.convert import CheckpointError
from zoo.convert.hf_vit import preprocessor_from_hf
from zoo.convert.timm_vit import preprocessor_from_timm
from zoo.convert.vit_weights import class_names_from_mapping

CONFIG = {"id2label": {"1": "dog", "0": "cat"}}


@pytest.mark.parametrize(
    "processor, mean, std",
    [
        (dict(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        # 0..255 pixels normalised directly: the same map on [0, 1] pixels divides by 255.
        (dict(do_rescale=False, image_mean=[127.5] * 3, image_std=[127.5] * 3), (0.5,) * 3, (0.5,) * 3),
        (dict(rescale_factor=1 / 127.5, image_mean=[1.0] * 3, image_std=[1.0] * 3), (0.5,) * 3, (0.5,) * 3),
        (dict(do_normalize=False, do_rescale=False), (0.0,) * 3, (1 / 255,) * 3),  # the model reads 0..255
        (dict(do_normalize=False), (0.0,) * 3, (1.0,) * 3),
    ],
)
def test_hf_normalisation_in_unit_pixels(processor, mean, std):
    """The export computes (x - mean) / std on x in [0, 1]; HF on 0..255 pixels p:
    (p * rescale_factor - image_mean) / image_std. Both must give the same numbers."""
    processor = dict(dict(do_rescale=True, rescale_factor=1 / 255, do_normalize=True), **processor)
    prep = preprocessor_from_hf(processor, CONFIG, (32, 32))
    np.testing.assert_allclose(prep.mean, mean, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(prep.std, std, rtol=1e-6)
    pixels = np.array([0.0, 100.0, 255.0])[:, None]
    scale = processor["rescale_factor"] if processor["do_rescale"] else 1.0
    if processor["do_normalize"]:
        hf = (pixels * scale - np.array(processor["image_mean"])) / np.array(processor["image_std"])
    else:
        hf = pixels * scale * np.ones(3)
    np.testing.assert_allclose((pixels / 255 - np.array(prep.mean)) / np.array(prep.std), hf, rtol=1e-6, atol=1e-9)
    assert prep.class_names == ("cat", "dog")


def test_hf_processors_zoo_cannot_match_are_refused():
    with pytest.raises(CheckpointError, match="image_processor_type='ConvNextImageProcessor'"):
        preprocessor_from_hf({"image_processor_type": "ConvNextImageProcessor"}, CONFIG, (32, 32))
    with pytest.raises(CheckpointError, match="do_center_crop"):
        preprocessor_from_hf({"do_center_crop": True}, CONFIG, (32, 32))
    with pytest.raises(CheckpointError, match="resample=4"):  # PIL's BOX filter
        preprocessor_from_hf({"resample": 4}, CONFIG, (32, 32))
    with pytest.raises(CheckpointError, match="preprocessor_config.json: std must be positive"):
        preprocessor_from_hf({"image_std": [0.5, 0.0, 0.5]}, CONFIG, (32, 32))
    assert preprocessor_from_hf({"resample": 3}, CONFIG, (32, 32)).interpolation == "bicubic"


def test_class_names_must_name_every_class():
    assert class_names_from_mapping({"0": "a", "1": "b"}, 2, "x") == ["a", "b"]
    assert class_names_from_mapping(("a", "b"), 2, "x") == ["a", "b"]
    with pytest.raises(CheckpointError, match="id2label must name each of the 3 classes.*Received: 2 entries"):
        class_names_from_mapping({"0": "a", "1": "b"}, 3, "id2label")
    with pytest.raises(CheckpointError, match="each of the 2 classes"):
        class_names_from_mapping({"0": "a", "2": "b"}, 2, "id2label")
    with pytest.raises(CheckpointError, match="must map class indices"):
        class_names_from_mapping({"zero": "a"}, 1, "id2label")


def test_timm_needs_mean_and_std_and_names_indices_by_default():
    prep = preprocessor_from_timm(dict(mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=0.9), None, 3, (32, 32))
    assert prep.class_names == ("0", "1", "2") and prep.crop_pct == 0.9 and prep.interpolation == "bicubic"
    assert prep.crop_mode == "center"
    squash = preprocessor_from_timm(dict(mean=(0.5,) * 3, std=(0.5,) * 3, crop_mode="squash"), None, 3, (32, 32))
    assert (squash.crop_mode, squash.crop_pct) == ("squash", 0.875)  # timm's default crop_pct
    with pytest.raises(CheckpointError, match="needs mean and std"):
        preprocessor_from_timm(dict(crop_pct=0.9), None, 3, (32, 32))
    with pytest.raises(CheckpointError, match="crop_mode='border'"):
        preprocessor_from_timm(dict(mean=(0.5,) * 3, std=(0.5,) * 3, crop_mode="border"), None, 3, (32, 32))
    with pytest.raises(CheckpointError, match="interpolation='random'"):
        preprocessor_from_timm(dict(mean=(0.5,) * 3, std=(0.5,) * 3, interpolation="random"), None, 3, (32, 32))
    with pytest.raises(CheckpointError, match="timm pretrained_cfg: std must be positive"):
        preprocessor_from_timm(dict(mean=(0.5,) * 3, std=(0.5, 0.0, 0.5)), None, 3, (32, 32))
