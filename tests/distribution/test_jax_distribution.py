"""Data- and model-parallel training on 8 simulated CPU devices (JAX), checkpoints, exports.

One subprocess (`jax_checks.py`) trains both models and reports; the tests
below read its findings. See that module for what it runs.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.tasks.conftest import ROOT

pytestmark = pytest.mark.slow
MODELS = ("translator", "vit")
MODEL_AXIS = 4  # the 2x4 mesh


@pytest.fixture(scope="module")
def findings():
    pytest.importorskip("jax")
    env = dict(
        os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8",
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    result = subprocess.run(
        [sys.executable, "-m", "tests.distribution.jax_checks"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("model", MODELS)
def test_data_and_model_parallel_train_as_one_device(findings, model):
    found = findings[model]
    assert findings["devices"] == 8
    assert len(found["single"]) == 3 and len(found["single_more"]) == 2
    for run in ("data_parallel", "model_parallel"):
        np.testing.assert_allclose(found[run], found["single"], rtol=1e-5, err_msg=run)
        assert found[f"{run}_weights"] < 1e-5, run
    assert found["single"][-1] != found["single"][0]  # the steps did change the weights


def test_the_engines_say_where_they_run_and_how_batches_split(findings):
    assert findings["vit"]["data_parallel_engine"] == ["DataParallel over 8 devices (8 batch)", 8]
    assert findings["vit"]["model_parallel_engine"] == ["ModelParallel over 8 devices (2 data x 4 model)", 2]


@pytest.mark.parametrize("model", MODELS)
def test_data_parallel_replicates_every_variable(findings, model):
    sharding = findings[model]["data_parallel_sharding"]
    assert sharding and any(path.startswith("optimizer:") for path in sharding)
    for path, (spec, shard, full, shards) in sharding.items():
        assert shards == 8 and shard == full and not any(spec or []), (path, spec)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("run", ["model_parallel_sharding", "resumed_sharding"])
def test_model_parallel_splits_the_large_kernels_four_ways(findings, model, run):
    """Each device holds a quarter of every large kernel and of its optimizer slot; the rest is replicated."""
    sharding = findings[model][run]
    split = {}
    for path, (spec, shard, full, shards) in sharding.items():
        assert shards == 8, path
        axes = [i for i, axis in enumerate(spec or []) if axis == "model"]
        assert set(spec or []) <= {None, "model"}, (path, spec)  # nothing over the data axis
        if not axes:
            assert shard == full and (len(full) == 1 or np.prod(full[:-1]) == 1), f"{path} {full} is replicated"
            continue
        (axis,) = axes
        assert shard[axis] * MODEL_AXIS == full[axis] and shard[:axis] + shard[axis + 1:] == full[:axis] + full[axis + 1:]
        split[path] = spec
    kernels = [p for p in split if not p.startswith("optimizer:") and p.endswith(("kernel", "embeddings"))]
    # Translator: 4 tables, 6 encoder and 10 decoder kernels, the output projection; ViT: the patch
    # projection, positions, 2 x 6 block kernels, pre-logits and head.
    assert len(kernels) == (21 if model == "translator" else 16), kernels
    # SGD's momentum of each split variable is split alike.
    slots = {p: s for p, s in split.items() if p.startswith("optimizer:")}
    assert len(slots) == len(split) - len(slots)


@pytest.mark.parametrize("model", MODELS)
def test_a_sharded_checkpoint_resumes_where_it_stopped(findings, model):
    found = findings[model]
    np.testing.assert_allclose(found["resumed_more"], found["single_more"], rtol=1e-5)
    assert found["resumed_weights"] < 1e-5


def test_the_jax_translator_answers_as_its_tensorflow_export(findings):
    export = findings["translator"]["export"]
    assert export["path"].endswith(os.path.join("translator", "1"))
    assert export["jax"] == export["tf"]
    np.testing.assert_allclose(export["jax_scores"], export["tf_scores"], atol=1e-5)
    assert export["jax_nbest"] == export["tf_nbest"]
    assert any(text for row in export["jax_nbest"] for text in row)  # not only empty translations
    assert export["jax"][4:6] == ["", ""] and export["jax_scores"][4:6] == [0.0, 0.0]  # empty and blank sentences
    # Short sentences alone: the JAX search pads them to a wider bucket (masked), the export does not.
    assert export["short_width"] not in (8, 16)
    assert export["jax_short"] == export["tf_short"]
    np.testing.assert_allclose(export["jax_short_scores"], export["tf_short_scores"], atol=1e-5)


def test_the_jax_classifier_answers_as_its_tensorflow_export(findings):
    export = findings["vit"]["export"]
    np.testing.assert_allclose(export["jax"], export["tf"], atol=1e-5)
    np.testing.assert_allclose(export["jax_pixels"], export["tf_pixels"], atol=1e-5)
    assert export["jax_labels"] == export["tf_labels"] and export["jax_valid"] == export["tf_valid"] == [True] * 3 + [False]
