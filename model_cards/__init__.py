"""Jinja templates of the model cards (base, domain, fine-tuned, adapter), rendered by
`briskbert.trainers.hub.model_card`."""
