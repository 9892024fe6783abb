"""Sends requests to an export in a child process, the way TF Serving's C++ session runs them.

TF Serving feeds a request's tensors to a signature's placeholders without
checking them against the signature's shapes. Python's `Session.run` and
`tf.saved_model.load(...).signatures[...]` do check (a scalar for a
`[None]` input is a ValueError there), so they hide what a server does
with such a request. The child loads the SavedModel through a TF1 session,
as `tensorflow_model_server` does, with the signature inputs' placeholder
shapes relaxed to unknown, feeds each request and prints one JSON line per
answer. An op that crashes the process (a segfault) ends the child: the
request it was on is reported with the exit status, and the requests after
it run in a new child.

Found with it (2026-12-05, the translator export of `main` at 8187fd6): a
scalar `sentences` tensor segfaults `serving_default` (exit status 139); a
`[1, 2]` one is answered with one translation, the second column dropped.
"""

import json
import os
import pickle
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_CHILD = """
import json, os, pickle, resource, shutil, sys, tempfile, time
import numpy as np
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tokenizer ops
from tensorflow.core.protobuf import saved_model_pb2

path, requests_file = sys.argv[1:]
with open(requests_file, "rb") as f:
    requests = pickle.load(f)
copy = tempfile.mkdtemp()
shutil.copytree(path, copy, dirs_exist_ok=True)
saved_model = saved_model_pb2.SavedModel()
with open(os.path.join(copy, "saved_model.pb"), "rb") as f:
    saved_model.ParseFromString(f.read())
graph = saved_model.meta_graphs[0]
inputs = {t.name.split(":")[0] for s in graph.signature_def.values() for t in s.inputs.values()}
for node in graph.graph_def.node:
    if node.op == "Placeholder" and node.name in inputs:  # as the C++ session: no shape check on feeds
        del node.attr["shape"].shape.dim[:]
        node.attr["shape"].shape.unknown_rank = True
        node.attr.pop("_output_shapes", None)
with open(os.path.join(copy, "saved_model.pb"), "wb") as f:
    f.write(saved_model.SerializeToString())
tf.compat.v1.disable_eager_execution()
with tf.compat.v1.Session(graph=tf.Graph()) as session:
    meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], copy)
    for signature, feeds in requests:
        definition = meta.signature_def[signature]
        fetches = {key: value.name for key, value in definition.outputs.items()}
        feed = {definition.inputs[key].name: value for key, value in feeds.items()}
        peak, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
        try:
            outputs = session.run(fetches, feed)
            answer = {"outputs": {k: np.asarray(v).tolist() for k, v in outputs.items()}}
        except Exception as error:
            # The whole message, as TF Serving returns it to the client.
            answer = {"error": type(error).__name__, "message": str(error)[-2000:]}
        answer["seconds"] = time.perf_counter() - start
        answer["peak_growth_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
        print(json.dumps(answer, default=lambda v: v.decode("utf-8", "replace")), flush=True)
"""


def send(path, requests, timeout=300):
    """Answers to `requests` (`[(signature, {input: NumPy array})]`) from the export at `path`.

    Each answer is `{"outputs": {...}}` or `{"error": type, "message": ...}`
    (the request failed, the process lived), with `seconds` (the run's wall
    time) and `peak_growth_mib` (how much it raised the process's peak
    resident memory), or `{"crashed": exit status}`.
    """
    answers = []
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="-1")
    with tempfile.TemporaryDirectory() as scratch:
        while len(answers) < len(requests):
            requests_file = os.path.join(scratch, f"requests-{len(answers)}.pkl")
            with open(requests_file, "wb") as f:
                pickle.dump(requests[len(answers):], f)
            child = subprocess.run([sys.executable, "-c", _CHILD, path, requests_file], cwd=ROOT, env=env,
                                   capture_output=True, text=True, timeout=timeout, check=False)
            lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
            answers.extend(json.loads(line) for line in lines)
            if child.returncode != 0:
                if not lines and child.returncode > 0:  # failed before any request: a broken harness or export
                    raise RuntimeError(f"The serving child failed (exit status {child.returncode}):\n"
                                       f"{child.stderr[-3000:]}")
                answers.append({"crashed": child.returncode})
    return answers
