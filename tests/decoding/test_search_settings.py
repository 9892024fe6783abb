"""SearchSettings: beam_search's arguments as one saved, checked value."""

import json

import pytest

from zoo.decoding import SearchSettings


def test_config_round_trips_through_json_and_feeds_beam_search():
    settings = SearchSettings(
        beam_width=3, alpha=1.0, length_penalty_form="power", search_rules="transformers", max_length=12,
        suppress_token_ids=[5], force_end_at_max_length=True, early_stopping="never",
    )
    config = json.loads(json.dumps(settings.get_config()))
    assert SearchSettings.from_config(config) == settings
    assert settings.suppress_token_ids == (5,) and hash(settings) == hash(SearchSettings.from_config(config))
    assert settings.search_options() == dict(
        length_penalty_form="power", search_rules="transformers", suppress_token_ids=(5,),
        force_end_at_max_length=True, early_stopping="never",
    )


def test_replace_checks_names_and_values():
    settings = SearchSettings()
    assert settings.replace(beam_width=1).beam_width == 1 and settings.beam_width == 4
    with pytest.raises(ValueError, match=r"Unknown decoding settings \['beam'\]. Expected some of .*'beam_width'"):
        settings.replace(beam=2)
    with pytest.raises(ValueError, match="beam_width must be >= 1. Received: beam_width=0"):
        settings.replace(beam_width=0)
    with pytest.raises(ValueError, match="beam_width must be an int. Received: beam_width=2.5"):
        settings.replace(beam_width=2.5)
    with pytest.raises(ValueError, match="max_length must be None or >= 1"):
        settings.replace(max_length=0)
    with pytest.raises(ValueError, match="early_stopping must be .* search_rules='zoo'"):
        settings.replace(early_stopping=True)
    with pytest.raises(ValueError, match="search_rules must be one of"):
        SearchSettings.from_config({"search_rules": "fairseq"})
