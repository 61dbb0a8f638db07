"""The bad-input table of issue #6: one `Case` per input a user can get wrong.

tests/test_reliability.py runs every case through the real command-line entry point
(`hanlm.cli.main`, in-process so torch is imported once) and checks the contract: exit code 2,
one `hanlm VERB: error: ...` line naming the file and the problem, and no output that looks
complete. `ok=True` rows are inputs hanlm handles instead (cleaned, counted or adapted); their
`expect` strings are looked for in the log. tests/gen_reliability_doc.py renders the same rows,
with the message each one produced, into docs/RELIABILITY.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from hanlm.demo import embedded_corpus

# ------------------------------------------------------------------------------ workspace


class Workspace:
    """Tiny shared artefacts, each built on first use: tokenizers, data, a run, an export."""

    def __init__(self, root: Path):
        self.root = root

    @cached_property
    def corpus(self) -> Path:
        return embedded_corpus()

    def _tokenizer(self, name: str, vocab_size: int) -> Path:
        from hanlm.text import CorpusConfig
        from hanlm.tokenizer import TokenizerTrainConfig, train_tokenizer

        return train_tokenizer(TokenizerTrainConfig(
            corpus=[str(self.corpus)], out=str(self.root / name), vocab_size=vocab_size,
            min_frequency=1, reader=CorpusConfig()))

    @cached_property
    def tok(self) -> Path:
        return self._tokenizer("tok", 400)

    @cached_property
    def tok_b(self) -> Path:
        """Tokenizer A with two tokens' ids swapped: same size, another model's vocabulary."""
        import shutil

        out = self.root / "tok_b"
        shutil.copytree(self.tok, out)
        spec = json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))
        vocab = spec["model"]["vocab"]
        a, b = sorted(vocab, key=vocab.__getitem__)[100:102]
        vocab[a], vocab[b] = vocab[b], vocab[a]
        write(out / "tokenizer.json", json.dumps(spec, ensure_ascii=False))
        write(out / "vocab.txt", "".join(t + "\n" for t in sorted(vocab, key=vocab.__getitem__)))
        return out

    def build(self, out: Path, *, tokenizer: Path | None = None, max_len: int = 32) -> Path:
        from hanlm.data.build import DataBuildConfig, build_dataset
        from hanlm.text import CorpusConfig

        return build_dataset(DataBuildConfig(
            corpus=[str(self.corpus)], tokenizer=str(tokenizer or self.tok), out=str(out),
            max_len=max_len, eval_fraction=0.2, workers=1, reader=CorpusConfig()))

    @cached_property
    def data(self) -> Path:
        return self.build(self.root / "data")

    @cached_property
    def run(self) -> Path:
        from hanlm.train.pretrain import PretrainConfig, pretrain

        return pretrain(PretrainConfig(
            data=str(self.data), out=str(self.root / "run"), preset="tiny", max_steps=2,
            batch_size=4, eval_every=0, tensorboard=False, threads=1))

    @cached_property
    def hf(self) -> Path:
        from hanlm.export import ExportConfig, export_model

        return export_model(ExportConfig(checkpoint=str(self.run), out=str(self.root / "hf"),
                                         verify=False))

    @cached_property
    def pickle_only(self) -> Path:
        """The export with its weights as a pytorch_model.bin pickle instead of safetensors."""
        import shutil

        import torch
        from safetensors.torch import load_file

        out = self.root / "pickle_only"
        shutil.copytree(self.hf, out)
        torch.save(load_file(out / "model.safetensors"), out / "pytorch_model.bin")
        (out / "model.safetensors").unlink()
        return out


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def two_docs(*extra: str) -> str:
    """Two short documents (blank-line separated) so that NSP can pair them."""
    a = "대한민국은 민주공화국이다.\n대한민국의 주권은 국민에게 있다.\n"
    b = "모든 국민은 법 앞에 평등하다.\n누구든지 성별에 의하여 차별을 받지 아니한다.\n"
    return a + "\n" + b + "".join(extra)


# ------------------------------------------------------------------------------ cases


@dataclass(frozen=True)
class Case:
    id: str
    input: str  # the bad input, in words (a row of the table)
    argv: Callable[[Workspace, Path], list[str]]  # (workspace, this case's directory) -> argv
    expect: tuple[str, ...]  # in the error line, or (ok=True) in the log
    ok: bool = False  # handled (exit 0) rather than refused
    absent: str | None = "out/meta.json"  # (relative to the case dir) must not exist afterwards
    xfail: str | None = None


def data_build(ws: Workspace, d: Path, corpus: Path, *flags: str, tok: Path | None = None,
               out: Path | None = None) -> list[str]:
    return ["data", "build", str(corpus), "--tokenizer", str(tok or ws.tok), "--out",
            str(out or d / "out"), "--workers", "1", "--max-len", "32", *flags]


def pretrain(ws: Workspace, d: Path, *flags: str, data: Path | None = None,
             out: Path | None = None) -> list[str]:
    return ["pretrain", "--data", str(data or ws.data), "--out", str(out or d / "out"),
            "--preset", "tiny", "--max-steps", "1", "--batch-size", "2", "--eval-every", "0",
            "--no-tensorboard", "--threads", "1", *flags]


def finetune(ws: Workspace, d: Path, task: str, train: Path, *flags: str,
             model: Path | None = None) -> list[str]:
    return ["finetune", "--task", task, "--train", str(train), "--model", str(model or ws.hf),
            "--out", str(d / "out"), "--max-steps", "1", "--batch-size", "2", "--no-progress",
            *flags]


def _jsonl_lines(bad_at: int, bad: str) -> str:
    """The lines of two_docs() as JSONL records, with the line `bad` inserted at index `bad_at`."""
    lines = [json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in two_docs().split("\n") if t]
    return "".join(lines[:bad_at] + [bad] + lines[bad_at:])


def nsmc_table(rows: list[str]) -> str:
    return "id\tdocument\tlabel\n" + "".join(r + "\n" for r in rows)


def _published(d: Path, layout: str, variant: str = "lf") -> Path:
    """An official task file in its published layout (tests/official_layouts.py)."""
    from official_layouts import PUBLISHED, variants

    name, text = PUBLISHED[layout]
    return write(d / name, variants(text)[variant])


def _sts(score: float) -> str:
    return json.dumps([{"guid": "klue-sts-v1_dev_00000", "sentence1": "영화가 좋다",
                        "sentence2": "영화가 정말 좋다",
                        "labels": {"label": score, "real-label": score,
                                   "binary-label": int(score >= 3)}}], ensure_ascii=False)


def _ner(lines: list[str]) -> str:
    return "## klue-ner-v1_dev_00000\t이순신\n" + "\n".join(lines) + "\n\n"


def _re(end_idx: int) -> str:
    row = ("0,이순신은 장군이다.,\"{'word': '이순신', 'start_idx': 0, 'end_idx': %d, 'type': 'PER'}\","
           "\"{'word': '장군', 'start_idx': 5, 'end_idx': 6, 'type': 'POH'}\",per:title,fixture\n")
    return "id,sentence,subject_entity,object_entity,label,source\n" + row % end_idx


def _squad(start: int) -> str:
    return json.dumps({"version": "x", "data": [{"title": "t", "paragraphs": [{
        "context": "이순신은 조선의 장군이다.", "qas": [{"id": "q0", "question": "누구?",
        "answers": [{"text": "이순신", "answer_start": start}]}]}]}]}, ensure_ascii=False)


def _vocab_without_mask(ws: Workspace, d: Path) -> Path:
    tok = d / "tok"
    tok.mkdir(parents=True)
    spec = json.loads((ws.tok / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = spec["model"]["vocab"]
    vocab["[MASKED]"] = vocab.pop("[MASK]")
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] != "[MASK]"]
    write(tok / "tokenizer.json", json.dumps(spec, ensure_ascii=False))
    return tok


def _hf_vocab_only(ws: Workspace, d: Path) -> Path:
    tok = d / "bert-base-multilingual"
    write(tok / "vocab.txt", (ws.tok / "vocab.txt").read_text(encoding="utf-8"))
    write(tok / "tokenizer_config.json", json.dumps({"do_lower_case": False}))
    return tok


def _foreign_preset_run(ws: Workspace, d: Path) -> Path:
    """A run whose run.json says `mini` but whose checkpoint holds `tiny` weights."""
    import shutil

    run = d / "run"
    shutil.copytree(ws.run, run)
    meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
    meta["model_config"].update(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                intermediate_size=1024)
    write(run / "run.json", json.dumps(meta))
    return run


def _hf_tokenizer_json_only(ws: Workspace, d: Path) -> Path:
    import shutil

    tok = d / "hf-bert"
    tok.mkdir(parents=True)
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json"):
        shutil.copy2(ws.tok / name, tok / name)
    return tok


def _swapped_tokenizer_data(ws: Workspace, d: Path) -> Path:
    """A built data directory whose tokenizer copy was replaced by tokenizer B."""
    import shutil

    data = d / "data"
    shutil.copytree(ws.data, data)
    shutil.rmtree(data / "tokenizer")
    shutil.copytree(ws.tok_b, data / "tokenizer")
    return data


def _long_data(ws: Workspace, d: Path) -> Path:
    return ws.build(d / "data1024", max_len=1024)


def _prior_run(ws: Workspace, d: Path, verb: str) -> Path:
    import shutil

    prior = {"pretrain": ws.run, "data": ws.data, "export": ws.hf, "tokenizer": ws.tok}[verb]
    shutil.copytree(prior, d / "out")
    return d / "out"


CASES: list[Case] = [
    # ---- corpus files (data build; tokenizer train reads them the same way)
    Case("cp949-corpus", "corpus in CP949/EUC-KR",
         lambda ws, d: data_build(ws, d, write(d / "cp949.txt", two_docs().encode("cp949"))),
         ("cp949.txt:1", "not valid utf-8", "--encoding cp949")),
    Case("cp949-with-encoding", "the same CP949 corpus with `--encoding cp949`",
         lambda ws, d: data_build(ws, d, write(d / "cp949.txt", two_docs().encode("cp949")),
                                  "--encoding", "cp949"),
         ("built",), ok=True, absent=None),
    Case("nfd-hangul", "mixed NFC/NFD Hangul",
         lambda ws, d: data_build(ws, d, write(d / "nfd.txt", two_docs(
             "\n", __import__("unicodedata").normalize("NFD", "국회는 법률을 제정한다.\n")))),
         ("normalised 1 of", "from NFD to NFC"), ok=True, absent=None),
    Case("empty-corpus", "empty corpus file",
         lambda ws, d: data_build(ws, d, write(d / "empty.txt", "")),
         ("empty.txt", "no text found")),
    Case("blank-corpus", "corpus of blank lines only",
         lambda ws, d: data_build(ws, d, write(d / "blank.txt", "\n  \n\t\n\n")),
         ("blank.txt", "no text found")),
    Case("single-document", "a single document (NSP needs two)",
         lambda ws, d: data_build(ws, d, write(d / "one.txt", "대한민국은 민주공화국이다.\n" * 20)),
         ("one.txt", "needs at least two documents")),
    Case("huge-line", "a 200,000-character line (longer than any limit)",
         lambda ws, d: data_build(ws, d, write(d / "long.txt", two_docs(
             "\n", "대한민국은 민주공화국이다 " * 15_000 + "\n"))),
         ("built",), ok=True, absent=None),
    Case("control-and-zero-width", "control characters and zero-width spaces",
         lambda ws, d: data_build(ws, d, write(d / "ctrl.txt", two_docs(
             "\n", "국회는\u200b 법률을\x07 제정\u200d한다.\x00\n"))),
         ("built",), ok=True, absent=None),
    Case("malformed-jsonl", "malformed JSONL at line 3",
         lambda ws, d: data_build(ws, d, write(d / "bad.jsonl",
                                               '{"text": "가"}\n{"text": "나"}\n{"text": "다\n')),
         ("bad.jsonl:3", "malformed JSON at line 3")),
    Case("jsonl-not-object", "a JSONL line holding a list, not an object",
         lambda ws, d: data_build(ws, d, write(d / "list.jsonl", '{"text": "가"}\n["나"]\n')),
         ("list.jsonl:2", "expected a JSON object")),
    Case("misspelled-column", "`--text-column reveiw` (misspelled)",
         lambda ws, d: data_build(ws, d, write(d / "r.tsv", "id\treview\n1\t가\n2\t나\n"),
                                  "--text-column", "reveiw"),
         ("r.tsv:1", "no column 'reveiw'", "did you mean --text-column review")),
    Case("missing-jsonl-field", "JSONL record without the text field",
         lambda ws, d: data_build(ws, d, write(d / "f.jsonl", '{"text": "가"}\n{"body": "나"}\n')),
         ("f.jsonl:2", "no column 'text'")),
    Case("tsv-field-count", "TSV row with an extra tab",
         lambda ws, d: data_build(ws, d, write(d / "t.tsv", "id\ttext\n1\t가\n2\t나\t다\n")),
         ("t.tsv:3", "3 fields but the header has 2")),
    Case("csv-unterminated-quote", "CSV corpus whose quoted field is never closed",
         lambda ws, d: data_build(ws, d, write(d / "c.csv", 'id,text\n1,"가\n2,나\n3,다\n'),
                                  "--format", "csv"),
         ("c.csv:2", "unexpected end of data")),
    Case("malformed-jsonl-skip", "malformed JSONL at line 3 with `--on-error skip`",
         lambda ws, d: data_build(ws, d, write(d / "bad.jsonl", _jsonl_lines(2, '{"text": "다\n')),
                                  "--on-error", "skip"),
         ("skipped 1 bad records (--on-error skip); listed in", "skipped.jsonl"), ok=True,
         absent=None),
    Case("tsv-field-count-skip", "TSV rows with a wrong field count, `--on-error skip`",
         lambda ws, d: data_build(ws, d, write(d / "t.tsv", "id\ttext\n" + "".join(
             f"{i}\t{line}\n" for i, line in enumerate(two_docs().split("\n")) if line)
             + "9\t나\t다\n10\n"), "--on-error", "skip"),
         ("skipped 2 bad records (--on-error skip); listed in", "skipped.jsonl"), ok=True,
         absent=None),
    Case("cp949-line-skip", "one CP949 line in a UTF-8 corpus, `--on-error skip`",
         lambda ws, d: data_build(ws, d, write(d / "mixed.txt", two_docs().encode()
                                               + "\n국회는 법률을 제정한다.\n".encode("cp949")),
                                  "--on-error", "skip"),
         ("skipped 1 bad records (--on-error skip); listed in", "skipped.jsonl"), ok=True,
         absent=None),
    Case("all-records-skipped", "every JSONL record lacks the text field, `--on-error skip`",
         lambda ws, d: data_build(ws, d, write(d / "f.jsonl", '{"body": "가"}\n{"body": "나"}\n'),
                                  "--on-error", "skip"),
         ("f.jsonl", "no text found", "2 bad records were skipped", "no column 'text'")),
    Case("huge-tsv-field", "a 210,000-character TSV field (above the csv module's limit)",
         lambda ws, d: data_build(ws, d, write(d / "long.tsv", "id\ttext\n1\t"
                                               + "대한민국은 민주공화국이다 " * 15_000
                                               + "\n2\t모든 국민은 법 앞에 평등하다.\n")),
         ("built",), ok=True, absent=None),
    Case("truncated-gzip", "truncated .gz corpus",
         lambda ws, d: data_build(ws, d, write(d / "c.txt.gz", __import__("gzip").compress(
             (two_docs() * 200).encode())[:300])),
         ("c.txt.gz", "cannot read after line")),
    Case("unclosed-wiki-doc", "WikiExtractor `<doc>` opened inside another",
         lambda ws, d: data_build(ws, d, write(d / "w.txt",
                                               '<doc id="1" title="a">\n가\n<doc id="2" title="b">\n')),
         ("w.txt:3", "opened before the one at")),
    # ---- tokenizers and models
    Case("vocab-without-mask", "a vocabulary without `[MASK]`",
         lambda ws, d: data_build(ws, d, ws.corpus, tok=_vocab_without_mask(ws, d)),
         ("tok", "lacks [MASK]")),
    Case("hf-tokenizer-without-meta", "a plain HF BERT tokenizer dir (vocab.txt, no tokenizer.json)",
         lambda ws, d: data_build(ws, d, ws.corpus, tok=_hf_vocab_only(ws, d)),
         ("not trained by hanlm",), ok=True, absent=None),
    Case("hf-tokenizer-json-without-meta",
         "a plain HF BERT tokenizer dir (tokenizer.json, no hanlm_tokenizer.json)",
         lambda ws, d: data_build(ws, d, ws.corpus, tok=_hf_tokenizer_json_only(ws, d)),
         ("not trained by hanlm",), ok=True, absent=None),
    Case("data-tokenizer-swapped", "data built with tokenizer A, its tokenizer copy replaced by B",
         lambda ws, d: pretrain(ws, d, data=_swapped_tokenizer_data(ws, d)),
         ("tokenizer", "does not match its meta.json"), absent="out/run.json"),
    Case("init-from-other-tokenizer", "`pretrain --init-from` a model trained with another tokenizer",
         lambda ws, d: pretrain(ws, d, "--init-from", str(ws.hf),
                                data=ws.build(d / "data_b", tokenizer=ws.tok_b)),
         ("hf", "the model's tokenizer", "is not the one the data was built with")),
    Case("checkpoint-other-preset", "a checkpoint whose weights are another preset's (export)",
         lambda ws, d: ["export", str(_foreign_preset_run(ws, d)), "--out", str(d / "out")],
         ("run", "does not match")),
    Case("resume-other-preset", "`pretrain --resume` a tiny run with `--preset mini`",
         lambda ws, d: [*pretrain(ws, d, "--resume", out=_prior_run(ws, d, "pretrain")),
                        "--preset", "mini"],
         ("out", "differs in preset")),
    Case("unknown-preset", "unknown preset (YAML `preset: huge`)",
         lambda ws, d: ["pretrain", "--config", str(write(d / "run.yaml", "preset: huge\n")),
                        "--data", str(ws.data), "--out", str(d / "out")],
         ("preset", "'huge' is not one of")),
    Case("unknown-task", "unknown task",
         lambda ws, d: finetune(ws, d, "nsmcc", write(d / "t.txt", nsmc_table(["1\t좋다\t1"]))),
         ("unknown task 'nsmcc'", "nsmc"), absent="out/metrics.json"),
    Case("yaml-unknown-key", "config YAML with a misspelled key",
         lambda ws, d: pretrain(ws, d, "--config", str(write(d / "run.yaml", "max_stepz: 3\n"))),
         ("run.yaml", "unknown key 'max_stepz'", "did you mean 'max_steps'")),
    Case("zero-batch-size", "`--batch-size 0`",
         lambda ws, d: pretrain(ws, d, "--batch-size", "0"), ("batch_size", ">= 1")),
    Case("negative-lr", "`--lr -1`",
         lambda ws, d: pretrain(ws, d, "--lr", "-1"), ("lr", "> 0")),
    Case("zero-lr", "`--lr 0`",
         lambda ws, d: pretrain(ws, d, "--lr", "0"), ("lr", "> 0")),
    Case("max-len-1024-new-model", "`data build --max-len 1024`, then pretrain a new model",
         lambda ws, d: pretrain(ws, d, data=_long_data(ws, d)),
         ("1024 positions",), ok=True, absent=None),
    Case("max-len-1024-init-from", "`data build --max-len 1024`, then `--init-from` a 512-position model",
         lambda ws, d: pretrain(ws, d, "--init-from", str(ws.hf), data=_long_data(ws, d)),
         ("max_len 1024", "512 positions")),
    Case("out-holds-other-run-pretrain", "pretrain `--out` holding another run",
         lambda ws, d: pretrain(ws, d, out=_prior_run(ws, d, "pretrain")),
         ("out", "already holds a run", "--overwrite"), absent=None),
    Case("out-holds-other-run-data", "data build `--out` holding another build",
         lambda ws, d: data_build(ws, d, ws.corpus, out=_prior_run(ws, d, "data")),
         ("out", "not empty", "--overwrite"), absent=None),
    Case("out-holds-other-run-tokenizer", "tokenizer train `--out` holding another tokenizer",
         lambda ws, d: ["tokenizer", "train", str(ws.corpus), "--vocab-size", "300", "--out",
                        str(_prior_run(ws, d, "tokenizer"))],
         ("out", "not empty", "--overwrite"), absent=None),
    Case("out-holds-other-run-finetune", "finetune `--out` holding another run",
         lambda ws, d: [*finetune(ws, d, "nsmc", write(d / "t.txt", nsmc_table(["1\t좋다\t1",
                                                                         "2\t싫다\t0"]))),
                        "--out", str(_prior_run(ws, d, "pretrain"))],
         ("out", "already holds a run", "--resume"), absent=None),
    Case("out-holds-other-run-export", "export `--out` holding another model",
         lambda ws, d: ["export", str(ws.run), "--out", str(_prior_run(ws, d, "export"))],
         ("out", "not empty", "--overwrite"), absent=None),
    Case("data-dir-not-built", "pretrain on a directory that `data build` never finished",
         lambda ws, d: pretrain(ws, d, data=write(d / "half" / "build_settings.json", "{}").parent),
         ("half", "not a built data directory"), absent="out"),
    # ---- safety
    Case("pickle-fill-mask", "`fill-mask` on a model dir holding only pytorch_model.bin",
         lambda ws, d: ["fill-mask", str(ws.pickle_only), "대한민국은 민주[MASK]이다."],
         ("pickle_only", "pickle", "--trust-pickle"), absent=None),
    Case("pickle-init-from", "`pretrain --init-from` a dir holding only pytorch_model.bin",
         lambda ws, d: pretrain(ws, d, "--init-from", str(ws.pickle_only)),
         ("pickle_only", "pickle", "--trust-pickle")),
    Case("pickle-finetune", "`finetune --model` a dir holding only pytorch_model.bin",
         lambda ws, d: finetune(ws, d, "nsmc", write(d / "t.txt", nsmc_table(["1\t좋다\t1", "2\t싫다\t0"])),
                                model=ws.pickle_only),
         ("pickle_only", "pickle", "--trust-pickle"), absent="out/metrics.json"),
    Case("export-pickle-dir", "`export` of a dir holding only pytorch_model.bin",
         lambda ws, d: ["export", str(ws.pickle_only), "--out", str(d / "out")],
         ("pickle_only", "no usable checkpoint"), absent="out"),
    # ---- task files (finetune)
    Case("task-label-not-in-set", "label not in the label set (NSMC `negative`)",
         lambda ws, d: finetune(ws, d, "nsmc", write(d / "t.txt", nsmc_table(["1\t좋다\t1", "2\t싫다\tnegative"]))),
         ("t.txt:3", "'negative' is not in the label set"), absent="out/metrics.json"),
    Case("task-sts-out-of-range", "STS score 7.5 (range 0-5)",
         lambda ws, d: finetune(ws, d, "klue-sts", write(d / "sts.json", _sts(7.5))),
         ("sts.json", "7.5 is outside [0.0, 5.0]"), absent="out/metrics.json"),
    Case("task-ner-columns", "NER line with three columns",
         lambda ws, d: finetune(ws, d, "klue-ner", write(d / "ner.tsv", _ner(
             ["이\tB-PS", "순\tI-PS\textra", "신\tI-PS"]))),
         ("ner.tsv:3",), absent="out/metrics.json"),
    Case("task-ner-i-after-o", "BIO tag I- after O",
         lambda ws, d: finetune(ws, d, "klue-ner", write(d / "ner.tsv", _ner(
             ["이\tO", "순\tI-PS", "신\tI-PS"]))),
         ("ner.tsv:3", "I-PS"), absent="out/metrics.json"),
    Case("task-answer-mismatch", "MRC answer text not at answer_start",
         lambda ws, d: finetune(ws, d, "korquad", write(d / "kq.json", _squad(3))),
         ("kq.json", "does not match the context"), absent="out/metrics.json"),
    Case("task-answer-out-of-range", "MRC answer_start beyond the context",
         lambda ws, d: finetune(ws, d, "korquad", write(d / "kq.json", _squad(500))),
         ("kq.json", "out of range"), absent="out/metrics.json"),
    Case("task-re-span-out-of-range", "RE entity end_idx beyond the sentence",
         lambda ws, d: finetune(ws, d, "klue-re", write(d / "re.csv", _re(40))),
         ("re.csv:2", "out of range"), absent="out/metrics.json"),
    Case("task-csv-unterminated-quote", "CSV row whose quoted field is never closed",
         lambda ws, d: finetune(ws, d, "klue-re", write(d / "re.csv", _re(2).replace(
             ",per:title", ",\"per:title") + _re(2).splitlines()[1] + "\n")),
         ("re.csv:2", "malformed row"), absent="out/metrics.json"),
    Case("task-duplicate-ids", "two records with the same id",
         lambda ws, d: finetune(ws, d, "nsmc", write(d / "t.txt", nsmc_table(["1\t좋다\t1", "1\t싫다\t0"]))),
         ("keyed by their line", "'1' (lines 2 and 3)"), ok=True, absent=None),
    # ---- official task files as published (tests/official_layouts.py)
    Case("task-korsts-official-ids", "KorSTS `sts-train.tsv`: id 0004 in MSRvid 2012test and 2012train",
         lambda ws, d: finetune(ws, d, "korsts", _published(d, "korsts")),
         ("keyed by their line", "'0004' (lines 3 and 4)"), ok=True, absent=None),
    Case("task-korsts-crlf-bom", "KorSTS `sts-train.tsv` saved with CRLF and a UTF-8 BOM",
         lambda ws, d: finetune(ws, d, "korsts", _published(d, "korsts", "bom-crlf")),
         ("sts-train.tsv: 4 examples",), ok=True, absent=None),
    Case("task-kornli-no-gold-label", "KorNLI/SNLI row whose gold_label is `-` (no agreement)",
         lambda ws, d: finetune(ws, d, "kornli", _published(d, "kornli-snli")),
         ("snli_1.0_train.ko.tsv:5", "'-' marks", "--on-error skip"), absent="out/metrics.json"),
    Case("task-kornli-no-gold-label-skip", "the same SNLI row with `--on-error skip`",
         lambda ws, d: finetune(ws, d, "kornli", _published(d, "kornli-snli"), "--on-error", "skip"),
         ("skipped 1 bad records (--on-error skip); listed in", "skipped.jsonl"), ok=True,
         absent=None),
    Case("task-kornli-open-quote", "KorNLI/MultiNLI sentence opening with a quote never closed",
         lambda ws, d: finetune(ws, d, "kornli", _published(d, "kornli-mnli")),
         ("multinli.train.ko.tsv: 3 examples",), ok=True, absent=None),
    Case("task-nsmc-crlf-bom", "NSMC `ratings_train.txt` with CRLF and a UTF-8 BOM",
         lambda ws, d: finetune(ws, d, "nsmc", _published(d, "nsmc", "bom-crlf")),
         ("ratings_train.txt: 4 examples",), ok=True, absent=None),
    Case("task-max-len-above-positions", "`finetune --max-len 1024` with a 512-position model",
         lambda ws, d: finetune(ws, d, "nsmc", write(d / "t.txt", nsmc_table(["1\t좋다\t1", "2\t싫다\t0"])),
                                "--max-len", "1024"),
         ("1024", "512"), absent="out/metrics.json"),
]


# ------------------------------------------------------------------------------ running


@dataclass
class Observed:
    exit_code: int
    error: str | None  # the `hanlm VERB: error: ...` line
    stderr: str
    log: str
    crash: str | None = None  # an exception that escaped the CLI (a bug)


def run_cli(argv: list[str]) -> Observed:
    """`hanlm ARGV` in this process: stderr and the log captured, SystemExit and crashes caught."""
    import torch

    from hanlm import cli

    threads = torch.get_num_threads()  # `--threads` would otherwise outlive the call
    stderr, log = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(log)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)  # also makes cli's logging.basicConfig a no-op
    root.setLevel(logging.INFO)
    crash = None
    try:
        with contextlib.redirect_stderr(stderr):
            try:
                code = cli.main(argv)
            except SystemExit as e:  # argparse
                code = e.code if isinstance(e.code, int) else 2
            except Exception as e:  # noqa: BLE001 - a crash is what the case reports
                code = -1
                crash = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        torch.set_num_threads(threads)
    text = stderr.getvalue()
    errors = [line for line in text.splitlines() if ": error: " in line]
    return Observed(code, errors[-1] if errors else None, text, log.getvalue(), crash)


def problems(case: Case, seen: Observed, d: Path) -> list[str]:
    """What is wrong with the observed behaviour (empty when the case passes)."""
    if seen.crash:
        return [f"crashed: {seen.crash}"]
    out: list[str] = []
    if case.ok:
        if seen.exit_code != 0:
            return [f"exit {seen.exit_code}, expected success: {seen.error or seen.stderr[-500:]}"]
        out += [f"log lacks {s!r}" for s in case.expect if s not in seen.log]
        return out
    if seen.exit_code != 2:
        out.append(f"exit {seen.exit_code}, expected 2")
    lines = [line for line in seen.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if ": error: " in line]
    if len(errors) != 1 or lines[-1] != errors[0]:  # progress bars may come before it
        out.append(f"not exactly one error line, last on stderr: {seen.stderr[-800:]!r}")
    if "Traceback" in seen.stderr:
        out.append("traceback on stderr")
    out += [f"error lacks {s!r}: {seen.error}" for s in case.expect
            if seen.error is None or s not in seen.error]
    if case.absent and (d / case.absent).exists():
        out.append(f"left {case.absent}, which looks like complete output")
    return out


def shown(case: Case | None, seen: Observed, *roots: Path) -> str:
    """The observed message as the docs show it (temporary paths shortened): the error line,
    or for a handled input the log line that shows how it was handled."""
    if seen.crash:
        return "CRASH " + seen.crash.splitlines()[0]
    text = seen.error
    if text is None:
        lines = [line for line in seen.log.splitlines() if line.strip()]
        wanted = [line for line in lines if case and case.expect and case.expect[0] in line]
        text = f"exit {seen.exit_code}; " + (wanted or lines or ["no error, no log"])[-1]
    for root in roots:
        text = text.replace(str(root) + "/", "").replace(str(root), ".")
    return text
