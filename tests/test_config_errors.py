"""Schema violations of the config, said in a few lines with the fix (marsseg.config_errors)."""

from __future__ import annotations

import math
import re

import jsonschema
import pytest
import yaml
from workflow_runner import REPO

from marsseg.config_errors import check_finite, schema_error_message

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def message_for(change: dict) -> str:
    """The message for config.yaml with `change` merged in at the top level."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, value in change.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    validator = jsonschema.validators.validator_for(SCHEMA)(SCHEMA)
    with pytest.raises(jsonschema.ValidationError) as caught:
        validator.validate(config)  # raises the best match, as Snakemake's validate does
    return schema_error_message(caught.value)


def test_a_misspelt_key_is_named_with_the_likely_one_and_the_allowed_ones():
    message = message_for({"trainig": {}})
    assert message.startswith("config: the top level: Additional properties are not allowed")
    assert (
        "Fix: did you mean 'training' for 'trainig'? The keys allowed there: raw_data," in message
    )


def test_a_nested_misspelt_key_is_named_where_it_is():
    message = message_for({"training": {"learning_rat": 0.1}})
    assert message.startswith("config: training: ")
    assert "'learning_rate' for 'learning_rat'" in message


def test_a_string_where_a_value_belongs_points_at_the_config_flag_pitfall():
    message = message_for({"split": {"leaky": "true"}})
    assert message.startswith("config: split.leaky: 'true' is not of type 'boolean'. Fix:")
    assert "put the setting in a YAML file and add it with --configfile FILE" in message


def test_a_value_out_of_range_is_named_without_the_string_hint():
    message = message_for({"seeds": [-1]})
    assert message.startswith("config: seeds.0: -1 is less than the minimum of 0. Fix:")
    assert "--configfile" not in message  # a number, not a string from --config


def test_one_of_failures_name_the_closest_alternative():
    loss = {"name": "focal", "class_weights": [0, 1, 1, 1, 1, 1]}
    unet = {"architecture": "unet", "loss": loss}
    message = message_for({"variants": {"unet": unet}})
    assert message.startswith("config: variants.unet.loss.class_weights: [0, 1, 1, 1, 1, 1] is ")
    assert "too long" in message


def test_a_misspelt_name_gets_the_likely_one_not_the_config_flag_hint():
    message = message_for({"augmentation": {"steps": [{"name": "flip"}]}})
    assert message == (
        "config: augmentation.steps.0.name: 'flip' is not one of ['flips', 'rotate180', "
        "'brightness', 'contrast', 'gaussian_noise', 'big_rock_copy_paste', 'cutmix']. "
        "Fix: did you mean 'flips'? Use one of: flips, rotate180, brightness, contrast, "
        "gaussian_noise, big_rock_copy_paste, cutmix."
    )


@pytest.mark.parametrize(
    ("config", "where"),
    [
        ({"loss": {"class_weights": [0.0, 1.0, float("nan")]}}, "loss.class_weights.2 is nan"),
        ({"training": {"learning_rate": float("inf")}}, "training.learning_rate is inf"),
        ({"seeds": [42, -math.inf]}, "seeds.1 is -inf"),
    ],
)
def test_nan_and_infinity_are_refused_where_they_stand(config, where):
    with pytest.raises(ValueError, match=f"^config: {re.escape(where)}. Fix: give a finite number"):
        check_finite(config)


def test_the_shipped_config_is_finite():
    check_finite(yaml.safe_load((REPO / "config.yaml").read_text()))  # raises on a NaN
