"""scripts/bundle_checkpoint.py --evals-only: a bundled checkpoint's held-out figures are replaced in its card and in
both manifest copies (with the card's new sha256), and nothing else is touched."""

import importlib.util
import json
from pathlib import Path

import pytest

from brainsegcli.weights.checkpoint import sha256_file

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bundle_checkpoint.py"


def _script():
    spec = importlib.util.spec_from_file_location("bundle_checkpoint_under_test", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _eval(tta: bool, head: float, refine: bool = True, precision: str | None = "float32") -> dict:
    ev = {"per_structure": {"t1-head": {"Left-Hippocampus": head, "Brain-Stem": 0.9}, "random-contrast":
                            {"Left-Hippocampus": 0.25, "Brain-Stem": 0.5}},
          "mean": {"t1-head": (head + 0.9) / 2, "random-contrast": 0.375}, "tta": tta, "cleanup": True,
          "refine_edges": refine, "device": "cpu"}
    if precision:
        ev["precision"] = precision
    return ev


def test_headings_say_how_the_figures_were_measured():
    mod = _script()
    text = mod.eval_sections([_eval(False, 0.8, refine=False, precision=None), _eval(True, 0.8)])
    assert "(benchmarks/eval_synth.py, without test-time augmentation, with the clean-up)\n" in text
    assert "(benchmarks/eval_synth.py, with `--tta`, with the clean-up and the edge refinement, float32 on cpu)\n" in text
    assert "- t1-head: mean Dice 0.850 (Left-Hippocampus 0.800, Brain-Stem 0.900)\n" in text
    assert set(mod.eval_metrics([_eval(False, 0.8), _eval(True, 0.8)])) == {"held_out_synthetic",
                                                                           "held_out_synthetic_tta"}


def test_evals_only_replaces_the_figures_and_nothing_else(tmp_path, monkeypatch):
    mod = _script()
    dest = tmp_path / "brainsegcli" / "data" / "weights" / "m"
    dest.mkdir(parents=True)
    head = "# m\n\n## Validation\n\n- loss 0.3, mean Dice 0.6\n"
    tail = mod.status_section("preliminary", "some notes", ["a measured limit"])
    (dest / "README.md").write_text(head + mod.eval_sections([_eval(False, 0.611), _eval(True, 0.622)]) + tail)
    other = {"name": "other", "files": [{"filename": "README.md", "sha256": "0" * 64, "size": 1}], "metrics": {}}
    entry = {"name": "m", "files": [{"filename": "README.md", "sha256": "0" * 64, "size": 1}],
             "metrics": {"val_dice": 0.6, "held_out_synthetic": {"t1-head": 0.1}}, "notes": "some notes"}
    manifests = (tmp_path / "a.json", tmp_path / "b.json")
    for path in manifests:
        path.write_text(json.dumps({"entries": [other, entry]}))
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    monkeypatch.setattr(mod, "MANIFESTS", manifests)

    new = [_eval(False, 0.733), _eval(True, 0.744)]
    mod.update_evals("m", new)
    card = (dest / "README.md").read_text()
    assert card == head + mod.eval_sections(new) + tail
    assert "0.611" not in card and "0.622" not in card and "0.733" in card and "0.744" in card
    for path in manifests:
        got = {e["name"]: e for e in json.loads(path.read_text())["entries"]}
        assert got["other"] == other
        m = got["m"]
        assert m["metrics"]["val_dice"] == 0.6 and m["notes"] == "some notes"
        assert m["metrics"]["held_out_synthetic"] == new[0]["mean"]
        assert m["metrics"]["held_out_synthetic_tta"] == new[1]["mean"]
        assert m["files"][0] == {"filename": "README.md", "sha256": sha256_file(dest / "README.md"),
                                 "size": (dest / "README.md").stat().st_size}

    mod.update_evals("m", new)  # idempotent
    assert (dest / "README.md").read_text() == card
    with pytest.raises(SystemExit):
        mod.update_evals("m", [])
