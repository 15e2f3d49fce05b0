"""The README's model table agrees with the code: every net, its published score, the make
target that trains it, its weights entry and the published sha1."""
from __future__ import annotations

import re
from pathlib import Path

from reproduce.models import MODELS
from reproduce.weights import manifest

ROOT = Path(__file__).resolve().parents[1]


def table_rows() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Models\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] not in ("net", "---"):
            rows[cells[0]] = cells
    return rows


def test_every_net_has_a_row_with_its_facts():
    rows = table_rows()
    assert list(rows) == list(MODELS)
    makefile = (ROOT / "Makefile").read_text()
    for name, (_, dataset, published, target, entry, sha1, measured) in rows.items():
        make_target = re.fullmatch(r"`make ([\w-]+)`", target).group(1)
        assert re.search(rf"^{make_target}:.*\n\t\$\(STAGE\) {name}\b", makefile, re.M), (name, target)
        assert measured, name
        try:
            e = manifest.entry(name)
        except KeyError:
            assert "never released" in entry, name
            continue
        assert dataset == e.dataset and published == e.published_text, name
        assert entry.startswith(f"`{e.name}`: {e.file}"), name
        assert (sha1 == f"`{e.sha1}`") if e.sha1 else sha1.startswith("unpublished"), name
