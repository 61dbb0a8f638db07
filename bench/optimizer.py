"""AdamW implementations on this machine: foreach vs fused, interleaved in one process.

    python -m bench.optimizer            # BERT-mini classifier, 32K vocabulary, 12 rounds

Each implementation gets its own copy of the same model; the two alternate one training step at a
time (so background load hits both alike), and the forward+backward and the optimizer step are
timed apart. Prints the medians and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import BertConfig, BertForSequenceClassification


def compare(*, vocab_size: int = 32000, hidden: int = 256, layers: int = 4, rounds: int = 12,
            batch: tuple[int, int] = (32, 20)) -> dict[str, dict[str, float]]:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden,
                        attn_implementation="eager")
    ids = torch.randint(5, vocab_size, batch)
    labels = torch.randint(0, 2, (batch[0],))
    systems = {}
    for name in ("foreach", "fused"):
        model = BertForSequenceClassification(config).train()
        flags = {"foreach": True} if name == "foreach" else {"fused": True}
        systems[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4, **flags))
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in systems}
    for i in range(rounds):
        for name, (model, optimizer) in systems.items():
            start = time.perf_counter()
            model(input_ids=ids, labels=labels).loss.backward()
            middle = time.perf_counter()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if i >= 2:  # the first rounds allocate optimizer state
                times[name].append((middle - start, time.perf_counter() - middle))
    return {name: {"forward_backward_s": statistics.median(a for a, _ in t),
                   "optimizer_s": statistics.median(b for _, b in t)} for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    result = compare(rounds=parser.parse_args().rounds)
    for name, r in result.items():
        print(f"{name:8s} forward+backward {r['forward_backward_s']:.3f} s   "
              f"optimizer step {r['optimizer_s']:.3f} s")
    ratio = result["foreach"]["optimizer_s"] / result["fused"]["optimizer_s"]
    print(f"fused optimizer step is {ratio:.1f}x faster than foreach")


if __name__ == "__main__":
    main()
