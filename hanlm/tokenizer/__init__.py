"""WordPiece tokenizers for Korean: training (``hanlm tokenizer train``) and loading.

- :func:`train_tokenizer` / :class:`TokenizerTrainConfig`: corpus -> tokenizer directory
  (tokenizer.json, vocab.txt, tokenizer_config.json, special_tokens_map.json,
  hanlm_tokenizer.json) that stock ``transformers.AutoTokenizer`` loads.
- :class:`KoreanTokenizer`: what the rest of hanlm uses (special ids, eojeol starts).
- :func:`kiwi_split`: the morpheme pre-split a ``--pretokenize kiwi`` vocabulary expects.
"""

from hanlm.tokenizer.korean import KoreanTokenizer
from hanlm.tokenizer.pretokenize import kiwi_split
from hanlm.tokenizer.train import TokenizerTrainConfig, train_tokenizer

__all__ = ["KoreanTokenizer", "TokenizerTrainConfig", "kiwi_split", "train_tokenizer"]
