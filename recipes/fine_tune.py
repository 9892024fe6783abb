"""`train --init-from PATH`: what both recipes do to fine-tune a pretrained checkpoint.

A fine-tune is a run like any other (`recipes.run_folder`: a new run,
resumed with the same command, continued with more epochs); its config
names the checkpoint, and every (re)start loads it again before the run's
backup restores its own weights. The checkpoint brings the architecture,
the tokenizers (a translator's vocabulary is not learned again) or the
image preprocessing; the recipe's data brings the classes (a new head when
they differ, `zoo.tasks.fine_tuning.with_new_head`) and may ask for another
`--image-size` (the position table is resampled). `evaluate --init-from`
scores a checkpoint without training it.

The checkpoint is read and checked before anything is written, so a bad
`--init-from` leaves `--output` as it was (`check_flags`, `load_checkpoint`).
"""

INIT_FROM_HELP = (
    "fine-tune a pretrained checkpoint instead of training from scratch: a zoo task folder (or a recipe's run "
    "folder), a MarianMT folder, an HF ViT folder, or a timm folder or weights file (with --architecture); "
    "none: from scratch"
)
TRANSLATOR_INIT_FROM_HELP = (
    "fine-tune a pretrained checkpoint instead of training from scratch, with its tokenizers: a zoo task folder "
    "(or a recipe's run folder) or a MarianMT folder (OPUS-MT); none: from scratch"
)
ARCHITECTURE_HELP = "timm architecture of an --init-from weights file (e.g. vit_tiny_patch16_224); none: read it"
FREEZE_HELP = "with --init-from: train the classification head only (the backbone is frozen)"
LORA_HELP = (
    "with --init-from: train LoRA adapters of this rank on the attention and feed-forward projections, "
    "everything else frozen; merged into the weights before the model is saved and exported; none: off"
)
LEARNING_RATE_NOTE = "none: {scratch} from scratch, {fine} with --init-from ({lora} with --lora-rank)"
# LoRA trains few, freshly initialised weights: it wants a higher rate than full fine-tuning
# (the LoRA paper's GLUE runs use 2e-4 to 5e-4, ten times and more what full fine-tuning uses).
LORA_RATE_FACTOR = 10.0


def check_flags(config):
    """Raises ValueError for fine-tuning flags that make no sense together (before anything is written)."""
    fine_tuning_only = [("lora_rank", "--lora-rank"), ("architecture", "--architecture"),
                        ("freeze_backbone", "--freeze-backbone")]
    if not config.init_from:
        given = [flag for name, flag in fine_tuning_only if getattr(config, name, None)]
        if given:
            raise ValueError(f"{', '.join(given)} fine-tune a checkpoint: give --init-from PATH too.")
    if getattr(config, "freeze_backbone", False) and config.lora_rank:
        raise ValueError("--freeze-backbone and --lora-rank each choose what trains: give one of them.")


def load_checkpoint(config, task_class):
    """`--init-from` as a task object of `task_class` (`zoo.tasks.fine_tuning.load_pretrained`)."""
    from zoo.tasks.fine_tuning import load_pretrained

    check_flags(config)
    task = load_pretrained(config.init_from, getattr(config, "architecture", None))
    if not isinstance(task, task_class):
        raise ValueError(f"--init-from {config.init_from} holds a {type(task).__name__}; this recipe fine-tunes a "
                         f"{task_class.__name__}.")
    print(f"fine-tuning {task!r} from {config.init_from}")
    return task


def adapt(task, config):
    """Chooses what trains: the head only (`--freeze-backbone`), LoRA adapters (`--lora-rank`), or all."""
    from zoo.tasks.fine_tuning import enable_lora, freeze_backbone

    if getattr(config, "freeze_backbone", False):
        import numpy as np

        freeze_backbone(task)
        model = task.model
        trained = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
        print(f"--freeze-backbone: {model.head.name!r} trains ({trained:,} of {model.count_params():,} parameters)")
    elif config.lora_rank:
        enable_lora(task, config.lora_rank)


def in_scope(task, config):
    """The task's model made ready to train, called under the engine's scope (`devices.training_scope`):
    rebuilt there under `--distribute` (its variables laid out by the engine), then `adapt`ed."""
    if config.distribute != "none":
        model = type(task.model).from_config(task.model.get_config())
        model.set_weights(task.model.get_weights())
        task.model = model
    adapt(task, config)
    return task.model


def learning_rate(config, scratch, fine_tuning):
    """`--learning-rate` if given; else the from-scratch rate, or the fine-tuning one (ten times it for LoRA)."""
    if config.learning_rate is not None:
        return config.learning_rate
    if not config.init_from:
        return scratch
    return fine_tuning * (LORA_RATE_FACTOR if config.lora_rank else 1.0)


def learning_rate_help(scratch, fine_tuning):
    return LEARNING_RATE_NOTE.format(scratch=scratch, fine=fine_tuning, lora=fine_tuning * LORA_RATE_FACTOR)


def align_classes(data, class_names, what):
    """`data` (`zoo.data.image_data.ImageSplits`) with its labels indexing `class_names` instead of its own.

    Raises ValueError naming the data's classes that are not among `class_names`.
    """
    import dataclasses

    import numpy as np

    if list(data.class_names) == list(class_names):
        return data
    missing = [name for name in data.class_names if name not in class_names]
    if missing:
        shown = ", ".join(repr(n) for n in missing[:10]) + (", ..." if len(missing) > 10 else "")
        known = ", ".join(repr(n) for n in list(class_names)[:10]) + (", ..." if len(class_names) > 10 else "")
        raise ValueError(f"The data's classes {shown} are not classes of {what} (it has {len(class_names)}: "
                         f"{known}). Expected folder names among its class names.")
    index = np.array([list(class_names).index(name) for name in data.class_names], np.int32)
    splits = {split: (getattr(data, split)[0], index[np.asarray(getattr(data, split)[1])])
              for split in ("train", "validation", "test")}
    return dataclasses.replace(data, **splits, class_names=list(class_names))
