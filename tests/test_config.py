import pytest

from llmclf.config import ConfigError, EmbeddingHeadConfig, config_for


def test_defaults_are_valid_and_round_trip():
    cfg = EmbeddingHeadConfig()
    assert EmbeddingHeadConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError) as e:
        EmbeddingHeadConfig.from_dict({"lr": 0.1})
    assert "'lr'" in str(e.value) and "learning_rate" in str(e.value)


@pytest.mark.parametrize("name, value, words", [
    ("lora_r", "8", "integer"),
    ("learning_rate", "fast", "number"),
    ("multi_label", 1, "bool"),
    ("quantization", "3bit", "['none', '8bit', '4bit']"),
    ("pooling", "cls", "['last', 'mean']"),
    ("lora_target_modules", "q_proj", "list"),
    ("max_train", 0, "positive"),
    ("batch_size", 0, ">= 1"),
    ("warmup_ratio", 1.5, "[0, 1)"),
])
def test_bad_values_name_the_parameter(name, value, words):
    with pytest.raises(ConfigError) as e:
        EmbeddingHeadConfig(**{name: value})
    assert name in str(e.value) and words in str(e.value)


def test_ints_are_accepted_as_floats_and_none_where_optional():
    cfg = EmbeddingHeadConfig(learning_rate=1, epochs=2, max_train=None)
    assert isinstance(cfg.learning_rate, float) and cfg.max_train is None


def test_quantized_full_fine_tuning_is_refused():
    with pytest.raises(ConfigError, match="use_lora"):
        EmbeddingHeadConfig(use_lora=False, quantization="4bit")


def test_every_field_has_help_text():
    import dataclasses

    for f in dataclasses.fields(EmbeddingHeadConfig):
        assert f.metadata.get("help"), f.name


def test_unknown_notebook():
    with pytest.raises(ConfigError, match="known notebooks"):
        config_for("99_nothing")
