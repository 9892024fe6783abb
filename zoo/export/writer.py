"""One TF Serving version from a task's endpoints: the writer that knows no model.

A task (`zoo.Translator`, `zoo.ImageClassifier`) builds its own serving
graph (`tf.function`s with input signatures) and hands it here; this module
writes it the way every zoo export is written:

1. `<base>/<name>/<version>/` is staged in a hidden folder and renamed into
   place (`zoo.export.versions`), never overwriting a version;
2. each weight and each endpoint graph is saved once (`zoo.export.archive`);
3. the op audit (`zoo.export.op_audit`) refuses ops stock TF Serving lacks,
   leaving no version behind;
4. warm-up requests (`zoo.export.warmup`) and, for an int8 copy, the
   quantization record (`zoo.export.quantization`) go to `assets.extra/`.
"""

from zoo.export.archive import write_saved_model
from zoo.export.op_audit import audit_saved_model
from zoo.export.quantization import write_quantization
from zoo.export.versions import write_version
from zoo.export.warmup import write_warmup_requests


def export_saved_model(base, name, endpoints, resources=(), warmup_requests=(), version=None, quantization=None):
    """Writes `endpoints` as the next (or the given) version of model `name`; returns its path.

    Args:
        base: str. The model base directory (TF Serving's `--model_base_path` parent).
        name: str. The model name (`/v1/models/<name>:predict`).
        endpoints: dict of signature name to `tf.function` with an
            `input_signature`; one of them is `serving_default`.
        resources: TensorFlow trackables the endpoints use besides
            variables (tokenizers, lookup tables).
        warmup_requests: what `zoo.export.warmup.write_warmup_requests`
            takes: `{input: array}` for `serving_default`, or
            `(signature, {input: array})`. Defaults to none.
        version: int. Defaults to the next free version.
        quantization: a `QuantizationSummary` to record, or None (float).

    Raises:
        VersionExistsError: `version` exists.
        UnsupportedOpError: the graph uses an op TF Serving lacks (nothing is left behind).
    """

    def write(directory):
        write_saved_model(directory, endpoints, resources=resources)
        audit_saved_model(directory)
        if warmup_requests:
            write_warmup_requests(directory, list(warmup_requests), model_name=name)
        if quantization is not None:
            write_quantization(directory, quantization)

    return write_version(base, name, write, version=version)
