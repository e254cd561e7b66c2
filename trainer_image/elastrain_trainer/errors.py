"""Errors the trainer can pin on one field of the TrainingJob spec.

A run-time failure that comes from the user's input (a data path, a model source, a tokenizer, a
checkpoint URI) must say which field, in the API's spelling (``spec.trainer.data.path``), the
value found and what to do, never only a Python exception's name. :class:`SpecError` carries those
three parts; the driver stops on it at once (it would fail the same way on every retry), the head
writes its message to the termination log and the operator puts it in the job's Failed condition.
"""

from __future__ import annotations


class SpecError(ValueError):
    """Bad input found at run time: ``field`` (API spelling) held ``value``; ``fix`` says what to do."""

    def __init__(self, field: str, value: object, problem: str, fix: str) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        self.fix = fix
        super().__init__(f"{field}: {problem} (value: {value!s}); {fix}")
