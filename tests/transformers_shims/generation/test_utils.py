"""Stand-in for transformers' `tests/generation/test_utils.py`, which the sdist does not ship: BriskBERT is an encoder
and cannot `generate`, so its tester does not inherit `GenerationTesterMixin` (the common tests check exactly that)."""


class GenerationTesterMixin:
    pass
