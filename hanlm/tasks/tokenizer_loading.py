"""Loading a model directory's tokenizer for a task, as published models ship it.

A fast tokenizer (character offsets map predictions back to the text) from `tokenizer.json`, or
built by `transformers` from a `vocab.txt` (the klue/bert-base layout); one that would turn
Hangul into jamo is refused; a model with a single token type (RoBERTa) gets type 0 for the
second text of a pair; a ``--pretokenize kiwi`` vocabulary cuts words into morphemes first, as
it was trained (``KiwiTokenizerFast``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer

from hanlm.errors import HanlmError
from hanlm.tokenizer.kiwi_fast import KiwiTokenizerFast
from hanlm.tokenizer.korean import pretokenize_mode


def load_tokenizer(directory: Path) -> Any:
    """The model's fast tokenizer: ``tokenizer.json``, or built by transformers from a
    ``vocab.txt`` (+ ``tokenizer_config.json``, as klue/bert-base has) or a SentencePiece model.
    Hangul must come through intact; a model with one token type gets type ids 0 only."""
    _check_sentencepiece(directory)
    try:
        tokenizer = AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError) as e:
        raise HanlmError(f"cannot load the tokenizer: {' '.join(str(e).split())}",
                         path=str(directory)) from None
    if not tokenizer.is_fast:
        raise HanlmError("tasks need a fast tokenizer (tokenizer.json) for character offsets",
                         path=str(directory))
    _check_korean(tokenizer, directory)
    if _token_types(directory) == 1:
        _single_token_type(tokenizer)
    if pretokenize_mode(directory) == "kiwi":
        return KiwiTokenizerFast(tokenizer, directory)
    return tokenizer


def _check_sentencepiece(directory: Path) -> None:
    """transformers converts a SentencePiece model (XLM-R's sentencepiece.bpe.model, T5's
    spiece.model) to a fast tokenizer with the `sentencepiece` package, which hanlm does not
    depend on; without it the error transformers gives is about tiktoken."""
    import importlib.util

    if (directory / "tokenizer.json").is_file() or importlib.util.find_spec("sentencepiece"):
        return
    models = sorted(p.name for p in directory.glob("*.model"))
    if models:
        raise HanlmError(
            f"the tokenizer is a SentencePiece model ({', '.join(models)}) without a "
            "tokenizer.json; converting it needs the sentencepiece package (pip install "
            "sentencepiece), or save the tokenizer once with transformers where it is installed "
            "(AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR) writes tokenizer.json)",
            path=str(directory))


def _token_types(directory: Path) -> int | None:
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return config.get("type_vocab_size") if isinstance(config, dict) else None


def _single_token_type(tokenizer: Any) -> None:
    """Make a BERT-style post-processor give the second text of a pair token type 0, not 1.

    RoBERTa-architecture models with a BERT WordPiece tokenizer (klue/roberta-*: type_vocab_size
    1, ``tokenizer_class: BertTokenizer``) have a single token-type embedding; type 1 would
    index past it. hanlm asks for token types explicitly and now gets zeros; the saved
    tokenizer does not return them at all (transformers rebuilds a BertTokenizer's
    post-processor on loading), so stock pipelines feed the model none, which means type 0."""
    from tokenizers import Tokenizer

    names = [n for n in tokenizer.model_input_names if n != "token_type_ids"]
    tokenizer.model_input_names = names
    tokenizer.init_kwargs["model_input_names"] = names

    backend = tokenizer.backend_tokenizer
    spec = json.loads(backend.to_str())
    post = spec.get("post_processor")
    zeroed = _zero_type_ids(post)
    if zeroed != post:
        spec["post_processor"] = zeroed
        backend.post_processor = Tokenizer.from_str(json.dumps(spec)).post_processor


def _zero_type_ids(post: Any) -> Any:
    if not isinstance(post, dict):
        return post
    if post.get("type") == "BertProcessing":  # [CLS] A [SEP] B:1 [SEP]:1, as a template
        (sep, sep_id), (cls, cls_id) = post["sep"], post["cls"]
        special = {t: {"id": t, "ids": [i], "tokens": [t]} for t, i in ((cls, cls_id), (sep, sep_id))}
        piece = lambda kind, name: {kind: {"id": name, "type_id": 0}}  # noqa: E731
        return {"type": "TemplateProcessing",
                "single": [piece("SpecialToken", cls), piece("Sequence", "A"),
                           piece("SpecialToken", sep)],
                "pair": [piece("SpecialToken", cls), piece("Sequence", "A"),
                         piece("SpecialToken", sep), piece("Sequence", "B"),
                         piece("SpecialToken", sep)],
                "special_tokens": special}
    if post.get("type") == "Sequence":
        return {**post, "processors": [_zero_type_ids(p) for p in post.get("processors", [])]}
    return _zeroed(post)


def _zeroed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: 0 if k == "type_id" else _zeroed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_zeroed(v) for v in value]
    return value


def _check_korean(tokenizer: Any, directory: Path) -> None:
    """Refuse a tokenizer that decomposes Hangul into jamo (lowercase/strip_accents apply NFD;
    google-research/bert #135): every syllable would become [UNK] or a jamo piece."""
    normalizer = tokenizer.backend_tokenizer.normalizer
    if normalizer is not None and normalizer.normalize_str("한국어") != "한국어":
        raise HanlmError(
            "the tokenizer decomposes Hangul into jamo (lowercase or strip_accents is on); "
            "set do_lower_case/strip_accents to false in tokenizer_config.json",
            path=str(directory),
        )
