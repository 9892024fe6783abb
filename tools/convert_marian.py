"""Converts a Hugging Face MarianMT (OPUS-MT) checkpoint folder into a `zoo.Translator` folder.

    python tools/convert_marian.py CHECKPOINT_DIR --output OUT_DIR [--export-base BASE]

Writes `OUT_DIR` as `zoo.Translator.save` does (`task.json` with the
checkpoint's decoding settings, `model.keras`, `source_tokenizer/`,
`target_tokenizer/`), which `zoo.Translator.load(OUT_DIR)` reads. With
`--export-base`, also writes a TF Serving export `BASE/<name>/<version>/`
(strings in, strings out) that decodes as transformers' `generate` does with
the checkpoint's settings. Needs neither PyTorch nor transformers.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="MarianMT folder: config.json, weights, source.spm, target.spm, vocab.json")
    parser.add_argument("--output", required=True, help="the Translator folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument("--verbose", action="store_true", help="on errors, show the traceback")
    parser.add_argument("--export-base", default=None, help="also write a TF Serving export under this folder")
    parser.add_argument("--name", default="translator", help="model name of the export. Default: translator")
    parser.add_argument(
        "--max-length", type=int, default=None,
        help="most generated tokens, end included (transformers' max_new_tokens). "
        "Default: the generation config's max_length - 1, at most the model's positions.",
    )
    parser.add_argument("--beam-width", type=int, default=None, help="Default: the checkpoint's num_beams")
    return parser.parse_args(argv)


def convert(args):
    """Writes the folder (and the export); returns `{"output": ..., "export": ...}`."""
    from zoo.tasks import Translator

    overrides = {k: v for k, v in (("max_length", args.max_length), ("beam_width", args.beam_width)) if v is not None}
    translator = Translator.from_marian(args.checkpoint, **overrides)
    outputs = {"output": translator.save(args.output, overwrite=args.overwrite)}
    if args.export_base:
        outputs["export"] = translator.export(args.export_base, name=args.name)
    return outputs


def main(argv=None):
    outputs = convert(parse_args(argv))
    print(json.dumps(outputs))
    return outputs


if __name__ == "__main__":
    from recipes.common import command_line, import_tensorflow  # one-line errors, no start-up notices

    with command_line(verbose="--verbose" in sys.argv):
        import_tensorflow(verbose="--verbose" in sys.argv)
        ok = main()
    sys.exit(0 if ok else 1)
