"""Checks a serving signature runs on its inputs before anything else touches them.

TF Serving feeds a request's tensors to a signature's placeholders without
checking them against the signature's shapes (`tests/export/serving_probe.py`
shows it): a scalar where the signature says `[None]` reaches the ops as a
scalar, and some (the tokenizers') crash the process on it. So every
signature's first step is `checked_rank`: an `InvalidArgumentError` naming
the input, the rank expected and the shape received, and a tensor that
depends on the check, so no op reading it runs before the check passed.

Written by hand because `tf.debugging.assert_rank` (and `assert_equal` on
`tf.rank`) is decided while tracing, from the placeholder's static shape,
and leaves no check in the graph at all; the raw `Rank` and `Assert` ops
here are always evaluated when the request runs.

Example:
>>> checked = tf.function(lambda x: checked_rank(x, 1, "sentences") + 1,
...                       input_signature=[tf.TensorSpec([None], tf.int32)])
>>> checked(tf.constant([1, 2])).numpy().tolist()
[2, 3]
"""

import tensorflow as tf


def checked_rank(tensor, rank, name):
    """`tensor` after an in-graph check that it has `rank` dimensions (InvalidArgumentError otherwise).

    Args:
        tensor: the signature's input.
        rank: int. The rank the signature serves.
        name: str. The input's name in requests, for the error.
    """
    received = tf.raw_ops.Rank(input=tensor)
    check = tf.raw_ops.Assert(
        condition=tf.raw_ops.Equal(x=received, y=tf.constant(rank, tf.int32)),
        data=[f"{name} must have rank {rank}. Received: a tensor of shape", tf.raw_ops.Shape(input=tensor)],
        summarize=8,
    )
    with tf.control_dependencies([check]):
        return tf.identity(tensor)


def ids_in_range(ids, size):
    """`(B,)` bool: True where every id of that row of `(B, S)` `ids` is in `[0, size)`."""
    return tf.reduce_all(tf.logical_and(ids >= 0, ids < size), axis=-1)
