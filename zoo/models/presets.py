"""`from_preset` / `presets` plumbing shared by the zoo models.

Presets are plain dicts `{name: {"config": {...}, "description": str}}` kept
next to each model in `<model>_presets.py`.
"""


def preset_config(presets, name, overrides, model_name):
    """The config of preset `name` updated with `overrides`; clear error if unknown."""
    if name not in presets:
        raise ValueError(
            f"Unknown {model_name} preset {name!r}. Available presets: {sorted(presets)}"
        )
    config = dict(presets[name]["config"])
    config.update(overrides)
    return config


def preset_descriptions(presets):
    """`{name: description}` for listing presets."""
    return {name: preset["description"] for name, preset in presets.items()}
