import json
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from brainsegcli.cli.main import app
from brainsegcli.models import create_model, get_spec
from brainsegcli.types import BrainsegError
from brainsegcli.weights.checkpoint import CheckpointConfig, save_checkpoint, sha256_file

from hubserver import FakeHub

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def test_manifest_schema_and_copies():
    jsonschema = pytest.importorskip("jsonschema")
    data = ROOT / "brainsegcli" / "data"
    schema = json.loads((data / "weights_manifest.schema.json").read_text())
    doc = json.loads((data / "weights_manifest.json").read_text())
    jsonschema.validate(doc, schema)
    assert (ROOT / "weights_manifest.json").read_text() == (data / "weights_manifest.json").read_text()
    # base SAM checkpoint entry as the issue states it
    sam = next(e for e in doc["entries"] if e["name"] == "sam-vit-b")
    assert sam["files"][0]["size"] == 375042383 and sam["role"] == "base"
    bases = {e["name"]: e["files"][0]["sha256"][:10] for e in doc["entries"] if e.get("role") == "base"}
    assert bases == {"sam-vit-b": "ec2df62732", "sam-vit-l": "3adcc4315b", "sam-vit-h": "a7bf3b02f3"}
    # the measured hippocampal bias travels with every default model that labels the hippocampus
    for e in doc["entries"]:
        if e.get("default") and e["labelset"] in ("aseg", "subcortical"):
            assert any("hippocampal atrophy is under-measured" in c for c in e["caveats"]), e["name"]
    bad = json.loads(json.dumps(doc))
    bad["entries"][3]["caveats"] = "one string, not a list"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    # a hub revision must be a full commit id
    bad = json.loads(json.dumps(doc))
    bad["entries"][0]["source"]["revision"] = "main"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    d = tmp_path / "tiny"
    save_checkpoint(d, create_model("unet", num_classes=4, tiny=True),
                    CheckpointConfig(architecture="unet", labelset="tissue", model_args=dict(get_spec("unet").tiny_args)))
    (d / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny\n")
    return d


@pytest.fixture
def hub(tmp_path, monkeypatch):
    fake = FakeHub()
    url = fake.start()
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("BRAINSEG_HOME", str(tmp_path / "brainseg-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    yield fake
    fake.stop()


def _register_hub_entry(ckpt: Path, repo: str, rev: str, name="tiny-hub", **extra):
    home = Path(os.environ["BRAINSEG_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    files = [{"filename": f, "sha256": sha256_file(ckpt / f), "size": (ckpt / f).stat().st_size}
             for f in ("config.json", "model.safetensors")]
    entry = {"name": name, "role": "model", "architecture": "unet", "labelset": "tissue",
             "model_args": dict(get_spec("unet").tiny_args), "input": {"slices": 5}, "files": files,
             "source": {"type": "hub", "repo_id": repo, "revision": rev}, "license": "apache-2.0", "version": "1",
             **extra}
    (home / "weights_manifest.json").write_text(json.dumps({"schema_version": 1, "entries": [entry]}))
    return entry


def _publish(hub, ckpt, repo="brainseg/tiny"):
    return hub.add_commit(repo, {f: (ckpt / f).read_bytes() for f in ("config.json", "model.safetensors", "README.md")})


def test_pull_cache_hit_offline_and_remove(hub, ckpt, monkeypatch):
    rev = _publish(hub, ckpt)
    _register_hub_entry(ckpt, "brainseg/tiny", rev)
    r = runner.invoke(app, ["weights", "pull", "tiny-hub"])
    assert r.exit_code == 0, r.output
    n = len(hub.log)
    assert any(m == "GET" and p == "model.safetensors" for m, p, _ in hub.log)
    # cache hit: no request at all, also with the server gone and offline mode on
    hub.stop()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = runner.invoke(app, ["weights", "path", "tiny-hub"])
    assert r.exit_code == 0 and Path(r.output.strip()).is_dir()
    assert len(hub.log) == n
    r = runner.invoke(app, ["weights", "list", "--json"])
    row = next(x for x in json.loads(r.output) if x["name"] == "tiny-hub")
    assert row["available"] is True and set(row) >= {"name", "architecture", "labelset", "sha256", "size", "source"}
    assert row["status"] == "release" and row["caveats"] == []
    aseg = next(x for x in json.loads(r.output) if x["name"] == "aseg-unet")
    assert aseg["status"] == "preliminary" and "hippocampal" in aseg["caveats"][0]
    r = runner.invoke(app, ["weights", "verify", "tiny-hub"])
    assert r.exit_code == 0
    r = runner.invoke(app, ["weights", "remove", "tiny-hub"])
    assert r.exit_code == 0 and "removed 2" in r.output
    r = runner.invoke(app, ["weights", "pull", "tiny-hub"])
    assert r.exit_code == 1
    assert "not in the cache" in r.output and "HF_HUB_OFFLINE" in r.output and "brainseg/tiny/" in r.output
    hub.start()  # restart so the fixture can stop it


def test_checksum_mismatch_removes_the_file(hub, ckpt):
    rev = _publish(hub, ckpt)
    _register_hub_entry(ckpt, "brainseg/tiny", rev)
    hub.serve_instead["model.safetensors"] = b"not the weights" * 100
    r = runner.invoke(app, ["weights", "pull", "tiny-hub"])
    assert r.exit_code == 1 and "sha256" in r.output and "removed from the cache" in r.output
    cache = Path(os.environ["HF_HUB_CACHE"])
    assert not any(p.name == "model.safetensors" for p in cache.rglob("*") if p.is_file())
    del hub.serve_instead["model.safetensors"]
    r = runner.invoke(app, ["weights", "pull", "tiny-hub"])
    assert r.exit_code == 0, r.output


def test_dropped_connection_is_resumed_cleanly(hub, ckpt):
    rev = _publish(hub, ckpt)
    _register_hub_entry(ckpt, "brainseg/tiny", rev)
    hub.drop_once.add("model.safetensors")
    r = runner.invoke(app, ["weights", "pull", "tiny-hub"])
    if r.exit_code != 0:  # the client gave up: a retry must resume or restart cleanly
        assert "run the command again" in r.output
        r = runner.invoke(app, ["weights", "pull", "tiny-hub"])
    assert r.exit_code == 0, r.output
    gets = [(p, rng) for m, p, rng in hub.log if m == "GET" and p == "model.safetensors"]
    assert len(gets) >= 2
    r = runner.invoke(app, ["weights", "verify", "tiny-hub"])
    assert r.exit_code == 0
    cache = Path(os.environ["HF_HUB_CACHE"])
    assert not list(cache.rglob("*.incomplete"))


def test_parcellate_with_hub_weights_and_pinned_reference(hub, ckpt, phantom_t1, tmp_path):
    rev = _publish(hub, ckpt)
    _register_hub_entry(ckpt, "brainseg/tiny", rev, status="preliminary",
                       notes="held-out Dice 0.5. Trained for 3 minutes on one core.",
                       caveats=["CSF is drawn 10 % too large.", "the WM is thin"])
    out = tmp_path / "out"
    r = runner.invoke(app, ["parcellate", str(phantom_t1), "-o", str(out), "--weights", "tiny-hub", "-q",
                            "--views", "axial"])
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "sub-01_T1w" / "report.json").read_text())
    assert "preliminary checkpoint: held-out Dice 0.5." in r.output and rep["model"]["status"] == "preliminary"
    assert "Trained for 3 minutes" not in r.output  # the warning gives the first sentence of the notes
    # measured limits: one warning line, and in report.json with the results they qualify
    assert "tiny-hub, known limits: CSF is drawn 10 % too large; the WM is thin." in " ".join(r.output.split())
    assert rep["model"]["caveats"] == ["CSF is drawn 10 % too large.", "the WM is thin"]
    assert rep["model"]["weights"] == "tiny-hub" and rep["model"]["weights_sha256"] == sha256_file(
        ckpt / "model.safetensors")
    r = runner.invoke(app, ["parcellate", str(phantom_t1), "-o", str(out), "--weights",
                            f"hf-hub:brainseg/tiny@{rev}", "-q", "--views", "axial", "--force"])
    assert r.exit_code == 0, r.output
    for bad in ("hf-hub:brainseg/tiny", "hf-hub:brainseg/tiny@main", "hf-hub:tiny@" + rev):
        r = runner.invoke(app, ["parcellate", str(phantom_t1), "-o", str(out), "--weights", bad, "--force"])
        assert r.exit_code == 1 and ("revision" in r.output or "org/name" in r.output), r.output


def test_import_push_records_the_revision(hub, ckpt):
    jsonschema = pytest.importorskip("jsonschema")
    r = runner.invoke(app, ["weights", "import", str(ckpt), "--name", "my-tissue"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["weights", "push", "my-tissue", "--repo-id", "lab/my-tissue"])
    assert r.exit_code == 0, r.output
    oid, files = hub.lookup("lab/my-tissue", "main")
    assert set(files) == {"config.json", "model.safetensors", "README.md"} and oid in r.output
    doc = json.loads((Path(os.environ["BRAINSEG_HOME"]) / "weights_manifest.json").read_text())
    assert doc["published"]["my-tissue"] == {"repo_id": "lab/my-tissue", "revision": oid}
    schema = json.loads((ROOT / "brainsegcli" / "data" / "weights_manifest.schema.json").read_text())
    jsonschema.validate(doc, schema)
    r = runner.invoke(app, ["weights", "import", str(ckpt), "--name", "my-tissue"])
    assert r.exit_code == 1 and "--force" in r.output


def test_unknown_names_and_bad_refs(hub):
    r = runner.invoke(app, ["weights", "path", "nope"])
    assert r.exit_code == 1 and "known names" in r.output and "sam-vit-b" in r.output
    from brainsegcli.weights.hub import parse_hub_ref

    with pytest.raises(BrainsegError):
        parse_hub_ref("hf-hub:a/b@deadbeef")
    assert parse_hub_ref("hf-hub:a/b@" + "0" * 40) == ("a/b", "0" * 40)


def test_verify_all_bundled():
    r = runner.invoke(app, ["weights", "verify", "--all"])
    assert r.exit_code == 0, r.output
