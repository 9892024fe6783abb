"""ImagePreprocessing and how HF / timm preprocessing configs become export arguments."""

import numpy as np
import pytest

from zoo.convert import CheckpointError, ImagePreprocessing
from zoo.convert.hf_vit import preprocessing_from_hf
from zoo.convert.image_preprocessing import class_names_from_mapping
from zoo.convert.timm_vit import preprocessing_from_timm

CONFIG = {"id2label": {"1": "dog", "0": "cat"}}


def test_save_load_round_trip_and_export_arguments(tmp_path):
    prep = ImagePreprocessing([24, 32], [0.1, 0.2, 0.3], (0.5, 0.6, 0.7), ["a", "b"], "bicubic", 0.9, "timm")
    prep.save(tmp_path / "p.json")
    assert ImagePreprocessing.load(tmp_path / "p.json") == prep
    assert prep.export_kwargs() == dict(
        class_names=["a", "b"], image_size=(24, 32), mean=(0.1, 0.2, 0.3), std=(0.5, 0.6, 0.7)
    )


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
    prep = preprocessing_from_hf(processor, CONFIG, (32, 32))
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
        preprocessing_from_hf({"image_processor_type": "ConvNextImageProcessor"}, CONFIG, (32, 32))
    with pytest.raises(CheckpointError, match="do_center_crop"):
        preprocessing_from_hf({"do_center_crop": True}, CONFIG, (32, 32))


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
    prep = preprocessing_from_timm(dict(mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=0.875), None, 3, (32, 32))
    assert prep.class_names == ("0", "1", "2") and prep.crop_pct == 0.875 and prep.interpolation == "bicubic"
    with pytest.raises(CheckpointError, match="needs mean and std"):
        preprocessing_from_timm(dict(crop_pct=0.9), None, 3, (32, 32))
    with pytest.raises(CheckpointError, match="std must be positive"):
        ImagePreprocessing((32, 32), (0.5,) * 3, (0.5, 0.0, 0.5), ("a",))
