"""A task's model run on the active Keras backend, outside TensorFlow graphs.

On TensorFlow the task objects run their export's `tf.function`s, model
included. On JAX and PyTorch the model cannot run inside a TF graph, so the
tasks run their TF preprocessing and postprocessing as before and hand the
model part (beam search, a forward pass) to a `CompiledCall`:

- JAX: `jax.jit` of the function, with the model's variables passed as
  arguments through `keras.StatelessScope` (what Keras' own JAX trainer
  does), so one compilation per input shape serves every later call and
  the current weights are always the ones read (a jitted closure would
  bake in the weights it first saw);
- PyTorch: the function under `torch.no_grad()`;
- any other backend: the function as it is.

Written here because Keras offers this only inside `Model.predict`, whose
step function cannot run `zoo.decoding.beam_search`.
"""

import keras
import numpy as np


class CompiledCall:
    """`fn(*arrays)`, reading `model`'s variables, compiled for the active backend.

    Args:
        model: the Keras model whose variables `fn` reads.
        fn: callable taking and returning (nests of) tensors.

    Call arguments:
        *arrays: NumPy arrays.

    Returns:
        `fn`'s outputs as NumPy arrays, in the same nest.

    Example:
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> double = CompiledCall(model, lambda x: 2 * model(x))
    >>> double(np.ones((4, 3), "float32")).shape
    (4, 2)
    """

    def __init__(self, model, fn):
        self.model = model
        self.fn = fn
        self.backend = keras.backend.backend()
        self._jitted = None
        if self.backend == "jax":
            import jax

            def stateless(values, *arrays):
                with keras.StatelessScope(state_mapping=list(zip(self.model.variables, values))):
                    return self.fn(*arrays)

            self._jitted = jax.jit(stateless)

    def __call__(self, *arrays):
        if self._jitted is not None:
            outputs = self._jitted([v.value for v in self.model.variables], *arrays)
        elif self.backend == "torch":
            import torch

            with torch.no_grad():
                outputs = self.fn(*arrays)
        else:
            outputs = self.fn(*arrays)
        return keras.tree.map_structure(lambda x: np.asarray(keras.ops.convert_to_numpy(x)), outputs)
