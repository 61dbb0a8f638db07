"""Upload an exported directory to the Hugging Face Hub (or any server speaking its API).

The token comes from the usual places (`HF_TOKEN`, `huggingface-cli login`); the server from
`HF_ENDPOINT` (default: the public Hub), read when `push_folder` is called. This is the only
network access hanlm makes, and only when asked (`--push-to-hub`).
"""

from __future__ import annotations

import os
from pathlib import Path

from hanlm.errors import HanlmError

_HINTS = {
    401: "not authenticated: set HF_TOKEN or run `hf auth login`",
    403: "check that the token may write to this namespace",
}


def push_folder(folder: Path, repo_id: str, *, private: bool = False) -> str:
    import httpx2  # huggingface_hub's HTTP client; its transport errors are not OSErrors
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    endpoint = os.environ.get("HF_ENDPOINT") or None
    api = HfApi(endpoint=endpoint)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type="model",
            commit_message="Upload model exported by hanlm",
        )
    except HfHubHTTPError as e:
        raise HanlmError(f"upload to '{repo_id}' failed: {_describe_http_error(e)}") from None
    except (httpx2.TransportError, ConnectionError) as e:
        raise HanlmError(
            f"upload to '{repo_id}' failed: cannot reach {api.endpoint} ({_one_line(str(e) or type(e).__name__)})"
        ) from None
    except OSError as e:  # e.g. a file in the folder that cannot be read
        raise HanlmError(f"upload to '{repo_id}' failed: {_one_line(str(e))}", path=str(folder)) from None
    return str(getattr(commit, "commit_url", None) or commit)


def _describe_http_error(e) -> str:
    """`HfHubHTTPError`'s own text spans several lines; keep the status, server message and a hint."""
    response = getattr(e, "response", None)
    status = getattr(response, "status_code", None)
    if status is None:
        return _one_line(str(e))
    text = f"HTTP {status} {getattr(response, 'reason_phrase', '') or ''}".rstrip()
    if e.server_message:
        text += f": {_one_line(e.server_message)}"
    if status in _HINTS:
        text += f" ({_HINTS[status]})"
    return text


def _one_line(text: str) -> str:
    return " ".join(text.split())
