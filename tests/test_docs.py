"""The documentation's links lead somewhere, and no source or documentation file outgrows the 500-line limit
(docs/weights.md had to be split once; a broken link after such a split only shows when a reader clicks it)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {".git", ".venv", "venv", "build", "dist", "node_modules", "__pycache__", ".pytest_cache"}
MAX_LINES = 500


def _files(*suffixes: str) -> list[Path]:
    return sorted(p for p in ROOT.rglob("*") if p.suffix in suffixes and p.is_file()
                  and not any(part in SKIP_DIRS or part.endswith(".egg-info") for part in p.relative_to(ROOT).parts))


DOCS = [ROOT / "README.md", ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation other than '-' and '_' dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(md: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in md.read_text().splitlines() if line.startswith("#")}


def test_slug_rule():
    assert slug("Volume check (`report.json` `qc.volume_check`)") == "volume-check-reportjson-qcvolume_check"
    assert slug("Bundled checkpoints") == "bundled-checkpoints"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc):
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(target)
    assert not broken, f"{doc.name}: links to nothing: {broken}"


def test_docs_named_in_text_exist():
    """A documentation file named by its path (docs/ followed by a name) in any source or documentation file exists."""
    missing = {(str(p.relative_to(ROOT)), name) for p in _files(".py", ".md")
               for name in re.findall(r"\bdocs/[\w.-]+\.md\b", p.read_text()) if not (ROOT / name).is_file()}
    assert not missing


def test_no_file_over_the_line_limit():
    long = {str(p.relative_to(ROOT)): n for p in _files(".py", ".md")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these files (limit {MAX_LINES} lines): {long}"
