"""The `hanlm` command end to end on tiny data, and its error contract (one line, exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hanlm.demo import embedded_corpus


def hanlm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hanlm", *args], capture_output=True, text=True,
                          timeout=600, env={"TOKENIZERS_PARALLELISM": "false", "PATH": "/usr/bin:/bin"})


def ok(*args: str) -> str:
    r = hanlm(*args)
    assert r.returncode == 0, f"hanlm {' '.join(args)}\n{r.stderr[-3000:]}"
    return r.stdout


def one_line_error(r: subprocess.CompletedProcess, *expected: str) -> None:
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    errors = [line for line in r.stderr.strip().splitlines() if ": error: " in line]
    assert len(errors) == 1 and r.stderr.strip().endswith(errors[0]), r.stderr[-2000:]
    for text in expected:
        assert text in errors[0], errors[0]


def test_whole_pipeline_through_the_cli(tmp_path: Path):
    corpus = str(embedded_corpus())
    ok("tokenizer", "train", corpus, "--vocab-size", "500", "--min-frequency", "1", "--out", str(tmp_path / "tok"))
    ok("data", "build", corpus, "--tokenizer", str(tmp_path / "tok"), "--max-len", "32", "--out", str(tmp_path / "data"))
    (tmp_path / "run.yaml").write_text("preset: tiny\nmax_steps: 4\nbatch_size: 4\nlr: 0.001\n")
    ok("pretrain", "--config", str(tmp_path / "run.yaml"), "--data", str(tmp_path / "data"),
       "--out", str(tmp_path / "run"), "--no-tensorboard", "--eval-every", "2")
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "max_steps: 4" in saved and "lr: 0.001" in saved
    ok("export", str(tmp_path / "run"), "--out", str(tmp_path / "hf"))
    out = ok("fill-mask", str(tmp_path / "hf"), "대한민국은 민주[MASK]이다.", "--top-k", "3")
    assert out.splitlines()[0] == "대한민국은 민주[MASK]이다."
    assert len(out.strip().splitlines()) == 4


def test_help_lists_every_verb():
    out = ok("--help")
    for verb in ("tokenizer", "data", "pretrain", "export", "fill-mask", "finetune", "evaluate", "predict", "demo"):
        assert verb in out
    assert "--lr" in ok("pretrain", "--help")


# ------------------------------------------------------------------------ conventions

ROOT = Path(__file__).resolve().parents[1]


def parsed(monkeypatch, *argv: str):
    """What `hanlm ARGV` would run its verb with: (exit code, config), the verb not run."""
    from hanlm import cli

    runs = {verb.run for verb in cli.VERBS.values()}
    seen = []
    real = cli.load
    monkeypatch.setattr(cli, "load", lambda ref: seen.append if ref in runs else real(ref))
    code = cli.main(list(argv))
    return code, (seen[0] if seen else None)


def test_version():
    from hanlm import __version__

    assert ok("--version").strip() == f"hanlm {__version__}"


def test_a_group_verb_alone_prints_its_own_help():
    r = hanlm("tokenizer")
    assert r.returncode == 2 and "usage: hanlm tokenizer" in r.stdout, r.stdout + r.stderr
    assert "train" in r.stdout and "fill-mask" not in r.stdout


def test_help_with_a_percent_sign_in_a_field_help():
    assert "(the 87.4% reference)" in " ".join(ok("study", "--help").split())


def test_list_flags_take_several_values(monkeypatch):
    code, cfg = parsed(monkeypatch, "study", "--seeds", "1", "2", "3", "--fractions", "0.1", "1")
    assert code == 0 and (cfg.seeds, cfg.fractions) == ([1, 2, 3], [0.1, 1.0])
    code, cfg = parsed(monkeypatch, "finetune", "--task", "csv", "--train", "t.csv", "--model", "m",
                       "--out", "o", "--labels", "a", "b", "c", "--labels", "d")
    assert code == 0 and cfg.options.labels == ["a", "b", "c", "d"]


@pytest.mark.parametrize("argv", [
    ["c.txt", "--exclude-ids", "a", "b", "--out", "o"],  # positional first
    ["--out", "o", "--exclude-ids", "a", "b", "--", "c.txt"],  # -- ends the list
    ["--exclude-ids", "a", "--exclude-ids", "b", "--out", "o", "c.txt"],  # repeated, then a flag
])
def test_list_flags_beside_positional_corpus_paths(monkeypatch, argv):
    for verb in (["tokenizer", "train"], ["data", "build", "--tokenizer", "tok"]):
        code, cfg = parsed(monkeypatch, *verb, *argv)
        assert code == 0 and (cfg.corpus, cfg.reader.exclude_ids) == (["c.txt"], ["a", "b"])


def test_usage_puts_the_positional_arguments_first():
    out = ok("data", "build", "--help")
    assert out.startswith("usage: hanlm data build corpus [corpus ...] --tokenizer TOKENIZER "
                          "--out OUT [options]")
    assert "positional arguments before them, or end their values with --" in " ".join(out.split())


def test_every_missing_required_setting_in_one_error(tmp_path: Path):
    r = hanlm("data", "build")
    one_line_error(r, "the following arguments are required: corpus, --tokenizer, --out")
    assert "usage: hanlm data build corpus [corpus ...] --tokenizer TOKENIZER --out OUT" in r.stderr
    (tmp_path / "empty.yaml").write_text("max_len: 64\n")
    one_line_error(hanlm("data", "build", "c.txt", "--config", str(tmp_path / "empty.yaml")),
                   "missing required --tokenizer, --out")


def test_each_flag_listed_once_underscores_still_accepted(monkeypatch):
    out = ok("tokenizer", "train", "--help")
    assert "--vocab-size" in out and "--vocab_size" not in out
    assert out.count("--split-sentences") == 1 and "--no-split-sentences" in out
    code, cfg = parsed(monkeypatch, "tokenizer", "train", "c.txt", "--out", "o", "--vocab_size",
                       "500", "--min_freq=1", "--no-split_sentences", "--text_column", "x_y")
    assert code == 0 and (cfg.vocab_size, cfg.min_frequency, cfg.reader.text_column) == (500, 1, "x_y")
    assert cfg.reader.split_sentences is False


def test_no_library_module_imports_the_cli():
    importers = [str(p.relative_to(ROOT)) for p in (ROOT / "hanlm").rglob("*.py")
                 if p.name != "__main__.py"
                 and any(s in p.read_text(encoding="utf-8")
                         for s in ("from hanlm.cli import", "import hanlm.cli", "from hanlm import cli"))]
    assert importers == []


def test_errors_loads_no_other_hanlm_module():
    probe = "import sys, hanlm.errors; print(sorted(m for m in sys.modules if m.startswith('hanlm.')))"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                       timeout=60)
    assert r.stdout.strip() == "['hanlm.errors']", r.stdout + r.stderr


def _config_modules() -> list[str]:
    from hanlm.cli import VERBS

    return sorted({verb.config.partition(":")[0] for verb in VERBS.values()})


@pytest.mark.parametrize("module", _config_modules())
def test_a_verbs_config_module_imports_neither_torch_nor_transformers(module):
    probe = f"import sys, {module}; print(sorted({{'torch', 'transformers'}} & set(sys.modules)))"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr[-2000:]


def _help_seconds(*words: str) -> float:
    start = time.perf_counter()
    try:
        r = subprocess.run([sys.executable, "-m", "hanlm", *words, "--help"], capture_output=True,
                           text=True, timeout=3, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return float("inf")
    assert r.returncode == 0 and "usage: hanlm" in r.stdout, r.stderr[-2000:]
    return time.perf_counter() - start


def _verbs() -> list:
    from hanlm.cli import VERBS

    return [pytest.param("", id="hanlm"), *(pytest.param(name, id=name.replace(" ", "-"))
                                           for name in VERBS)]


@pytest.mark.parametrize("verb", _verbs())
def test_help_is_instant(verb):
    """Wall time of `hanlm VERB --help`, Python's start-up included; the best of three tries
    on a loaded machine (a try that times out is not retried)."""
    best = float("inf")
    for _ in range(3):
        best = min(best, _help_seconds(*verb.split()))
        if best < 1.0 or best == float("inf"):
            break
    assert best < 1.0, f"hanlm {verb} --help took {best:.2f} s"


def test_bad_input_gets_one_line_errors(tmp_path: Path):
    (tmp_path / "empty.txt").write_text("\n\n  \n")
    one_line_error(hanlm("tokenizer", "train", str(tmp_path / "empty.txt"), "--out", str(tmp_path / "t")),
                   "empty.txt")
    one_line_error(hanlm("tokenizer", "train", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "t")),
                   "nope.txt")
    r = hanlm("pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--preset", "huge")
    assert r.returncode == 2 and "invalid choice: 'huge'" in r.stderr
    (tmp_path / "bad.yaml").write_text("max_stepz: 3\n")
    one_line_error(hanlm("pretrain", "--config", str(tmp_path / "bad.yaml"), "--data", "d", "--out", "o"),
                   "bad.yaml", "unknown key 'max_stepz'", "did you mean 'max_steps'")
    one_line_error(hanlm("pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--batch-size", "0"),
                   "batch_size", ">= 1")
    one_line_error(hanlm("pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--lr", "-1"),
                   "lr", "> 0")
    one_line_error(hanlm("pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "r")),
                   "not a built data directory")


# ------------------------------------------------------------------------------ offline


def test_every_verb_runs_offline_unless_the_user_says_otherwise(tmp_path: Path, monkeypatch):
    from hanlm import cli

    missing = str(tmp_path / "no-run")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert cli.main(["export", missing, "--out", str(tmp_path / "hf")]) == 2
    assert os.environ["HF_HUB_OFFLINE"] == "1"

    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert cli.main(["fill-mask", missing, "민주[MASK]"]) == 2
    assert os.environ["HF_HUB_OFFLINE"] == "1"

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the user's choice stands
    assert cli.main(["export", missing, "--out", str(tmp_path / "hf")]) == 2
    assert os.environ["HF_HUB_OFFLINE"] == "0"


def test_push_to_hub_is_left_online(tmp_path: Path, monkeypatch):
    from hanlm import cli

    missing = str(tmp_path / "no-run")
    (tmp_path / "push.yaml").write_text("push_to_hub: me/model\n")
    for flags in (["--push-to-hub", "me/model"], ["--push_to_hub=me/model"],
                  ["--push-to", "me/model"], ["--config", str(tmp_path / "push.yaml")]):
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        assert cli.main(["export", missing, "--out", str(tmp_path / "hf"), *flags]) == 2
        assert "HF_HUB_OFFLINE" not in os.environ, flags


def test_network_option_is_read_like_the_verbs_parser(tmp_path: Path):
    from hanlm.cli import _asks_for_network

    (tmp_path / "local.yaml").write_text("name: x\n")
    assert _asks_for_network("export", ["export", "run", "--push-to-hub", "a/b"])
    assert not _asks_for_network("export", ["export", "run", "--out", "hf"])
    for name in ("local.yaml", "nope.yaml"):  # no push_to_hub key; no file (an error later)
        assert not _asks_for_network("export", ["export", "run", "--config", str(tmp_path / name)])
    assert _asks_for_network("export", ["export", "run", "--push", "a/b"])  # an abbreviation
    assert _asks_for_network("export", ["export", "run", "--push_to-hub", "a/b"])
    assert not _asks_for_network("finetune", ["finetune", "--push-to-hub", "a/b"])
    assert not _asks_for_network(None, ["--help"])


OFFLINE_PROBE = """
import sys
from hanlm.cli import main
main(sys.argv[1:])
import huggingface_hub.constants
print("offline" if huggingface_hub.constants.is_offline_mode() else "online")
"""


def test_offline_is_set_before_huggingface_hub_reads_it(tmp_path: Path):
    """huggingface_hub reads HF_HUB_OFFLINE once, at import: the CLI must set it before."""
    env = {"TOKENIZERS_PARALLELISM": "false", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    export = ["export", str(tmp_path / "no-run"), "--out", str(tmp_path / "hf")]
    for flags, mode in (([], "offline"), (["--push-to-hub", "me/model"], "online")):
        r = subprocess.run([sys.executable, "-c", OFFLINE_PROBE, *export, *flags],
                           capture_output=True, text=True, timeout=300, env=env,
                           cwd=Path(__file__).resolve().parents[1])
        assert r.returncode == 0 and r.stdout.strip() == mode, r.stderr[-2000:]


@pytest.mark.parametrize("argv0", ["/venv/bin/hanlm", "/src/hanlm/__main__.py", "/src/hanlm/cli.py"])
def test_command_line_is_the_hanlm_command_however_it_was_started(monkeypatch, argv0):
    from hanlm.provenance import command_line

    monkeypatch.setattr(sys, "argv", [argv0, "study", "--pretrain-steps", "10", "--out", "a b"])
    assert command_line("api") == "hanlm study --pretrain-steps 10 --out 'a b'"
    monkeypatch.setattr(sys, "argv", ["/venv/bin/pytest", "-q"])
    assert command_line("api") == "api"
