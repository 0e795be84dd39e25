"""Every `usrad` subcommand runs end to end, `usrad --version` works, every option has help text, and a
non-editable install (`pip install .`) runs `usrad validate` and `usrad simulate` from another folder.

The bad-argument cases of each command are in test_cli_safety.py; here every command is run once the way a user
would, and its output is checked.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_bundle_safety import fitted_bundles, tiny_params_file
from test_cli_safety import png_manifest

import usrad
from usrad.cli import build_parser, main
from usrad.features import read_feature_table
from usrad.predict import read_predictions_table

REPO = Path(__file__).resolve().parents[1]


def run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    """A simulated cohort of 90 patients (enough patients per class to cross-validate both tasks)."""
    out = tmp_path_factory.mktemp("sim") / "cohort"
    code = main(["simulate", "--out", str(out), "--n-patients", "90", "--seed", "7", "--quiet"])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def tiny_params(tmp_path_factory) -> Path:
    return tiny_params_file(tmp_path_factory)


# ----------------------------------------------------------------------------------------- parser
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_version_prints_the_package_version(capsys):
    code = main(["--version"])
    assert code == 0
    assert capsys.readouterr().out.strip() == f"usrad {usrad.__version__}"


def test_every_subcommand_and_every_option_has_help_text():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {c.dest: c.help for c in sub._choices_actions}
    assert set(helps) == set(_subparsers(parser)) and all(h and h.strip() for h in helps.values()), helps
    missing = [(name, a.dest) for name, p in [("usrad", parser), *_subparsers(parser).items()] for a in p._actions
               if not isinstance(a, argparse._SubParsersAction) and not (a.help and a.help.strip())
               and a.help != argparse.SUPPRESS]
    assert not missing, f"options without help text: {missing}"


def test_defaults_of_the_cli_are_the_schemas():
    from usrad.config import validate_config

    defaults = validate_config({})
    sim = _subparsers(build_parser())["simulate"].parse_args([])
    assert sim.n_patients == defaults["cohort"]["simulate"]["n_patients"] and sim.seed == defaults["seed"]
    assert sim.device_effect == defaults["cohort"]["simulate"]["device_effect"] == 1.0


# ----------------------------------------------------------------------------------------- every command
def test_simulate_writes_a_cohort_whose_manifest_lists_existing_images(simulated):
    manifest = pd.read_csv(simulated / "manifest.tsv", sep="\t")
    assert manifest["patient_id"].nunique() == 90
    assert all((simulated / p).is_file() for p in manifest["image"]) and (simulated / "ground_truth.tsv").is_file()


def test_validate_accepts_the_simulated_cohort_and_names_the_problem_of_a_broken_one(simulated, tmp_path, capsys):
    code, out, err = run(["validate", simulated / "manifest.tsv", "--config", REPO / "config" / "config.yaml"], capsys)
    assert code == 0, err
    assert out.startswith("OK: 90 patients, 90 images")
    broken = pd.read_csv(simulated / "manifest.tsv", sep="\t")
    broken.loc[3, "image"] = "nowhere.png"
    broken.to_csv(tmp_path / "broken.tsv", sep="\t", index=False)
    shutil.copytree(simulated / "images", tmp_path / "images")
    shutil.copytree(simulated / "masks", tmp_path / "masks")
    code, _, err = run(["validate", tmp_path / "broken.tsv"], capsys)
    assert code == 2 and "nowhere.png" in err and "Traceback" not in err


def test_extract_with_the_config_and_params_defaults_writes_every_reader(tmp_path, capsys, monkeypatch):
    """Run from the repository root with no --config or --params: config/config.yaml and its radiomics_params
    (config/radiomics.yaml, the workflow's full parameter set) are used."""
    manifest = png_manifest(tmp_path / "m", ["A1", "A2"], seed=11, reader2=True)
    monkeypatch.chdir(REPO)
    out = tmp_path / "out" / "features.parquet"
    code, stdout, err = run(["extract", manifest, "--out", out], capsys)
    assert code == 0, err
    table, meta = read_feature_table(out)
    assert sorted(zip(table["patient_id"], table["reader"])) == [("A1", "r1"), ("A1", "r2"), ("A2", "r1"),
                                                                 ("A2", "r2")]
    assert meta["params_sha256"] and f"4 feature rows of 2 image(s) written to {out}" in stdout


def test_extract_outside_a_checkout_uses_the_schema_defaults_and_the_given_params(tmp_path, tiny_params, capsys,
                                                                                monkeypatch):
    manifest = png_manifest(tmp_path / "m", ["B1"], seed=12)
    monkeypatch.chdir(tmp_path)  # no config/config.yaml here
    code, _, err = run(["extract", manifest, "--out", "f.parquet", "--params", tiny_params, "--cache-dir", "cache"],
                       capsys)
    assert code == 0, err
    table, _ = read_feature_table(tmp_path / "f.parquet")
    assert list(table["patient_id"]) == ["B1"] and any((tmp_path / "cache").rglob("*.json"))


def test_predict_scores_a_manifest_with_a_bundle(tmp_path_factory, tmp_path, capsys):
    bundles = fitted_bundles(tmp_path_factory)
    manifest = png_manifest(tmp_path / "m", ["N1", "N2", "N3"], seed=13)
    out = tmp_path / "p.csv"
    code, stdout, err = run(["predict", "--model", bundles / "radscore", "--manifest", manifest, "--out", out,
                             "--quiet"], capsys)
    assert code == 0, err
    got = read_predictions_table(out)
    assert list(got["patient_id"]) == ["N1", "N2", "N3"] and got["probability"].between(0, 1).all()
    assert "3 image(s) of 3 patient(s) scored with radscore" in stdout


def _fake_busbra(folder: Path, n_patients: int = 6) -> Path:
    """A BUS-BRA-shaped folder: bus_data.csv, Images/bus_XXXX-s.png, Masks/mask_XXXX-s.png (two views each)."""
    rng = np.random.default_rng(0)
    (folder / "Images").mkdir(parents=True)
    (folder / "Masks").mkdir()
    rows = []
    for p in range(n_patients):
        for view in ("l", "s"):
            image_id = f"bus_{p:04d}-{view}"
            Image.fromarray(rng.integers(0, 255, (32, 32)).astype(np.uint8)).save(folder / "Images" / f"{image_id}.png")
            mask = np.zeros((32, 32), np.uint8)
            mask[8:20, 8:20] = 255
            Image.fromarray(mask).save(folder / "Masks" / f"mask_{p:04d}-{view}.png")
            rows.append({"ID": image_id, "Case": str(p + 1), "Pathology": "malignant" if p % 2 else "benign",
                         "BIRADS": "4", "Device": "GE Logiq 5", "Histology": "x"})
    pd.DataFrame(rows).to_csv(folder / "bus_data.csv", index=False)
    return folder


def test_busbra_manifest_writes_every_image_of_whole_patients(tmp_path, capsys):
    folder = _fake_busbra(tmp_path / "busbra")
    out = tmp_path / "busbra.tsv"
    code, stdout, err = run(["busbra-manifest", folder, "--out", out, "--pixel-spacing-mm", "0.08"], capsys)
    assert code == 0, err
    df = pd.read_csv(out, sep="\t", dtype=str)
    assert len(df) == 12 and df["patient_id"].nunique() == 6 and set(df["pixel_spacing_mm"].astype(float)) == {0.08}
    assert "(12 images of 6 patients)" in stdout


def test_progress_prints_the_extraction_stages_line_from_the_shards_status_files(tmp_path, capsys):
    from test_progress import status, write_statuses

    from usrad.extract.progress import STATUS_DIR

    write_statuses(tmp_path / STATUS_DIR, [status(i, 25, 25, finished=True, updated=1120.0 + i) for i in range(4)])
    code, stdout, err = run(["progress", tmp_path], capsys)
    assert code == 0, err
    assert stdout == "extraction: 100/100 images (100 %), 4 of 4 shards done in 2 min\n"


def test_every_subcommand_has_a_test_here_that_runs_it():
    """A new subcommand without a test in this module that runs it fails."""
    source = Path(__file__).read_text()
    untested = [name for name in _subparsers(build_parser())
                if f'run(["{name}"' not in source and f'main(["{name}"' not in source]
    assert not untested, untested


# ----------------------------------------------------------------------------------------- non-editable install
@pytest.mark.slow
def test_a_non_editable_install_validates_and_simulates_from_another_folder(tmp_path):
    """``pip install --no-deps --target`` of a copy of the repository (not editable; the test venv's packages serve
    the dependencies): the schemas ship inside the package, so ``usrad simulate`` and ``usrad validate`` work from
    a folder that is not the repository, with the source copy deleted."""
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", "results", ".snakemake", "__pycache__",
                                                             "*.egg-info", "build", ".venv", ".pytest_cache"))
    target = tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(src)], check=True, env=env, cwd=tmp_path)
    shutil.rmtree(src)  # nothing may be read from the source tree
    assert sorted(p.name for p in (target / "usrad" / "schemas").iterdir()) == ["config.schema.yaml",
                                                                                 "manifest.schema.yaml"]
    env["PYTHONPATH"] = str(target)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def usrad_cli(*argv):
        return subprocess.run([str(target / "bin" / "usrad"), *argv], capture_output=True, text=True, env=env,
                              cwd=elsewhere)

    where = subprocess.run([sys.executable, "-c", "import usrad; print(usrad.__file__)"], capture_output=True,
                           text=True, check=True, env=env, cwd=elsewhere).stdout.strip()
    assert where.startswith(str(target)), where
    sim = usrad_cli("simulate", "--out", "cohort", "--n-patients", "90", "--seed", "7", "--quiet")
    assert sim.returncode == 0, sim.stderr
    # the default radiomics_params (config/radiomics.yaml) is a workflow file, not package data: name one
    (elsewhere / "params.yaml").write_text((REPO / "config" / "radiomics.yaml").read_text())
    (elsewhere / "config.yaml").write_text("radiomics_params: params.yaml\n")
    val = usrad_cli("validate", "cohort/manifest.tsv", "--config", "config.yaml")
    assert val.returncode == 0, val.stderr
    assert val.stdout.startswith("OK: 90 patients, 90 images")
    bad = usrad_cli("validate", "cohort/manifest.tsv", "--config", "nope.yaml")
    assert bad.returncode == 2 and "nope.yaml" in bad.stderr and "Traceback" not in bad.stderr
    assert usrad_cli("--version").stdout.strip() == f"usrad {usrad.__version__}"
