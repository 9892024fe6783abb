"""Checks that an exported graph uses only ops stock TF Serving can run.

TF Serving of a given minor version links all core TensorFlow kernels of
that version plus tensorflow-text's `ops_lib`, pinned at an older
tensorflow-text release than the one pip installs here. So: every op of the
SavedModel (top-level graph and function library) must be a core op of the
installed TensorFlow (`tf.raw_ops`), or a tensorflow-text op on the
allow-list below, each of which has shipped in tensorflow-text since 2.7
(2021) and so in every TF Serving 2.x release that bundles 2.7 or newer.
Anything else fails the export with the op named.
"""

import os

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

# tensorflow-text ops TF Serving bundles, with the first tensorflow-text
# release that had them.
ALLOWED_CUSTOM_OPS = {
    "CaseFoldUTF8": "2.0",
    "NormalizeUTF8": "2.0",
    "NormalizeUTF8WithOffsetsMap": "2.3",
    "WhitespaceTokenizeWithOffsets": "2.0",
    "WordpieceTokenizeWithOffsets": "2.0",
    "RegexSplitWithOffsets": "2.1",
    "UnicodeScriptTokenizeWithOffsets": "2.0",
    "FastWordpieceTokenizeWithOffsets": "2.7",
    "TFText>FastWordpieceDetokenize": "2.7",
    "SentencepieceOp": "2.1",
    "SentencepieceTokenizeOp": "2.1",
    "SentencepieceTokenizeWithOffsetsOp": "2.1",
    "SentencepieceDetokenizeOp": "2.1",
    "SentencepieceIdToStringOp": "2.1",
    "SentencepieceStringToIdOp": "2.1",
    "SentencepieceVocabSizeOp": "2.1",
}


class UnsupportedOpError(ValueError):
    """An exported graph uses an op TF Serving would not find."""


def graph_ops(saved_model_dir):
    """Every op type in the SavedModel's graphs and functions."""
    path = os.path.join(saved_model_dir, "saved_model.pb")
    proto = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    ops = set()
    for meta_graph in proto.meta_graphs:
        graph = meta_graph.graph_def
        ops.update(node.op for node in graph.node)
        for function in graph.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


def unsupported_ops(ops, allowed_custom_ops=ALLOWED_CUSTOM_OPS):
    """The ops that are neither core TensorFlow nor allow-listed, sorted."""
    core = set(dir(tf.raw_ops))
    return sorted(op for op in ops if op not in core and op not in allowed_custom_ops)


def audit_saved_model(saved_model_dir, allowed_custom_ops=ALLOWED_CUSTOM_OPS):
    """Returns the sorted op list; raises `UnsupportedOpError` naming any unsupported op."""
    ops = graph_ops(saved_model_dir)
    bad = unsupported_ops(ops, allowed_custom_ops)
    if bad:
        raise UnsupportedOpError(
            f"{saved_model_dir} uses ops that TF Serving {tf.__version__.rsplit('.', 1)[0]} does not "
            f"bundle: {bad}. Allowed: core TensorFlow ops and the tensorflow-text ops "
            f"{sorted(allowed_custom_ops)}."
        )
    return sorted(ops)
