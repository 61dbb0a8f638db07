"""The three pretraining objectives end to end on tiny models: data build -> pretrain -> export
-> stock transformers (no hanlm import) -> fine-tuning, fill-mask."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hanlm.data.build import DataBuildConfig, build_dataset
from hanlm.data.shards import ShardReader
from hanlm.errors import HanlmError
from hanlm.export import ExportConfig, export_model
from hanlm.text import CorpusConfig
from hanlm.train.log import read_metrics
from hanlm.train.pretrain import PretrainConfig, pretrain


@pytest.fixture(scope="module")
def packed_data(tiny_pretraining_data, tmp_path_factory) -> Path:
    """The embedded corpus packed for the objectives without NSP, with the tokenizer of the
    NSP fixture."""
    from hanlm.demo import embedded_corpus

    out = tmp_path_factory.mktemp("packed") / "data"
    return build_dataset(DataBuildConfig(
        corpus=[str(embedded_corpus())], tokenizer=str(tiny_pretraining_data / "tokenizer"),
        out=str(out), max_len=32, eval_fraction=0.2, workers=1, objective="mlm",
        dupe_factor=2, reader=CorpusConfig()))


def test_packed_data_fills_every_sequence(packed_data, tiny_pretraining_data):
    packed, pairs = ShardReader(packed_data, "train"), ShardReader(tiny_pretraining_data, "train")
    lengths = np.array([packed[i].input_ids.size for i in range(len(packed))])
    assert (lengths == 32).mean() > 0.95  # only each chunk's last sequence may be shorter
    sample = packed[0]
    assert sample.len_a == sample.input_ids.size  # one segment: token type 0 throughout
    pair_lengths = np.array([pairs[i].input_ids.size for i in range(len(pairs))])
    assert lengths.mean() > pair_lengths.mean()
    meta = json.loads((packed_data / "meta.json").read_text())
    assert meta["settings"]["objective"] == "mlm"


def test_a_single_document_is_enough_without_nsp(tiny_pretraining_data, tmp_path):
    corpus = tmp_path / "one.txt"
    corpus.write_text("대한민국은 민주공화국이다. 모든 국민은 법 앞에 평등하다.\n" * 20, encoding="utf-8")
    common = dict(corpus=[str(corpus)], tokenizer=str(tiny_pretraining_data / "tokenizer"),
                  max_len=16, eval_fraction=0.0, workers=1, reader=CorpusConfig())
    with pytest.raises(HanlmError, match="at least two documents"):
        build_dataset(DataBuildConfig(out=str(tmp_path / "nsp"), **common))
    built = build_dataset(DataBuildConfig(out=str(tmp_path / "mlm"), objective="mlm", **common))
    assert len(ShardReader(built, "train")) > 1


def test_the_objective_must_match_the_data(packed_data, tmp_path):
    with pytest.raises(HanlmError, match="rebuild it with `hanlm data build --objective bert`"):
        pretrain(PretrainConfig(data=str(packed_data), out=str(tmp_path / "r"), preset="tiny",
                                objective="bert", max_steps=1, progress=False))


def _pretrain(data: Path, out: Path, objective: str) -> Path:
    return pretrain(PretrainConfig(
        data=str(data), out=str(out), preset="tiny", objective=objective, max_steps=4,
        batch_size=4, eval_every=2, eval_batches=1, log_every=1, tensorboard=False,
        progress=False, precision="fp32", threads=1))


STOCK_SCRIPT = r"""
import json, sys
import torch
from transformers import (AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification,
                          AutoModelForTokenClassification, AutoTokenizer, pipeline)
classifier_path, fill_path = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(classifier_path)
enc = tok("대한민국은 민주공화국이다.", return_tensors="pt")
with torch.no_grad():
    hidden = AutoModel.from_pretrained(classifier_path)(**enc).last_hidden_state
    labels = AutoModelForSequenceClassification.from_pretrained(classifier_path, num_labels=2)(**enc).logits
    tags = AutoModelForTokenClassification.from_pretrained(classifier_path, num_labels=3)(**enc).logits
fill = pipeline("fill-mask", model=AutoModelForMaskedLM.from_pretrained(fill_path),
                tokenizer=AutoTokenizer.from_pretrained(fill_path), top_k=3)
preds = fill("대한민국은 민주" + tok.mask_token + "이다.")
print(json.dumps({"hidden": list(hidden.shape), "labels": list(labels.shape),
                  "tags": list(tags.shape), "fill": len(preds), "hanlm": "hanlm" in sys.modules}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["mlm", "electra"])
def test_objective_trains_exports_and_loads_without_hanlm(objective, packed_data, tmp_path):
    run = _pretrain(packed_data, tmp_path / "run", objective)
    rows = read_metrics(run)
    train = [r for r in rows if r["split"] == "train"]
    evals = [r for r in rows if r["split"] == "eval"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert "nsp_loss" not in train[0] and "nsp_accuracy" not in evals[0]
    if objective == "electra":
        assert {"mlm_loss", "rtd_loss", "rtd_accuracy"} <= train[0].keys() | evals[0].keys()
        assert train[0]["loss"] == pytest.approx(train[0]["mlm_loss"] + 50 * train[0]["rtd_loss"])
    out = export_model(ExportConfig(checkpoint=str(run), out=str(tmp_path / "hf")))
    config = json.loads((out / "config.json").read_text())
    fill_dir = out / "generator" if objective == "electra" else out
    architecture = "ElectraForPreTraining" if objective == "electra" else "BertForMaskedLM"
    assert config["architectures"] == [architecture]
    assert f"stock Hugging Face `{architecture}`" in (out / "README.md").read_text()
    result = subprocess.run([sys.executable, "-c", STOCK_SCRIPT, str(out), str(fill_dir)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["labels"][-1] == 2 and loaded["tags"][-1] == 3 and loaded["fill"] == 3
    assert not loaded["hanlm"]
    from hanlm.infer import fill_mask

    (predictions,) = fill_mask(out, ["대한민국은 민주[MASK]이다."], top_k=2)
    assert len(predictions) == 2


@pytest.mark.slow
def test_fine_tuning_works_on_every_objective(packed_data, tiny_pretraining_data, tmp_path):
    from tasks_fixtures import FIXTURES

    from hanlm import config
    from hanlm.tasks.config import FinetuneConfig
    from hanlm.tasks.run import finetune

    files = FIXTURES["nsmc"](tmp_path / "nsmc")
    for objective, data in (("bert", tiny_pretraining_data), ("mlm", packed_data),
                            ("electra", packed_data)):
        run = _pretrain(data, tmp_path / f"run-{objective}", objective)
        model = export_model(ExportConfig(checkpoint=str(run), out=str(tmp_path / f"hf-{objective}")))
        out = tmp_path / f"nsmc-{objective}"
        values = {"task": "nsmc", "model": str(model), "out": str(out), "max_steps": 4,
                  "batch_size": 4, "max_len": 32, "progress": False,
                  **{k: str(v) for k, v in files.items()}}
        assert finetune(config.build(FinetuneConfig, values)) == 0
        assert (out / "model" / "model.safetensors").is_file(), objective
