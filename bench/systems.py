"""The systems of the pretraining bench, each run in its own process (so peak memory is its
own) and timed by the same `Trace`.

- `run_strong`: what a Hugging Face expert writes: `Trainer` + the stock `BertForPreTraining`
  (its default attention, SDPA), `DataCollatorForLanguageModeling(mlm_probability=0.15)` with
  dynamic padding, on the very NSP instances `hanlm data build` wrote (random batches, as the
  Trainer samples them), BERT's dropout 0.1, in the faster precision of the machine (hanlm's own
  measurement, `choose_precision("auto", hidden)`, so never slower than the precision hanlm
  trains in). `run_strong_nodropout`: the same with hanlm's pretraining dropout (0), so that the
  engine alone is compared.
- `run_baseline`: the typical script: BertForPreTraining with eager attention, one review pair
  per row padded to 128 (`bench/corpus.py`), fp32 on a CPU.
- `run_hanlm`: `hanlm.train.pretrain.pretrain` with its defaults (precision `auto`) on
  `hanlm data build` output, BERT's 15% masking pinned.

All use the same preset dimensions, tokenizer, batch size, learning rate and schedule (linear,
6% warm-up), AdamW betas/epsilon/weight decay, clipping, seed and step count.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.common import BENCH_LR, Turns, device, peak_rss_mb, sync
from bench.corpus import heldout_loss
from hanlm.model.presets import PRESETS
from hanlm.train.optim import OptimConfig
from hanlm.train.pretrain import PretrainConfig


def add_mlm_bias_init_option(parser: argparse.ArgumentParser, help: str) -> None:
    """`--mlm-bias-init` for a bench, with the choices and default of `hanlm pretrain`'s own."""
    default = next(f.default for f in dataclasses.fields(PretrainConfig) if f.name == "mlm_bias_init")
    choices = typing.get_args(typing.get_type_hints(PretrainConfig)["mlm_bias_init"])
    parser.add_argument("--mlm-bias-init", choices=choices, default=default, help=help)


@dataclass
class RunSpec:
    system: str  # a key of SYSTEMS
    preset: str
    steps: int
    eval_every: int
    batch_size: int
    tokenizer: str
    data: str  # hanlm data directory
    baseline_examples: str
    heldout: str
    out: str
    seed: int = 42
    lr: float = BENCH_LR  # peak lr of both systems
    precision: str = "auto"  # hanlm's (PretrainConfig.precision)
    # the strong baselines' precision, measured once by the parent (`trainer_precision`) so that
    # both use the same; None: measured in the process itself
    trainer_precision: str | None = None
    hanlm_overrides: dict = field(default_factory=dict)  # extra PretrainConfig fields (bench/levers)


class Trace:
    """Own time of every optimizer step and held-out losses, while taking turns.

    The worker holds the turn from its set-up to `begin`; `step_done` records the time since the
    turn was taken, evaluates when due (outside the timed span), passes the turn on and waits for
    it again, so everything a system does between two steps (data, forward, backward, optimizer,
    logging) is timed while it alone runs.
    """

    def __init__(self, turns: Turns, me: int, spec: RunSpec):
        self.turns, self.me, self.spec = turns, me, spec
        self.dev = device()
        self.heldout = torch.load(spec.heldout)
        self.steps: list[dict] = []
        self.evals: list[dict] = []
        self.elapsed = self.cpu = 0.0

    def begin(self, bert) -> None:
        self.evals.append({"step": 0, "seconds": 0.0, **heldout_loss(bert, self.heldout, self.dev)})
        self._start()

    def _start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def step_done(self, step: int, bert) -> None:
        sync(self.dev)
        wall, cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu
        self.elapsed += wall
        self.cpu += cpu
        self.steps.append({"step": step, "seconds": wall, "cpu_seconds": cpu})
        if step % self.spec.eval_every == 0 or step == self.spec.steps:
            self.evals.append({"step": step, "seconds": self.elapsed, **heldout_loss(bert, self.heldout, self.dev)})
        if step >= self.spec.steps:
            self.turns.leave(self.me)
            return
        self.turns.release(self.me)
        self.turns.acquire(self.me)
        self._start()

    def result(self, batches: list[dict], lr: float) -> dict:
        return {"spec": self.spec.__dict__, "lr": lr, "steps": self.steps, "evals": self.evals, "batches": batches,
                "peak_rss_mb": peak_rss_mb(), "device": str(self.dev)}


def _seq_lengths(batch_mask: torch.Tensor) -> list[int]:
    return batch_mask.sum(1).tolist()


# ---------------------------------------------------------------- Hugging Face Trainer systems


def _bert_config(spec: RunSpec, tok, **overrides):
    from transformers import BertConfig

    p = PRESETS[spec.preset]
    return BertConfig(vocab_size=len(tok), hidden_size=p.hidden, num_hidden_layers=p.layers,
                      num_attention_heads=p.heads, intermediate_size=p.intermediate,
                      pad_token_id=tok.pad_token_id, **overrides)


def _train_with_trainer(spec: RunSpec, turns: Turns, me: int, model, dataset, tok, precision: str) -> dict:
    """`Trainer` with the bench's shared optimiser settings and
    `DataCollatorForLanguageModeling(mlm_probability=0.15)`, one step per turn; returns the trace
    with each step's batch shape."""
    from transformers import (
        DataCollatorForLanguageModeling,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    mlm = DataCollatorForLanguageModeling(tok, mlm_probability=0.15)
    batches: list[dict] = []

    def collate(features):
        batch = mlm(features)
        width = batch["input_ids"].shape[1]
        lengths = _seq_lengths(batch["attention_mask"])
        batches.append({"lengths": lengths, "width": width, "masked": int((batch["labels"] != -100).sum()),
                        "head_positions": len(lengths) * width})
        return batch

    trace = Trace(turns, me, spec)

    class TraceCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            trace.begin(model)

        def on_step_end(self, args, state, control, model=None, **kw):
            trace.step_done(state.global_step, model)

    optim = OptimConfig(lr=spec.lr)
    args = TrainingArguments(
        output_dir=str(Path(spec.out) / spec.system), per_device_train_batch_size=spec.batch_size,
        max_steps=spec.steps, learning_rate=optim.lr, warmup_steps=optim.warmup_ratio, lr_scheduler_type="linear",
        weight_decay=optim.weight_decay, adam_beta1=optim.beta1, adam_beta2=optim.beta2, adam_epsilon=optim.eps,
        max_grad_norm=optim.clip_norm, seed=spec.seed, logging_steps=10, save_strategy="no", report_to="none",
        disable_tqdm=True, use_cpu=not torch.cuda.is_available(), bf16=precision == "bf16",
        fp16=precision == "fp16", dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collate, callbacks=[TraceCallback()])
    trainer.train()
    return trace.result(batches[: spec.steps], lr=args.learning_rate) | {
        "precision": precision, "attn_implementation": model.config._attn_implementation,
        "hidden_dropout": model.config.hidden_dropout_prob}


def run_baseline(spec: RunSpec, turns: Turns, me: int) -> dict:
    """The typical script: eager attention, review pairs padded to 128, fp32 on a CPU (bf16 on a
    GPU, where every script turns it on)."""
    from transformers import BertForPreTraining

    from hanlm.tokenizer import KoreanTokenizer

    tok = KoreanTokenizer.load(spec.tokenizer).hf()
    torch.manual_seed(spec.seed)
    model = BertForPreTraining(_bert_config(spec, tok))
    model.config._attn_implementation = "eager"  # the classic BertSelfAttention

    examples = torch.load(spec.baseline_examples)
    n = spec.steps * spec.batch_size
    # as `datasets` hands them to the collator: one dict of lists per example
    dataset = [{k: v[i].tolist() for k, v in examples.items() if k != "next_sentence_label"}
               | {"next_sentence_label": int(examples["next_sentence_label"][i])} for i in range(n)]
    precision = "bf16" if torch.cuda.is_available() else "fp32"
    return _train_with_trainer(spec, turns, me, model, dataset, tok, precision)


class HanlmInstances(torch.utils.data.Dataset):
    """The NSP instances of a `hanlm data build` split as rows of a Hugging Face dataset: what
    `datasets` hands the collator after tokenizing with `return_special_tokens_mask=True`
    (so the collator need not look the special tokens up row by row)."""

    def __init__(self, data: str, special_ids, split: str = "train"):
        import numpy as np

        from hanlm.data.shards import ShardReader

        self.reader = ShardReader(data, split)
        self.special = np.array(sorted(special_ids))

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, i: int) -> dict:
        import numpy as np

        s = self.reader[i]
        n = s.input_ids.size
        return {"input_ids": s.input_ids.tolist(), "token_type_ids": [0] * s.len_a + [1] * (n - s.len_a),
                "attention_mask": [1] * n, "special_tokens_mask": np.isin(s.input_ids, self.special).astype(int).tolist(),
                "next_sentence_label": s.nsp_label}


def trainer_precision(hidden: int, *, reason: bool = False) -> str:
    """The precision of the strong baseline: hanlm's own choice for this width (measured on a
    CPU, bf16 on a GPU that has it), so the baseline never runs slower than hanlm's precision;
    with `reason`, the measurement behind it instead."""
    from hanlm.train.precision import choose_precision

    choice = choose_precision("auto", hidden)
    return choice.reason if reason else choice.precision


def run_strong(spec: RunSpec, turns: Turns, me: int, dropout: float | None = None) -> dict:
    """What a Hugging Face expert writes, on hanlm's own instances; `dropout` None keeps BERT's."""
    from transformers import BertForPreTraining

    from hanlm.tokenizer import KoreanTokenizer

    tokenizer = KoreanTokenizer.load(spec.tokenizer)
    tok = tokenizer.hf()
    overrides = {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    torch.manual_seed(spec.seed)
    model = BertForPreTraining(_bert_config(spec, tok, **overrides))  # default attention: SDPA
    dataset = HanlmInstances(spec.data, tokenizer.special_ids)
    precision = spec.trainer_precision or trainer_precision(PRESETS[spec.preset].hidden)
    return _train_with_trainer(spec, turns, me, model, dataset, tok, precision)


def run_strong_nodropout(spec: RunSpec, turns: Turns, me: int) -> dict:
    return run_strong(spec, turns, me, dropout=0.0)


# ---------------------------------------------------------------- hanlm


def run_hanlm(spec: RunSpec, turns: Turns, me: int) -> dict:
    from hanlm.data.masking import MaskingConfig
    from hanlm.train.engine import Hooks
    from hanlm.train.pretrain import PretrainConfig, pretrain

    # BERT's 15% masking, as the Hugging Face baselines train: the systems do the same work.
    cfg = PretrainConfig(data=spec.data, out=str(Path(spec.out) / "hanlm"), preset=spec.preset,
                         max_steps=spec.steps, batch_size=spec.batch_size, seed=spec.seed,
                         eval_every=0, save_every=10**9, overwrite=True, tensorboard=False,
                         precision=spec.precision, masking=MaskingConfig(mlm_probability=0.15))
    cfg.optim.lr = spec.lr
    for key, value in spec.hanlm_overrides.items():
        setattr(cfg, key, value)
    trace = Trace(turns, me, spec)

    def on_step(step: int, model) -> None:
        if step == 0:
            trace.begin(model.bert)
        else:
            trace.step_done(step, model.bert)

    pretrain(cfg, Hooks(on_step=on_step))
    from hanlm.train.precision import choose_precision

    # the choice pretrain made: measured once per process and width, so asked again it is the same
    choice = choose_precision(cfg.precision, PRESETS[cfg.preset].hidden)
    return trace.result(hanlm_batches(cfg), lr=cfg.optim.lr) | {
        "precision": choice.precision, "precision_reason": choice.reason, "hidden_dropout": cfg.dropout}


def hanlm_batches(cfg) -> list[dict]:
    """What each step of a hanlm run computes, from its data order (a pure function of the
    config's seed, batch schedule and step), without training."""
    from hanlm.data.batches import micro_batches, sample_lengths
    from hanlm.data.shards import ShardReader
    from hanlm.train.pretrain import batch_schedule

    reader = ShardReader(cfg.data, "train")
    lengths = sample_lengths(reader)
    schedule = batch_schedule(cfg)
    batches = []
    for step in range(cfg.max_steps):
        for idx, _ in micro_batches(step, schedule, rank=0, n=len(reader), seed=cfg.seed,
                                    lengths=lengths, bucket_steps=cfg.length_buckets):
            row_lengths = lengths[idx]
            masked = int(sum(max(1, round(0.15 * (n - 3))) for n in row_lengths))
            batches.append({"lengths": row_lengths.tolist(), "width": int(row_lengths.max()),
                            "masked": masked, "head_positions": masked})
    return batches


SYSTEMS = {"strong": run_strong, "strong-nodropout": run_strong_nodropout, "hanlm": run_hanlm,
           "baseline": run_baseline}
LABELS = {"strong": "HF expert", "strong-nodropout": "HF expert, dropout 0", "hanlm": "hanlm",
          "baseline": "typical script"}


def run_ceiling(turns: Turns, me: int, n: int, every_seconds: float, queue,
                dtypes: tuple[str, ...] = ("fp32", "bf16")) -> None:
    """The last member of the ring: a dense matmul ceiling in each precision the systems may
    train in, sampled under the same background load as the steps, at most once every
    `every_seconds`."""
    from bench.common import matmul_flops_per_second

    samples: dict[str, list[float]] = {d: [] for d in dtypes}
    last = 0.0
    while True:
        turns.acquire(me)
        if not turns.others_active(me):
            break
        if time.perf_counter() - last >= every_seconds:
            for dtype in dtypes:
                samples[dtype].append(matmul_flops_per_second(n, repeats=1, dtype=dtype))
            last = time.perf_counter()
        turns.release(me)
    turns.leave(me)
    queue.put(("ceiling", samples))


def worker(name: str, spec: RunSpec, turns: Turns, me: int, queue) -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)
    turns.acquire(me)  # set-up runs alone too
    try:
        queue.put((name, SYSTEMS[name](spec, turns, me)))
    except BaseException as e:  # report, and never leave the others waiting for the turn
        turns.leave(me)
        queue.put((name, {"error": repr(e)}))
        raise

