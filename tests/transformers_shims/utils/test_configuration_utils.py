"""Stand-in for transformers' `tests/utils/test_configuration_utils.py`, which the sdist does not ship.

`ConfigTester.check_config_arguments_init` builds a config from `config_common_kwargs` (every attribute every
transformers config shares, each at a value other than its default) and checks each one is kept. The values here
are ours; the keys are filtered to those the installed `PreTrainedConfig` has.
"""

from transformers import PreTrainedConfig

_CANDIDATES = {
    "return_dict": False,
    "output_hidden_states": True,
    "output_attentions": True,
    "dtype": "float16",
    "tie_word_embeddings": False,
    "chunk_size_feed_forward": 5,
    "architectures": ["BertModel"],
    "finetuning_task": "translation",
    "id2label": {0: "label"},
    "label2id": {"label": "0"},
    "tokenizer_class": "BertTokenizerFast",
    "problem_type": "regression",
}
_BASE = PreTrainedConfig()
config_common_kwargs = {key: value for key, value in _CANDIDATES.items() if hasattr(_BASE, key)}
