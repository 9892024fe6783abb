"""HF ViTForImageClassification checkpoints import (`zoo.ImageClassifier.from_hf`) with the same logits."""

import json

import numpy as np
import pytest

from zoo.convert import CheckpointError
from zoo.tasks import ImageClassifier

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

LABELS = {0: "cat", 1: "dog", 2: "tabby cat", 3: "bird"}


def _save_reference(folder, image_size=32, safe=True, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), **overrides):
    """A random ViTForImageClassification saved as `save_pretrained` does; returns it."""
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        **dict(
            dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
                 image_size=image_size, patch_size=8, id2label=LABELS, label2id={v: k for k, v in LABELS.items()}),
            **overrides,
        )
    )
    model = transformers.ViTForImageClassification(config).eval()
    with torch.no_grad():  # HF initialises biases and norms to constants: make them matter
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    model.save_pretrained(folder, safe_serialization=safe)
    transformers.ViTImageProcessor(
        size={"height": image_size, "width": image_size}, image_mean=list(mean), image_std=list(std)
    ).save_pretrained(folder)
    return model


def _images(n=3, size=32, seed=0):
    return np.random.default_rng(seed).normal(size=(n, size, size, 3)).astype("float32")


def _hf_logits(model, images):
    with torch.no_grad():
        return model(pixel_values=torch.from_numpy(images.transpose(0, 3, 1, 2))).logits.numpy()


@pytest.mark.parametrize("safe, qkv_bias", [(True, True), (False, False)])
def test_logits_match(tmp_path, safe, qkv_bias):
    reference = _save_reference(tmp_path, safe=safe, qkv_bias=qkv_bias)
    model = ImageClassifier.from_hf(tmp_path).model
    images = _images()
    diff = np.abs(np.asarray(model(images)) - _hf_logits(reference, images)).max()
    assert diff < 1e-4, diff
    assert model.qkv_bias is qkv_bias and model.layer_norm_epsilon == 1e-12


def test_preprocessing_carries_normalisation_and_class_names(tmp_path):
    _save_reference(tmp_path)
    prep = ImageClassifier.from_hf(tmp_path).preprocessor
    assert prep.class_names == ("cat", "dog", "tabby cat", "bird")
    np.testing.assert_allclose(prep.mean, (0.485, 0.456, 0.406), rtol=1e-6)
    np.testing.assert_allclose(prep.std, (0.229, 0.224, 0.225), rtol=1e-6)
    assert prep.image_size == (32, 32) and prep.interpolation == "bilinear" and prep.crop_pct is None


def test_transformers_module_names_are_read_too(tmp_path):
    """transformers 5 names (`vit.layers.{i}.attention.q_proj`) as well as `save_pretrained`'s."""
    reference = _save_reference(tmp_path)
    from safetensors.torch import save_file

    (tmp_path / "model.safetensors").unlink()
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(tmp_path / "model.safetensors"))
    images = _images()
    diff = np.abs(np.asarray(ImageClassifier.from_hf(tmp_path).model(images)) - _hf_logits(reference, images)).max()
    assert diff < 1e-4, diff


def _edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(model_type="deit"), "model_type='deit'"),
        (dict(architectures=["ViTModel"]), "architectures=\\['ViTModel'\\]"),
        (dict(hidden_act="relu"), "hidden_act='relu'"),
        (dict(num_attention_heads=5), "hidden_size=48, num_attention_heads=5"),
        (dict(head_dim=16), "head_dim=16"),
        (dict(num_hidden_layers=3), "has no tensor 'vit.encoder.layer.2"),
        (dict(num_hidden_layers=1), "no place for.*vit.encoder.layer.1"),
        (dict(hidden_size=64), "projection.weight' .* has shape \\(48, 3, 8, 8\\).*expects \\(64, 3, 8, 8\\)"),
        (dict(image_size=40), "position_embeddings' .* \\(1, 17, 48\\).*expects \\(1, 26, 48\\)"),
    ],
)
def test_wrong_checkpoints_name_what_is_wrong(tmp_path, changes, message):
    _save_reference(tmp_path)
    _edit_json(tmp_path / "config.json", **changes)
    with pytest.raises(CheckpointError, match=message):
        ImageClassifier.from_hf(tmp_path)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="Expected an HF checkpoint folder"):
        ImageClassifier.from_hf(tmp_path / "nowhere")
    _save_reference(tmp_path)
    (tmp_path / "preprocessor_config.json").unlink()
    with pytest.raises(CheckpointError, match="Missing preprocessor_config.json"):
        ImageClassifier.from_hf(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="No weights in"):
        ImageClassifier.from_hf(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="Missing config.json"):
        ImageClassifier.from_hf(tmp_path)


def test_masked_image_modeling_checkpoint_is_refused(tmp_path):
    torch.manual_seed(0)
    config = transformers.ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                    intermediate_size=64, image_size=32, patch_size=8, encoder_stride=8)
    transformers.ViTForMaskedImageModeling(config).save_pretrained(tmp_path)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="ViTForMaskedImageModeling"):
        ImageClassifier.from_hf(tmp_path)


def test_unused_pooler_is_skipped_but_unknown_tensors_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    reference = _save_reference(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    state["vit.pooler.dense.weight"] = torch.zeros(48, 48)  # ViTForImageClassification never runs it
    save_file(state, str(tmp_path / "model.safetensors"))
    images = _images()
    assert np.abs(np.asarray(ImageClassifier.from_hf(tmp_path).model(images)) - _hf_logits(reference, images)).max() < 1e-4
    state["vit.encoder.layer.0.attention.attention.query_norm.weight"] = torch.ones(48)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="no place for.*query_norm.weight.*different logits"):
        ImageClassifier.from_hf(tmp_path)
