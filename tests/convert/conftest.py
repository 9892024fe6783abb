"""The reference libraries (transformers, timm) next to TensorFlow.

transformers and timm import `torch._dynamo`, which imports `triton` when it
is installed; importing triton into a process that already loaded
TensorFlow crashes it (segmentation fault in triton's native module). The
reference models here run on the CPU and never need triton, so it is made
unimportable, which torch treats as "triton not installed".
"""

import sys

sys.modules.setdefault("triton", None)
