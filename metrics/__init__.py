"""The project's own `evaluate` metric modules, loaded by local path so nothing is fetched from the Hub.

    import evaluate
    from briskbert.metrics import metric_path
    glue = evaluate.load(metric_path("glue"), "mrpc")
    glue.compute(predictions=[1, 0], references=[1, 1])   # {'accuracy': 0.5, 'f1': 0.666...}

Each module follows the official definition of its benchmark and is built on scikit-learn, scipy and
seqeval: `glue` (GLUE, as the GLUE paper and its dev-set scripts), `super_glue` (SuperGLUE without ReCoRD),
`squad` (the official SQuAD v1.1 evaluation script), `seqeval_ner` (CoNLL entity-level P/R/F1 through seqeval)
and `classification` (accuracy and F1 for the domain tasks).
"""

from importlib.resources import files

MODULES = ("glue", "super_glue", "squad", "seqeval_ner", "classification")


def metric_path(name: str) -> str:
    """The file `evaluate.load` takes for one of this package's metric modules."""
    if name not in MODULES:
        raise ValueError(f"Unknown metric module {name!r}; this package ships {list(MODULES)}.")
    return str(files(__name__) / f"{name}.py")
