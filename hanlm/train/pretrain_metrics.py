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
    totals = dict(mlm_loss=0.0, mlm_correct=0, mlm_count=0, nsp_loss=0.0, nsp_correct=0, nsp_count=0,
                  masked_loss=0.0, unigram_loss=0.0, masked_count=0)
    for lo in range(0, n, batch_size):
        idx = list(range(lo, min(n, lo + batch_size)))
        batch = collate([reader[i] for i in idx], idx, [EVAL_EPOCH] * len(idx))
        out = model(**{k: v.to(device) for k, v in batch.items()})
        totals["mlm_loss"] += out.mlm_loss.item() * int(out.mlm_count)
        totals["nsp_loss"] += out.nsp_loss.item() * int(out.nsp_count)
        for key in ("mlm_correct", "mlm_count", "nsp_correct", "nsp_count"):
            totals[key] += int(getattr(out, key))
        if unigram_log_probs is not None:
            shown_as_mask = batch["input_ids"].flatten()[batch["mlm_positions"]] == collate.mask_id
            totals["masked_loss"] += out.mlm_token_losses.cpu()[shown_as_mask].sum().item()
            totals["unigram_loss"] -= unigram_log_probs[batch["mlm_labels"][shown_as_mask]].sum().item()
            totals["masked_count"] += int(shown_as_mask.sum())
    model.train(was_training)
    mlm_loss = totals["mlm_loss"] / max(1, totals["mlm_count"])
    nsp_loss = totals["nsp_loss"] / max(1, totals["nsp_count"])
    metrics = {
        "loss": mlm_loss + nsp_loss,
        "mlm_loss": mlm_loss,
        "mlm_accuracy": totals["mlm_correct"] / max(1, totals["mlm_count"]),
        "nsp_loss": nsp_loss,
        "nsp_accuracy": totals["nsp_correct"] / max(1, totals["nsp_count"]),
        "instances": n,
    }
    if totals["masked_count"]:
        masked = totals["masked_loss"] / totals["masked_count"]
        unigram = totals["unigram_loss"] / totals["masked_count"]
        metrics.update(mlm_masked_loss=masked, mlm_unigram_loss=unigram,
                       mlm_context_gain=unigram - masked)
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
        self.micro_steps = 0
        self.mlm_loss = self.nsp_loss = 0.0
        self.mlm_correct = self.mlm_count = self.nsp_correct = self.nsp_count = 0
        self.tokens = self.samples = 0
        self.started = time.perf_counter()

    def add(self, out, batch) -> None:
        self.mlm_loss += out.mlm_loss.item()
        self.nsp_loss += out.nsp_loss.item()
        self.mlm_correct += int(out.mlm_correct)
        self.mlm_count += int(out.mlm_count)
        self.nsp_correct += int(out.nsp_correct)
        self.nsp_count += int(out.nsp_count)
        self.tokens += int(batch["attention_mask"].sum())
        self.samples += batch["input_ids"].shape[0]
        self.micro_steps += 1

    def metrics(self, accelerator) -> dict[str, float]:
        """Averages over the window and over every process (so the figures do not depend on
        how the global batch was split)."""
        seconds = time.perf_counter() - self.started
        sums = torch.tensor(
            [self.mlm_loss, self.nsp_loss, self.micro_steps, self.mlm_correct, self.mlm_count,
             self.nsp_correct, self.nsp_count, self.tokens, self.samples],
            dtype=torch.float64, device=accelerator.device,
        )
        if accelerator.num_processes > 1:
            sums = accelerator.reduce(sums, reduction="sum")
        mlm_loss, nsp_loss, micro, mlm_ok, mlm_n, nsp_ok, nsp_n, tokens, samples = sums.tolist()
        return {
            "loss": (mlm_loss + nsp_loss) / max(1, micro),
            "mlm_loss": mlm_loss / max(1, micro),
            "nsp_loss": nsp_loss / max(1, micro),
            "mlm_accuracy": mlm_ok / max(1, mlm_n),
            "nsp_accuracy": nsp_ok / max(1, nsp_n),
            "tokens_per_second": tokens / max(seconds, 1e-9),
            "samples_per_second": samples / max(seconds, 1e-9),
        }
