"""The project can be cited and reused: CITATION.cff is valid Citation File Format 1.2.0 metadata that cites
PyRadiomics, BUS-BRA and the reference study; LICENSE is the licence pyproject.toml names; the README says how to
cite and shows a figure of the demo."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CFF_REQUIRED = ("cff-version", "message", "title", "authors")  # the keys CFF 1.2.0 requires of every file


def test_citation_cff_is_cff_1_2_0_and_cites_pyradiomics_busbra_and_the_reference_study():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0"
    assert all(cff.get(k) for k in CFF_REQUIRED)
    assert all(a.get("name") or a.get("family-names") for a in cff["authors"])
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert cff["license"] == pyproject["project"]["license"]["text"] == "MIT"
    assert cff["version"] == re.search(r'__version__ = "([^"]+)"', (REPO / "src/usrad/__init__.py").read_text()).group(1)
    refs = {r["title"]: r for r in cff["references"]}
    pyr = refs["Computational Radiomics System to Decode the Radiographic Phenotype"]
    assert (pyr["journal"], pyr["year"], pyr["volume"], pyr["doi"]) == (
        "Cancer Research", 2017, 77, "10.1158/0008-5472.CAN-17-0339")
    assert pyr["authors"][0]["family-names"] == "van Griethuysen"
    bus = next(r for t, r in refs.items() if t.startswith("BUS-BRA"))
    assert (bus["journal"], bus["year"], bus["authors"][0]["family-names"]) == ("Medical Physics", 2024, "Gómez-Flores")
    assert any("reference study" in t.lower() for t in refs)
    for r in cff["references"]:
        assert r["type"] and r["title"] and r["authors"]


def test_license_is_the_mit_licence_pyproject_names():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n") and "Copyright (c) 2024 the usrad authors" in text
    assert "Permission is hereby granted, free of charge" in text and 'THE SOFTWARE IS PROVIDED "AS IS"' in text


def test_readme_says_how_to_cite_and_shows_a_small_demo_figure():
    readme = (REPO / "README.md").read_text()
    cite = readme.split("## How to cite", 1)[1].split("\n## ", 1)[0]
    for needle in ("CITATION.cff", "van Griethuysen", "10.1158/0008-5472.CAN-17-0339", "Gómez-Flores", "reference study"):
        assert needle in cite, needle
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert pictures, "no picture in the README"
    for pic in pictures:
        assert (REPO / pic).is_file() and (REPO / pic).stat().st_size < 300_000, pic
    assert "results/report/summary.html" in readme.split("## Your own cohort", 1)[0]
    assert "--config cohort='{simulate: {n_patients: 160}}'" in readme.split("## Your own cohort", 1)[0]
