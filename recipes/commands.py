"""The recipes' `train`, `evaluate` and `export` commands, run on their run folder.

`run_command` builds the run's config (the saved one and the flags, or the
defaults and the flags: `recipes.run_folder` says when the saved one
applies), prints what it does, imports TensorFlow and calls the recipe's
command. `train` runs under `recipes.train_lock` with the folder's plan;
`evaluate` and `export` are recorded in the run's `run.json`.
"""

import os

from recipes import common
from recipes.run_folder import NEW, RunFolder
from recipes.train_lock import train_lock


def run_command(args, config_class, commands, recipe, config_file="config.json", artifacts=()):
    """Runs `train`, `evaluate` or `export` on the run `args` name: the plan, the config, the command.

    `commands[name]` takes the config (`train` also takes the `RunFolder`).
    A config field not given as a flag comes from `<output>/<config_file>`
    when the run reuses it (`evaluate`, `export`, and `train` when it
    resumes, continues or finishes a run), else from the defaults.
    """
    output = common.output_directory(args, config_class)
    run = RunFolder(output, recipe, config_file, artifacts)
    saved = run.path(config_file)
    if args.command != "train":
        config = common.config_from_args(args, config_class, saved)
        origin = f"config from {saved} and flags" if os.path.exists(saved) else "no saved config"
        print(f"{args.command}: {config.output} ({origin})")
        run.config = config
        common.import_tensorflow(getattr(args, "verbose", False))
        return run.run_phase_command(args.command, lambda: commands[args.command](config))
    with train_lock(output):
        run.recover()
        origin = run.plan_train(common.given_flags(args, config_class), getattr(args, "overwrite", False))
        run.config = config = common.config_from_args(args, config_class, saved if run.plan != NEW else None)
        print(f"train: {config.output} ({origin})")
        run.prepare_training()
        try:
            common.import_tensorflow(getattr(args, "verbose", False))
            return commands["train"](config, run)
        except BaseException:
            run.put_back_earlier_run()
            raise
