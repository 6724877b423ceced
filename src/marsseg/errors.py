"""The one exception the workflow raises for bad input: it names the problem and the fix."""


class InputError(ValueError):
    """Bad input data or configuration. The message says what is wrong and how to fix it."""
