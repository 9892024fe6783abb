"""The SavedModel writer for TF Serving, which knows no model: signatures, versions, warm-up, op audit, int8 copy.

A task builds its own serving graph (`zoo.tasks.translator_graph`) and hands
its signatures to `export_saved_model`.
"""

from zoo.export.op_audit import ALLOWED_CUSTOM_OPS, UnsupportedOpError, audit_saved_model
from zoo.export.quantization import QuantizationSummary, quantize_model, read_quantization
from zoo.export.versions import VersionExistsError, next_version, write_version
from zoo.export.warmup import read_warmup_requests, write_warmup_requests
from zoo.export.writer import export_saved_model

__all__ = [
    "ALLOWED_CUSTOM_OPS",
    "UnsupportedOpError",
    "audit_saved_model",
    "QuantizationSummary",
    "quantize_model",
    "read_quantization",
    "VersionExistsError",
    "next_version",
    "write_version",
    "read_warmup_requests",
    "write_warmup_requests",
    "export_saved_model",
]
