"""The repo's small real samples (see README.md here). Installed as `briskbert.data` with the parts the launchers'
defaults name (tokenizer/, glue/, corpus/en/), so a recipe's `data/...` paths work from a wheel too
(`briskbert.trainers.resources.data_path`); the domain samples stay in the clone."""
