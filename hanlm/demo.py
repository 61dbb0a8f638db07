"""`hanlm demo`: the whole pipeline in a few minutes on the embedded corpus, no download.

Corpus: the Constitution of the Republic of Korea (public domain, shipped in hanlm/resources).
tokenizer train -> data build -> pretrain (tiny BERT, time-boxed) -> export -> fill-mask.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from hanlm.config import opt

logger = logging.getLogger(__name__)

DEFAULT_PROMPTS = [
    "대한민국은 민주[MASK]이다.",
    "대한민국의 주권은 [MASK]에게 있고, 모든 권력은 국민으로부터 나온다.",
    "모든 국민은 [MASK]의 자유를 가진다.",
]


@dataclass
class DemoConfig:
    out: str = opt("demo-output", "working directory for every stage's output")
    minutes: float = opt(5.0, "pretraining time budget", min=0, exclusive_min=True)
    max_steps: int = opt(3000, "pretraining step cap", min=1)
    preset: Literal["tiny", "mini", "small"] = opt("tiny", "model size")
    vocab_size: int = opt(4000, "WordPiece vocabulary size", min=100)
    pretokenize: Literal["none", "kiwi"] = opt("kiwi", "morpheme pre-tokenization (KLUE's choice)")
    corpus: list[str] = opt(help="corpus files (default: the embedded Constitution)", factory=list)
    prompts: list[str] = opt(help="fill-mask prompts", factory=lambda: list(DEFAULT_PROMPTS))


def embedded_corpus() -> Path:
    return Path(str(resources.files("hanlm") / "resources" / "constitution.txt"))


def run_demo(cfg: DemoConfig) -> int:
    # Imported here, not at the top: the CLI imports this module for DemoConfig to parse
    # `hanlm demo --help`, which must not wait for torch.
    from hanlm.data.build import DataBuildConfig, build_dataset
    from hanlm.export import ExportConfig, export_model
    from hanlm.infer import fill_mask
    from hanlm.text import CorpusConfig
    from hanlm.tokenizer import TokenizerTrainConfig, train_tokenizer
    from hanlm.train.optim import OptimConfig
    from hanlm.train.pretrain import PretrainConfig, pretrain

    started = time.time()
    out = Path(cfg.out)
    if out.exists():
        shutil.rmtree(out)
    corpus = cfg.corpus or [str(embedded_corpus())]
    reader = CorpusConfig()
    logger.info("1/5 tokenizer: WordPiece on %s", ", ".join(corpus))
    tok_dir = train_tokenizer(TokenizerTrainConfig(
        corpus=corpus, out=str(out / "tokenizer"), vocab_size=cfg.vocab_size, min_frequency=1,
        pretokenize=cfg.pretokenize, reader=reader,
    ))
    logger.info("2/5 data: NSP pairs")
    data_dir = build_dataset(DataBuildConfig(
        corpus=corpus, tokenizer=str(tok_dir), out=str(out / "data"), max_len=64,
        dupe_factor=10, eval_fraction=0.0, workers=1, reader=reader,
    ))
    logger.info("3/5 pretrain: %s BERT for at most %.1f minutes", cfg.preset, cfg.minutes)
    run_dir = pretrain(PretrainConfig(
        data=str(data_dir), out=str(out / "run"), preset=cfg.preset, max_steps=cfg.max_steps,
        max_minutes=cfg.minutes, batch_size=32, dropout=0.0, log_every=50, save_every=500,
        tensorboard=False, optim=OptimConfig(lr=2e-3, warmup_ratio=0.02, schedule="constant"),
    ))
    logger.info("4/5 export: Hugging Face format")
    model_dir = export_model(ExportConfig(checkpoint=str(run_dir), out=str(out / "model"),
                                          name="hanlm-demo-constitution"))
    logger.info("5/5 fill-mask")
    for prompt, predictions in zip(cfg.prompts, fill_mask(model_dir, cfg.prompts, top_k=5), strict=True):
        shown = ", ".join(f"{p['token_str']} ({p['score']:.2f})" for p in predictions)
        print(f"{prompt}\n  -> {shown}")
    print(f"\ndemo finished in {time.time() - started:.0f} s; model: {model_dir}")
    return 0
