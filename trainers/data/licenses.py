"""The licenses of training data: what a model card says about the data a model was trained on.

Corpora are known by their path under a `data/` root (data/README.md and the development data's README list
them); a downstream task's license is part of its registry entry (hub_configs/tasks/<task>.yaml).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class DataLicense:
    license: str  # as written in the data's README
    language: str
    non_commercial: bool = False
    share_alike: bool = False
    unknown: bool = False  # no license stated: the card says "other" and asks users to check


# Training corpora under a `data/` root, by path prefix.
DATA_LICENSES = {
    "corpus/en/us_inaugural_addresses": DataLicense("US public domain", "en"),
    "corpus/en/state_of_the_union_addresses": DataLicense("US public domain", "en"),
    "corpus/en/brown_corpus": DataLicense("Brown Corpus: redistribution permitted", "en"),
    "corpus/en/movie_reviews_polarity": DataLicense("distributed with NLTK by permission", "en", unknown=True),
    "corpus/en/abc_news_rural_science": DataLicense("ABC news as distributed with NLTK; no license stated", "en",
                                                    unknown=True),
    "corpus/en/webtext": DataLicense("NLTK webtext; no license stated", "en", unknown=True),
    "corpus/biomedical/pubmed_sentences_mtl": DataLicense("CC BY 4.0", "en"),
    "corpus/biomedical/pubmedqa_abstracts": DataLicense("MIT", "en"),
    "corpus/legal/legalbench_texts_en": DataLicense("CC BY 4.0, some tasks CC BY-NC 4.0", "en", non_commercial=True),
    "corpus/legal/german_federal_court_decisions": DataLicense("CC BY 4.0", "de"),
    "corpus/german/news_10kgnad": DataLicense("CC BY-NC-SA 4.0", "de", non_commercial=True, share_alike=True),
    "corpus/german/ud_german_gsd": DataLicense("CC BY-SA 4.0", "de", share_alike=True),
    "corpus/german/fortunes_de_zitate": DataLicense("GPL-2.0-or-later", "de"),
    "corpus/tunisian/tarc_": DataLicense("CC BY-NC-SA 4.0", "aeb", non_commercial=True, share_alike=True),
    "corpus/tunisian/social_comments_tsac_tunizi": DataLicense("TSAC LGPL-3.0; TUNIZI no license stated", "aeb",
                                                               unknown=True),
    "corpus/tunisian/icompass_arabizi": DataLicense("competition data; no license stated", "aeb", unknown=True),
}
