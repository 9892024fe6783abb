"""A two-minute tour of `zoo.layers`: a tiny encoder-decoder learns to reverse digits.

    python -m recipes.layers_demo

Builds the model from `TokenAndPositionEmbedding`, `EncoderBlock` and
`DecoderBlock`, trains it for a few epochs on random digit strings, then
decodes greedily through the decoder blocks' key/value caches and checks the
result against the full (uncached) decoder. Expect a token accuracy above
0.9 after the default 6 epochs (about a minute on 2 CPU cores).
"""

import argparse
import dataclasses

import keras
import numpy as np
from keras import ops

from zoo.layers import DecoderBlock, EncoderBlock, TokenAndPositionEmbedding

PAD, START = 0, 1  # digits are tokens 2..11


@dataclasses.dataclass
class DemoConfig:
    """Sizes for the demo; small enough for a CPU."""

    length: int = 8
    d_model: int = 64
    num_heads: int = 4
    d_ff: int = 128
    num_layers: int = 2
    examples: int = 4000
    epochs: int = 6
    seed: int = 0


def make_data(config):
    rng = np.random.default_rng(config.seed)
    source = rng.integers(2, 12, size=(config.examples, config.length))
    target = source[:, ::-1]
    decoder_in = np.concatenate([np.full((config.examples, 1), START), target[:, :-1]], axis=1)
    return source.astype("int32"), decoder_in.astype("int32"), target.astype("int32")


class ReverseModel(keras.Model):
    """Encoder-decoder built only from zoo.layers."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        c = config
        self.embed = TokenAndPositionEmbedding(12, c.d_model, c.length, scale_by_sqrt_dim=True)
        block = dict(d_model=c.d_model, num_heads=c.num_heads, d_ff=c.d_ff)
        self.encoder = [EncoderBlock(**block) for _ in range(c.num_layers)]
        self.decoder = [DecoderBlock(**block) for _ in range(c.num_layers)]

    def encode(self, source):
        x = self.embed(source)
        for block in self.encoder:
            x = block(x)
        return x

    def call(self, inputs):
        source, decoder_in = inputs
        context = self.encode(source)
        x = self.embed(decoder_in)
        for block in self.decoder:
            x = block(x, context)
        return self.embed.logits(x)

    def greedy(self, source, length):
        """Greedy decoding, one token per step through the blocks' caches."""
        context = self.encode(source)
        caches = [block.init_cache(context, length) for block in self.decoder]
        token = ops.full((source.shape[0], 1), START, "int32")
        outputs = []
        for t in range(length):
            x = self.embed(token, start_index=t)
            for i, block in enumerate(self.decoder):
                x, caches[i] = block(x, cache=caches[i], cache_index=t)
            token = ops.cast(ops.argmax(self.embed.logits(x), axis=-1), "int32")
            outputs.append(token)
        return ops.concatenate(outputs, axis=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=DemoConfig.epochs,
                        help=f"training epochs (default: {DemoConfig.epochs})")
    config = DemoConfig(epochs=parser.parse_args(argv).epochs)
    keras.utils.set_random_seed(config.seed)
    source, decoder_in, target = make_data(config)
    model = ReverseModel(config)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit((source, decoder_in), target, batch_size=64, epochs=config.epochs, validation_split=0.1)
    test_source, test_in, test_target = make_data(dataclasses.replace(config, examples=64, seed=1))
    decoded = ops.convert_to_numpy(model.greedy(test_source, config.length))
    full = np.argmax(ops.convert_to_numpy(model((test_source, np.concatenate(
        [np.full((64, 1), START), decoded[:, :-1]], axis=1).astype("int32")))), -1)
    accuracy = float((decoded == test_target).mean())
    cached_equals_full = bool((full == decoded).all())
    print(f"cached greedy decoding token accuracy: {accuracy:.3f}")
    print(f"cached decoding == full decoder: {cached_equals_full}")
    for src, out in zip(test_source[:3] - 2, decoded[:3] - 2):
        print(f"  {''.join(map(str, src))} -> {''.join(map(str, out))}")
    return {"accuracy": accuracy, "cached_equals_full": cached_equals_full}


if __name__ == "__main__":
    main()
