"""Export: a stock transformers process (no hanlm import) loads the model and gets hanlm's logits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hanlm.errors import HanlmError
from hanlm.export import ExportConfig, export_model, load_checkpoint_model
from hanlm.tokenizer import KoreanTokenizer
from hanlm.train.pretrain import PretrainConfig, pretrain

SENTENCE = "대한민국은 민주공화국이다."


@pytest.fixture(scope="module")
def run_dir(tiny_pretraining_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "run"
    return pretrain(PretrainConfig(data=str(tiny_pretraining_data), out=str(out), preset="tiny",
                                   max_steps=3, batch_size=4, eval_every=0, tensorboard=False))


STOCK_SCRIPT = r"""
import json, sys
import torch
from transformers import AutoModelForMaskedLM, AutoModelForPreTraining, AutoTokenizer, pipeline
path, text = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(path)
enc = tok(text, "국민은 주권자다.", return_tensors="pt")
model = AutoModelForPreTraining.from_pretrained(path).eval()
with torch.no_grad():
    out = model(**enc)
mlm = AutoModelForMaskedLM.from_pretrained(path).eval()
fill = pipeline("fill-mask", model=mlm, tokenizer=tok, top_k=3)
preds = fill(text.replace("공화국", tok.mask_token, 1))
print(json.dumps({
    "ids": enc["input_ids"][0].tolist(),
    "types": enc["token_type_ids"][0].tolist(),
    "mlm": out.prediction_logits[0].tolist(),
    "nsp": out.seq_relationship_logits[0].tolist(),
    "fill": [p["token_str"] for p in preds],
    "hanlm_loaded": "hanlm" in sys.modules,
}))
"""


def test_stock_transformers_load_matches_hanlm(run_dir, tmp_path):
    out = export_model(ExportConfig(checkpoint=str(run_dir), out=str(tmp_path / "hf")))
    for name in ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "README.md"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin")), "weights must be safetensors only"
    result = subprocess.run([sys.executable, "-c", STOCK_SCRIPT, str(out), SENTENCE],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    stock = json.loads(result.stdout.strip().splitlines()[-1])
    assert stock["hanlm_loaded"] is False
    assert len(stock["fill"]) == 3

    tok = KoreanTokenizer.load(run_dir / "tokenizer")
    (a, _), (b, _) = tok.encode_words([SENTENCE, "국민은 주권자다."])
    expected_ids = [tok.cls_id, *a.tolist(), tok.sep_id, *b.tolist(), tok.sep_id]
    assert stock["ids"] == expected_ids, "AutoTokenizer must tokenize as hanlm does"
    model, *_ = load_checkpoint_model(run_dir)
    with torch.no_grad():
        ours = model(input_ids=torch.tensor([stock["ids"]]), token_type_ids=torch.tensor([stock["types"]]))
    torch.testing.assert_close(ours.prediction_logits[0], torch.tensor(stock["mlm"]), atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.seq_relationship_logits[0], torch.tensor(stock["nsp"]), atol=1e-5, rtol=0)


def test_model_card_describes_the_run(run_dir, tmp_path):
    out = export_model(ExportConfig(checkpoint=str(run_dir), out=str(tmp_path / "hf"), name="ko-tiny"))
    card = (out / "README.md").read_text(encoding="utf-8")
    for expected in ("# ko-tiny", "layers | 2", "hidden size | 128", "optimizer steps | 3",
                     "constitution.txt", "AutoModelForMaskedLM", "mlm_accuracy"):
        assert expected in card, expected


def test_refuses_non_empty_output_and_missing_checkpoint(run_dir, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(HanlmError, match="not empty"):
        export_model(ExportConfig(checkpoint=str(run_dir), out=str(tmp_path / "busy")))
    with pytest.raises(HanlmError, match="no usable checkpoint"):
        export_model(ExportConfig(checkpoint=str(tmp_path), out=str(tmp_path / "o")))


def test_corrupted_latest_checkpoint_falls_back_to_previous(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    steps = sorted((copy / "checkpoints").glob("step-*"))
    good = steps[-1]
    broken = good.with_name("step-99999999")
    shutil.copytree(good, broken)
    with open(broken / "model.safetensors", "r+b") as f:
        f.seek(200)
        f.write(b"\x00" * 64)
    _, _, state, _ = load_checkpoint_model(copy)
    assert state["step"] == int(good.name.split("-")[1])
