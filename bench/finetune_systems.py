"""The two systems of the fine-tuning bench (bench/finetune.py runs them): the strongest
Hugging Face `Trainer` set-up (`run_baseline`) and hanlm's own verbs (`run_hanlm`), each timed by
a `Clock` while the two take turns, or alone under the torch profiler (`ProfileClock`)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.common import Turns, peak_rss_mb, summarize_profile

# ---------------------------------------------------------------- taking turns, timing


@dataclass
class Spec:
    model: str
    train: str
    eval: str
    out: str
    steps: int
    batch_size: int = 32
    eval_batch_size: int = 64
    lr: float = 5e-5
    max_len: int = 128
    seed: int = 42
    trainer_precision: str | None = None  # the baseline's, measured once by the parent; None: here
    baseline: str = "trainer"  # a key of BASELINES


class Clock:
    """Own wall and CPU time of one system while the two take turns.

    The system holds the turn from its start; `boundary` lines both up at a phase (set-up →
    training → inference), `tick` closes a timed segment, passes the turn and waits for it
    again, `stop` closes the last segment of a phase and keeps the turn (untimed work follows).
    """

    def __init__(self, turns: Turns, me: int, barrier):
        self.turns, self.me, self.barrier = turns, me, barrier
        self.segments: dict[str, list[dict]] = {"train": [], "eval": []}
        self.phase = "setup"

    def boundary(self, phase: str) -> None:
        self.turns.release(self.me)
        self.barrier.wait()
        self.turns.acquire(self.me)
        self.phase = phase
        self._start()

    def _start(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def _record(self) -> None:
        self.segments[self.phase].append({"seconds": time.perf_counter() - self._wall,
                                          "cpu_seconds": time.process_time() - self._cpu})

    def tick(self) -> None:
        self._record()
        self.turns.release(self.me)
        self.turns.acquire(self.me)
        self._start()

    def stop(self) -> None:
        self._record()
        self.phase = "done"


class ProfileClock(Clock):
    """No turns (one system alone): the training phase runs under `torch.profiler`, and
    `profile` holds the self-CPU time of its operators, grouped (`--profile`)."""

    def __init__(self):
        self.segments = {"train": [], "eval": []}
        self.phase = "setup"
        self.profile: dict = {}

    def boundary(self, phase: str) -> None:
        self.phase = phase
        if phase == "train":
            self._prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self._prof.__enter__()
        self._start()

    def tick(self) -> None:
        self._record()
        self._start()

    def stop(self) -> None:
        self._record()
        if self.phase == "train":
            self._prof.__exit__(None, None, None)
            self.profile = summarize_profile(self._prof, sum(s["seconds"] for s in self.segments["train"]))
        self.phase = "done"


def _shape(mask_or_lengths, width: int) -> dict:
    lengths = [int(x) for x in mask_or_lengths]
    return {"lengths": lengths, "width": width}


def _dropout_modules(model: torch.nn.Module) -> list[str]:
    """The classes of the model's dropout modules (PyTorch's, or hanlm's CpuDropout)."""
    return sorted({type(m).__name__ for m in model.modules() if isinstance(m, torch.nn.Dropout)})


def _peak_rss_of_phase(result: dict, phase: str) -> None:
    result[f"peak_rss_mb_after_{phase}"] = peak_rss_mb()


# ---------------------------------------------------------------- baseline (Hugging Face)


def _read_nsmc(path: str) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            _, text, label = line.rstrip("\n").split("\t")
            texts.append(text)
            labels.append(int(label))
    return texts, labels


def run_baseline(spec: Spec, clock: Clock) -> dict:
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    tokenizer = AutoTokenizer.from_pretrained(spec.model)
    model = AutoModelForSequenceClassification.from_pretrained(spec.model)  # default attention: SDPA

    def dataset(path: str) -> list[dict]:
        # as `datasets.map(lambda x: tokenizer(x["text"], truncation=True), batched=True)` hands
        # the rows to the collator (datasets is not installed here)
        texts, labels = _read_nsmc(path)
        enc = tokenizer(texts, truncation=True, max_length=spec.max_len)
        return [{**{k: v[i] for k, v in enc.items()}, "labels": labels[i]} for i in range(len(texts))]

    train_set, eval_set = dataset(spec.train), dataset(spec.eval)
    pad = DataCollatorWithPadding(tokenizer)
    batches: dict[str, list[dict]] = {"train": [], "eval": []}

    def collate(features):
        batch = pad(features)
        if clock.phase in batches:
            batches[clock.phase].append(_shape(batch["attention_mask"].sum(1), batch["input_ids"].shape[1]))
        return batch

    class Turn(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            clock.boundary("train")

        def on_step_end(self, args, state, control, **kw):
            clock.tick() if state.global_step < spec.steps else clock.stop()

        def on_prediction_step(self, args, state, control, **kw):
            clock.tick()

    from bench.systems import trainer_precision

    precision = spec.trainer_precision or trainer_precision(model.config.hidden_size)
    args = TrainingArguments(
        output_dir=str(Path(spec.out) / "baseline"), per_device_train_batch_size=spec.batch_size,
        per_device_eval_batch_size=spec.eval_batch_size, max_steps=spec.steps, learning_rate=spec.lr,
        warmup_steps=0.1, lr_scheduler_type="linear", weight_decay=0.01, adam_beta1=0.9, adam_beta2=0.999,
        adam_epsilon=1e-8, max_grad_norm=1.0, seed=spec.seed, logging_steps=50, save_strategy="no",
        report_to="none", disable_tqdm=True, use_cpu=not torch.cuda.is_available(), bf16=precision == "bf16",
        fp16=precision == "fp16", train_sampling_strategy="group_by_length", dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train_set, data_collator=collate, callbacks=[Turn()])
    trainer.train()
    result = {"attn_implementation": model.config._attn_implementation, "precision": precision,
              "train_sampling": args.train_sampling_strategy,
              "dropout_modules": _dropout_modules(model)}
    _peak_rss_of_phase(result, "train")

    clock.boundary("eval")
    out = trainer.predict(eval_set)
    clock.stop()
    predictions = out.predictions.argmax(-1)
    result["accuracy"] = 100.0 * float((predictions == out.label_ids).mean())
    result["eval_examples"] = len(eval_set)
    result["batches"] = {k: v[: spec.steps] if k == "train" else v for k, v in batches.items()}
    return result


# ---------------------------------------------------------------- hanlm


def run_hanlm(spec: Spec, clock: Clock, name: str = "hanlm") -> dict:
    from hanlm.tasks import loop, run
    from hanlm.tasks.config import DataOptions, EvaluateConfig, FinetuneConfig
    from hanlm.train.engine import Hooks
    from hanlm.train.precision import choose_precision

    batches: dict[str, list[dict]] = {"train": [], "eval": []}
    collate, run_inference = loop.collate, run.run_inference
    seen = {"eval": 0}

    # Wrappers, not changes: each calls hanlm's own function and only records or passes the turn.
    def recording_collate(features, pad_id):
        batch = collate(features, pad_id)
        if clock.phase in batches:
            batches[clock.phase].append(_shape(batch["attention_mask"].sum(1), batch["input_ids"].shape[1]))
        if clock.phase == "eval":
            seen["eval"] += 1
            if seen["eval"] > 1:  # one inference batch per turn
                clock.tick()
        return batch

    def on_step(step: int, model) -> None:
        if step == 0:
            batches["attn_implementation"] = model.config._attn_implementation
            batches["hidden_size"] = model.config.hidden_size
            batches["dropout_modules"] = _dropout_modules(model)
            clock.boundary("train")
        else:
            clock.tick() if step < spec.steps else clock.stop()

    def timed_inference(*a, **kw):
        clock.boundary("eval")
        out = run_inference(*a, **kw)
        clock.stop()
        return out

    loop.collate, run.run_inference = recording_collate, timed_inference

    out = Path(spec.out) / name
    cfg = FinetuneConfig(
        task="nsmc", train=spec.train, model=spec.model, out=str(out),
        options=DataOptions(max_len=spec.max_len),
        max_steps=spec.steps, batch_size=spec.batch_size, eval_batch_size=spec.eval_batch_size,
        seed=spec.seed, progress=False, precision="auto",
    )
    cfg.optim.lr = spec.lr
    run.finetune(cfg, Hooks(on_step=on_step))
    result: dict = {}
    _peak_rss_of_phase(result, "train")
    metrics_path = out / "metrics-eval.json"
    run.evaluate(EvaluateConfig(task="nsmc", data=spec.eval, model=str(out / "model"), output=str(metrics_path),
                                batch_size=spec.eval_batch_size, options=DataOptions(max_len=spec.max_len)))
    evaluated = json.loads(metrics_path.read_text())
    result["attn_implementation"] = batches.pop("attn_implementation")
    result["dropout_modules"] = batches.pop("dropout_modules")
    result["train_sampling"] = "group_by_length" if cfg.group_by_length else "random"
    # the choice finetune made: measured once per process and width, so asked again it is the same
    result["precision"] = choose_precision(cfg.precision, batches.pop("hidden_size")).precision
    result["eval_precision"] = evaluated["precision"]
    result["accuracy"] = evaluated["metrics"]["accuracy"]
    result["eval_examples"] = evaluated["examples"]
    result["hanlm_evaluate_seconds"] = evaluated["seconds"]
    result["batches"] = batches
    return result


def run_hanlm_torch_dropout(spec: Spec, clock: Clock) -> dict:
    """hanlm with PyTorch's own dropout instead of `hanlm.model.dropout`'s: against hanlm, the
    gain of that one lever. (A bench-only switch: hanlm has no flag for it.)"""
    from hanlm.train import engine

    engine.use_cpu_dropout = lambda model: 0
    return run_hanlm(spec, clock, name="hanlm-torch-dropout")


BASELINES = {"trainer": run_baseline, "torch-dropout": run_hanlm_torch_dropout}


def systems(spec: Spec) -> dict:
    """The two systems of a run: `baseline` (as `spec.baseline` names it) and `hanlm`."""
    return {"baseline": BASELINES[spec.baseline], "hanlm": run_hanlm}

