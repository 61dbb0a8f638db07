"""Official evaluation metrics for hanlm's fine-tuning tasks, computed offline.

Every public function is pure and returns ``dict[str, float]`` with stable lower_snake_case
keys.

Scale convention: every score is a **percentage, 0-100** (Pearson r: -100 to 100), the scale
the KLUE leaderboard (KLUE-baseline multiplies every metric by 100) and the KorQuAD v1.0
evaluation script report, so hanlm's numbers read directly against published ones.

Each definition follows the official code, cited in its docstring:

- KLUE: ``klue_baseline/metrics/functional.py`` and ``klue_baseline/metrics/utils.py`` in
  KLUE-benchmark/KLUE-baseline (commit 443c38b), with the task definitions of the KLUE paper
  (Park et al., 2021, arXiv:2105.09680).
- KorQuAD v1.0: the official ``evaluate-v1.0.py`` ("KorQuAD v1.0에 대한 공식 평가 스크립트"),
  derived from SQuAD v1.1's script.

Where KLUE's code and its documentation disagree on what is measured (character F1 with or
without ``O``), the documented figure comes under the plain key and the code's figure under a
labelled one (``char_f1_klue_baseline``). Where the code has a quirk that no document
contradicts (KLUE-MRC's normaliser), the code is reproduced as written, since published
figures were made with it. Cases the official code leaves undefined (a class with no gold
example for AUPRC, no entity on either side for NER) are decided in the function's docstring.
"""

from hanlm.tasks.metrics.classification import KLUE_STS_THRESHOLD, accuracy, macro_f1, sts_scores
from hanlm.tasks.metrics.mrc import klue_mrc_scores, squad_scores
from hanlm.tasks.metrics.ner import KLUE_NER_ENTITY_TYPES, ner_scores
from hanlm.tasks.metrics.relation import re_scores

__all__ = [
    "KLUE_NER_ENTITY_TYPES",
    "KLUE_STS_THRESHOLD",
    "accuracy",
    "klue_mrc_scores",
    "macro_f1",
    "ner_scores",
    "re_scores",
    "squad_scores",
    "sts_scores",
]
