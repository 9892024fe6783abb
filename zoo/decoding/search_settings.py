"""How a translator decodes: the `beam_search` arguments, as one saved value.

Settings come from `task.json` files that may have travelled, so each is
range-checked where it is made, with the limit named:

- `beam_width` from 1 to `MAX_BEAM_WIDTH` (256). A request of B sentences
  holds B x 2W candidate rows of logits and B x W cached decoder states, so
  memory grows linearly with the width (10**9 was OOM-killed at the first
  translate), while translation quality stops improving at small widths
  and drops at large ones (Koehn and Knowles, 2017, "Six Challenges for
  Neural Machine Translation", challenge 6: beam search). 256 is 64 times
  the default, room for n-best lists, reranking and exhaustive checks of
  small vocabularies (the tests' oracle uses 150); a width past it is a
  mistake, not a choice;
- `max_length` from 1 to the model's own `max_length` (`check_model`): the
  model has no positions past it (learned positions end there; sinusoidal
  ones were never trained past it), and the export would silently cut a
  longer setting to it;
- `alpha` finite (a NaN or infinite penalty makes every score NaN or
  infinite), suppressed ids inside the model's target vocabulary.
"""

import dataclasses
import math

from zoo.decoding.beam_search import check_search_options

MAX_BEAM_WIDTH = 256  # see the module docstring


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """The decoding settings of a translator: `zoo.decoding.beam_search`'s arguments.

    `zoo.Translator` keeps one and saves it (`get_config()` is JSON), the
    Marian converter reads one from a checkpoint's generation config, and
    the TF Serving export decodes with it. Greedy decoding is `beam_width=1`
    (beam search of width 1 picks the best token at every step).

    Args:
        beam_width: int. Hypotheses kept per sentence, 1 to `MAX_BEAM_WIDTH`
            (256). Defaults to `4`.
        alpha: float. Length penalty exponent (finite). Defaults to `0.6`.
        length_penalty_form: str. `"gnmt"` or `"power"`. Defaults to `"gnmt"`.
        search_rules: str. `"zoo"` or `"transformers"`. Defaults to `"zoo"`.
        max_length: int or None. Most target tokens (end token included), at
            most the model's `max_length` (`check_model`); None: the
            model's. Defaults to `None`.
        suppress_token_ids: tuple of int. Target ids never generated (in
            the model's target vocabulary, `check_model`). Defaults to `()`.
        force_end_at_max_length: bool. The last allowed token is the end
            token. Defaults to `False`.
        early_stopping: `False`, `True` or `"never"` (transformers' rules
            only). Defaults to `False`.

    Example:
    >>> settings = SearchSettings(beam_width=2)
    >>> settings.replace(alpha=1.0).alpha, settings.beam_width
    (1.0, 2)
    >>> SearchSettings.from_config(settings.get_config()) == settings
    True
    >>> SearchSettings(beam_width=10**9)
    Traceback (most recent call last):
    ...
    ValueError: beam_width must be at most 256 (...). Received: beam_width=1000000000
    """

    beam_width: int = 4
    alpha: float = 0.6
    length_penalty_form: str = "gnmt"
    search_rules: str = "zoo"
    max_length: int = None
    suppress_token_ids: tuple = ()
    force_end_at_max_length: bool = False
    early_stopping: object = False

    def __post_init__(self):
        def integer(name, value):
            try:
                ok = not isinstance(value, bool) and int(value) == value
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"{name} must be an int. Received: {name}={value!r}")
            return int(value)

        object.__setattr__(self, "beam_width", integer("beam_width", self.beam_width))
        if self.beam_width > MAX_BEAM_WIDTH:
            raise ValueError(
                f"beam_width must be at most {MAX_BEAM_WIDTH} (memory grows with it and quality does not; "
                f"see zoo.decoding.search_settings). Received: beam_width={self.beam_width}"
            )
        try:
            alpha = float(self.alpha)
        except (TypeError, ValueError):
            alpha = math.nan
        if not math.isfinite(alpha):
            raise ValueError(f"alpha must be a finite number. Received: alpha={self.alpha!r}")
        object.__setattr__(self, "alpha", alpha)
        if self.max_length is not None:
            object.__setattr__(self, "max_length", integer("max_length", self.max_length))
            if self.max_length < 1:
                raise ValueError(f"max_length must be None or >= 1. Received: max_length={self.max_length}")
        if isinstance(self.suppress_token_ids, (str, bytes)) or not hasattr(self.suppress_token_ids, "__iter__"):
            raise ValueError(f"suppress_token_ids must be a list of ids. Received: {self.suppress_token_ids!r}")
        ids = tuple(integer("suppress_token_ids", t) for t in self.suppress_token_ids)
        if any(t < 0 for t in ids):
            raise ValueError(f"suppress_token_ids must be ids >= 0. Received: {[t for t in ids if t < 0][:10]}")
        object.__setattr__(self, "suppress_token_ids", ids)
        if not isinstance(self.force_end_at_max_length, bool):
            raise ValueError(f"force_end_at_max_length must be a bool. Received: {self.force_end_at_max_length!r}")
        check_search_options(self.beam_width, self.length_penalty_form, self.search_rules, self.early_stopping)

    def replace(self, **changes):
        """A copy with `changes`; unknown names are an error that lists the known ones."""
        known = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"Unknown decoding settings {unknown}. Expected some of {sorted(known)}.")
        return dataclasses.replace(self, **changes)

    def check_model(self, model):
        """Raises a ValueError naming the first setting `model` cannot serve.

        `max_length` above the model's `max_length`, or a suppressed id
        outside its target vocabulary (`model.target_vocab_size`).
        """
        if self.max_length is not None and self.max_length > model.max_length:
            raise ValueError(
                f"max_length must be at most the model's max_length={model.max_length} (it has no positions "
                f"past it). Received: max_length={self.max_length}"
            )
        outside = [t for t in self.suppress_token_ids if t >= model.target_vocab_size]
        if outside:
            raise ValueError(
                f"suppress_token_ids must be ids of the model's target vocabulary (< {model.target_vocab_size}). "
                f"Received: {outside[:10]}"
            )

    def search_options(self):
        """The `beam_search` keyword arguments besides `beam_width`, `alpha` and `max_length`."""
        return dict(
            length_penalty_form=self.length_penalty_form,
            search_rules=self.search_rules,
            suppress_token_ids=self.suppress_token_ids,
            force_end_at_max_length=self.force_end_at_max_length,
            early_stopping=self.early_stopping,
        )

    def get_config(self):
        """The settings, as JSON types."""
        return dict(dataclasses.asdict(self), suppress_token_ids=list(self.suppress_token_ids))

    @classmethod
    def from_config(cls, config):
        """Reads `get_config()`'s dict; names unknown keys."""
        return cls().replace(**config)
