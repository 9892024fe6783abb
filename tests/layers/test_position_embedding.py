import keras
import keras_hub
import numpy as np
import pytest
from keras import ops

from tests.helpers import run_layer_test
from zoo.layers import PositionEmbedding

B, T, D, L = 2, 5, 8, 12


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _inputs():
    return np.random.default_rng(0).normal(size=(B, T, D)).astype("float32")


def test_generic_layer_checks(tmp_path):
    run_layer_test(
        PositionEmbedding,
        dict(sequence_length=L, initializer="glorot_uniform"),
        dict(inputs=_inputs()),
        expected_output_shape=(B, T, D),
        tmp_path=tmp_path,
    )


def test_generic_layer_checks_with_start_index(tmp_path):
    run_layer_test(
        PositionEmbedding,
        dict(sequence_length=L, initializer="random_normal"),
        dict(inputs=_inputs()),
        call_kwargs=dict(start_index=L - T),
        expected_output_shape=(B, T, D),
        tmp_path=tmp_path,
    )


def test_values_are_table_rows_broadcast_over_batch():
    layer = PositionEmbedding(sequence_length=L)
    out = _np(layer(_inputs()))
    table = _np(layer.embeddings)
    assert table.shape == (L, D)
    np.testing.assert_array_equal(out, np.broadcast_to(table[:T], (B, T, D)))


def test_start_index_slices_the_table():
    layer = PositionEmbedding(sequence_length=L)
    x = _inputs()
    layer.build(x.shape)
    table = _np(layer.embeddings)
    for start in (3, ops.convert_to_tensor(3, "int32")):
        out = _np(layer(x, start_index=start))
        np.testing.assert_array_equal(out, np.broadcast_to(table[3 : 3 + T], x.shape))
    # One token at a time, as in cached decoding.
    np.testing.assert_array_equal(_np(layer(x[:, :1], start_index=L - 1))[0, 0], table[L - 1])


def test_matches_keras_hub_with_copied_table():
    ours = PositionEmbedding(sequence_length=L)
    theirs = keras_hub.layers.PositionEmbedding(sequence_length=L)
    x = _inputs()
    ours(x), theirs(x)
    theirs.position_embeddings.assign(ours.embeddings)
    np.testing.assert_array_equal(_np(ours(x, start_index=2)), _np(theirs(x, start_index=2)))


def test_mixed_precision_reads_float32_table_in_compute_dtype():
    layer = PositionEmbedding(sequence_length=L, dtype="mixed_bfloat16")
    out = layer(_inputs())
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(layer.embeddings.dtype) == "float32"


def test_too_long_sequence_is_a_clear_error():
    layer = PositionEmbedding(sequence_length=4)
    with pytest.raises(ValueError, match=r"holds 4 positions.*Received: a sequence of length 5"):
        layer(_inputs())
    with pytest.raises(ValueError, match=r"length 5"):  # symbolic, static length
        PositionEmbedding(sequence_length=4)(keras.Input((5, D)))
    layer = PositionEmbedding(sequence_length=L)
    with pytest.raises(ValueError, match=rf"holds {L} positions.*length 5 starting at start_index=10"):
        layer(_inputs(), start_index=10)
    layer(_inputs(), start_index=L - T)  # exactly fits


def test_bad_arguments_are_named():
    for bad in (0, -3, None, 2.5):
        with pytest.raises(ValueError, match=rf"sequence_length={bad!r}"):
            PositionEmbedding(sequence_length=bad)
