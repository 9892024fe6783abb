"""Training glue shared by the recipes: seeding, `fit` with its callbacks, and the summary line.

`fit` trains a run so that an interrupted one, resumed with the same
command, ends with the weights an uninterrupted one has, bit for bit on a
CPU with op determinism (`seed_everything`):

- every epoch is the same number of batches (`--steps-per-epoch`, else one
  pass over the training set), drawn from one endless stream
  (`train.repeat()`), so the data of epoch N is the stream's batches
  `N * steps` to `(N + 1) * steps`, whatever shuffling and augmentation the
  dataset does;
- a resumed run restores the backup of its last finished epoch
  (`recipes.run_backup.RunBackup`: weights, optimizer state and its step,
  the model's dropout seeds, early stopping's state and best weights) and
  skips the batches the finished epochs used (`Dataset.skip`, which runs
  them through the input pipeline: its shuffle order and the random state
  of its augmentation advance as they did).

Keras' `EarlyStopping` and `TensorBoard` are used as they are; Keras'
`BackupAndRestore` and `ModelCheckpoint` are not: they write their files in
place (a full disk leaves a half-written file as the only copy) and save
neither early stopping's state nor the model's seeds, so a resumed run
stopped early on its own epochs only and drew other dropout masks.
`training_summary` says why training stopped and which epoch's weights the
model kept, which Keras' `EarlyStopping(verbose=1)` does not.
"""

import sys
import time
import warnings

from recipes import devices


def seed_everything(seed, determinism="auto"):
    """Seeds Python, NumPy, TensorFlow and Keras; with determinism, TensorFlow ops too.

    `auto` turns op determinism on when the training backend sees no GPU
    (`devices.has_gpu`): on CPU it costs little, and it makes tf.data's
    parallel augmentation reproducible. On GPUs it slows training and some
    ops have no deterministic kernel. Returns whether op determinism is on.
    """
    import keras
    import tensorflow as tf

    from recipes.common import DETERMINISM

    if determinism not in DETERMINISM:
        raise ValueError(f"determinism must be one of {DETERMINISM}. Received: {determinism!r}")
    keras.utils.set_random_seed(seed)
    on = determinism == "on" or (determinism == "auto" and not devices.has_gpu())
    if on:
        tf.config.experimental.enable_op_determinism()
    return on


def batches_per_epoch(train):
    """Batches in one pass over `train`: its cardinality, else counted by one pass (bucketed batches)."""
    import tensorflow as tf

    count = int(train.cardinality())
    if count == tf.data.INFINITE_CARDINALITY:
        raise ValueError("The training dataset is endless: give --steps-per-epoch.")
    if count < 0:
        count = int(train.reduce(0, lambda n, _: n + 1))
    if count == 0:
        raise ValueError("The training dataset holds no batches.")
    return count


def training_summary(early_stopping, epochs_done, epochs, output):
    """Why training ended and which epoch's weights the model now holds, in one line.

    `early_stopping` is the `keras.callbacks.EarlyStopping` after `fit`;
    `epochs_done` the number of epochs finished (across resumed runs),
    `epochs` the number asked for.
    """
    from recipes.run_folder import best_weights_path

    if early_stopping.stopped_epoch > 0:
        ended = (
            f"stopped early after epoch {early_stopping.stopped_epoch + 1} of {epochs}: validation loss "
            f"did not improve for {early_stopping.patience} epochs"
        )
    else:
        ended = f"ran {epochs_done} of {epochs} epochs"
    if early_stopping.best_weights is None:  # no validation loss was seen
        return f"Training {ended}; kept the last epoch's weights."
    return (
        f"Training {ended}; kept the weights of epoch {early_stopping.best_epoch + 1} "
        f"(lowest validation loss, {early_stopping.best:.4f}), also in {best_weights_path(output)}."
    )


def fit(model, train, validation, config, run, engine=None):
    """Trains `model` for the run `run` (a `recipes.run_folder.RunFolder`): new, resumed or continued.

    Prints where a resumed run starts, the time taken (this run's and, after
    a resume, all runs') and `training_summary`, and records the summary in
    the run folder. Under a `keras.distribution` `engine` (JAX), every batch
    is cut to a multiple of the pieces the engine splits it into
    (`zoo.distribution.even_batches`). Returns Keras' `History` of this run's
    epochs.
    """
    import keras

    from recipes.run_backup import RunBackup
    from zoo import distribution

    shards = distribution.batch_shards(engine)
    if shards > 1:
        print(f"each batch is split {shards} ways: batches are cut to a multiple of {shards} examples")
    train, validation = (distribution.even_batches(data, shards) for data in (train, validation))
    if shards > 1 and not any(True for _ in validation.take(1)):
        raise ValueError(f"No validation batch holds the {shards} examples that --distribute splits each batch into "
                         f"(one per device): give more validation data, or run on fewer devices.")
    steps = config.steps_per_epoch or batches_per_epoch(train)
    early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                                   restore_best_weights=True)
    backup = RunBackup(run, model, early_stopping, steps)
    start, end = backup.initial_epoch, backup.final_epoch(config.epochs)
    stream = train.repeat()
    if backup.resumed_from is not None:
        if start < end:
            stream = stream.skip(backup.batches_done)
        print(f"resuming at epoch {start + 1} of {config.epochs} from {backup.resumed_from} (weights, optimizer, "
              f"early stopping and random state of epoch {start}; the input pipeline replays the batches of the "
              f"first {start} epochs)" if start < end else
              f"resuming after epoch {start} of {config.epochs} from {backup.resumed_from}: no epoch is left to train")
    callbacks = [early_stopping, backup.callback(), keras.callbacks.TensorBoard(run.path("logs"))]
    started = time.time()
    with warnings.catch_warnings():
        # Keras warns at the end of every pass over a validation set of unknown
        # length (bucketed batches) that the input "ran out of data" and
        # suggests .repeat(); for a finite set that is its end, not a problem.
        warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
        # Keras builds the model, its loss and metrics from a first batch before training (on JAX and under
        # tf.distribute), drawn from a training iterator it then drops: with random augmentation that moves
        # its random state on by as many batches as the pipeline had prepared, a number that varies. Built on
        # a validation batch here, training draws nothing before its first step.
        model.evaluate(validation.take(1), verbose=0)
        history = model.fit(
            stream,
            validation_data=validation,
            epochs=end,
            initial_epoch=start,
            steps_per_epoch=steps,
            callbacks=callbacks,
            shuffle=False,  # the datasets shuffle themselves (seeded)
            verbose=progress_verbosity(),
        )
    here = time.time() - started
    earlier = backup.seconds_before
    print(f"training took {here:.0f} s" + (f" here, {earlier + here:.0f} s in all with the earlier runs' epochs"
                                           if backup.resumed_from is not None else ""))
    print(training_summary(early_stopping, backup.epochs_done, config.epochs, run.output))
    run.record_training(
        epochs=config.epochs, epochs_done=backup.epochs_done, seconds=round(earlier + here, 1),
        best_epoch=early_stopping.best_epoch + 1 if early_stopping.best_weights is not None else None,
        val_loss=None if early_stopping.best is None else float(early_stopping.best),
        stopped_early=early_stopping.stopped_epoch > 0,
    )
    return history


def progress_verbosity():
    """Keras progress bars on a terminal; one line per epoch in logs and CI."""
    return 1 if sys.stdout.isatty() else 2
