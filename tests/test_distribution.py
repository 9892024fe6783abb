"""zoo.distribution on the running backend: the `--distribute` and `--mesh` checks and even batches.

The engines themselves train on 8 simulated devices in tests/distribution.
"""

import numpy as np
import pytest
import tensorflow as tf

from zoo import distribution


def test_choices_per_backend():
    assert distribution.choices("tensorflow") == ("none", "mirrored", "multi-worker")
    assert distribution.choices("jax") == ("none", "data-parallel", "model-parallel")
    assert distribution.choices("torch") == ("none",)
    for backend, names in distribution.CHOICES.items():
        for name in names:
            distribution.check_choice(name, backend)


@pytest.mark.parametrize(
    "name, backend, message",
    [
        ("data-parallel", "tensorflow",
         "--distribute data-parallel does not exist on the tensorflow backend; its choices are none, mirrored, "
         r"multi-worker \(data-parallel runs with KERAS_BACKEND=jax\)\.$"),
        ("mirrored", "jax", "on the jax backend; its choices are none, data-parallel, model-parallel "
                            r"\(mirrored runs with KERAS_BACKEND=tensorflow\)"),
        ("model-parallel", "torch", r"on the torch backend; its choices are none \(model-parallel runs with "
                                    "KERAS_BACKEND=jax"),
        ("pipeline", "jax", r"--distribute pipeline does not exist on the jax backend; its choices are none, "
                            r"data-parallel, model-parallel\.$"),
    ],
)
def test_a_name_the_backend_lacks_names_the_backend_and_its_choices(name, backend, message):
    with pytest.raises(ValueError, match=message):
        distribution.check_choice(name, backend)


def test_parse_mesh():
    assert distribution.parse_mesh("2x4") == (2, 4)
    assert distribution.parse_mesh(" 1X8 ") == (1, 8)
    for bad in ("8", "2x0", "2x4x1", "axb", "-2x4", ""):
        with pytest.raises(ValueError, match=f"--mesh takes DATAxMODEL.*Received: '{bad}'"):
            distribution.parse_mesh(bad)


def test_a_mesh_needs_as_many_devices_as_there_are():
    with pytest.raises(ValueError, match=r"A 2x4 mesh needs 8 devices; there are 3 \(cpu\)\. Choose DATAxMODEL with "
                                         r"DATA \* MODEL = 3\."):
        distribution.device_mesh((2, 4), ["cpu:0", "cpu:1", "cpu:2"])


def test_mesh_goes_with_model_parallel_only():
    with pytest.raises(ValueError, match="--mesh goes with --distribute model-parallel. Received: --distribute none "
                                         "--mesh 2x4"):
        distribution.make_distribution("none", mesh="2x4")
    assert distribution.make_distribution("none") is None
    assert distribution.describe(None) == "one device" and distribution.batch_shards(None) == 1


def _sizes(dataset):
    return [int(tf.nest.flatten(batch)[0].shape[0]) for batch in dataset]


def test_even_batches_cut_each_batch_to_a_multiple_of_the_shards():
    x = np.arange(21, dtype="float32")
    pairs = tf.data.Dataset.from_tensor_slices(({"a": x, "b": x[:, None] * 2}, x + 1, x * 0 + 1)).batch(8)  # 8, 8, 5
    assert _sizes(distribution.even_batches(pairs, 4)) == [8, 8, 4]
    assert _sizes(distribution.even_batches(pairs, 8)) == [8, 8]  # the short batch is left out
    assert _sizes(distribution.even_batches(pairs, 3)) == [6, 6, 3]
    inputs, targets, weights = list(distribution.even_batches(pairs, 3))[-1]
    # The rows kept are each batch's first, every part of the batch cut alike.
    np.testing.assert_array_equal(inputs["a"], [16, 17, 18])
    np.testing.assert_array_equal(inputs["b"][:, 0], [32, 34, 36])
    np.testing.assert_array_equal(targets, [17, 18, 19])
    assert weights.shape == (3,)
    alone = tf.data.Dataset.from_tensor_slices(x).batch(8)  # a batch that is one tensor
    assert _sizes(distribution.even_batches(alone, 4)) == [8, 8, 4]
    assert distribution.even_batches(alone, 1) is alone
