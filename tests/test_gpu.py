"""Checks that need CUDA (`pytest -m gpu`; skipped without a GPU). scripts/gpu_check.sh runs
them first on a machine that has one."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_auto_precision_is_bf16_on_a_gpu_that_has_it():
    from hanlm.train.precision import choose_precision

    choice = choose_precision("auto", 768)
    assert choice.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")


@pytest.mark.parametrize("objective", ["bert", "electra"])
def test_pretraining_on_a_gpu_resumes_bit_identically(objective, tiny_pretraining_data,
                                                      tmp_path):
    from hanlm.data.build import DataBuildConfig, build_dataset
    from hanlm.demo import embedded_corpus
    from hanlm.text import CorpusConfig
    from hanlm.train.checkpoint import latest_checkpoint
    from hanlm.train.config import PretrainConfig
    from hanlm.train.pretrain import pretrain

    data = tiny_pretraining_data
    if objective != "bert":
        data = build_dataset(DataBuildConfig(
            corpus=[str(embedded_corpus())], tokenizer=str(data / "tokenizer"),
            out=str(tmp_path / "packed"), max_len=32, workers=1, objective=objective,
            reader=CorpusConfig()))

    def run(out, steps, resume=False):
        return pretrain(PretrainConfig(data=str(data), out=str(out), preset="tiny",
                                       max_steps=steps, batch_size=8, eval_every=0, save_every=2,
                                       tensorboard=False, progress=False, resume=resume))

    straight = run(tmp_path / "straight", 4)
    run(tmp_path / "resumed", 2)
    resumed = run(tmp_path / "resumed", 4, resume=True)
    a = load_file(latest_checkpoint(straight).path / "model.safetensors")
    b = load_file(latest_checkpoint(resumed).path / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
