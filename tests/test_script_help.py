"""Every command-line script in benchmarks/ and scripts/ prints its help (argparse %-formats help texts, so a
stray "%" in one only shows when someone asks for --help)."""

import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for d in ("benchmarks", "scripts") for p in (ROOT / d).glob("*.py")
                 if "argparse" in p.read_text())


def test_scripts_found():
    assert {"eval_consistency.py", "eval_synth.py", "bundle_checkpoint.py"} <= {p.name for p in SCRIPTS}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_help(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(script), "--help"])
    monkeypatch.syspath_prepend(str(script.parent))
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(script), run_name="__main__")
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "--help" in out
