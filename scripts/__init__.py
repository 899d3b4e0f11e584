"""The launchers, one module per job: each parses its config and makes one call into `briskbert.trainers`.
Installed as console scripts (`briskbert-pretrain`, ...) and runnable as `accelerate launch -m
briskbert.scripts.<job>` or, from a clone, `python scripts/<job>.py`."""
