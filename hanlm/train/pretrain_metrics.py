"""What pretraining measures: the running training figures between two log lines, and the
held-out evaluation with fixed masks."""

from __future__ import annotations

import time

import numpy as np
import torch

from hanlm.data.batches import Collator
from hanlm.data.shards import ShardReader
from hanlm.model.bert import PretrainingModel

EVAL_EPOCH = 2**31 - 1  # masking "epoch" of the held-out set: the same masks at every evaluation


@torch.no_grad()
def evaluate(model: PretrainingModel, reader: ShardReader, collate: Collator, *, batch_size: int,
             batches: int, device: torch.device,
             unigram_log_probs: torch.Tensor | None = None) -> dict[str, float]:
    """Token-weighted MLM loss/accuracy and NSP loss/accuracy on the first instances of the
    held-out split, with fixed masks so evaluations compare across steps.

    With `unigram_log_probs` (see `unigram_log_probs`) it also reports the loss on the positions
    shown as [MASK] (`mlm_masked_loss`), what a model knowing only token frequencies scores there
    (`mlm_unigram_loss`), and their difference, `mlm_context_gain` in nats: how much the model
    uses the context. Early in pretraining a BERT sits on a plateau where it predicts token
    frequencies and copies the tokens that are not masked; the total MLM loss then still falls
    (the copying), but the context gain stays near 0 until the model leaves the plateau.
    """
    was_training = model.training
    model.eval()
    n = min(len(reader), batches * batch_size)
    sums = HeadSums()
    masked = dict(loss=0.0, unigram=0.0, count=0)
    for lo in range(0, n, batch_size):
        idx = list(range(lo, min(n, lo + batch_size)))
        batch = collate([reader[i] for i in idx], idx, [EVAL_EPOCH] * len(idx))
        out = model(**{k: v.to(device) for k, v in batch.items()})
        sums.add(out, token_weighted=True)
        if unigram_log_probs is not None:
            shown_as_mask = batch["input_ids"].flatten()[batch["mlm_positions"]] == collate.mask_id
            masked["loss"] += out.mlm_token_losses.cpu()[shown_as_mask].sum().item()
            masked["unigram"] -= unigram_log_probs[batch["mlm_labels"][shown_as_mask]].sum().item()
            masked["count"] += int(shown_as_mask.sum())
    model.train(was_training)
    metrics = {**sums.metrics(per_count=True), "instances": n}
    if masked["count"]:
        masked_loss = masked["loss"] / masked["count"]
        unigram = masked["unigram"] / masked["count"]
        metrics.update(mlm_masked_loss=masked_loss, mlm_unigram_loss=unigram,
                       mlm_context_gain=unigram - masked_loss)
    return metrics


HEADS = ("mlm", "nsp", "rtd")  # masked LM, next sentence, replaced-token detection (ELECTRA)


class HeadSums:
    """Loss, correct and count of each prediction head a model's output carries (`mlm_loss`,
    `mlm_correct`, `mlm_count`, ...); a head with no predictions in the output is left out, so
    an MLM-only model reports no NSP figures. `loss` is the sum of the heads' mean losses, each
    times the output's `HEAD_weight` where it has one (ELECTRA weighs replaced-token detection
    by 50)."""

    def __init__(self):
        self.loss: dict[str, float] = {}
        self.correct: dict[str, int] = {}
        self.count: dict[str, int] = {}
        self.weight: dict[str, float] = {}
        self.outputs = 0

    def add(self, out, *, token_weighted: bool) -> None:
        """One output's figures: its mean losses times its prediction counts when
        `token_weighted` (a held-out mean over every prediction), else as they are (a mean
        over micro-batches, as training logs)."""
        self.outputs += 1
        for head in HEADS:
            count = int(getattr(out, f"{head}_count", 0))
            if not count:
                continue
            loss = getattr(out, f"{head}_loss").item()
            self.loss[head] = self.loss.get(head, 0.0) + (loss * count if token_weighted else loss)
            self.correct[head] = self.correct.get(head, 0) + int(getattr(out, f"{head}_correct"))
            self.count[head] = self.count.get(head, 0) + count
            self.weight[head] = float(getattr(out, f"{head}_weight", 1.0))

    def vector(self) -> list[float]:
        return [x for head in HEADS for x in (self.loss.get(head, 0.0),
                                              self.correct.get(head, 0), self.count.get(head, 0))]

    def load(self, values: list[float]) -> None:
        for k, head in enumerate(HEADS):
            loss, correct, count = values[3 * k: 3 * k + 3]
            if count:
                self.loss[head], self.correct[head], self.count[head] = loss, correct, count

    def metrics(self, *, per_count: bool, outputs: int | None = None) -> dict[str, float]:
        """Mean loss and accuracy per head; losses divided by the predictions (`per_count`) or
        by the number of outputs added."""
        metrics: dict[str, float] = {"loss": 0.0}
        for head in HEADS:
            if head not in self.count:
                continue
            denominator = self.count[head] if per_count else max(1, outputs or self.outputs)
            loss = self.loss[head] / denominator
            metrics["loss"] += self.weight.get(head, 1.0) * loss
            metrics[f"{head}_loss"] = loss
            metrics[f"{head}_accuracy"] = self.correct[head] / self.count[head]
        return metrics


def unigram_log_probs(reader: ShardReader, vocab_size: int, special_ids: set[int]) -> torch.Tensor:
    """Log frequency of every token id in a split, special tokens left out (they are never
    predicted), add-0.5 smoothed; read shard by shard."""
    counts = np.full(vocab_size, 0.5)
    for shard in reader.shards:
        counts += np.bincount(np.asarray(shard["input_ids"]), minlength=vocab_size)[:vocab_size]
    counts[sorted(special_ids)] = 0.5
    return torch.from_numpy(np.log(counts / counts.sum()))


class TrainWindow:
    """Running sums between two log lines."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.heads = HeadSums()
        self.tokens = self.samples = 0
        self.started = time.perf_counter()

    def add(self, out, batch) -> None:
        self.heads.add(out, token_weighted=False)
        self.tokens += int(batch["attention_mask"].sum())
        self.samples += batch["input_ids"].shape[0]

    def metrics(self, accelerator) -> dict[str, float]:
        """Averages over the window and over every process (so the figures do not depend on
        how the global batch was split)."""
        seconds = time.perf_counter() - self.started
        sums = torch.tensor([*self.heads.vector(), self.heads.outputs, self.tokens, self.samples],
                            dtype=torch.float64, device=accelerator.device)
        if accelerator.num_processes > 1:
            sums = accelerator.reduce(sums, reduction="sum")
        *heads, outputs, tokens, samples = sums.tolist()
        self.heads.load(heads)
        return {
            **self.heads.metrics(per_count=False, outputs=int(outputs)),
            "tokens_per_second": tokens / max(seconds, 1e-9),
            "samples_per_second": samples / max(seconds, 1e-9),
        }
