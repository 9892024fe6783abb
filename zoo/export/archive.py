"""Writes a SavedModel from `tf.function` endpoints, the way both export writers do.

Through Keras' `ExportArchive`: it saves the variables the endpoints use
so that TF Serving's (TF1 session) loader restores them, which a bare
`tf.saved_model.save` of a Keras 3 model does not. Two things it would
otherwise do are turned off here:

- `ExportArchive.track(model)` lists the model's Keras variables besides the
  `tf.Variable`s the endpoints capture, and the checkpoint then holds every
  weight twice (16.9 MB of variables for 2.1 M float32 weights). Only
  resources the endpoints cannot find themselves (tokenizers, lookup
  tables) are tracked; the endpoints' variables are saved once.
- Custom gradients (Keras' int8 layers define them) are not saved: a
  server never differentiates, and they added 0.7 MB of functions.
"""

import keras
import tensorflow as tf


def write_saved_model(directory, endpoints, resources=()):
    """Writes `endpoints` (`{signature name: tf.function with an input signature}`) to `directory`.

    Args:
        directory: str. Where to write (must not exist yet).
        endpoints: dict. Signature names to `tf.function`s; the first is
            also `serving_default` unless one is named so.
        resources: TensorFlow trackables the endpoints use but the archive
            cannot find from their variables (tokenizers, lookup tables).
    """
    archive = keras.export.ExportArchive()
    for resource in resources:
        archive.track(resource)
    for name, function in endpoints.items():
        archive.add_endpoint(name, function)
    archive.write_out(directory, options=tf.saved_model.SaveOptions(experimental_custom_gradients=False), verbose=False)
