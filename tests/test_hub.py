"""Loading weights from the Hub through huggingface_hub, against a small Hub server on this
machine: a repo that exists downloads and loads, a misspelled repo id is an error that names
it, an unreachable Hub gives the bundled checkpoint at once for the default id and an error
for any other."""

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from granumamba.model import ModelLoadError
from granumamba.pipeline import BUNDLED_LIVE_MODEL, BUNDLED_MODEL, DEFAULT_LIVE_MODEL_ID, DEFAULT_MODEL_ID, display_name, load_model

need_bundled = pytest.mark.skipif(not (BUNDLED_MODEL / "model.safetensors").is_file(), reason="the bundled demo checkpoint is not built")
COMMIT = "0" * 40


class FakeHub(http.server.BaseHTTPRequestHandler):
    """Answers /{org}/{name}/resolve/{revision}/{file} as the Hub does, for the repos in `repos`."""

    repos: dict[str, Path] = {}

    def _file(self) -> Path | None:
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) == 5 and parts[2] == "resolve":
            folder = self.repos.get(f"{parts[0]}/{parts[1]}")
            if folder is not None and (folder / parts[4]).is_file():
                return folder / parts[4]
        return None

    def _answer(self, body: bool) -> None:
        path = self._file()
        if path is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("X-Error-Message", "Repository not found")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_HEAD(self):  # noqa: N802 (http.server's names)
        self._answer(False)

    def do_GET(self):  # noqa: N802
        self._answer(True)

    def log_message(self, *args):
        pass


def point_hub_at(monkeypatch, endpoint: str) -> None:
    """What HF_ENDPOINT does when set before huggingface_hub is imported."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")


@pytest.fixture
def hub(monkeypatch, tmp_path):
    from huggingface_hub import constants

    from granumamba import pipeline
    from granumamba.model import GranuMamba

    from .test_model import TINY

    repo = tmp_path / "repo"
    GranuMamba(TINY).save_pretrained(repo)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    FakeHub.repos = {"someone/granumamba-model": repo}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    point_hub_at(monkeypatch, f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(pipeline, "_hub_checks", {})
    yield server
    server.shutdown()


def test_a_hub_repo_downloads_and_loads(hub, tmp_path):
    loaded = load_model("someone/granumamba-model")
    assert loaded.fallback_reason is None and loaded.source == "someone/granumamba-model"
    assert list((tmp_path / "hub-cache").rglob("model.safetensors"))  # in huggingface_hub's cache
    assert display_name(loaded.source) == "someone/granumamba-model"


def test_a_misspelled_repo_id_is_an_error_that_names_it(hub):
    with pytest.raises(ModelLoadError, match="someone/granumamba-modle"):
        load_model("someone/granumamba-modle")


@need_bundled
def test_the_default_repo_missing_on_the_hub_gives_the_bundled_checkpoint(hub):
    loaded = load_model(DEFAULT_MODEL_ID)
    assert loaded.fallback_reason and Path(loaded.source) == BUNDLED_MODEL
    assert display_name(loaded.source) == "bundled demo checkpoint"
    live = load_model(DEFAULT_LIVE_MODEL_ID)  # the Live tab's default: the bundled causal one
    assert live.fallback_reason and Path(live.source) == BUNDLED_LIVE_MODEL and live.model.config.causal
    assert display_name(live.source) == "bundled live checkpoint"


@need_bundled
def test_an_unreachable_hub_gives_the_bundled_checkpoint_for_the_default_and_an_error_otherwise(hub, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    point_hub_at(monkeypatch, f"http://127.0.0.1:{port}")
    loaded = load_model(DEFAULT_MODEL_ID)
    assert "cannot be reached" in loaded.fallback_reason
    with pytest.raises(ModelLoadError, match="someone/granumamba-model.*cannot be reached"):
        load_model("someone/granumamba-model")


def test_a_cached_repo_loads_while_the_hub_is_unreachable(hub, monkeypatch):
    from huggingface_hub import constants

    from granumamba import pipeline

    load_model("someone/granumamba-model")  # downloads into the cache
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(pipeline, "_hub_checks", {})
    loaded = load_model("someone/granumamba-model")
    assert loaded.fallback_reason is None and loaded.source == "someone/granumamba-model"


def test_save_pretrained_pushes_when_asked_and_refuses_misspelled_options(tmp_path, monkeypatch):
    from granumamba.model import GranuMamba

    from .test_model import TINY

    model = GranuMamba(TINY)
    pushed = []
    monkeypatch.setattr(GranuMamba, "push_to_hub", lambda self, repo_id, **kw: pushed.append((repo_id, kw)) or "url")
    card = {"training": "- stage 1: by hand"}
    assert model.save_pretrained(tmp_path / "my-model", push_to_hub=True, private=True, model_card_kwargs=card) == "url"
    assert pushed == [("my-model", {"private": True, "model_card_kwargs": card})]
    assert (tmp_path / "my-model" / "model.safetensors").is_file()
    with pytest.raises(TypeError):
        GranuMamba.from_pretrained(tmp_path / "my-model", revison="main")


def test_save_pretrained_writes_a_model_card_and_keeps_one_of_your_own(tmp_path):
    """save_pretrained writes README.md, the card the Hub shows: huggingface_hub reads its
    metadata (library, licence, tags) and it says what the model is (offline or causal), how to
    load it and how it was trained. Saving again rewrites the project's card; a card whose
    marker line was deleted (edited by hand) is left alone."""
    from huggingface_hub import ModelCard

    from granumamba.model import GranuMamba
    from granumamba.model.card import CARD_MARKER

    from .test_model import TINY

    folder = tmp_path / "my-model"
    GranuMamba(TINY).save_pretrained(folder, model_card_kwargs={"repo_id": "someone/my-model", "training": "- stage 1: by hand"})
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "granumamba" and card.data.license == "apache-2.0" and "co-speech-gesture" in card.data.tags
    assert 'GranuMambaPipeline.from_pretrained("someone/my-model")' in card.text and "- stage 1: by hand" in card.text
    assert "| mode | offline" in card.text and "--model someone/my-model" in card.text
    GranuMamba({**TINY, "causal": True}).save_pretrained(folder)  # the project's card follows the weights
    card = (folder / "README.md").read_text()
    assert "| mode | causal" in card and "--live-model" in card and "Not recorded with these weights." in card
    assert f'GranuMambaPipeline.from_pretrained("{folder}")' in card  # no repo id given: the folder
    mine = card.replace(CARD_MARKER, "") + "\nMy notes.\n"
    (folder / "README.md").write_text(mine)
    GranuMamba(TINY).save_pretrained(folder, model_card_kwargs={"training": "other"})
    assert (folder / "README.md").read_text() == mine
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]  # no temporary left


def test_push_to_hub_uploads_the_card_naming_the_repo(tmp_path, monkeypatch):
    """huggingface_hub's push_to_hub (through the mixin) uploads config.json, the weights and the
    card, whose examples load the repo it was pushed to."""
    from types import SimpleNamespace

    from huggingface_hub import HfApi

    from granumamba.model import GranuMamba

    from .test_model import TINY

    uploaded = {}

    def upload_folder(self, *, repo_id, folder_path, **kw):
        uploaded.update({p.name: p.read_text(errors="replace") for p in Path(folder_path).iterdir()}, repo_id=repo_id)
        return SimpleNamespace(oid="a" * 40, commit_url="url")

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: SimpleNamespace(repo_id=repo_id))
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    GranuMamba(TINY).push_to_hub("someone/pushed-model")
    assert uploaded["repo_id"] == "someone/pushed-model" and {"config.json", "model.safetensors", "README.md"} <= set(uploaded)
    assert 'GranuMambaPipeline.from_pretrained("someone/pushed-model")' in uploaded["README.md"]


def test_push_space_publishes_what_git_tracks_as_a_gradio_space(monkeypatch, capsys):
    """scripts/push_space.py makes (or reuses) a Gradio Space and uploads the files git tracks,
    as huggingface_hub's own pattern filter selects them from the folder: the bundled
    checkpoints and the app, nothing of .venv, data/ or runs/; a malformed Space id is refused."""
    import importlib.util
    import shutil
    import subprocess
    from types import SimpleNamespace

    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    root = Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("needs a git checkout: the Space is what git tracks")
    spec = importlib.util.spec_from_file_location("push_space", root / "scripts" / "push_space.py")
    push_space = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(push_space)
    calls = []
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.append(("create", repo_id, kw)))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, **kw: calls.append(("upload", kw)) or SimpleNamespace(oid="a" * 40))
    assert push_space.main(["someone/granumamba-demo"]) == 0
    (_, repo_id, create), (_, upload) = calls
    assert (
        repo_id == "someone/granumamba-demo" and create["repo_type"] == "space" and create["space_sdk"] == "gradio" and create["exist_ok"]
    )
    assert upload["repo_id"] == repo_id and upload["repo_type"] == "space" and Path(upload["folder_path"]) == root
    assert upload["delete_patterns"] == "*"  # the Space mirrors the checkout
    on_disk = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    chosen = set(filter_repo_objects(on_disk, allow_patterns=upload["allow_patterns"]))
    tracked = {p for p in subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split("\n") if p}
    assert chosen == {p for p in tracked if (root / p).is_file()}
    assert {"app.py", "README.md", "requirements.txt", "packages.txt", "assets/granumamba-demo/model.safetensors"} <= chosen
    assert not any(p.startswith((".venv/", "data/", "runs/", ".git/")) for p in chosen)
    assert "https://huggingface.co/spaces/someone/granumamba-demo" in capsys.readouterr().out
    for bad in ("granumamba", "a/b/c", "/name"):
        with pytest.raises(SystemExit):
            push_space.main([bad])
