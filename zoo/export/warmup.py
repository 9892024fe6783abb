"""`assets.extra/tf_serving_warmup_requests`: real requests TF Serving replays at load.

TF Serving runs these `PredictionLog` records before it reports a version
ready, so the first user request does not pay for graph initialisation. The
protos come from the `tensorflow-serving-api` package.
"""

import os

import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def _signature_and_inputs(entry, default_signature):
    if isinstance(entry, dict):
        return default_signature, entry
    if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str) and isinstance(entry[1], dict):
        return entry
    raise TypeError(
        "Each warm-up request is {input: array} or (signature_name, {input: array}). "
        f"Received: {type(entry).__name__} {str(entry)[:200]}"
    )


def write_warmup_requests(saved_model_dir, requests, model_name, signature_name="serving_default"):
    """Writes one `PredictRequest` per entry of `requests`, in order.

    Args:
        saved_model_dir: str. The SavedModel's version directory.
        requests: list of `{input_name: array}` dicts (for `signature_name`)
            or `(signature, {input_name: array})` pairs, so that one file
            warms up several signatures.
        model_name: str. The model name the requests carry.
        signature_name: str. The signature of the plain dicts. Defaults to
            `"serving_default"`.
    """
    pairs = [_signature_and_inputs(entry, signature_name) for entry in requests]  # all checked before writing
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in pairs:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(saved_model_dir):
    """The requests of a warm-up file as `[(signature_name, {input: ndarray})]`."""
    path = os.path.join(saved_model_dir, WARMUP_FILE)
    out = []
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        out.append((request.model_spec.signature_name,
                    {k: tf.make_ndarray(v) for k, v in request.inputs.items()}))
    return out
