"""The training surface that `hanlm pretrain` and `hanlm finetune` share.

Both verbs' configs are `TrainingConfig`s (a verb's config subclasses it and adds its own
fields), so `--lr`, `--precision`, `--eval-every`, ... and their YAML keys mean the same in both,
and each loop reads `cfg.max_steps`, `cfg.optim.lr` the same way. Only defaults
that follow from the job differ (a pretraining run is counted in steps, logs often and takes its
learning rate from the model size; a fine-tuning run is counted in epochs, at BERT's fine-tuning
rate); they are the subclasses below.

This module imports no torch: the CLI reads it to print `--help` instantly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hanlm.config import opt
from hanlm.data.masking import MaskingConfig

Precision = Literal["auto", "fp32", "bf16", "fp16"]
# The help of every verb's --precision (training's and inference's: one meaning).
BF16_WEIGHTS_HELP = ("with bf16 on a CPU in one process: forward and backward on a bf16 copy of "
                     "the model (no autocast casts), AdamW on fp32 master weights (off: autocast)")
PRECISION_HELP = ("auto = the faster of fp32 and bf16 measured on this machine (logged; a "
                  "--resume keeps the run's own), fp16 only when asked (GPU)")

# Pretraining's peak learning rate when --lr is not given, by model size. tiny and mini were
# measured here (docs/RESULTS.md "Why the recipe is what it is", docs/BENCHMARKS.md "Levers"):
# tiny 2e-3 (5e-4 trailed it, 4e-3 read the context no sooner), mini 5e-4 (1e-3 ended worse over
# 300 steps, 2e-3 stayed flat); small keeps the benchmark's 5e-4, not tuned. medium and base were
# not measured: BERT's 1e-4 (Devlin et al. 2019, the recipe the Turc et al. 2019 miniatures
# followed). ELECTRA trains its Base at 2e-4 and its Small (12 x 256) at 5e-4, mini's and small's
# rate already (Clark et al. 2020, table 6); medium, which the paper lacks, takes Base's.
PRETRAIN_LR: dict[str, float] = {"tiny": 2e-3, "mini": 5e-4, "small": 5e-4, "medium": 1e-4,
                                 "base": 1e-4}
ELECTRA_LR: dict[str, float] = {"medium": 2e-4, "base": 2e-4}


def default_lr(preset: str, objective: str) -> float:
    """`hanlm pretrain`'s peak learning rate for a model size and objective, --lr unset."""
    if objective == "electra" and preset in ELECTRA_LR:
        return ELECTRA_LR[preset]
    return PRETRAIN_LR[preset]


def format_lr(lr: float) -> str:
    """2e-3 rather than 0.002, as papers and these docs write rates."""
    mantissa, exponent = f"{lr:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _lr_help() -> str:
    by_preset = ", ".join(f"{p} {format_lr(lr)}" for p, lr in PRETRAIN_LR.items())
    electra = ", ".join(f"{p} {format_lr(lr)}" for p, lr in ELECTRA_LR.items())
    return (f"peak learning rate (default: by --preset, {by_preset}; the electra objective "
            f"{electra}; with --init-from, the preset of the model's size; logged at the start, "
            "and written to the run's config.yaml)")


@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule (pretraining defaults, RoBERTa's betas/epsilon).

    `lr` None: the model size's rate (`default_lr`), set by `hanlm pretrain` once it knows the
    objective and the model; a config built by hand for `build_optimizer` must give one."""

    lr: float | None = opt(None, _lr_help(), min=0, exclusive_min=True)
    weight_decay: float = opt(0.01, "AdamW weight decay (not on biases and LayerNorm)", min=0)
    beta1: float = opt(0.9, "AdamW beta1", min=0)
    beta2: float = opt(0.98, "AdamW beta2", min=0)
    eps: float = opt(1e-6, "AdamW epsilon", min=0, exclusive_min=True)
    warmup_steps: int | None = opt(
        None, "warm-up steps (default: warmup_ratio of all steps)", min=0
    )
    warmup_ratio: float = opt(0.06, "warm-up as a fraction of the run", min=0)
    schedule: Literal["linear", "cosine", "constant"] = opt("linear", "decay after warm-up")
    clip_norm: float = opt(1.0, "clip the gradient norm to this (0 = off)", min=0)


@dataclass
class FinetuneOptimConfig(OptimConfig):
    """OptimConfig with fine-tuning defaults (Devlin et al. 2019, appendix A.3)."""

    lr: float = opt(5e-5, "peak learning rate", min=0, exclusive_min=True)
    beta2: float = opt(0.999, "AdamW beta2", min=0)
    eps: float = opt(1e-8, "AdamW epsilon", min=0, exclusive_min=True)
    warmup_ratio: float = opt(0.1, "warm-up as a fraction of the run", min=0)


@dataclass
class TrainingConfig:
    """What every training loop reads: length, batch, precision, cadence, checkpoints."""

    max_steps: int | None = opt(None, "optimizer steps", min=1)
    max_minutes: float | None = opt(
        None, "time budget in minutes, summed over resumes: the learning-rate schedule follows "
        "the larger of step and time progress, so a run stopped by time has annealed to zero",
        min=0, exclusive_min=True)
    time_schedule: bool = opt(
        True, "with --max-minutes, the learning rate follows the time spent as well as the steps "
        "(off: --max-minutes only stops the run, and the rate is a function of the step alone, "
        "so the same run gives the same weights on a busy machine and an idle one)")
    batch_size: int = opt(32, "sequences per micro-batch per process", min=1)
    grad_accum: int = opt(1, "micro-batches per optimizer step", min=1)
    seed: int = opt(42, "seed for initialisation, data order, masking and dropout")
    precision: Precision = opt("auto", PRECISION_HELP)
    bf16_weights: bool = opt(False, BF16_WEIGHTS_HELP)
    threads: int = opt(0, "CPU threads for PyTorch (0 = its default)", min=0)
    log_every: int = opt(10, "log training metrics every N steps", min=1)
    eval_every: int | None = opt(
        None, "evaluate every N steps (0 = only at the end; fine-tuning's default: each epoch)",
        min=0)
    save_every: int | None = opt(None, "checkpoint every N steps (default: at each "
                                 "evaluation; always at the end)", min=1)
    keep_checkpoints: int = opt(2, "checkpoints kept (0 = all)", min=0)
    nan_policy: Literal["stop", "skip"] = opt(
        "stop", "on a non-finite loss or gradient: stop, or skip the step")
    progress: bool = opt(True, "show a progress bar")
    tensorboard: bool = opt(True, "also write TensorBoard logs")
    resume: bool = opt(False, "continue from the latest checkpoint in --out")
    overwrite: bool = opt(False, "replace a different run in --out")
    optim: OptimConfig = opt(factory=OptimConfig, flatten=True)


@dataclass
class PretrainTrainingConfig(TrainingConfig):
    max_steps: int | None = opt(1000, "optimizer steps", min=1)
    # On where it was measured to pay (docs/BENCHMARKS.md, "Levers"): a pretraining step of
    # 4,096 tokens saves more casts than the two passes over the parameters cost; a fine-tuning
    # step of ~800 NSMC tokens does not.
    bf16_weights: bool = opt(True, BF16_WEIGHTS_HELP)
    eval_every: int | None = opt(200, "evaluate on the held-out split every N steps (0 = only "
                                 "at the end)", min=0)
    save_every: int | None = opt(500, "checkpoint every N steps (and always at the end)", min=1)
    keep_checkpoints: int = opt(3, "checkpoints kept (0 = all)", min=0)


@dataclass
class FinetuneTrainingConfig(TrainingConfig):
    epochs: float = opt(3.0, "passes over the training data", min=0, exclusive_min=True)
    max_steps: int | None = opt(None, "stop after this many optimizer steps (overrides "
                                "--epochs)", min=1)
    eval_batch_size: int = opt(64, "evaluation batch size", min=1)
    patience: int | None = opt(None, "early stopping: stop after N evaluations without "
                               "improvement of the main metric", min=1)
    log_every: int = opt(50, "log the training loss every N steps", min=1)
    group_by_length: bool = opt(True, "batch similar lengths together (less padding)")
    optim: FinetuneOptimConfig = opt(factory=FinetuneOptimConfig, flatten=True)


# The measured masking rate; `hanlm study` pretrains with it too.
PRETRAIN_MLM_PROBABILITY = 0.35


@dataclass
class PretrainMaskingConfig(MaskingConfig):
    """`hanlm pretrain`'s masking: 35% of the tokens, not BERT's 15%. On the domain study's
    BERT-tiny (NSMC validation split, 3 fine-tuning seeds), 15% read 83.1 (one pretraining
    draw), 25% 84.0-84.2 and 35% 84.6-85.1 (two draws each); at equal time, 25% with the 20%
    more steps its faster step allows read 83.2 against 35%'s 84.1 on another split
    (docs/RESULTS.md). Wettig et al. 2023 find 15% suboptimal too and 40% best at BERT-large.
    `--mlm-probability 0.15` is BERT's rate."""

    mlm_probability: float = opt(PRETRAIN_MLM_PROBABILITY, "fraction of tokens to predict "
                                 "(BERT: 0.15)", min=0, exclusive_min=True)


@dataclass(kw_only=True)
class PretrainConfig(PretrainTrainingConfig):
    data: str = opt(help="directory written by `hanlm data build`")
    out: str = opt(help="run directory (config, logs, checkpoints)")
    preset: Literal["tiny", "mini", "small", "medium", "base"] = opt("mini", "model size")
    objective: Literal["bert", "mlm", "electra"] | None = opt(
        None, "bert = MLM + next-sentence prediction; mlm = MLM alone on packed sequences; "
        "electra = replaced-token detection with a small generator (default: what the data was "
        "built for, `hanlm data build --objective`)")
    generator_ratio: float = opt(
        0.25, "electra: the generator's width as a fraction of the discriminator's (Clark et "
        "al. 2020: 1/4 to 1/2 works best)", min=0, exclusive_min=True)
    disc_weight: float = opt(
        50.0, "electra: weight of the replaced-token loss against the generator's MLM loss",
        min=0, exclusive_min=True)
    batch_ramp_steps: int = opt(
        0, "grow each micro-batch linearly from --batch-ramp-start sequences to --batch-size "
        "over the first N steps (0 = off; hanlm/data/batches.py: BatchSchedule)", min=0)
    batch_ramp_start: int = opt(4, "sequences per micro-batch at step 0 of the ramp", min=1)
    length_buckets: int = opt(
        64, "batch the samples of this many consecutive steps by length, so batches carry less "
        "padding (1 = off; see hanlm/data/batches.py)", min=1)
    dropout: float = opt(
        0.0, "dropout of hidden states and attention while pretraining (0: none, as cramming and "
        "ModernBERT pretrain; 1.2-1.3x faster here, docs/BENCHMARKS.md)", min=0)
    export_dropout: float = opt(
        0.1, "dropout written into a new model's config, which fine-tuning reads (BERT's 0.1)",
        min=0)
    mlm_bias_init: Literal["unigram", "zeros"] = opt(
        "unigram", "a new model's MLM output bias: the log frequencies of the training tokens "
        "(it starts where the early MLM plateau ends, docs/BENCHMARKS.md) or zeros (Hugging Face)")
    init_from: str | None = opt(
        None, "start from this Hugging Face BERT directory (continued pretraining)")
    trust_pickle: bool = opt(
        False, "allow --init-from pickle (pytorch_model.bin) weights, which can run code; "
        "converted once to model.safetensors beside them")
    eval_batches: int = opt(20, "held-out batches per evaluation", min=1)
    masking: PretrainMaskingConfig = opt(factory=PretrainMaskingConfig, flatten=True)
