"""The documentation site: it builds with ``mkdocs build --strict``, every ``docs/…md#anchor``
the code cites exists, and nothing cites files that are not in the repository."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CITING = ["effdyn", "theory", "tests", "benchmarks", "examples", "docs", "README.md"]
SUFFIXES = {".py", ".md", ".toml", ".txt"}

# Anchors other code cites (docs/extending.md and the module docstrings use them).
REQUIRED = {
    "theory/multiplicity.md": ["multiplicity", "non-smooth-activations", "drift"],
    "theory/effective-dynamics.md": [
        "leading-order-expansion",
        "two-layer",
        "depth-three-and-deeper",
        "conservation-laws",
        "closed-forms",
    ],
    "theory/blowup.md": [
        "rescaled-time",
        "threshold-estimator",
        "escape-time",
        "batched-integrator",
    ],
    "theory/cnn.md": ["effective-dynamics", "misalignment"],
    "theory/phase-diagrams.md": ["two-layer", "three-layer", "order-parameter"],
    "theory/measuring.md": ["condensation-metrics", "initial-stage", "escape-time"],
    "problem-files.md": ["model", "data", "init", "train", "sweep"],
    "commands.md": [
        "derive",
        "predict",
        "train",
        "compare",
        "verify",
        "reproduce",
        "phase-diagram",
    ],
    "extending.md": ["adding-a-card", "adding-a-model-kind"],
}
PAGES = [
    "index.md",
    "getting-started.md",
    "theory/conventions.md",
    "theory/experiments.md",
    "results.md",
    "precision.md",
    "cards.md",
    "papers.md",
    "api.md",
    *REQUIRED,
]


def _citing_files():
    for name in CITING:
        path = ROOT / name
        paths = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        for f in paths:
            if f.is_file() and f.suffix in SUFFIXES and "__pycache__" not in f.parts:
                yield f


def _anchors(page: Path) -> set[str]:
    """The ids mkdocs gives the headings of ``page``: its default ``toc`` slugify (lower
    case, punctuation dropped, spaces to hyphens), ``_1``, ``_2`` … for repeats."""
    from markdown.extensions.toc import slugify

    ids: set[str] = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        match = None if fenced else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            text = re.sub(r"`([^`]*)`", r"\1", match.group(1))
            base = slug = slugify(text, "-")
            n = 0
            while slug in ids:
                n += 1
                slug = f"{base}_{n}"
            ids.add(slug)
    return ids


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs tools: pip install -e '.[docs]'")
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page, anchors in REQUIRED.items():
        html = (site / page.replace(".md", ".html")).read_text(encoding="utf-8")
        ids = set(re.findall(r'id="([^"]+)"', html))
        assert not set(anchors) - ids, (page, sorted(set(anchors) - ids))
    # Offline: no page loads a script, stylesheet or font from elsewhere.
    for html in site.rglob("*.html"):
        text = html.read_text(encoding="utf-8")
        remote = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?:)?//[^"]+"', text)
        assert not remote, (html.name, remote)


def test_every_page_exists_and_has_the_anchors_code_cites():
    for page in PAGES:
        assert (DOCS / page).is_file(), page
    for page, anchors in REQUIRED.items():
        missing = set(anchors) - _anchors(DOCS / page)
        assert not missing, (page, sorted(missing))


def test_every_docs_citation_resolves():
    cited = re.compile(r"docs/([\w./-]+?\.md)(?:#([\w-]+))?")
    bad = []
    for f in _citing_files():
        text = f.read_text(encoding="utf-8")
        for match in cited.finditer(text):
            page, anchor = match.group(1), match.group(2)
            where = f"{f.relative_to(ROOT)}: docs/{page}" + (f"#{anchor}" if anchor else "")
            if not (DOCS / page).is_file():
                bad.append(where + " (no such page)")
            elif anchor and anchor not in _anchors(DOCS / page):
                bad.append(where + " (no such heading)")
    assert not bad, "\n".join(bad)


def test_no_citation_of_files_outside_the_repository():
    # Built from pieces so that this file does not match itself.
    patterns = [
        re.escape("../" + "shared"),
        re.escape("THEORY" + ".md"),
        re.escape("ARCHITECTURE" + ".md"),
        re.escape("STYLE" + ".md"),
        r"\b" + "issue" + r" \d",
        r"\bseed\s+`{0,2}" + "00" + r"\d",
    ]
    found = re.compile("|".join(patterns), re.IGNORECASE)
    hits = []
    for f in _citing_files():
        if f.name == "test_docs.py":
            continue
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if found.search(line):
                hits.append(f"{f.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not hits, "\n".join(hits)
