"""Glue shared by the recipes: flags <-> config dataclasses, strategies, callbacks."""

import argparse
import contextlib
import dataclasses
import json
import os
import types
import typing


def _flag_type(field_type):
    """The argparse type of a dataclass field (`int | None` -> int)."""
    args = [a for a in typing.get_args(field_type) if a is not type(None)]
    if isinstance(field_type, types.UnionType) or typing.get_origin(field_type) is typing.Union:
        field_type = args[0]
    return _parse_bool if field_type is bool else field_type


def _parse_bool(value):
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, received {value!r}")


def add_config_flags(parser, config_class):
    """One `--flag` per config field; unset flags are left out of the namespace."""
    for field in dataclasses.fields(config_class):
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            dest=field.name,
            type=_flag_type(field.type),
            default=argparse.SUPPRESS,
            help=f"default: {field.default}",
        )


def config_from_args(args, config_class, saved_path):
    """The saved config of an existing run (if any), updated with the flags given."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_class) if hasattr(args, f.name)}
    base = {}
    if os.path.exists(saved_path):
        with open(saved_path) as f:
            base = json.load(f)
    known = {f.name for f in dataclasses.fields(config_class)}
    return config_class(**{k: v for k, v in {**base, **given}.items() if k in known})


def save_config(config, path):
    with open(path, "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)


STRATEGIES = ("none", "mirrored", "multi-worker")


@contextlib.contextmanager
def strategy_scope(name):
    """Builds models and optimizers under a `tf.distribute` strategy.

    `mirrored`: all local GPUs (or CPUs); `multi-worker`: the cluster in
    `TF_CONFIG`. Keras' `fit` then shards batches across replicas.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown --distribute {name!r}. Expected one of {STRATEGIES}.")
    if name == "none":
        yield None
        return
    import tensorflow as tf

    if name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    print(f"{name}: {strategy.num_replicas_in_sync} replicas")
    with strategy.scope():
        yield strategy


def training_callbacks(output, patience):
    """Checkpoint every epoch, resume after interruption, early stopping, TensorBoard."""
    import keras

    return [
        keras.callbacks.BackupAndRestore(os.path.join(output, "backup")),
        keras.callbacks.ModelCheckpoint(os.path.join(output, "checkpoints", "epoch_{epoch:03d}.weights.h5"),
                                        save_weights_only=True),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True),
        keras.callbacks.TensorBoard(os.path.join(output, "logs")),
    ]


def progress_verbosity():
    """Keras progress bars on a terminal; one line per epoch in logs and CI."""
    import sys

    return 1 if sys.stdout.isatty() else 2


def recipe_parser(prog, doc, config_class):
    """An argparse parser with `train`, `evaluate` and `export` subcommands taking config flags.

    Returns `(parser, subparsers)` so a recipe can add its serving command.
    """
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("train", "evaluate", "export"):
        add_config_flags(sub.add_parser(name), config_class)
    return parser, sub


def run_config_command(args, config_class, config_file, commands):
    """Builds the run's config (saved one + flags) and calls `commands[args.command](config)`."""
    config = config_from_args(args, config_class, os.path.join(args.output, config_file))
    return commands[args.command](config)


def load_trained_model(output, recipe):
    """`<output>/model.keras`, or a clear error saying which command makes it."""
    import keras

    path = os.path.join(output, "model.keras")
    if not os.path.exists(path):
        raise FileNotFoundError(f"No trained model at {path}; run `python -m recipes.{recipe} train` first.")
    return keras.saving.load_model(path)
