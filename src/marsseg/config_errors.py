"""A config that breaks the schema, said in a few lines with the fix (keras-free: the Snakefile
uses it), instead of jsonschema's dump of the whole schema and config."""

from __future__ import annotations

import difflib
import math

# Snakemake's --config reads a nested value with YAML's BaseLoader: every leaf is a string.
_STRING_HINT = (
    " If you set it with --config: Snakemake passes nested --config values as strings; put the "
    "setting in a YAML file and add it with --configfile FILE instead."
)


def schema_error_message(error) -> str:
    """The problem and the fix for a jsonschema ValidationError of the workflow's config."""
    error = _deepest(error)
    where = ".".join(str(part) for part in error.absolute_path) or "the top level"
    text = f"config: {where}: {error.message}."
    if error.validator == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        unexpected = [key for key in error.instance if key not in allowed]
        guesses = [
            f"'{match[0]}' for '{key}'"
            for key in unexpected
            if (match := difflib.get_close_matches(str(key), allowed, n=1))
        ]
        text += " Fix: " + (f"did you mean {', '.join(guesses)}? " if guesses else "")
        text += f"The keys allowed there: {', '.join(allowed)}."
    elif error.validator == "enum" and all(isinstance(v, str) for v in error.validator_value):
        # A misspelt name, not a value turned into a string by --config: name the likely one.
        match = difflib.get_close_matches(str(error.instance), error.validator_value, n=1)
        text += " Fix: " + (f"did you mean '{match[0]}'? " if match else "")
        text += f"Use one of: {', '.join(error.validator_value)}."
    else:
        description = " ".join(str(error.schema.get("description", "")).split())
        text += f" Fix: correct it in your config file{f' ({description})' if description else ''}."
        if isinstance(error.instance, str) and error.validator in (
            "type",
            "oneOf",
            "anyOf",
            "enum",
        ):
            text += _STRING_HINT
    return text


def check_finite(config, where: str = "") -> None:
    """Refuse NaN and infinity anywhere in the config (YAML's .nan, .inf): the schema's bounds
    let them through, as every comparison with NaN is false."""
    if isinstance(config, float) and not math.isfinite(config):
        raise ValueError(
            f"config: {where or 'the top level'} is {config}. Fix: give a finite number there "
            "(YAML's .nan and .inf are not settings)."
        )
    if isinstance(config, dict | list):
        items = config.items() if isinstance(config, dict) else enumerate(config)
        for key, value in items:
            check_finite(value, f"{where}.{key}" if where else str(key))


def _deepest(error):
    """For oneOf/anyOf, what went wrong in the alternative meant: the one of the value's own
    type (a list of 6 class weights: the list's error, not "'inverse_frequency' was expected");
    where no alternative or several have its type, the oneOf/anyOf error itself."""
    from jsonschema.exceptions import best_match

    while error.context:
        alternatives = {}
        for suberror in error.context:
            alternatives.setdefault(suberror.schema_path[0], []).append(suberror)
        of_its_type = [
            errors
            for errors in alternatives.values()
            if not any(e.validator in ("type", "const") and not e.relative_path for e in errors)
        ]
        if len(of_its_type) != 1:  # "not valid under any of the given schemas" says it
            return error
        error = best_match(of_its_type[0])
    return error
