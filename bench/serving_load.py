"""Serving under load: client threads sending mixed good and bad requests to exported signatures.

    python -m bench.serving_load --translator runs/translation --classifier runs/vit --threads 8 --seconds 30

`--translator` / `--classifier` take a task folder or a recipe's run folder
(whose task folder is `<run>/model`). Exports each model as float32 and
int8 (`--sides`, as `bench/quantization.py` does), loads each export with
`tf.saved_model.load` and calls its `serving_default` signature the way TF
Serving runs it (in process: no Docker here). A seeded pool of requests mixes good and bad inputs, 1 to 8
per request:

- translator: test sentences; empty and whitespace-only strings, 600-word
  sentences (over the model's length), invalid UTF-8, random bytes;
- image classifier: PNG and JPEG digits, a large (1024 x 768) photo-sized
  PNG; empty bytes, random bytes, a truncated PNG, a header claiming 10
  gigapixels, text.

Every request's reference answer is computed independently of the export:
each of its items alone, by the task object in process (`translate`,
`predict`; for an int8 export, the task with the same int8 copy of the
model). Each request is first sent to the export alone, one at a time, and
must answer as the reference does (`wrong_answers`: an export that answers
every item with the first item's answer fails here). Then `--threads`
clients send requests drawn at random from the pool for `--seconds`, per
export, in `--rounds` rounds (the export order flips every round), and each
answer is compared with the reference again (translations and labels
exactly, scores and probabilities within `1e-5`, absolute or relative: a
sentence's score sums dozens of float32 log-probabilities, and a batch pads
and rounds them a little differently from the sentence alone). Reported per export:
requests and items answered, failures (exceptions), answers that differ,
requests/s and items/s, latency p50 / p90 / p99 / max. The process's resident memory
(RSS) is sampled throughout; the growth of its peak from the first half of
the run to the second shows whether memory stays bounded. The run fails
(exit status 1) if any request fails, any answer differs from the
reference, or RSS grows by more than `--max-rss-growth-mb`.
"""

import os
import random
import statistics
import struct
import tempfile
import threading
import time
import zlib

import numpy as np

from bench import common

TOLERANCE = 1e-5  # absolute, and relative to the reference (scores of -40 differ by 1e-5 between batch and alone)


# -- request pools --------------------------------------------------------------------
def translator_pool(sentences, size, seed=0):
    rng = random.Random(seed)
    bad = [
        lambda: b"",
        lambda: b"  \t  ",
        lambda: " ".join(rng.choice(sentences).split() * 60).encode()[:6000],  # ~600 words
        lambda: b"\xff\xfe\xfa " + rng.choice(sentences).encode(),
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40))),
    ]
    return [
        [rng.choice(sentences).encode() if rng.random() < 0.6 else rng.choice(bad)() for _ in range(rng.randint(1, 8))]
        for _ in range(size)
    ]


def _huge_png_header(width=100_000, height=100_000):
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))


def image_pool(pngs, size, seed=0):
    import tensorflow as tf

    rng = random.Random(seed)
    noise = np.random.default_rng(seed).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    large = tf.io.encode_png(noise).numpy()
    jpegs = [tf.io.encode_jpeg(tf.io.decode_png(png)).numpy() for png in pngs[:20]]
    good = [lambda: rng.choice(pngs), lambda: rng.choice(jpegs), lambda: large]
    bad = [
        lambda: b"",
        lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))),
        lambda: rng.choice(pngs)[:30],
        _huge_png_header,
        lambda: b"this is not an image",
    ]
    return [
        [rng.choice(good)() if rng.random() < 0.6 else rng.choice(bad)() for _ in range(rng.randint(1, 8))]
        for _ in range(size)
    ]


# -- one call, its reference and their comparison ----------------------------------------
def _texts(values):
    """Strings as the task objects return them (UTF-8, bad bytes replaced)."""
    return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else str(v) for v in values]


def translator_call(signature):
    import tensorflow as tf

    def call(items):
        out = signature(sentences=tf.constant(items, tf.string))
        return {"translations": _texts(out["translations"].numpy().tolist()), "scores": out["scores"].numpy()}

    return call


def image_call(signature):
    import tensorflow as tf

    def call(items):
        out = signature(image_bytes=tf.constant(items, tf.string))
        return {
            "labels": [_texts(row) for row in out["top_k_labels"].numpy().tolist()],
            "valid": out["valid"].numpy().tolist(),
            "probabilities": out["probabilities"].numpy(),
        }

    return call


def translator_reference(translator):
    """One item's answer from the `zoo.Translator` in process: `item -> answer to [item]`."""

    def reference(item):
        ((text, score),) = translator.translate([item], return_scores=True)
        return {"translations": [text], "scores": np.array([score], np.float32)}

    return reference


def image_reference(classifier):
    """One item's answer from the `zoo.ImageClassifier` in process: `item -> answer to [item]`."""

    def reference(item):
        out = classifier.predict([item])
        return {"labels": [list(row) for row in out["top_k_labels"].tolist()], "valid": out["valid"].tolist(),
                "probabilities": out["probabilities"]}

    return reference


def with_model(task, model):
    """`task` with another model (e.g. the int8 copy an export was written from), all else shared."""
    if type(task).__name__ == "Translator":
        return type(task)(model, task.source_tokenizer, task.target_tokenizer, task.settings)
    return type(task)(model, task.preprocessor, task.top_k)


def reference_task(task, side):
    """The task object whose answers an export of `side` must give (`bench.quantization.export_sides`)."""
    from bench import quantization
    from zoo.export.quantization import quantize_model

    if side == "float":
        return task
    if side == "int8":
        return with_model(task, quantize_model(task.model, "int8")[0])
    return quantization.keras_default_int8(task)


def expected_answers(reference, pool):
    """Each request's reference answer: its items' answers, each computed alone (once per distinct item)."""
    answers = {}
    for items in pool:
        for item in items:
            if item not in answers:
                answers[item] = reference(item)
    expected = []
    for items in pool:
        rows = [answers[item] for item in items]
        expected.append({key: np.concatenate([row[key] for row in rows]) if isinstance(rows[0][key], np.ndarray)
                         else [value for row in rows for value in row[key]] for key in rows[0]})
    return expected


def same_answer(got, want):
    """Strings and flags equal, numbers within `TOLERANCE` (absolute plus relative)."""
    for key, value in want.items():
        if isinstance(value, np.ndarray):
            if got[key].shape != value.shape or not np.allclose(got[key], value, atol=TOLERANCE, rtol=TOLERANCE):
                return False
        elif got[key] != value:
            return False
    return True


# -- memory ------------------------------------------------------------------------
def rss_mb():
    """Resident memory of this process in MiB (Linux /proc; psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        import resource

        return pages * resource.getpagesize() / 2**20
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss / 2**20


class MemorySampler:
    """Samples RSS every `interval` seconds in a thread: `[(time, MiB)]`."""

    def __init__(self, interval=0.2):
        self.interval, self.samples = interval, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), rss_mb()))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.samples.append((time.perf_counter(), rss_mb()))

    def growth(self):
        """Peak RSS of the second half of the run minus that of the first half, MiB."""
        start, end = self.samples[0][0], self.samples[-1][0]
        middle = (start + end) / 2
        first = max(mb for t, mb in self.samples if t <= middle)
        second = max(mb for t, mb in self.samples if t >= middle)
        return {"first_half_peak_mb": first, "second_half_peak_mb": second, "growth_mb": second - first}


# -- the load --------------------------------------------------------------------------
def wrong_answers(call, pool, expected):
    """Each request sent alone, one at a time: the indices of those not answered as `expected`."""
    return [k for k, items in enumerate(pool) if not same_answer(call(items), expected[k])]


def run_load(call, pool, expected, threads, seconds, seed=0):
    """`threads` clients call random pool requests for `seconds`; returns raw results."""
    deadline = time.perf_counter() + seconds
    latencies, failures, mismatches, items = [], [], [], [0] * threads

    def client(index):
        rng = random.Random(seed * 1000 + index)
        while time.perf_counter() < deadline:
            k = rng.randrange(len(pool))
            start = time.perf_counter()
            try:
                answer = call(pool[k])
            except Exception as error:  # the signature must never fail on bad input
                failures.append(f"request {k}: {type(error).__name__}: {str(error)[:200]}")
                continue
            latencies.append(time.perf_counter() - start)
            items[index] += len(pool[k])
            if not same_answer(answer, expected[k]):
                mismatches.append(k)

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {"latencies": latencies, "failures": failures, "mismatches": mismatches, "items": sum(items),
            "seconds": time.perf_counter() - started}


def summarize(runs):
    """Merges the rounds of one export into the reported numbers."""
    latencies = sorted(x for run in runs for x in run["latencies"])
    seconds = sum(run["seconds"] for run in runs)

    def percentile(q):
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None

    return {
        "requests": len(latencies),
        "items": sum(run["items"] for run in runs),
        "failures": sum(len(run["failures"]) for run in runs),
        "failure_examples": [f for run in runs for f in run["failures"]][:3],
        "answers_differing_under_load": sum(len(run["mismatches"]) for run in runs),
        "requests_per_s": len(latencies) / seconds,
        "items_per_s": sum(run["items"] for run in runs) / seconds,
        "latency_ms": {"p50": percentile(0.5), "p90": percentile(0.9), "p99": percentile(0.99),
                       "max": 1000 * latencies[-1] if latencies else None,
                       "mean": 1000 * statistics.fmean(latencies) if latencies else None},
    }


def violations(report, max_rss_growth_mb):
    """What broke the load test's promises, as sentences (empty when none)."""
    found = []
    for name, result in report["exports"].items():
        if result["failures"]:
            found.append(f"{name}: {result['failures']} requests failed, e.g. {result['failure_examples'][0]}")
        if result["wrong_answers"]:
            wrong = result["wrong_answers"]
            found.append(f"{name}: {len(wrong)} requests sent alone are answered unlike the task object in process "
                         f"(requests {wrong[:5]})")
        if result["answers_differing_under_load"]:
            found.append(f"{name}: {result['answers_differing_under_load']} answers under load differ from the task "
                         "object's")
        if not result["requests"]:
            found.append(f"{name}: no request was answered")
    if report["memory"]["growth_mb"] > max_rss_growth_mb:
        found.append(f"RSS grew by {report['memory']['growth_mb']:.0f} MiB (limit {max_rss_growth_mb})")
    return found


def load_test(calls, pools, references, threads, seconds, rounds, seed=0):
    """Runs every `{name: call}` against its pool, answers checked against `{name: reference}` (`item ->
    answer to [item]`, computed apart from the export); returns the report (without the verdict)."""
    expected = {name: expected_answers(references[name], pools[name]) for name in calls}
    wrong = {name: wrong_answers(call, pools[name], expected[name]) for name, call in calls.items()}
    runs = {name: [] for name in calls}
    names = list(calls)
    with MemorySampler() as memory:
        for round_index in range(rounds):
            for name in names if round_index % 2 == 0 else names[::-1]:
                runs[name].append(run_load(calls[name], pools[name], expected[name], threads, seconds, seed + round_index))
    return {
        "exports": {name: {**summarize(runs[name]), "wrong_answers": wrong[name]} for name in names},
        "memory": {**memory.growth(), "start_mb": memory.samples[0][1], "end_mb": memory.samples[-1][1]},
    }


def task_folder(path):
    """`path` if it holds a task (or is None: a random model), else a recipe run's task folder `<path>/model`."""
    from recipes.trained_model import task_folder as run_task_folder

    if path and not os.path.exists(os.path.join(path, "task.json")) and os.path.isdir(run_task_folder(path)):
        return run_task_folder(path)
    return path


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0], batch_size=8)
    parser.add_argument("--translator", default=None,
                        help="a zoo.Translator folder or a translation run folder (default: random transformer_tiny)")
    parser.add_argument("--classifier", default=None,
                        help="a zoo.ImageClassifier folder or an image run folder (default: random ViT)")
    parser.add_argument("--models", default="translator,classifier", help="comma list")
    parser.add_argument("--sides", default="float,int8", help="comma list of float, int8, int8_dynamic")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="load per export per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pool", type=int, default=48, help="distinct requests per model")
    parser.add_argument("--max-rss-growth-mb", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=0, help="the request pools and the clients' choices")
    parser.add_argument("--layers", type=int, default=None, help="layers of the random models (smoke tests)")
    args = parser.parse_args(argv)
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  registers the tokenizer ops

    from bench import quantization

    args.translator_preset, args.classifier_preset = "transformer_tiny", "vit_tiny_patch4_32"
    calls, pools, references, tasks = {}, {}, {}, {}
    with tempfile.TemporaryDirectory() as base:
        for kind in args.models.split(","):
            path = task_folder(args.translator if kind == "translator" else args.classifier)
            task = quantization.load_task(kind, path, args)
            tasks[kind] = path or "random"
            if kind == "translator":
                pool = translator_pool([s for s, _ in quantization.test_sentences()[:200]], args.pool, args.seed)
            else:
                pool = image_pool(quantization.digit_pngs()[0], args.pool, args.seed)
            for side, export in quantization.export_sides(task, base, kind, args.sides.split(",")).items():
                signature = tf.saved_model.load(export).signatures["serving_default"]
                name = f"{kind}/{side}"
                calls[name] = translator_call(signature) if kind == "translator" else image_call(signature)
                reference = translator_reference if kind == "translator" else image_reference
                references[name] = reference(reference_task(task, side))
                pools[name] = pool
        report = {"benchmark": "serving_load", "system": common.system_info(), "models": tasks,
                  "threads": args.threads, "seconds_per_export_per_round": args.seconds, "rounds": args.rounds,
                  "pool": args.pool}
        report.update(load_test(calls, pools, references, args.threads, args.seconds, args.rounds, args.seed))
    report["violations"] = violations(report, args.max_rss_growth_mb)
    common.emit(report, args.json)
    if report["violations"]:
        raise SystemExit("serving load test failed:\n  " + "\n  ".join(report["violations"]))
    return report


if __name__ == "__main__":
    main()
