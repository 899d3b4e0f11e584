"""Data for pretraining: raw text in, tokenized and packed rows out, masked and ordered per process."""
