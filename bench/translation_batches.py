"""Building the training batches of the built-in corpus: `make_batches` against an earlier checkout's.

    python -m bench.translation_batches --baseline /path/to/older/checkout [--repeats 3]
    python -m bench.translation_batches --pairs 200 --repeats 1      # zoo alone, a toy size

The 27,000 training pairs of `zoo.data.builtin_translation`, WordPiece
tokenizers of 2,000 ids per side as `recipes/translation.py` learns them,
batch 64, `max_length` 40. One build is `make_batches` plus one pass over
the dataset it returns (what the first epoch of `fit` reads; the new
pipeline tokenizes there). Both run in this process, alternating
(A B B A ...), on the same pairs and tokenizers; the baseline's
`zoo/data/translation_data.py` is loaded from `--baseline` (a checkout
whose `make_batches` takes the two tokenizers and `max_length`). Reports
the median seconds of each side and their ratio, and checks both give the
same number of pairs and batches. Without `--baseline`, times zoo alone.
"""

import argparse
import importlib.util
import os
import statistics
import sys
import time

from bench import common

BATCH_SIZE, MAX_LENGTH, VOCABULARY = 64, 40, 2000


def _baseline_module(checkout):
    path = os.path.join(checkout, "zoo", "data", "translation_data.py")
    spec = importlib.util.spec_from_file_location("baseline_translation_data", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # AutoGraph looks functions' modules up there
    spec.loader.exec_module(module)
    return module


def _build(make):
    """Seconds to build the batches and read them once; `(pairs kept, batches)`."""
    started = time.perf_counter()
    ds, stats = make()
    batches = sum(1 for _ in ds)
    return time.perf_counter() - started, (stats.pairs, batches)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=None, help="an older checkout to compare with")
    parser.add_argument("--pairs", type=int, default=None, help="the first N training pairs; default: all")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write the report to this file")
    args = parser.parse_args(argv)

    from zoo.data import builtin_translation, translation_data
    from zoo.preprocessing import TranslationPreprocessor
    from zoo.text import WordPieceTokenizer

    pairs = builtin_translation.load_splits()["train"][: args.pairs]
    source = WordPieceTokenizer.from_corpus([s for s, _ in pairs], VOCABULARY, lowercase=False)
    target = WordPieceTokenizer.from_corpus([t for _, t in pairs], VOCABULARY, lowercase=False)
    preprocessor = TranslationPreprocessor(source, target, MAX_LENGTH)
    sides = {"zoo": lambda: translation_data.make_batches(pairs, preprocessor, BATCH_SIZE)}
    if args.baseline:
        baseline = _baseline_module(args.baseline)
        sides["baseline"] = lambda: baseline.make_batches(pairs, source, target, BATCH_SIZE, MAX_LENGTH)
    seconds = {name: [] for name in sides}
    kept = {}
    for repeat in range(args.repeats):
        order = list(sides) if repeat % 2 == 0 else list(sides)[::-1]
        for name in order:
            took, kept[name] = _build(sides[name])
            seconds[name].append(took)
    if len(set(kept.values())) != 1:
        raise AssertionError(f"The two sides kept different pairs or batches: {kept}")
    median = {name: statistics.median(values) for name, values in seconds.items()}
    report = {
        "system": common.system_info(),
        "pairs": len(pairs),
        "kept": kept["zoo"][0],
        "seconds": {name: [round(v, 2) for v in values] for name, values in seconds.items()},
        "median_s": {name: round(value, 2) for name, value in median.items()},
    }
    if args.baseline:
        report["baseline / zoo"] = round(median["baseline"] / median["zoo"], 1)
    common.emit(report, args.json)
    return report


if __name__ == "__main__":
    main()
