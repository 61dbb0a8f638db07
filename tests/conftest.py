"""Shared fixtures. The ``shared_data`` tier needs ../shared/data; it skips with a reason when the
folder is absent, and .ci/run makes it mandatory (HANLM_REQUIRE_SHARED_DATA=1 turns the skip
into a failure)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(
    os.environ.get("HANLM_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
).resolve()


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        if os.environ.get("HANLM_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(f"shared data folder {SHARED_DATA} is missing but required")
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch):
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_pretraining_data(tmp_path_factory) -> Path:
    """Tokenizer + NSP shards built from the embedded Constitution (vocab 400, 32 tokens)."""
    from hanlm.data.build import DataBuildConfig, build_dataset
    from hanlm.demo import embedded_corpus
    from hanlm.text import CorpusConfig
    from hanlm.tokenizer import TokenizerTrainConfig, train_tokenizer

    root = tmp_path_factory.mktemp("tiny-pretraining")
    corpus = [str(embedded_corpus())]
    tok = train_tokenizer(TokenizerTrainConfig(corpus=corpus, out=str(root / "tok"), vocab_size=400,
                                               min_frequency=1, reader=CorpusConfig()))
    return build_dataset(DataBuildConfig(corpus=corpus, tokenizer=str(tok), out=str(root / "data"),
                                         max_len=32, eval_fraction=0.2, workers=1,
                                         reader=CorpusConfig()))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny BERT in Hugging Face format (tests/tasks_fixtures.py), shared by the fine-tuning
    tests, which only read it."""
    from tasks_fixtures import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "bert")
