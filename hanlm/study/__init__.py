"""The domain study (GitHub issue #7): does pretraining on the task's own domain pay?

`hanlm study` builds two pretraining corpora of equal size (reviews vs. Wikipedia/news),
pretrains one BERT on each with the same budget, fine-tunes them, a random-initialised model and
a TF-IDF + logistic-regression baseline on NSMC, KLUE-NLI and KLUE-NER, and writes a table,
plots and the raw results. See docs/RESULTS.md.
"""
