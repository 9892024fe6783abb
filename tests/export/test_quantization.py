"""int8 exports (`zoo.export.quantization`): what is quantized, the copy, the numbers, the SavedModel."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.export.conftest import EN
from tests.helpers import translate_without_zoo
from zoo.decoding import SearchSettings
from zoo.export import audit_saved_model, quantize_model, read_quantization
from zoo.export.quantization import describe
from zoo.models import TransformerTranslator, VisionTransformer
from zoo.preprocessing import ImagePreprocessor
from zoo.tasks import ImageClassifier, Translator
from zoo.tasks.image_classifier_graph import classify_with_saved_model

BAD = [b"", b"   \t ", ("word " * 500).encode(), b"\xff\xfe\xfa broken"]


def _variables_bytes(saved_model_dir):
    folder = os.path.join(saved_model_dir, "variables")
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f.startswith("variables.data"))


def _checkpoint_dtypes(saved_model_dir):
    reader = tf.train.load_checkpoint(os.path.join(saved_model_dir, "variables", "variables"))
    return set(reader.get_variable_to_dtype_map().values())


def _signature_specs(saved_model_dir, name):
    signature = tf.saved_model.load(saved_model_dir).signatures[name]
    inputs = {k: (v.dtype, v.shape.as_list()) for k, v in signature.structured_input_signature[1].items()}
    outputs = {k: (v.dtype, v.shape.as_list()) for k, v in signature.structured_outputs.items()}
    return inputs, outputs


@pytest.fixture(scope="module")
def quantized(tiny_translator):
    """`quantize_model` of the tiny translator (Keras takes seconds per call: a gc.collect per layer)."""
    model, _, _ = tiny_translator
    before = [np.array(w) for w in model.get_weights()]
    return before, *quantize_model(model)


@pytest.fixture(scope="module")
def exports(tiny_translator, tmp_path_factory):
    """The tiny translator exported as float and as int8 under one base."""
    translator = Translator(*tiny_translator, SearchSettings(beam_width=2, max_length=10))
    base = str(tmp_path_factory.mktemp("serving"))
    return translator.export(base), translator.export(base, quantize="int8")


# -- the quantized copy --------------------------------------------------------
def test_quantize_model_copies_and_says_what_stayed_float(tiny_translator, quantized):
    model, _, _ = tiny_translator
    before, quantized, summary = quantized
    # The caller's model is untouched.
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(before, model.get_weights()))
    assert model.target_embedding.token_embedding.quantization_mode is None
    assert quantized is not model and quantized.target_embedding.token_embedding.embeddings.dtype == "int8"
    classes = {entry["class"] for entry in summary.quantized}
    assert classes == {"ReversibleEmbedding", "EinsumDense", "Dense"}
    # 2 token tables; encoder: 4 attention projections + 2 feed-forward; decoder: 8 + 2.
    assert len(summary.quantized) == 2 + 6 + 10
    assert {entry["class"] for entry in summary.kept_float} == {"LayerNormalization"}
    d, f, v = model.d_model, model.d_ff, model.target_vocab_size
    tables = model.source_vocab_size * d + v * d
    assert summary.quantized_weights == tables + 12 * d * d + 4 * d * f  # 12 attention kernels, 4 FFN kernels
    assert "18 layers quantized" in summary.describe() and "LayerNormalization" in summary.describe()
    assert describe(summary.to_json()) == summary.describe()


def test_what_keras_cannot_quantize_is_listed():
    vit = VisionTransformer(image_size=8, patch_size=4, num_classes=3, d_model=16, num_encoder_layers=1,
                            num_heads=2, d_ff=32)
    quantized, summary = quantize_model(vit)
    kept = {entry["class"]: entry for entry in summary.kept_float}
    assert kept["Conv2D"]["why"] == "Keras has no int8 convolution"
    assert kept["Conv2D"]["weights"] == 4 * 4 * 3 * 16 + 16  # kernel and bias
    assert {"ClassToken", "PatchPositionEmbedding", "LayerNormalization"} <= set(kept)
    assert quantized.patch_embedding.projection.kernel.dtype == "float32"
    assert quantized.head.quantization_mode == "int8"
    untied = TransformerTranslator(20, 20, num_encoder_layers=1, num_decoder_layers=1, d_model=8, num_heads=2,
                                   d_ff=16, max_length=8, output_bias=True)
    _, summary = quantize_model(untied)
    assert [e["layer"] for e in summary.kept_float if e["class"] == "weight"] == [f"{untied.name}/logits_bias"]


def test_quantize_model_refuses_what_it_cannot_do(tiny_translator, quantized, tmp_path):
    model, _, _ = tiny_translator
    with pytest.raises(ValueError, match="mode must be one of \\('int8',\\). Received: mode='int4'"):
        quantize_model(model, "int4")
    with pytest.raises(ValueError, match="already quantized"):
        quantize_model(quantized[1])
    with pytest.raises(ValueError, match="quantize must be None \\(float\\) or one of \\('int8',\\). Received: quantize='int4'"):
        Translator(*tiny_translator).export(str(tmp_path / "serving"), quantize="int4")
    assert not os.path.exists(tmp_path / "serving")  # refused before anything is written


# -- numbers -------------------------------------------------------------------
def test_tied_logits_read_the_int8_table_with_its_scales(tiny_translator, quantized):
    model, _, _ = tiny_translator
    embedding = quantized[1].target_embedding
    table = np.asarray(embedding.token_embedding.embeddings).astype("float32")  # (V, D) int8 values
    scale = np.asarray(embedding.token_embedding.embeddings_scale)  # (V,)
    hidden = np.random.default_rng(0).standard_normal((2, 3, model.d_model)).astype("float32")
    expected = hidden @ (table / scale[:, None]).T  # (B, T, V)
    for few_rows in (False, True):  # decoding steps use few_rows
        np.testing.assert_allclose(np.asarray(embedding.logits(hidden, few_rows=few_rows)), expected, atol=1e-4)
    float_logits = np.asarray(model.target_embedding.logits(hidden))
    assert np.abs(expected - float_logits).max() < 0.02 * np.abs(float_logits).max()


def test_int8_decoding_steps_stay_close_to_float(tiny_translator, quantized):
    model, source, _ = tiny_translator
    ids = tf.cast(source.tokenize(tf.constant(EN)).to_tensor(), tf.int32)
    target = tf.fill([len(EN), 1], model.start_token_id)
    steps = []
    for m in (model, quantized[1]):
        mask = m.source_padding_mask(ids)
        cache = m.init_cache(m.encode(ids, mask), 4)
        steps.append(np.asarray(m.decode_step(target, mask, cache, 0)[0]))
    drift = np.abs(steps[0] - steps[1]).max()
    assert 0 < drift < 0.03 * np.abs(steps[0]).max()


# -- the SavedModel ---------------------------------------------------------------
@pytest.mark.slow
def test_int8_export_is_a_sibling_model_with_the_same_signatures(exports):
    float_path, int8_path = exports
    assert float_path.endswith(os.path.join("translator", "1"))
    assert int8_path.endswith(os.path.join("translator_int8", "1"))
    for name in ("serving_default", "translate_ids"):
        assert _signature_specs(int8_path, name) == _signature_specs(float_path, name)
    ops = audit_saved_model(int8_path)
    assert not [op for op in ops if op.startswith(("Xla", "_Mkl"))]
    assert tf.int8 in _checkpoint_dtypes(int8_path) and tf.int8 not in _checkpoint_dtypes(float_path)
    summary = read_quantization(int8_path)
    assert summary["mode"] == "int8" and summary["activations"] == "float" and len(summary["quantized"]) == 18
    assert read_quantization(float_path) is None


def _function_names(saved_model_dir):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    return [f.signature.name for f in proto.meta_graphs[0].graph_def.library.function]


@pytest.mark.slow
def test_exports_save_each_weight_and_graph_once_and_int8_shrinks_weights(tiny_translator, quantized, exports):
    model, _, _ = tiny_translator
    float_path, int8_path = exports
    params = model.count_params()
    float_bytes, int8_bytes = _variables_bytes(float_path), _variables_bytes(int8_path)
    assert 4 * params <= float_bytes < 4 * params * 1.1  # once, not twice
    for path in exports:
        names = _function_names(path)
        for endpoint in ("_translate_ids", "translate_strings", "translate_nbest_strings", "_search_all_beams"):
            assert len([n for n in names if n.startswith(f"__inference_{endpoint}_")]) == 1, endpoint  # traced once
        # One beam-search loop, which all three signatures call.
        assert len([n for n in names if n.startswith("while_body")]) == 1, names
        assert not [n for n in names if "grad_fn" in n]  # no gradient functions
    summary = quantized[2]
    # One byte per quantized weight, plus the float norms, biases and scales
    # (a larger share in this tiny model than in real ones: BENCHMARKS.md).
    assert summary.quantized_weights < int8_bytes < 0.4 * float_bytes


@pytest.mark.slow
def test_int8_export_answers_as_the_quantized_model_in_process_and_without_zoo(tiny_translator, quantized, exports):
    _, source, target = tiny_translator
    _, int8_path = exports
    module = Translator(quantized[1], source, target, SearchSettings(beam_width=2, max_length=10)).graph()
    sentences = EN + ["Nothing like the training data at all!"]
    expected = [t.decode() for t in module.serving_default(tf.constant(sentences))["translations"].numpy()]
    fresh = translate_without_zoo(int8_path, sentences)["translations"]
    assert fresh == expected and any(expected)


@pytest.mark.slow
def test_int8_export_never_fails_on_bad_requests(exports):
    _, int8_path = exports
    signature = tf.saved_model.load(int8_path).signatures["serving_default"]
    out = signature(sentences=tf.constant(BAD + [EN[0].encode()]))
    assert out["translations"].numpy()[:2].tolist() == [b"", b""]
    assert out["truncated"].numpy().tolist() == [False, False, True, False, False]
    alone = signature(sentences=tf.constant([EN[0]]))["translations"].numpy()[0]
    assert out["translations"].numpy()[-1] == alone
    assert np.all(np.isfinite(out["scores"].numpy()))
    assert signature(sentences=tf.constant([], tf.string))["translations"].shape == (0,)


@pytest.mark.slow
def test_int8_image_classifier_export(tmp_path):
    keras.utils.set_random_seed(1)
    model = VisionTransformer.from_preset("vit_tiny_patch4_32", num_encoder_layers=1, num_classes=3)
    preprocessor = ImagePreprocessor(32, (0.5,) * 3, (0.5,) * 3, ["cat", "dog", "bird"])
    classifier = ImageClassifier(model, preprocessor, top_k=2)
    float_path = classifier.export(str(tmp_path))
    int8_path = classifier.export(str(tmp_path), quantize="int8")
    assert int8_path.endswith(os.path.join("image_classifier_int8", "1"))
    assert model.head.quantization_mode is None  # the classifier's model stays float
    assert _signature_specs(int8_path, "serving_default") == _signature_specs(float_path, "serving_default")
    audit_saved_model(int8_path)
    assert any(e["class"] == "Conv2D" for e in read_quantization(int8_path)["kept_float"])
    rng = np.random.default_rng(0)
    images = [tf.io.encode_png(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).numpy() for _ in range(6)]
    batch = images + [b"", b"not an image", images[0][:40]]
    got, want = classify_with_saved_model(int8_path, batch), classify_with_saved_model(float_path, batch)
    assert got["valid"].tolist() == [True] * 6 + [False] * 3
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=0.02)
    assert not got["probabilities"][6:].any()


@pytest.mark.slow
def test_task_export_takes_one_argument_and_keeps_the_task_float(tiny_translator, tmp_path):
    model, source, target = tiny_translator
    translator = Translator(model, source, target, SearchSettings(beam_width=1, max_length=6))
    path = translator.export(str(tmp_path), quantize="int8")
    assert path == os.path.join(str(tmp_path), "translator_int8", "1")
    assert translator.model is model and model.target_embedding.token_embedding.quantization_mode is None
    with pytest.raises(ValueError, match="Received: quantize='float16'"):
        translator.export(str(tmp_path), quantize="float16")


# -- the tools' flag ------------------------------------------------------------------
def _tool(name):
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "..", "tools", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "tool, argv, flag",
    [
        ("convert_marian", ["ckpt", "--output", "out"], "--export-base"),
        ("convert_vit", ["hf", "ckpt", "--output", "out"], "--export"),
    ],
)
def test_tools_take_quantize_for_their_export_only(tool, argv, flag, capsys):
    module = _tool(tool)
    assert module.parse_args(argv + [flag, "base", "--quantize", "int8"]).quantize == "int8"
    assert module.parse_args(argv + [flag, "base"]).quantize is None
    with pytest.raises(SystemExit):
        module.parse_args(argv + ["--quantize", "int8"])
    assert f"--quantize applies to the export: give {flag} too" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        module.parse_args(argv + [flag, "base", "--quantize", "int4"])
    assert "invalid choice: 'int4'" in capsys.readouterr().err
