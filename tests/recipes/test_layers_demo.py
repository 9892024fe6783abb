from recipes import layers_demo


def test_layers_demo_decodes_through_the_cache_like_the_full_decoder():
    result = layers_demo.main(["--epochs", "1"])
    assert result["cached_equals_full"]
    assert 0.0 <= result["accuracy"] <= 1.0
