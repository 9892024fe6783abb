"""How a translator decodes: the `beam_search` arguments, as one saved value."""

import dataclasses

from zoo.decoding.beam_search import check_search_options


@dataclasses.dataclass(frozen=True)
class SearchSettings:
    """The decoding settings of a translator: `zoo.decoding.beam_search`'s arguments.

    `zoo.Translator` keeps one and saves it (`get_config()` is JSON), the
    Marian converter reads one from a checkpoint's generation config, and
    the TF Serving export decodes with it. Greedy decoding is `beam_width=1`
    (beam search of width 1 picks the best token at every step).

    Args:
        beam_width: int. Hypotheses kept per sentence. Defaults to `4`.
        alpha: float. Length penalty exponent. Defaults to `0.6`.
        length_penalty_form: str. `"gnmt"` or `"power"`. Defaults to `"gnmt"`.
        search_rules: str. `"zoo"` or `"transformers"`. Defaults to `"zoo"`.
        max_length: int or None. Most target tokens (end token included);
            None: the model's `max_length`. Defaults to `None`.
        suppress_token_ids: tuple of int. Target ids never generated.
            Defaults to `()`.
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
        object.__setattr__(self, "alpha", float(self.alpha))
        if self.max_length is not None:
            object.__setattr__(self, "max_length", integer("max_length", self.max_length))
            if self.max_length < 1:
                raise ValueError(f"max_length must be None or >= 1. Received: max_length={self.max_length}")
        ids = tuple(integer("suppress_token_ids", t) for t in self.suppress_token_ids)
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
