"""Domain and language variants of BriskBERT: recipes, resumable stages, and the build."""
