"""Convert an HF or timm ViT checkpoint to a `zoo.ImageClassifier` folder, and optionally export it.

    python tools/convert_vit.py hf path/to/vit-base-patch16-224 --output runs/vit-hf
    python tools/convert_vit.py timm path/to/timm-folder --output runs/vit-timm --export runs/serving
    python tools/convert_vit.py hf path/to/vit --output runs/vit-hf --export runs/serving --quantize int8
    python tools/convert_vit.py timm vit.pth --architecture vit_base_patch16_224 \\
        --pretrained-cfg cfg.json --output runs/vit-timm

Writes `<output>` as `zoo.ImageClassifier.save` does (`model.keras` and
`task.json` with the image size, resize, crop, mean, std and class names),
which `zoo.ImageClassifier.load(<output>)` reads. With `--export BASE`, also
writes the next version of `BASE/<name>/`; with `--quantize int8` that
export holds an int8 copy of the model (`BASE/image_classifier_int8/`
unless `--name` is given; the folder stays float) and what stayed float is
printed. Needs neither torch nor transformers nor timm.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python tools/convert_vit.py", description=__doc__.split("\n")[0])
    parser.add_argument("library", choices=["hf", "timm"], help="where the checkpoint comes from")
    parser.add_argument("checkpoint", help="checkpoint folder (or, for timm, a weights file)")
    parser.add_argument("--output", required=True, help="the ImageClassifier folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument("--verbose", action="store_true", help="on errors, show the traceback")
    parser.add_argument("--architecture", help="timm model name when the checkpoint has no config.json")
    parser.add_argument("--model-args", default="{}", help="timm create_model overrides, as JSON")
    parser.add_argument("--pretrained-cfg", help="JSON file with timm's pretrained_cfg (mean, std, ...)")
    parser.add_argument("--export", metavar="BASE", help="also export for TF Serving under BASE/<name>/<version>/")
    parser.add_argument(
        "--name", default=None, help="export model name. Default: image_classifier (image_classifier_int8 with --quantize)"
    )
    parser.add_argument(
        "--quantize", choices=("int8",), default=None, help="export int8 weights (zoo.export.quantization); needs --export"
    )
    parser.add_argument("--top-k", type=int, default=5, help="labels per image")
    args = parser.parse_args(argv)
    if args.quantize and not args.export:
        parser.error("--quantize applies to the export: give --export too")
    return args


def convert(args):
    """The converted `zoo.ImageClassifier`, from parsed arguments."""
    from zoo.files import read_json
    from zoo.tasks import ImageClassifier

    if args.library == "hf":
        return ImageClassifier.from_hf(args.checkpoint, top_k=args.top_k)
    pretrained_cfg = read_json(args.pretrained_cfg) if args.pretrained_cfg else None
    return ImageClassifier.from_timm(
        args.checkpoint, architecture=args.architecture, pretrained_cfg=pretrained_cfg, top_k=args.top_k,
        **json.loads(args.model_args),
    )


def main(argv=None):
    """Runs the conversion; returns `(folder, export path or None)`."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    classifier = convert(args)
    folder = classifier.save(args.output, overwrite=args.overwrite)
    print(f"wrote {folder}")
    export_path = None
    if args.export:
        from zoo.export.quantization import describe, read_quantization

        export_path = classifier.export(args.export, name=args.name, quantize=args.quantize)
        print(f"exported {export_path}")
        if args.quantize:
            print(f"  {describe(read_quantization(export_path))}")
    return folder, export_path


if __name__ == "__main__":
    from recipes.common import command_line, import_tensorflow  # one-line errors, no start-up notices

    with command_line(verbose="--verbose" in sys.argv):
        import_tensorflow(verbose="--verbose" in sys.argv)
        main()
