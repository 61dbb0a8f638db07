"""Data build speed and memory: `hanlm data build` against bare `tokenizers` encode_batch on the
same review texts, at 1x and 4x corpus size, back to back in one run.

    python -m bench.data_build --quick          # 1x = 25K reviews (both sizes under one chunk)
    python -m bench.data_build                  # 1x = 170K reviews (~1 chunk), 4x = 680K (~4)
    python -m bench.data_build --profile        # + where a one-process build spends its CPU time

Each measurement runs in its own process (peak RSS is its own; for hanlm, the build's worker
processes are counted too). Speed is MB/s of UTF-8 review text (the same byte count for both);
the bare baseline times only `Tokenizer.encode_batch` on texts already in memory (and, as a
stricter second baseline, `encode_batch_fast`, which skips offsets as hanlm does), hanlm the whole
build (read + normalise + group + tokenize + NSP pairs + write shards). Each size is
measured as `--repeat` pairs (default 3), bare and hanlm back to back in alternating order; the
ratio of each pair is taken within it and the median over pairs is reported, because on these
shared machines the bare baseline alone moves by ±30% between runs minutes apart.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import corpus
from bench.children import cpu_seconds, peak_memory, run_child, time_encode
from bench.common import machine, write_json


def child_bare(corpus_file: str, tokenizer: str) -> dict:
    from hanlm.text import read_texts

    return time_encode(list(read_texts([corpus_file], corpus.reader_config())), tokenizer)


def child_hanlm(corpus_file: str, tokenizer: str, out: str) -> dict:
    from hanlm.data.build import DataBuildConfig, build_dataset

    start, cpu = time.perf_counter(), cpu_seconds()
    build_dataset(DataBuildConfig(corpus=[corpus_file], tokenizer=tokenizer, out=out, overwrite=True,
                                  reader=corpus.reader_config()))
    return {"seconds": time.perf_counter() - start, "cpu_seconds": cpu_seconds() - cpu}


def profile_build(corpus_file: str, tokenizer: str, top: int = 15) -> dict:
    """cProfile of a one-process build, summed per stage (by source file) and the top functions.

    Timed in CPU seconds of the process (time.process_time), not wall time: on a loaded machine
    wall time mostly measures the other processes."""
    from hanlm.data.build import DataBuildConfig, build_dataset

    with tempfile.TemporaryDirectory() as tmp:
        prof = cProfile.Profile(time.process_time)
        prof.enable()
        build_dataset(DataBuildConfig(corpus=[corpus_file], tokenizer=tokenizer, out=f"{tmp}/d", workers=1,
                                      reader=corpus.reader_config()))
        prof.disable()
    stats = pstats.Stats(prof)
    stages = {"read + normalise + group (hanlm/text)": "hanlm/text/", "tokenize (hanlm/tokenizer)": "hanlm/tokenizer/",
              "NSP pairs (hanlm/data/instances.py)": "hanlm/data/instances.py", "write shards": "hanlm/data/shards.py"}
    by_stage = dict.fromkeys(stages, 0.0)
    rows = []
    for (file, line, name), (_, _, tottime, cumtime, _) in stats.stats.items():
        rows.append((tottime, cumtime, f"{Path(file).name}:{line}({name})"))
    for label, part in stages.items():
        # the stage's own functions' cumulative time, without double counting nested calls
        by_stage[label] = max((c for (f, _, _), (_, _, _, c, _) in stats.stats.items() if part in f), default=0.0)
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    return {"total_seconds": total, "by_stage_cumulative_seconds": by_stage,
            "top_functions": [{"tottime": t, "cumtime": c, "function": f} for t, c, f in rows[:top]]}


def measure_pair(file: Path, tok: Path, out: Path, *, hanlm_first: bool) -> dict:
    """One bare and one hanlm measurement back to back, in either order (alternated between
    pairs, so a machine that speeds up or slows down during the run favours neither)."""
    runs = {}
    for kind in (("hanlm", "bare") if hanlm_first else ("bare", "hanlm")):
        extra = (str(out),) if kind == "hanlm" else ()
        runs[kind] = run_child(kind, str(file), str(tok), *extra)
    return runs


def summarise(pairs: list[dict], *, reviews: int) -> dict:
    """Medians over the pairs: each ratio is taken within its pair (the same minute of the
    machine), then the median of those ratios is reported."""
    mb = pairs[0]["bare"]["bytes"] / 1e6
    bare_s = [p["bare"]["seconds"] for p in pairs]
    ours_s = [p["hanlm"]["seconds"] for p in pairs]
    each = [b / o for b, o in zip(bare_s, ours_s, strict=True)]
    each_cpu = [p["bare"]["cpu_seconds"] / p["hanlm"]["cpu_seconds"] for p in pairs]
    each_fast = [p["bare"]["fast_seconds"] / p["hanlm"]["seconds"] for p in pairs]
    return {
        "reviews": reviews, "text_mb": mb, "pairs": len(pairs),
        "bare_mb_per_second": mb / statistics.median(bare_s), "hanlm_mb_per_second": mb / statistics.median(ours_s),
        "hanlm_over_bare": statistics.median(each), "hanlm_over_bare_each": each,
        "bare_fast_mb_per_second": mb / statistics.median(p["bare"]["fast_seconds"] for p in pairs),
        "hanlm_over_bare_fast": statistics.median(each_fast), "hanlm_over_bare_fast_each": each_fast,
        "bare_cpu_seconds": statistics.median(p["bare"]["cpu_seconds"] for p in pairs),
        "hanlm_cpu_seconds": statistics.median(p["hanlm"]["cpu_seconds"] for p in pairs),
        "hanlm_over_bare_cpu": statistics.median(each_cpu),
        "bare_peak_rss_mb": max(p["bare"]["peak_rss_mb"] for p in pairs),
        "hanlm_peak_rss_mb": max(p["hanlm"]["peak_rss_mb"] for p in pairs),
        "hanlm_worker_peak_rss_mb": max(p["hanlm"]["peak_rss_children_mb"] for p in pairs),
    }


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--reviews", type=int, default=None, help="1x corpus size in reviews")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--repeat", type=int, default=3,
                        help="bare/hanlm pairs per size; the ratios are medians over them")
    parser.add_argument("--work", default="/tmp/hanlm-bench")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        result = child_bare(*rest) if kind == "bare" else child_hanlm(*rest)
        print(json.dumps(result | peak_memory()))
        return None
    # A build's main process holds at most two chunks (--chunk-chars, 4M characters ~ 170K
    # reviews), its workers a piece each: memory can only be shown flat with sizes of a chunk and more.
    base = args.reviews or (25_000 if args.quick else 170_000)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tok = corpus.prepare_tokenizer(work, reviews=base, vocab_size=32000, tokenizer_texts=base)
    report = {"command": "python -m bench.data_build " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": machine(), "sizes": {}}
    for factor in (1, 4):
        file = corpus.first_lines(corpus.REVIEWS, work / f"reviews-{base * factor}.tsv.gz", base * factor)
        pairs = [measure_pair(file, tok, work / f"build-{factor}x", hanlm_first=k % 2 == 1)
                 for k in range(args.repeat)]
        report["sizes"][f"{factor}x"] = entry = summarise(pairs, reviews=base * factor)
        print(f"{factor}x ({entry['text_mb']:.1f} MB of text, median of {len(pairs)} pairs): bare encode_batch "
              f"{entry['bare_mb_per_second']:.2f} MB/s, hanlm data build {entry['hanlm_mb_per_second']:.2f} MB/s "
              f"= {entry['hanlm_over_bare']:.0%} of bare (pairs: "
              f"{', '.join(f'{r:.0%}' for r in entry['hanlm_over_bare_each'])}); "
              f"{entry['hanlm_over_bare_fast']:.0%} of bare encode_batch_fast "
              f"({entry['bare_fast_mb_per_second']:.2f} MB/s); CPU-s bare "
              f"{entry['bare_cpu_seconds']:.2f}, hanlm {entry['hanlm_cpu_seconds']:.2f} "
              f"= {entry['hanlm_over_bare_cpu']:.0%}; peak RSS bare {entry['bare_peak_rss_mb']:.0f} MB, "
              f"hanlm {entry['hanlm_peak_rss_mb']:.0f} MB (+ workers {entry['hanlm_worker_peak_rss_mb']:.0f} MB "
              "each at most)")
    if args.profile:
        file = work / f"reviews-{base}.tsv.gz"
        report["profile_1x_one_process"] = prof = profile_build(str(file), str(tok))
        print(f"profile (1 process, {prof['total_seconds']:.1f} CPU-s):")
        for stage, sec in prof["by_stage_cumulative_seconds"].items():
            print(f"  {stage:<42} {sec:6.1f} s")
    name = "data_build-quick" if args.quick else "data_build"
    write_json(Path(args.out) / f"{name}.json", report)
    return report


if __name__ == "__main__":
    main()
