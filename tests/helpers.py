"""Generic checks that every public zoo layer must pass.

`run_layer_test` is the one entry point: give it a layer class, its
constructor arguments and example inputs, and it checks

1. `get_config()` keys are exactly the `__init__` arguments, and the config
   survives a JSON round trip and `from_config()`;
2. eager call and symbolic (functional) call agree on the output shape;
3. one training step changes the trainable weights;
4. mixed precision (`mixed_bfloat16`, `mixed_float16`): outputs come back in
   the compute dtype, finite, with float32 variables;
5. `.keras` save/load inside a model gives identical outputs.

Backend agnostic: it uses only `keras` and `numpy`, so the same tests run on
the TensorFlow and JAX backends.

Also here, for tests of any module: `run_without_zoo` (a script where only
tensorflow and tensorflow-text import, as in TF Serving),
`translate_without_zoo` (a translator export, run so),
`write_class_folders` (a folder of images, one sub-folder per class) and
`run_tests_on_backend` (tests in a subprocess on another Keras backend).
"""

import inspect
import json
import os
from pathlib import Path

import keras
import numpy as np
from keras import ops

ROOT = Path(__file__).resolve().parents[1]


def _to_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


class CallWrapper(keras.Model):
    """Wraps a layer so a dict of named inputs drives one call.

    `select` picks the tensor to train on when the layer returns a tuple.
    """

    def __init__(self, layer, call_kwargs=None, select=0, **kwargs):
        super().__init__(**kwargs)
        self.layer = layer
        self.call_kwargs = dict(call_kwargs or {})
        self.select = select

    def call(self, inputs, training=None):
        outputs = self.layer(**inputs, **self.call_kwargs, training=training)
        if isinstance(outputs, (list, tuple)):
            outputs = outputs[self.select]
        return outputs


def _functional_call(layer, inputs, call_kwargs, select):
    """Calls `layer` on `keras.Input`s; returns (inputs, selected output)."""
    symbolic = {
        name: keras.Input(
            shape=np.shape(value)[1:], dtype=np.asarray(value).dtype.name, name=name
        )
        for name, value in inputs.items()
    }
    outputs = layer(**symbolic, **call_kwargs)
    if isinstance(outputs, (list, tuple)):
        outputs = outputs[select]
    return symbolic, outputs


def config_keys_match_init(layer):
    """Asserts get_config() holds exactly the __init__ arguments."""
    params = inspect.signature(type(layer).__init__).parameters
    init_args = {
        name
        for name, p in params.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }
    base_keys = set(keras.layers.Layer().get_config())
    config_keys = set(layer.get_config()) - base_keys
    assert config_keys == init_args, (
        f"{type(layer).__name__}.get_config() keys differ from __init__ args: "
        f"only in config {sorted(config_keys - init_args)}, "
        f"only in __init__ {sorted(init_args - config_keys)}"
    )


def _as_numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


def run_layer_test(
    layer_cls,
    init_kwargs,
    inputs,
    call_kwargs=None,
    expected_output_shape=None,
    select=0,
    trains=True,
    tmp_path=None,
    float_tolerance=1e-6,
):
    """Runs the generic layer checks; returns the eager output for reuse.

    Args:
        layer_cls: the layer class under test.
        init_kwargs: dict of constructor arguments.
        inputs: dict of named call inputs (NumPy arrays), passed as keywords.
        call_kwargs: non-tensor call arguments (flags).
        expected_output_shape: tuple, the shape of the selected output.
        select: index of the output to check when the layer returns a tuple.
        trains: whether the layer has trainable weights a step must change.
        tmp_path: directory for the `.keras` file (pytest's `tmp_path`).
        float_tolerance: tolerance for save/load equality.
    """
    call_kwargs = dict(call_kwargs or {})

    # 1. Config round trip, through JSON.
    layer = layer_cls(**init_kwargs)
    config_keys_match_init(layer)
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
    revived = keras.saving.deserialize_keras_object(config)
    assert type(revived) is layer_cls
    assert revived.get_config() == layer.get_config()

    # 2. Eager and symbolic calls.
    model = CallWrapper(layer, call_kwargs, select=select)
    outputs = model(inputs)
    if expected_output_shape is not None:
        assert tuple(outputs.shape) == tuple(expected_output_shape), (
            f"eager output shape {tuple(outputs.shape)} != "
            f"expected {tuple(expected_output_shape)}"
        )
    symbolic_layer = layer_cls(**init_kwargs)
    symbolic_out = _functional_call(symbolic_layer, inputs, call_kwargs, select)[1]
    assert tuple(symbolic_out.shape)[1:] == tuple(outputs.shape)[1:], (
        f"symbolic shape {tuple(symbolic_out.shape)} != eager {tuple(outputs.shape)}"
    )

    # 3. One training step changes the trainable weights.
    if trains:
        train_model = CallWrapper(layer_cls(**init_kwargs), call_kwargs, select=select)
        train_model(inputs)
        before = [_as_numpy(w).copy() for w in train_model.trainable_weights]
        assert before, f"{layer_cls.__name__} has no trainable weights"
        train_model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        batch = len(next(iter(inputs.values())))
        target = np.random.default_rng(0).normal(size=tuple(outputs.shape))
        train_model.fit(inputs, target.astype("float32"), batch_size=batch, epochs=1, verbose=0)
        after = [_as_numpy(w) for w in train_model.trainable_weights]
        changed = [not np.allclose(a, b) for a, b in zip(before, after)]
        assert any(changed), "a training step changed no weight"

    # 4. Mixed precision.
    for policy in ("mixed_bfloat16", "mixed_float16"):
        mp_layer = layer_cls(**init_kwargs, dtype=policy)
        mp_out = CallWrapper(mp_layer, call_kwargs, select=select)(inputs)
        compute_dtype = keras.DTypePolicy(policy).compute_dtype
        if keras.backend.standardize_dtype(mp_out.dtype).startswith("float"):
            assert keras.backend.standardize_dtype(mp_out.dtype) == compute_dtype, (
                f"{policy}: output dtype {mp_out.dtype}, expected {compute_dtype}"
            )
            assert np.all(np.isfinite(_as_numpy(ops.cast(mp_out, "float32"))))
        for w in mp_layer.weights:
            assert keras.backend.standardize_dtype(w.dtype) in ("float32", "int32", "int64", "bool"), (
                f"{policy}: variable {w.path} has dtype {w.dtype}"
            )

    # 5. .keras save and load give identical outputs.
    if tmp_path is not None:
        save_layer = layer_cls(**init_kwargs)
        functional = keras.Model(*_functional_call(save_layer, inputs, call_kwargs, select))
        expected = _as_numpy(functional(inputs))
        path = os.path.join(str(tmp_path), f"{layer_cls.__name__}.keras")
        functional.save(path)
        loaded = keras.saving.load_model(path)
        np.testing.assert_allclose(
            _as_numpy(loaded(inputs)), expected, atol=float_tolerance, rtol=float_tolerance
        )
    return outputs


# What a TF Serving-like consumer has: tensorflow and tensorflow_text, no zoo.
# (tensorflow_text itself imports keras, so keras stays importable.)
_WITHOUT_ZOO = """
import json, sys
sys.modules["zoo"] = None  # importing zoo (or keras_hub) now fails
sys.modules["keras_hub"] = None
import tensorflow as tf
import tensorflow_text  # registers the tokenizer ops
"""


def run_without_zoo(script, *args, cwd=None, timeout=300):
    """Runs `script` in a fresh, isolated Python where zoo cannot be imported.

    The script sees `json`, `sys`, `tf` (and the tensorflow-text ops) and
    `sys.argv[1:] == args`, and prints one JSON line last; returns it parsed.
    """
    import subprocess
    import sys
    import textwrap

    code = _WITHOUT_ZOO + textwrap.dedent(script)
    result = subprocess.run(
        [sys.executable, "-I", "-c", code, *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_class_folders(root, names, per_class=4):
    """Writes images in one sub-folder per class, each class its own hue; returns their paths.

    `root/<name>/<i>.png`, of several sizes, and every fourth a JPEG
    (`<i>.jpg`), as in a folder of photos (`zoo.data.image_data.load_folder`).
    """
    import tensorflow as tf  # backend agnostic above: only these image files need TensorFlow

    rng = np.random.default_rng(0)
    paths = []
    for c, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            shape = (24 + 9 * (i % 4), 40 - 5 * (i % 4), 3)
            image = np.clip(rng.normal(60 + 90 * c, 40, shape), 0, 255).astype(np.uint8)
            image[..., c % 3] = 255 - image[..., c % 3]
            jpeg = i % 4 == 3
            paths.append(root / name / f"{i}.{'jpg' if jpeg else 'png'}")
            paths[-1].write_bytes((tf.io.encode_jpeg if jpeg else tf.io.encode_png)(image).numpy())
    return paths


def run_tests_on_backend(backend, tests, *pytest_args, **env):
    """Runs pytest on `tests` in a subprocess whose Keras backend is `backend`, with `env` set too.

    A subprocess, because Keras fixes its backend at import time. Fails
    with the end of pytest's output unless they pass, and unless Keras in
    that environment really runs on `backend`.
    """
    import subprocess
    import sys

    env = dict(os.environ, KERAS_BACKEND=backend, **env)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *pytest_args, *tests],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )
    tail = (result.stdout + result.stderr)[-4000:]
    assert result.returncode == 0 and " passed" in result.stdout, f"tests failed on the {backend} backend:\n{tail}"
    used = subprocess.run(
        [sys.executable, "-c", "import keras; print(keras.backend.backend())"], env=env, capture_output=True, text=True
    )
    assert used.stdout.strip() == backend, used.stderr[-2000:]


_TRANSLATE = """
model = tf.saved_model.load(sys.argv[1])
out = model.signatures["serving_default"](sentences=tf.constant(json.loads(sys.argv[2])))
print(json.dumps({"translations": [t.decode() for t in out["translations"].numpy()],
                  "scores": out["scores"].numpy().tolist()}))
"""


def translate_without_zoo(export, sentences):
    """`{"translations": [str], "scores": [float]}` of a translator export's `serving_default` for
    `sentences`, run where zoo cannot be imported (`run_without_zoo`), as in TF Serving."""
    export = os.fspath(export)
    return run_without_zoo(_TRANSLATE, export, json.dumps(sentences), cwd=os.path.dirname(export))
