"""Data build at corpus scale: all of kowiki and nsmc-raw (~270 MB of source files) through
`hanlm data build` with 1 and 2 worker processes, against bare `tokenizers` on one thread.

    python -m bench.corpus_scale                  # the full corpus -> bench/results/data_build-corpus-scale.json
    python -m bench.corpus_scale --limit-mb 5     # a smoke run on the first 5 MB (its own result file)

The corpus is the two kowiki files (WikiExtractor, one document per <doc>) and the raw reviews
(TSV, one document per movie), given to `build_dataset` as they are and read by hanlm's own
readers, one `CorpusConfig` for all three files (the format is told by each file). The NSMC test
ids are not excluded: this measures throughput, and with one reader config for all files the
review ids would also be matched against the wiki article ids (320 of which are equal to an
NSMC test id). `--limit-mb` and the smaller prefix of the memory check are gzipped prefix copies
in --work, each source cut in proportion to its size (at a document boundary for wiki).

Each measurement runs in its own process with RAYON_NUM_THREADS=1, so a bare figure is one
core's (its CPU-s / wall-s is printed as the check that the Rust pool kept to one thread):
- read: hanlm's readers alone over the corpus (bytes of UTF-8 text, the MB of every figure);
- bare: `encode_batch` and `encode_batch_fast` on the first `--sample-mb` of text, in memory;
- hanlm: the whole build with 1 and 2 workers, over the corpus and over its first
  `--prefix-fraction` (memory must not grow with the corpus). Tokens are those written to the
  shards (meta.json). CPU-s are split between the main process (read, normalise, group, pair,
  write) and the workers (tokenize): the main process's MB per CPU-s caps the build at any number
  of workers, which the extrapolation to 16 and 64 cores applies.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import struct
import sys
import time
from pathlib import Path

from bench.children import cpu_split, peak_memory, run_child, time_encode
from hanlm.text import CorpusConfig

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

ENV = {"RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "true"}
READER = CorpusConfig(text_column="review", group_column="movie_id", id_column="review_id")


def sources(shared: Path) -> list[Path]:
    return [*sorted((shared / "kowiki").glob("kowiki_text_*.txt.gz")), shared / "nsmc-raw" / "reviews.tsv.gz"]


def source_bytes(path: Path) -> int:
    """Uncompressed size: a gzip file's ISIZE trailer (exact below 4 GiB, as every file here)."""
    if path.suffix != ".gz":
        return path.stat().st_size
    with path.open("rb") as f:
        f.seek(-4, 2)
        return struct.unpack("<I", f.read(4))[0]


def prefix_copy(source: Path, out: Path, max_bytes: int) -> Path:
    """A gzipped copy of the first `max_bytes` of `source`, cut at a line end, and in WikiExtractor
    files after the `</doc>` that closes the document under way (a TSV keeps its header)."""
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    written, wiki = 0, None
    with gzip.open(source, "rb") as src, gzip.open(tmp, "wb", compresslevel=1) as dst:
        for line in src:
            wiki = line.startswith(b"<doc") if wiki is None else wiki
            dst.write(line)
            written += len(line)
            if written >= max_bytes and (not wiki or line.strip() == b"</doc>"):
                break
    tmp.rename(out)
    return out


def corpus_files(files: list[Path], work: Path, limit_mb: float | None) -> list[Path]:
    """The files themselves, or prefix copies of `limit_mb` MB in all, each source's share in
    proportion to its size."""
    if limit_mb is None:
        return files
    sizes = [source_bytes(f) for f in files]
    folder = work / f"prefix-{limit_mb:g}mb"
    return [prefix_copy(f, folder / f.name, int(limit_mb * 1e6 * s / sum(sizes))) for f, s in zip(files, sizes, strict=True)]


def prepare_tokenizer(files: list[Path], work: Path, *, sample_mb: float, vocab_size: int) -> Path:
    """WordPiece trained by hanlm on the first `sample_mb` MB of the corpus (every source in
    proportion), cached in --work."""
    from hanlm.tokenizer import TokenizerTrainConfig, train_tokenizer

    tok = work / f"tok-mix{sample_mb:g}mb-v{vocab_size}"
    if not (tok / "tokenizer.json").is_file():
        sample = corpus_files(files, work, sample_mb)
        train_tokenizer(TokenizerTrainConfig(corpus=[str(f) for f in sample], out=str(tok), vocab_size=vocab_size,
                                             overwrite=True, reader=READER))
    return tok


# ---------------------------------------------------------------- children (own processes)


def child_read(files: list[str]) -> dict:
    from hanlm.text import read_texts

    start, (cpu, _) = time.perf_counter(), cpu_split()
    texts = size = chars = 0
    for text in read_texts(files, READER):
        texts, size, chars = texts + 1, size + len(text.encode()), chars + len(text)
    return {"seconds": time.perf_counter() - start, "cpu_seconds": cpu_split()[0] - cpu,
            "texts": texts, "bytes": size, "chars": chars}


def child_bare(files: list[str], tokenizer: str, sample_bytes: int) -> dict:
    """The bare baseline on the first `sample_bytes` of text, each source in proportion."""
    from hanlm.text import read_texts

    sizes = [source_bytes(Path(f)) for f in files]
    texts: list[str] = []
    for file, size in zip(files, sizes, strict=True):
        budget, got = sample_bytes * size / sum(sizes), 0
        for text in read_texts([file], READER):
            texts.append(text)
            got += len(text.encode())
            if got >= budget:
                break
    return time_encode(texts, tokenizer)


def child_hanlm(files: list[str], tokenizer: str, out: str, workers: int) -> dict:
    from hanlm.data.build import DataBuildConfig, build_dataset

    start, cpu = time.perf_counter(), cpu_split()
    build_dataset(DataBuildConfig(corpus=files, tokenizer=tokenizer, out=out, workers=workers, overwrite=True,
                                  reader=READER))
    seconds, (main_cpu, workers_cpu) = time.perf_counter() - start, cpu_split()
    meta = json.loads((Path(out) / "meta.json").read_text())
    return {"seconds": seconds, "main_cpu_seconds": main_cpu - cpu[0], "workers_cpu_seconds": workers_cpu - cpu[1],
            "tokens": sum(s["tokens"] for s in meta["splits"].values()),
            "instances": sum(s["instances"] for s in meta["splits"].values()),
            "documents": meta["documents"], "chars": meta["chars"], "shards": meta["shards"]}


def run_child_kind(kind: str, **params) -> dict:
    return run_child(json.dumps({"kind": kind, **params}), module="bench.corpus_scale", env=ENV)


# ---------------------------------------------------------------- figures


def build_entry(run: dict, text_bytes: int, workers: int) -> dict:
    mb = text_bytes / 1e6
    cpu = run["main_cpu_seconds"] + run["workers_cpu_seconds"]
    return run | {"workers": workers, "text_mb": mb, "cpu_seconds": cpu, "mb_per_second": mb / run["seconds"],
                  "mb_per_second_per_worker": mb / run["seconds"] / workers,
                  "tokens_per_second": run["tokens"] / run["seconds"],
                  "main_mb_per_cpu_second": mb / run["main_cpu_seconds"]}


def summarise(bare: dict, builds: dict[str, dict], *, small: str) -> dict:
    """hanlm per worker against bare per core, the 2-worker speedup and memory flatness
    (full corpus against the `small` prefix, same workers)."""
    one, two = builds["full-w1"], builds["full-w2"]
    bare_mb = bare["bytes"] / 1e6
    speedup = one["seconds"] / two["seconds"]
    out = {"bare_mb_per_second_per_core": bare_mb / bare["seconds"],
           "bare_fast_mb_per_second_per_core": bare_mb / bare["fast_seconds"],
           "bare_tokens_per_second_per_core": bare["tokens"] / bare["fast_seconds"],
           "bare_threads_used": bare["cpu_seconds"] / bare["seconds"],
           "speedup_2_over_1_worker": speedup, "efficiency_2_workers": speedup / 2}
    for name in ("full-w1", "full-w2"):
        per_worker = builds[name]["mb_per_second_per_worker"]
        out[f"{name}_over_bare_per_core"] = per_worker / out["bare_mb_per_second_per_core"]
        out[f"{name}_over_bare_fast_per_core"] = per_worker / out["bare_fast_mb_per_second_per_core"]
    for workers in (1, 2):
        full, part = builds[f"full-w{workers}"], builds[f"{small}-w{workers}"]
        out[f"w{workers}_main_rss_full_over_{small}"] = full["peak_rss_mb"] / part["peak_rss_mb"]
        out[f"w{workers}_main_rss_growth_mb"] = full["peak_rss_mb"] - part["peak_rss_mb"]
        if workers > 1:
            out[f"w{workers}_worker_rss_full_over_{small}"] = full["peak_rss_children_mb"] / part["peak_rss_children_mb"]
    return out


def extrapolate(per_worker_mb_s: float, efficiency: float, main_mb_per_cpu_s: float, main_rss_mb: float,
                worker_rss_mb: float, *, corpus_gb=(10, 30), cores=(16, 64)) -> dict:
    """Hours and memory of a build of `corpus_gb` GB of text on `cores` cores, one worker per core.

    Throughput = cores x per-worker MB/s x the 2-worker efficiency (capped at 1), but never above
    the main process's MB per CPU-second: it reads, normalises, pairs and writes everything alone.
    Memory = the main process + one worker's peak per core, as measured (both flat in the corpus)."""
    efficiency = min(efficiency, 1.0)
    rows = []
    for n in cores:
        workers_rate = n * per_worker_mb_s * efficiency
        rate = min(workers_rate, main_mb_per_cpu_s)
        for gb in corpus_gb:
            rows.append({"cores": n, "corpus_gb": gb, "mb_per_second": rate, "hours": gb * 1000 / rate / 3600,
                         "bound_by": "workers" if workers_rate <= main_mb_per_cpu_s else "main process",
                         "peak_rss_gb": (main_rss_mb + n * worker_rss_mb) / 1024})
    return {"assumption": "linear in workers at the measured 2-worker efficiency (capped at 1), at most the "
                          "main process's MB per CPU-s; memory = main + one worker per core, as measured",
            "per_worker_mb_per_second": per_worker_mb_s, "efficiency": efficiency,
            "main_mb_per_cpu_second": main_mb_per_cpu_s, "rows": rows}


# ---------------------------------------------------------------- driver


def measure(files: list[Path], tok: Path, work: Path, *, label: str, workers: list[int]) -> dict:
    """The read pass, then one build per worker count (its output removed once measured)."""
    paths = [str(f) for f in files]
    read = run_child_kind("read", files=paths)
    print(f"{label}: {read['bytes'] / 1e6:.1f} MB of text in {read['texts']:,} texts; read alone "
          f"{read['seconds']:.1f} s ({read['bytes'] / 1e6 / read['seconds']:.2f} MB/s)", flush=True)
    builds = {}
    for n in workers:
        out = work / f"build-{label}-w{n}"
        run = run_child_kind("hanlm", files=paths, tokenizer=str(tok), out=str(out), workers=n)
        shutil.rmtree(out, ignore_errors=True)
        builds[f"{label}-w{n}"] = entry = build_entry(run, read["bytes"], n)
        print(f"  {n} worker(s): {entry['seconds']:.1f} s, {entry['mb_per_second']:.2f} MB/s "
              f"({entry['mb_per_second_per_worker']:.2f} per worker), {entry['tokens_per_second'] / 1e3:,.0f}K tokens/s; "
              f"CPU-s main {entry['main_cpu_seconds']:.1f} + workers {entry['workers_cpu_seconds']:.1f}; "
              f"peak RSS main {entry['peak_rss_mb']:.0f} MB ({entry['start_rss_mb']:.0f} at start), largest worker "
              f"{entry['peak_rss_children_mb']:.0f} MB",
              flush=True)
    return {"read": read, "builds": builds}


def print_summary(summary: dict, extrapolation: dict, small: str) -> None:
    s = summary
    print(f"bare, one core: encode_batch {s['bare_mb_per_second_per_core']:.2f} MB/s, encode_batch_fast "
          f"{s['bare_fast_mb_per_second_per_core']:.2f} MB/s ({s['bare_tokens_per_second_per_core'] / 1e3:,.0f}K "
          f"tokens/s); CPU-s / wall-s {s['bare_threads_used']:.2f} (1.0 = one thread)")
    print(f"hanlm per worker / bare encode_batch per core: 1 worker {s['full-w1_over_bare_per_core']:.0%}, "
          f"2 workers {s['full-w2_over_bare_per_core']:.0%} (target >= 70%); against encode_batch_fast "
          f"{s['full-w1_over_bare_fast_per_core']:.0%} / {s['full-w2_over_bare_fast_per_core']:.0%}")
    print(f"2 workers over 1: {s['speedup_2_over_1_worker']:.2f}x (efficiency {s['efficiency_2_workers']:.0%})")
    print(f"memory, full corpus / {small}: main {s[f'w1_main_rss_full_over_{small}']:.2f}x "
          f"({s['w1_main_rss_growth_mb']:+.0f} MB, 1 worker), {s[f'w2_main_rss_full_over_{small}']:.2f}x "
          f"({s['w2_main_rss_growth_mb']:+.0f} MB, 2 workers), worker {s[f'w2_worker_rss_full_over_{small}']:.2f}x")
    print(f"extrapolation ({extrapolation['assumption']}):")
    for row in extrapolation["rows"]:
        print(f"  {row['corpus_gb']:>3} GB on {row['cores']:>2} cores: {row['hours']:6.2f} h at "
              f"{row['mb_per_second']:.1f} MB/s (bound by the {row['bound_by']}), peak RSS {row['peak_rss_gb']:.1f} GB")


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit-mb", type=float, default=None,
                        help="only the first N MB of the source files (split in proportion); a smoke run")
    parser.add_argument("--prefix-fraction", type=float, default=0.25,
                        help="the smaller corpus of the memory check, as a fraction of the corpus")
    parser.add_argument("--sample-mb", type=float, default=30, help="text of the bare baseline (held in memory)")
    parser.add_argument("--tokenizer-mb", type=float, default=4, help="text the tokenizer is trained on")
    parser.add_argument("--vocab-size", type=int, default=32000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--work", type=Path, default=Path("/tmp/hanlm-bench/corpus-scale"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        params = json.loads(args.child)
        child = {"read": child_read, "bare": child_bare, "hanlm": child_hanlm}[params.pop("kind")]
        start_rss = peak_memory()["peak_rss_mb"]  # the interpreter and imports, before any work
        print(json.dumps(child(**params) | peak_memory() | {"start_rss_mb": start_rss}))
        return None
    # Imported here, not above: bench.common imports torch, and the children must not.
    from bench.common import machine, write_json

    if sorted(args.workers)[:2] != [1, 2]:
        parser.error("--workers must include 1 and 2 (the speedup is 2 workers over 1)")
    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    full = sources(args.shared)
    total_mb = sum(map(source_bytes, full)) / 1e6
    files = corpus_files(full, args.work, args.limit_mb)
    corpus_mb = args.limit_mb or total_mb
    small_files = corpus_files(full, args.work, corpus_mb * args.prefix_fraction)
    small = f"prefix{args.prefix_fraction:g}"
    tok = prepare_tokenizer(full, args.work, sample_mb=min(args.tokenizer_mb, corpus_mb), vocab_size=args.vocab_size)
    bare = run_child_kind("bare", files=[str(f) for f in files], tokenizer=str(tok),
                          sample_bytes=int(args.sample_mb * 1e6))
    print(f"bare sample: {bare['bytes'] / 1e6:.1f} MB of text, {bare['tokens']:,} tokens, peak RSS "
          f"{bare['peak_rss_mb']:.0f} MB", flush=True)
    measured = {"full": measure(files, tok, args.work, label="full", workers=args.workers),
                small: measure(small_files, tok, args.work, label=small, workers=args.workers)}
    builds = measured["full"]["builds"] | measured[small]["builds"]
    summary = summarise(bare, builds, small=small)
    two = builds["full-w2"]
    extrapolation = extrapolate(builds["full-w1"]["mb_per_second"], summary["efficiency_2_workers"],
                                two["main_mb_per_cpu_second"], two["peak_rss_mb"], two["peak_rss_children_mb"])
    print_summary(summary, extrapolation, small)
    report = {"command": "python -m bench.corpus_scale " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": machine(), "environment": ENV, "reader": "CorpusConfig(text_column='review', "
              "group_column='movie_id', id_column='review_id'), format auto",
              "sources": {str(f): source_bytes(f) for f in full}, "limit_mb": args.limit_mb,
              "tokenizer": str(tok), "bare": bare, "reads": {k: v["read"] for k, v in measured.items()},
              "builds": builds, "summary": summary, "extrapolation": extrapolation,
              "bench_seconds": time.perf_counter() - started}
    name = "data_build-corpus-scale" + ("" if args.limit_mb is None else f"-limit{args.limit_mb:g}mb")
    write_json(args.out / f"{name}.json", report)
    print(f"-> {args.out / f'{name}.json'} ({report['bench_seconds']:.0f} s in all)")
    return report


if __name__ == "__main__":
    main()
