"""`push_folder` against a local stand-in of the Hub HTTP API (never the network).

The stand-in implements only what huggingface_hub 2.4.0 calls for
`HfApi.create_repo(..., exist_ok=True)` + `HfApi.upload_folder(...)`:

- ``POST /api/repos/create``                      create the repo
- ``GET  /api/models/{repo}``                     repo_info, after a 401/403 on create (exist_ok)
- ``POST /api/validate-yaml``                     README.md metadata check
- ``POST /api/models/{repo}/preupload/{rev}``     upload modes: always "regular" (no LFS / xet)
- ``POST /api/models/{repo}/commit/{rev}``        NDJSON commit with base64 file contents

Every request is recorded; anything else (or a malformed request) gets a 404/400 and fails the
test. A guard on sockets fails the test if anything tries to resolve or connect to a host other
than 127.0.0.1.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from huggingface_hub import constants as hf_constants
from huggingface_hub.utils import close_session
from safetensors.numpy import save_file

from hanlm.errors import HanlmError
from hanlm.export.hub import push_folder

REPO_ID = "hanlm-test/tiny-ko-bert"
TOKEN = "hf_hanlm_test_token"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


@dataclass
class Commit:
    repo_id: str
    revision: str
    summary: str
    files: dict[str, bytes]


@dataclass
class StandInHub:
    url: str
    reject_with: int | None = None  # answer every request with this status (401, 403, ...)
    requests: list[Request] = field(default_factory=list)
    commits: list[Commit] = field(default_factory=list)
    unhandled: list[str] = field(default_factory=list)


_REJECTIONS = {
    401: "Invalid credentials in Authorization header",
    403: "You don't have the rights to create a model under this namespace",
}
_REPO = r"/api/models/(?P<repo>[^/]+/[^/]+)"
_ROUTES = [
    ("POST", re.compile(r"/api/repos/create"), "create"),
    ("POST", re.compile(r"/api/validate-yaml"), "validate_yaml"),
    ("POST", re.compile(_REPO + r"/preupload/(?P<rev>[^/]+)"), "preupload"),
    ("POST", re.compile(_REPO + r"/commit/(?P<rev>[^/]+)"), "commit"),
    ("GET", re.compile(_REPO), "repo_info"),
]


def _make_handler(hub: StandInHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self._dispatch()

        def do_POST(self):
            self._dispatch()

        def log_message(self, format, *args):  # keep pytest output clean
            pass

        def _dispatch(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = urlsplit(self.path).path
            headers = {name.lower(): value for name, value in self.headers.items()}
            hub.requests.append(Request(self.command, path, headers, body))
            if hub.reject_with is not None:
                return self._json(hub.reject_with, {"error": _REJECTIONS[hub.reject_with]})
            for method, pattern, name in _ROUTES:
                if method == self.command and (m := pattern.fullmatch(path)):
                    try:
                        return getattr(self, name)(body, **{k: unquote(v) for k, v in m.groupdict().items()})
                    except Exception as e:  # a 400, not a dropped connection the client would retry
                        hub.unhandled.append(f"{self.command} {path}: {e!r}")
                        return self._json(400, {"error": f"stand-in hub rejected the request: {e!r}"})
            hub.unhandled.append(f"{self.command} {self.path}")
            self._json(404, {"error": f"stand-in hub does not implement {self.command} {path}"})

        def create(self, body):
            payload = json.loads(body)
            repo_id = f"{payload['organization']}/{payload['name']}"
            self._json(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})

        def repo_info(self, body, repo):
            self._json(200, {"id": repo, "sha": "0" * 40, "private": False, "siblings": []})

        def validate_yaml(self, body):
            self._json(200, {"errors": [], "warnings": []})

        def preupload(self, body, repo, rev):
            files = json.loads(body)["files"]
            modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
            self._json(200, {"files": modes})

        def commit(self, body, repo, rev):
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            header = next(item["value"] for item in lines if item["key"] == "header")
            files = {}
            for item in lines:
                assert item["key"] in ("header", "file"), f"unexpected commit item {item['key']!r}"
                if item["key"] == "file":
                    assert item["value"]["encoding"] == "base64"
                    files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            hub.commits.append(Commit(repo, rev, header["summary"], files))
            oid = f"{len(hub.commits):040x}"
            self._json(200, {"success": True, "commitOid": oid, "commitUrl": f"{hub.url}/{repo}/commit/{oid}"})

        def _json(self, status: int, payload: dict):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _is_loopback(host) -> bool:
    try:
        return ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return host == "localhost"


@pytest.fixture
def hub_env(monkeypatch):
    """Point huggingface_hub at the stand-ins only: online, token from HF_TOKEN, no stray hosts."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # conftest sets it for every test
    # huggingface_hub reads these at import time, so the env alone is not enough.
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    # Telemetry builds the user agent by fetching {constants.ENDPOINT}/api/agent-harnesses, with the
    # endpoint frozen at import time (the public Hub): keep it off.
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    for var in ("HF_OIDC_RESOURCE", "HUGGING_FACE_HUB_TOKEN", "HTTP_PROXY", "HTTPS_PROXY",
                "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)

    strays: list[str] = []
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def guarded_getaddrinfo(host, *args, **kwargs):
        if not _is_loopback(host):
            strays.append(f"resolve {host}")
            raise socket.gaierror(f"test guard: refusing to resolve {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    def guarded_connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            strays.append(f"connect {address}")
            raise ConnectionRefusedError(f"test guard: refusing to connect to {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    close_session()  # the shared HTTP client is built lazily: build it under this environment
    yield
    close_session()  # drop pooled connections to servers that are about to go away
    assert not strays, f"requests left 127.0.0.1: {strays}"


@pytest.fixture
def hub(hub_env, monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.daemon_threads = True
    state = StandInHub(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _make_handler(state)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", state.url)
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert not state.unhandled, f"requests the stand-in could not serve: {state.unhandled}"


@pytest.fixture
def export_dir(tmp_path) -> Path:
    out = tmp_path / "export"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32}), encoding="utf-8")
    save_file({"bert.embeddings.word_embeddings.weight": np.arange(1024, dtype=np.float32).reshape(64, 16)},
              str(out / "model.safetensors"))
    (out / "README.md").write_text(
        "---\nlanguage: ko\nlibrary_name: transformers\n---\n\n# 작은 한국어 BERT\n", encoding="utf-8"
    )
    return out


def test_push_folder_commits_every_file_byte_for_byte(hub, export_dir):
    url = push_folder(export_dir, REPO_ID)

    assert len(hub.commits) == 1
    commit = hub.commits[0]
    assert (commit.repo_id, commit.revision) == (REPO_ID, "main")
    expected = {p.name: p.read_bytes() for p in export_dir.iterdir()}
    assert set(expected) == {"config.json", "model.safetensors", "README.md"}
    assert commit.files == expected
    assert 1000 < len(expected["model.safetensors"]) < 10_000
    assert url == f"{hub.url}/{REPO_ID}/commit/{1:040x}"

    create = json.loads(next(r.body for r in hub.requests if r.path == "/api/repos/create"))
    assert f"{create['organization']}/{create['name']}" == REPO_ID
    for request in hub.requests:
        assert request.headers.get("authorization") == f"Bearer {TOKEN}", request.path


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_token_is_a_one_line_hanlm_error(hub, export_dir, status):
    hub.reject_with = status

    with pytest.raises(HanlmError) as info:
        push_folder(export_dir, REPO_ID)

    message = str(info.value)
    assert REPO_ID in message and str(status) in message
    assert "\n" not in message
    assert not hub.commits


def test_unreachable_endpoint_is_a_quick_hanlm_error(hub_env, export_dir, monkeypatch):
    # A port that is bound but not listening refuses connections, and nothing else can take it.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
        monkeypatch.setenv("HF_ENDPOINT", endpoint)

        start = time.monotonic()
        with pytest.raises(HanlmError) as info:
            push_folder(export_dir, REPO_ID)
        elapsed = time.monotonic() - start

    message = str(info.value)
    assert REPO_ID in message and endpoint in message and "cannot reach" in message
    assert "\n" not in message and "Traceback" not in message
    assert elapsed < 5, f"took {elapsed:.1f}s to give up on a closed port"


# ------------------------------------------------------------------------------ fine-tuned models


@pytest.fixture(scope="module")
def finetuned_run(tmp_path_factory) -> Path:
    """A two-step NSMC fine-tuning run of the tiny task BERT, scored once by `evaluate`."""
    from tasks_fixtures import FIXTURES, build_tiny_model

    from hanlm.tasks.run import EvaluateConfig, FinetuneConfig, evaluate, finetune

    root = tmp_path_factory.mktemp("finetuned")
    files = FIXTURES["nsmc"](root / "data")
    run = root / "run"
    finetune(FinetuneConfig(task="nsmc", train=str(files["train"]), dev=str(files["dev"]),
                            model=str(build_tiny_model(root / "bert")), out=str(run),
                            max_steps=2, batch_size=4, eval_every=0, progress=False))
    evaluate(EvaluateConfig(task="nsmc", data=str(files["dev"]), model=str(run / "model")))
    return run


def test_push_a_finetuned_model_with_its_card(hub, finetuned_run):
    from hanlm.export import ExportConfig, export_model

    model = finetuned_run / "model"
    before = {p.name: p.read_bytes() for p in model.iterdir()}

    export_model(ExportConfig(checkpoint=str(model), out=None, push_to_hub=REPO_ID))

    (commit,) = hub.commits
    assert {p.name for p in model.iterdir()} == set(commit.files)
    for name in set(commit.files) - {"README.md"}:
        assert commit.files[name] == before[name], name
    card = commit.files["README.md"].decode("utf-8")
    assert card.startswith("---\n") and f"# {REPO_ID}\n" in card
    assert "pipeline_tag: text-classification" in card
    assert "Task: **nsmc**" in card and "ratings_train.txt" in card  # task and data
    assert "## Dev metrics (official definitions, percent)" in card  # from finetune
    assert "## Evaluations (`hanlm evaluate`" in card  # from evaluate, in the run directory
    assert "| `ratings_test.txt` | 14 | accuracy |" in card
    assert "## How it was made" in card  # the command
    assert f'model="{REPO_ID}"' in card and "PATH/TO/THIS/DIRECTORY" not in card
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before  # the run is untouched


def test_export_a_finetuned_run_to_a_directory(finetuned_run, tmp_path):
    from transformers import pipeline

    from hanlm.export import ExportConfig, export_model

    out = export_model(ExportConfig(checkpoint=str(finetuned_run), out=str(tmp_path / "share"),
                                    name="me/ko-nsmc"))

    card = (out / "README.md").read_text(encoding="utf-8")
    assert "# me/ko-nsmc" in card and 'model="me/ko-nsmc"' in card
    classify = pipeline("text-classification", model=str(out))
    assert classify("영화가 정말 좋다")[0]["label"] in ("0", "1")
    with pytest.raises(HanlmError, match="not empty"):
        export_model(ExportConfig(checkpoint=str(finetuned_run), out=str(out)))


def test_export_of_a_finetuned_model_needs_a_destination(finetuned_run):
    from hanlm.export import ExportConfig, export_model

    with pytest.raises(HanlmError, match="--out DIR, --push-to-hub REPO"):
        export_model(ExportConfig(checkpoint=str(finetuned_run), out=None))
