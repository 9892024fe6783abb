"""Exported image classifier (SavedModel), images/s, as TF Serving would run it.

    python -m bench.image_export                         # vit_tiny_patch4_32, 32x32 PNGs, batch 1 and 32
    python -m bench.image_export --preset vit_tiny_patch16_224 --png-size 256

Exports a randomly initialised ViT with `zoo.ImageClassifier.export`,
loads it with `tf.saved_model.load` (graph mode, as the server runs it) and
times the `serving_default` signature on a batch of encoded PNG bytes
(decode, resize, normalise, model, softmax, top-k, labels), interleaved
with the `classify_pixels` signature on the same images already decoded,
so the share of decoding and resizing shows. No anchor: keras-hub has no
such export. Reports images/s, medians and spreads over windows.
"""

import tempfile

import keras
import numpy as np

from bench import common


def _pngs(count, size, seed=0):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    return [tf.io.encode_png(p).numpy() for p in pixels], pixels.astype("float32") / 255.0


def main(argv=None):
    parser = common.base_parser(__doc__.splitlines()[0], batch_size=32, windows=5, window_seconds=2.0)
    parser.add_argument("--preset", default="vit_tiny_patch4_32")
    parser.add_argument("--layers", type=int, default=None, help="override the preset's encoder layers (smoke tests)")
    parser.add_argument("--png-size", type=int, default=None, help="side of the PNGs (default: the model's size)")
    parser.add_argument("--batch-sizes", default=None, help="comma list; default 1 and --batch-size")
    args = parser.parse_args(argv)
    import tensorflow as tf

    from zoo.models import VisionTransformer
    from zoo.preprocessing import ImagePreprocessor
    from zoo.tasks import ImageClassifier

    common.set_policy(args.dtype_policy)
    overrides = {"num_encoder_layers": args.layers} if args.layers else {}
    keras.utils.set_random_seed(0)
    model = VisionTransformer.from_preset(args.preset, **overrides)
    png_size = args.png_size or model.image_size
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else [1, args.batch_size]
    pngs, pixels = _pngs(max(batch_sizes), png_size)
    cases = {}
    with tempfile.TemporaryDirectory() as base:
        names = [f"class_{i}" for i in range(model.num_classes)]
        preprocessor = ImagePreprocessor(model.image_size, (0.5,) * 3, (0.5,) * 3, names)
        path = ImageClassifier(model, preprocessor).export(base)
        loaded = tf.saved_model.load(path)
        serve, raw = loaded.signatures["serving_default"], loaded.signatures["classify_pixels"]
        for batch in batch_sizes:
            image_bytes = tf.constant(pngs[:batch])
            decoded = tf.constant(pixels[:batch])

            def serve_bytes(image_bytes=image_bytes, batch=batch):
                serve(image_bytes=image_bytes)["top_k_scores"].numpy()
                return batch

            def serve_pixels(decoded=decoded, batch=batch):
                raw(pixels=decoded)["top_k_scores"].numpy()
                return batch

            results = common.interleaved(
                {"png_bytes": serve_bytes, "pixels": serve_pixels}, args.windows, args.window_seconds, args.warmup_steps
            )
            cases[f"batch_{batch}"] = {
                "images_per_s": {name: side["per_s"] for name, side in results.items()},
                "decode_resize_share_of_bytes_time": 1 - common.ratio(results, "pixels", "png_bytes") ** -1,
            }
    report = {
        "benchmark": "image_export",
        "unit": "images/s",
        "system": common.system_info(),
        "preset": args.preset,
        "png_size": png_size,
        "model_image_size": model.image_size,
        **cases,
    }
    return common.emit(report, args.json)


if __name__ == "__main__":
    main()
