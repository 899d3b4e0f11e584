"""Bundled recipes: YAML files of what differs from a launcher's defaults, addressable by name
(`--config tiny-cpu`, `--variant bio`, `tasks/sst2`); see `briskbert.trainers.resources`."""
