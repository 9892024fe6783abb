"""bench.plain_jax_vit computes the ViT it claims to: same size as zoo's, padding changes nothing, it learns."""

import numpy as np
import pytest

from bench import plain_jax_vit

jax = pytest.importorskip("jax")

CONFIG = dict(image_size=32, patch_size=16, d_model=16, depth=2, heads=2, mlp_dim=32, classes=5)


def _batch():
    rng = np.random.default_rng(1)
    images = rng.standard_normal((3, 32, 32, 3)).astype("float32")
    return jax.numpy.asarray(images), jax.numpy.asarray(rng.integers(0, 5, 3), "int32")


def test_same_parameter_count_as_zoo_vision_transformer():
    from zoo.models import VisionTransformer

    params = plain_jax_vit.init_params(CONFIG)
    zoo = VisionTransformer(image_size=32, patch_size=16, num_classes=5, d_model=16, num_encoder_layers=2,
                            num_heads=2, d_ff=32, qkv_bias=True)
    zoo(np.zeros((1, 32, 32, 3), "float32"))
    assert sum(w.size for w in jax.tree.leaves(params)) == zoo.count_params()


def test_padded_tokens_change_nothing():
    params = jax.tree.map(jax.numpy.asarray, plain_jax_vit.init_params(CONFIG))
    images, _ = _batch()
    plain = plain_jax_vit.forward(params, images, CONFIG, pad_to=0, implementation="xla")
    padded = plain_jax_vit.forward(params, images, CONFIG, pad_to=16, implementation="xla")
    np.testing.assert_allclose(np.asarray(padded), np.asarray(plain), atol=1e-5)
    assert np.abs(np.asarray(plain)).sum() > 0


@pytest.mark.parametrize("optimizer, lr", [("sgd", 0.05), ("adamw", 1e-2)])
def test_steps_reduce_the_loss(optimizer, lr):
    init, step = plain_jax_vit.make_step(CONFIG, optimizer, pad_to=16, implementation="xla", lr=lr)
    state = init(plain_jax_vit.init_params(CONFIG))
    images, labels = _batch()
    losses = []
    for _ in range(5):
        state, loss = step(state, images, labels)
        losses.append(float(loss))
    assert losses[-1] < losses[0], losses
