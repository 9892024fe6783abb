import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.export.conftest import EN
from tests.helpers import translate_without_zoo
from zoo.decoding import SearchSettings
from zoo.export import UnsupportedOpError, VersionExistsError, audit_saved_model, read_warmup_requests, write_version
from zoo.export.op_audit import unsupported_ops
from zoo.tasks import Translator

@pytest.fixture(scope="module")
def exported(tiny_translator, tmp_path_factory):
    translator = Translator(*tiny_translator, SearchSettings(beam_width=2, max_length=10))
    base = str(tmp_path_factory.mktemp("export"))
    path = translator.export(base)
    return base, path, translator.graph()


def _in_process(module, sentences):
    out = module.serving_default(tf.constant(sentences))
    return [t.decode() for t in out["translations"].numpy()], out["scores"].numpy()


def test_fresh_process_without_zoo_gives_the_same_translations(exported):
    _, path, module = exported
    sentences = EN + ["Nothing like the training data at all!"]
    fresh = translate_without_zoo(path, sentences)
    translations, scores = _in_process(module, sentences)
    assert fresh["translations"] == translations
    np.testing.assert_allclose(fresh["scores"], scores, atol=1e-4)
    assert any(t for t in translations)  # not all empty


def test_bad_requests_never_fail_the_batch(exported):
    _, path, module = exported
    normal = EN[0]
    batch = [b"", b"   \t ", ("word " * 500).encode(), b"\xff\xfe\xfa broken", normal.encode()]
    out = module.serving_default(tf.constant(batch))
    translations = out["translations"].numpy()
    assert translations[0] == b"" and translations[1] == b""
    assert out["scores"].numpy()[0] == 0.0
    alone, _ = _in_process(module, [normal])
    assert translations[-1].decode() == alone[0]  # padding next to bad rows changes nothing
    assert np.all(np.isfinite(out["scores"].numpy()))
    assert out["truncated"].numpy().tolist() == [False, False, True, False, False]  # only the 500 words
    for words, cut in ((16, False), (17, True)):  # the model reads max_length=16 source tokens
        sentence = " ".join(["three"] * words)
        assert module.preprocessor.source_tokenizer.tokenize(tf.constant([sentence])).row_lengths().numpy()[0] == words
        assert module.serving_default(tf.constant([sentence]))["truncated"].numpy()[0] == cut
    empty = module.serving_default(tf.constant([], tf.string))
    assert empty["translations"].shape == (0,)
    served = tf.saved_model.load(path).signatures["serving_default"](sentences=tf.constant(["", normal]))
    assert served["translations"].numpy()[1].decode() == alone[0]


def test_token_id_signature(exported):
    _, path, module = exported
    loaded = tf.saved_model.load(path)
    ids = module.preprocessor.source_tokenizer.tokenize(tf.constant(EN[:2])).to_tensor()
    out = loaded.signatures["translate_ids"](source_ids=tf.cast(ids, tf.int32))
    assert out["target_ids"].dtype == tf.int32 and out["target_ids"].shape[0] == 2
    text = module.preprocessor.target_tokenizer.detokenize(out["target_ids"]).numpy()
    assert [t.decode() for t in text] == _in_process(module, EN[:2])[0]


def test_versions_are_never_overwritten_and_written_atomically(exported, tiny_translator):
    base, path, _ = exported
    assert path.endswith(os.path.join("translator", "1"))
    second = Translator(*tiny_translator, SearchSettings(beam_width=1, max_length=4)).export(base)
    assert second.endswith(os.path.join("translator", "2"))
    with pytest.raises(VersionExistsError, match="never overwritten"):
        Translator(*tiny_translator).export(base, version=1)

    def crash(directory):
        os.makedirs(directory)
        open(os.path.join(directory, "saved_model.pb"), "w").write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_version(base, "translator", crash)
    assert sorted(os.listdir(os.path.join(base, "translator"))) == ["1", "2"]


def test_warmup_requests_are_real_and_answer(exported):
    _, path, _ = exported
    requests = read_warmup_requests(path)
    assert requests and requests[0][0] == "serving_default"
    loaded = tf.saved_model.load(path)
    for signature, inputs in requests:
        out = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        assert out["translations"].shape[0] == len(inputs["sentences"])


def test_op_audit(exported):
    _, path, _ = exported
    ops = audit_saved_model(path)
    assert "FastWordpieceTokenizeWithOffsets" in ops and ("While" in ops or "StatelessWhile" in ops)
    assert unsupported_ops({"MatMul", "MadeUpCustomOp"}) == ["MadeUpCustomOp"]
    with pytest.raises(UnsupportedOpError, match="FastWordpieceTokenizeWithOffsets"):
        audit_saved_model(path, allowed_custom_ops={})
    # Nothing XLA-only (e.g. XlaDynamicUpdateSlice) in an export.
    assert not [op for op in ops if op.startswith("Xla")]


def test_saved_model_cli_shows_and_runs_the_signature(exported):
    _, path, _ = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", path, "--all"], capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    text = shown.stdout
    assert "signature_def['serving_default']" in text
    assert "inputs['sentences'] tensor_info:" in text and "dtype: DT_STRING" in text
    assert "outputs['translations']" in text and "outputs['scores']" in text and "DT_FLOAT" in text
    assert "shape: (-1)" in text
    # `run` with the tensorflow-text ops registered, as the server has them.
    runner = (
        "import sys, tensorflow_text\n"
        "from tensorflow.python.tools import saved_model_cli\n"
        "sys.argv = ['saved_model_cli'] + sys.argv[1:]\n"
        "saved_model_cli.main()\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", runner, "run", "--dir", path, "--tag_set", "serve",
         "--signature_def", "serving_default", "--input_exprs", f"sentences=['{EN[1]}']"],
        capture_output=True, text=True, timeout=300,
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "translations" in ran.stdout and "scores" in ran.stdout
