"""Where a request of the peer benchmark's Marian spends its time, by TensorFlow op.

Builds `bench.peer_translation`'s MarianMT (opus-mt-en-de's size, vocabulary
58,101, random weights), converts it with `zoo.Translator.from_marian`,
runs `TranslatorGraph.translate_ids` once to trace it, then once more under
`tf.profiler` (one thread, as the benchmark), and adds up the time of every
executed op by kind and by node. Shares are of the summed op time: on a
busy machine an op's time includes waiting for the CPU, so the sum exceeds
the request's CPU time; compare shares, not milliseconds.

    python -m bench.peer_profile --batch 32 --beam 4 --tokens 32
"""

import argparse
import collections
import glob
import json
import os
import tempfile
import time


def profile(batch, beam, tokens, top_nodes=12):
    """`{"cpu_seconds", "ops": {op: share}, "nodes": {node: share}}` of one traced request."""
    from bench.peer_translation import OPUS_MT_EN_DE, OPUS_MT_EN_DE_VOCAB, _one_thread, write_checkpoint

    _one_thread()
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    from zoo import Translator
    from zoo.data.builtin_translation import generate_pairs
    from zoo.tasks.translator_graph import TranslatorGraph

    with tempfile.TemporaryDirectory() as directory:
        write_checkpoint(directory, OPUS_MT_EN_DE, OPUS_MT_EN_DE_VOCAB, tokens)
        translator = Translator.from_marian(directory, max_length=tokens)
        settings = translator.settings.replace(beam_width=beam, max_length=tokens)
        graph = TranslatorGraph(translator.model, translator.preprocessor, settings)
        sentences = [en for en, _ in generate_pairs(batch, seed=7)]
        ids, _, _ = translator.preprocessor.serving_inputs(tf.constant(sentences))
        graph.translate_ids(ids)  # tracing
        logs = os.path.join(directory, "profile")
        tf.profiler.experimental.start(logs)
        start = time.process_time()
        graph.translate_ids(ids)["target_ids"].numpy()
        cpu = time.process_time() - start
        tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        with open(glob.glob(os.path.join(logs, "**", "*.xplane.pb"), recursive=True)[0], "rb") as f:
            space.ParseFromString(f.read())
    ops, nodes = collections.Counter(), collections.Counter()
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                node, _, op = plane.event_metadata[event.metadata_id].name.rpartition(":")
                if not node or not op or " " in op or op in ("Run", "Process"):  # containers, not ops
                    continue
                ops[op] += event.duration_ps
                nodes[f"{op} {node.split('while/body/')[-1]}"] += event.duration_ps
    total = sum(ops.values())
    return {
        "batch": batch, "beam": beam, "tokens": tokens, "cpu_seconds": cpu, "load_average": list(os.getloadavg()),
        "ops": {op: t / total for op, t in ops.most_common() if t / total >= 0.001},
        "nodes": {node: t / total for node, t in nodes.most_common(top_nodes)},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args(argv)
    report = profile(args.batch, args.beam, args.tokens)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
