"""Converts a Hugging Face MarianMT (OPUS-MT) checkpoint folder into zoo artifacts.

    python tools/convert_marian.py CHECKPOINT_DIR --output OUT_DIR [--export-base BASE]

Writes `OUT_DIR/model.keras` (a `TransformerTranslator`),
`OUT_DIR/source_tokenizer/` and `OUT_DIR/target_tokenizer/`
(`zoo.text.MarianTokenizer.save`) and `OUT_DIR/search_options.json` (the
checkpoint's decoding settings as `zoo.decoding.beam_search` arguments).
With `--export-base`, also writes a TF Serving export
`BASE/<name>/<version>/` (strings in, strings out) through
`zoo.export.export_translator`, decoding as transformers' `generate` does
with the checkpoint's settings. Needs neither PyTorch nor transformers.
"""

import argparse
import json
import os
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="MarianMT folder: config.json, weights, source.spm, target.spm, vocab.json")
    parser.add_argument("--output", required=True, help="folder for model.keras, the tokenizers and search_options.json")
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


def default_max_length(checkpoint, model):
    """transformers' `max_length` counts the decoder start token; zoo's does not."""
    from zoo.convert.marian import generation_settings

    max_length = generation_settings(checkpoint)[1].get("max_length") or 20  # transformers' default
    return max(1, min(int(max_length) - 1, model.max_length))


def convert(args):
    from zoo.convert import load_marian

    model, source, target, options = load_marian(args.checkpoint)
    os.makedirs(args.output, exist_ok=True)
    model.save(os.path.join(args.output, "model.keras"))
    source.save(os.path.join(args.output, "source_tokenizer"))
    target.save(os.path.join(args.output, "target_tokenizer"))
    if args.beam_width is not None:
        options["beam_width"] = args.beam_width
    max_length = args.max_length or default_max_length(args.checkpoint, model)
    with open(os.path.join(args.output, "search_options.json"), "w") as f:
        json.dump(dict(options, max_length=max_length), f, indent=2)
    outputs = {"output": args.output}
    if args.export_base:
        from zoo.export import export_translator

        search = dict(options)
        beam_width, alpha = search.pop("beam_width"), search.pop("alpha")
        outputs["export"] = export_translator(
            model, source, target, args.export_base, name=args.name, beam_width=beam_width,
            max_length=max_length, alpha=alpha, search_options=search,
        )
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
