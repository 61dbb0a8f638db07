"""The GPU check: what a session that is lent a GPU runs first (`bash scripts/gpu_check.sh`).

1. the GPU-marked tests (`pytest -m gpu`);
2. pretraining speed: hanlm against the strongest Hugging Face setup an expert would write
   (`Trainer` + stock `BertForPreTraining` with its default SDPA attention + the
   `DataCollatorForLanguageModeling`, `bf16=True`) on the very same packed NSP instances that
   `hanlm data build` wrote, BERT's 15% masking for both, one after the other in this process;
   steady-state real tokens/s (steps after the first `warmup` ones) and useful MFU against the
   bf16 matmul ceiling measured on the device;
3. one fine-tuning run on NSMC (the shared data when present) from the pretrained model;
and writes every figure to one JSON. `--dry-run` runs the same code on the CPU with BERT-tiny
and a few steps, so that CI keeps it working where no GPU is.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import BENCH_LR, machine, matmul_flops_per_second, sync
from bench.flops import Dims

logger = logging.getLogger(__name__)

FULL = {"preset": "base", "steps": 60, "warmup": 10, "batch_size": 64, "max_len": 128,
        "finetune_steps": 300, "finetune_limit": 30_000}
DRY = {"preset": "tiny", "steps": 4, "warmup": 1, "batch_size": 8, "max_len": 64,
       "finetune_steps": 3, "finetune_limit": 200}


class StepTimer:
    """Seconds per optimizer step after the first `warmup` steps (synchronised on a GPU)."""

    def __init__(self, dev: torch.device, warmup: int):
        self.dev, self.warmup, self.marks = dev, warmup, []

    def mark(self, step: int) -> None:
        if step >= self.warmup:
            sync(self.dev)
            self.marks.append(time.perf_counter())

    def seconds_per_step(self) -> float:
        return float(np.median(np.diff(self.marks))) if len(self.marks) > 1 else float("nan")


def build_data(work: Path, max_len: int) -> Path:
    """A tokenizer and NSP instances from the embedded corpus (the demo's), five passes."""
    from hanlm.data.build import DataBuildConfig, build_dataset
    from hanlm.demo import embedded_corpus
    from hanlm.text import CorpusConfig
    from hanlm.tokenizer import TokenizerTrainConfig, train_tokenizer

    corpus = [str(embedded_corpus())]
    tok = train_tokenizer(TokenizerTrainConfig(corpus=corpus, out=str(work / "tok"),
                                               vocab_size=8000, overwrite=True,
                                               reader=CorpusConfig()))
    return build_dataset(DataBuildConfig(corpus=corpus, tokenizer=str(tok), out=str(work / "data"),
                                         max_len=max_len, dupe_factor=5, workers=1,
                                         overwrite=True, reader=CorpusConfig()))


def run_hanlm(data: Path, work: Path, plan: dict, precision: str, dev: torch.device) -> float:
    from hanlm.data.masking import MaskingConfig
    from hanlm.train.config import PretrainConfig
    from hanlm.train.engine import Hooks
    from hanlm.train.optim import OptimConfig
    from hanlm.train.pretrain import pretrain

    timer = StepTimer(dev, plan["warmup"])
    pretrain(PretrainConfig(
        data=str(data), out=str(work / "hanlm"), preset=plan["preset"], max_steps=plan["steps"],
        batch_size=plan["batch_size"], precision=precision, eval_every=0, save_every=10**9,
        overwrite=True, tensorboard=False, progress=False, optim=OptimConfig(lr=BENCH_LR),
        masking=MaskingConfig(mlm_probability=0.15)), Hooks(on_step=lambda s, m: timer.mark(s)))
    return timer.seconds_per_step()


def run_huggingface(data: Path, work: Path, plan: dict, bf16: bool, dev: torch.device) -> float:
    from transformers import (
        BertConfig,
        BertForPreTraining,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from bench.systems import HanlmInstances
    from hanlm.model.presets import PRESETS
    from hanlm.tokenizer import KoreanTokenizer

    hanlm_tok = KoreanTokenizer.load(data / "tokenizer")
    tok = hanlm_tok.hf()
    p = PRESETS[plan["preset"]]
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig(
        vocab_size=len(tok), hidden_size=p.hidden, num_hidden_layers=p.layers,
        num_attention_heads=p.heads, intermediate_size=p.intermediate, pad_token_id=tok.pad_token_id))
    rows = HanlmInstances(str(data), hanlm_tok.special_ids)
    timer = StepTimer(dev, plan["warmup"])

    class Timing(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            timer.mark(state.global_step)

    args = TrainingArguments(
        output_dir=str(work / "hf"), per_device_train_batch_size=plan["batch_size"],
        max_steps=plan["steps"], learning_rate=BENCH_LR, warmup_steps=0.06, weight_decay=0.01,
        adam_beta2=0.98, adam_epsilon=1e-6, bf16=bf16, use_cpu=dev.type == "cpu",
        dataloader_num_workers=2 if dev.type == "cuda" else 0, save_strategy="no",
        report_to="none", disable_tqdm=True, logging_steps=10**6, seed=0)
    collator = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)
    Trainer(model=model, args=args, train_dataset=rows, data_collator=collator,
            callbacks=[Timing()]).train()
    return timer.seconds_per_step()


def pretraining_speed(data: Path, work: Path, plan: dict, dev: torch.device) -> dict:
    from hanlm.data.shards import ShardReader
    from hanlm.model.bert import build_bert_config

    bf16 = dev.type == "cuda" and torch.cuda.is_bf16_supported()
    hf = run_huggingface(data, work, plan, bf16, dev)
    ours = run_hanlm(data, work, plan, "bf16" if bf16 else "fp32", dev)
    reader = ShardReader(data, "train")
    mean_len = float(np.mean([reader[i].input_ids.size for i in range(min(len(reader), 2000))]))
    tokens_per_step = mean_len * plan["batch_size"]
    dims = Dims.of(build_bert_config(plan["preset"], vocab_size=8000))
    useful_per_token = 3 * (dims.per_token() + dims.attention(mean_len) / mean_len
                            + 0.15 * dims.head_per_prediction())
    ceiling = matmul_flops_per_second(4096, repeats=5, dev=dev, dtype="bf16" if bf16 else "fp32")
    figures = {"precision": "bf16" if bf16 else "fp32", "mean_real_tokens": mean_len,
               "ceiling_tflops": ceiling / 1e12}
    for name, seconds in (("huggingface", hf), ("hanlm", ours)):
        tokens = tokens_per_step / seconds
        figures[name] = {"seconds_per_step": seconds, "real_tokens_per_second": tokens,
                         "useful_mfu": tokens * useful_per_token / ceiling}
    figures["speedup"] = hf / ours
    return figures


def finetune_run(work: Path, plan: dict) -> dict:
    from hanlm.export import ExportConfig, export_model
    from hanlm.tasks.config import DataOptions, FinetuneConfig
    from hanlm.tasks.run import finetune

    shared = Path(os.environ.get("HANLM_SHARED_DATA", "../shared/data")) / "nsmc"
    train = shared / "ratings_train.txt"
    if not train.is_file():
        return {"skipped": f"no NSMC training file at {train}"}
    model = export_model(ExportConfig(checkpoint=str(work / "hanlm"), out=str(work / "hf-model"),
                                      overwrite=True))
    out = work / "nsmc"
    started = time.perf_counter()
    finetune(FinetuneConfig(
        task="nsmc", train=str(train), model=str(model), out=str(out), overwrite=True,
        options=DataOptions(split_dev="42:0.05", limit=plan["finetune_limit"]),
        max_steps=plan["finetune_steps"], eval_every=0, progress=False))
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return {"seconds": time.perf_counter() - started, "steps": metrics["steps"],
            "held_out_accuracy": metrics["dev"]["accuracy"]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="CPU, BERT-tiny, a few steps")
    parser.add_argument("--work", default="runs/gpu-check", help="scratch directory")
    parser.add_argument("--output", default="bench/results/gpu_check.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    dev = torch.device("cuda" if torch.cuda.is_available() and not args.dry_run else "cpu")
    if dev.type == "cpu" and not args.dry_run:
        parser.error("no GPU here; --dry-run checks the script on the CPU")
    plan = DRY if args.dry_run else FULL
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests"],
                           capture_output=True, text=True)
    report = {"machine": machine(), "dry_run": args.dry_run, "plan": plan,
              "gpu_tests": tests.stdout.strip().splitlines()[-1:] or [tests.stderr[-500:]],
              "gpu_tests_rc": tests.returncode}
    data = build_data(work, plan["max_len"])
    report["pretraining"] = pretraining_speed(data, work, plan, dev)
    report["finetuning"] = finetune_run(work, plan)
    report["seconds"] = time.perf_counter() - started
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
