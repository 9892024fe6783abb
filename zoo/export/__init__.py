"""SavedModel writers for TF Serving: signatures, versions, warm-up, op audit."""

from zoo.export.op_audit import ALLOWED_CUSTOM_OPS, UnsupportedOpError, audit_saved_model
from zoo.export.quantization import QuantizationSummary, quantize_model, read_quantization
from zoo.export.translator import TranslatorModule, export_translator, translate_with_saved_model
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
    "TranslatorModule",
    "export_translator",
    "translate_with_saved_model",
    "VersionExistsError",
    "next_version",
    "write_version",
    "read_warmup_requests",
    "write_warmup_requests",
    "export_saved_model",
]
