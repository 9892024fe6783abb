"""Shared check: training under MirroredStrategy on two logical CPUs matches one device."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TEMPLATE = """
import json
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from zoo.distribution import distribution_scope

{setup}

losses = {{}}
for name in ("none", "mirrored"):
    keras.utils.set_random_seed(0)
    with distribution_scope(name) as strategy:
        model = build()
        replicas = 1 if strategy is None else strategy.num_replicas_in_sync
    history = model.fit(data, epochs=2, verbose=0, shuffle=False)
    losses[name] = (replicas, history.history["loss"])
print(json.dumps(losses))
"""


def assert_mirrored_matches_single_device(setup, rel=1e-3):
    """`setup` defines `data` (a batched tf.data.Dataset) and `build()` (a compiled model)."""
    script = TEMPLATE.format(setup=textwrap.dedent(setup))
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = json.loads(result.stdout.strip().splitlines()[-1])
    assert losses["none"][0] == 1 and losses["mirrored"][0] == 2
    for single, mirrored in zip(losses["none"][1], losses["mirrored"][1]):
        assert mirrored == pytest.approx(single, rel=rel)
