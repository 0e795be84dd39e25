"""What a bundle's model file may construct: :data:`TRUSTED_TYPES` (an explicit allowlist, checked before
skops loads anything), the types a skops file names, and its re-packing into byte-identical files."""
from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import skops.io as sio

from ..errors import Problem, UsradError
from .layout import MODEL_FILE

#: Every non-default type the bundles of usrad contain; skops refuses anything else.
TRUSTED_TYPES = sorted({
    "usrad.selection.ColumnPicker", "usrad.selection.ICCFilter", "usrad.selection.NearZeroVariance",
    "usrad.selection.UnivariateFilter", "usrad.selection.RedundancyFilter", "usrad.selection.MRMR",
    "usrad.selection.LassoSelector", "usrad.selection.RadScore", "usrad.selection.ComBatHarmonizer",
    "usrad.models.RadiomicsClinicalFeatures", "usrad.clinical.ClinicalEncoder", "usrad.clinical.ClinicalSelector",
    "sklearn.pipeline.Pipeline", "sklearn.preprocessing._data.StandardScaler",
    "sklearn.linear_model._logistic.LogisticRegression", "sklearn.svm._classes.SVC",
    "sklearn.ensemble._forest.RandomForestClassifier", "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree", "sklearn.neighbors._classification.KNeighborsClassifier",
    "sklearn.neighbors._kd_tree.KDTree", "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.naive_bayes.GaussianNB", "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.utils._bunch.Bunch", "sklearn.preprocessing._label.LabelBinarizer", "builtins.bytearray", "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.calibration.CalibratedClassifierCV", "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration", "sklearn.frozen._frozen.FrozenEstimator",
    "xgboost.sklearn.XGBClassifier", "xgboost.core.Booster",
    "numpy.dtype", "numpy.ndarray", "numpy.float64", "numpy.int64", "numpy.bool_", "numpy.random.mtrand.RandomState",
    "builtins.slice", "builtins.tuple", "builtins.float", "builtins.int", "builtins.str", "builtins.bool",
    "builtins.list", "builtins.dict", "builtins.NoneType", "builtins.set",
})


def types_in(path) -> list[str]:
    """Every ``module.Class`` a skops file (a path, or the file's bytes) would construct (read from its schema,
    nothing is loaded)."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if "__class__" in node and "__module__" in node:
                found.add(f"{node['__module__']}.{node['__class__']}")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    with zipfile.ZipFile(io.BytesIO(path) if isinstance(path, (bytes, bytearray)) else path) as zf:
        walk(json.loads(zf.read("schema.json")))
    return sorted(found)


_ID = re.compile(r'("__id__": )(\d+)')
_FILE = re.compile(r'("file": ")([^"]+)(")')


def deterministic_zip(data: bytes) -> bytes:
    """Re-pack skops' zip so that the same model gives the same bytes.

    skops names objects by ``id()`` (memory addresses, ``"__id__": 1400…``) and stores arrays and XGBoost
    boosters in members named by address or a random UUID (``"file": "1400….npy"``); both are renumbered
    in order of first appearance in ``schema.json``, and members are written sorted with fixed timestamps.
    """
    src = zipfile.ZipFile(io.BytesIO(data))
    schema = src.read("schema.json").decode()
    ids: dict[str, str] = {}
    for m in _ID.finditer(schema):
        ids.setdefault(m.group(2), str(len(ids) + 1))
    files: dict[str, str] = {}
    for m in _FILE.finditer(schema):
        ext = m.group(2).rpartition(".")[2]
        files.setdefault(m.group(2), f"m{len(files) + 1}.{ext}")
    schema = _ID.sub(lambda m: m.group(1) + ids[m.group(2)], schema)
    schema = _FILE.sub(lambda m: m.group(1) + files[m.group(2)] + m.group(3), schema)
    members = {"schema.json": schema.encode()}
    for name in src.namelist():
        if name == "schema.json":
            continue
        if name not in files:
            raise ValueError(f"skops member {name!r} is not referenced by its schema")
        members[files[name]] = src.read(name)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, members[name], compresslevel=6)
    return out.getvalue()


def check_types(d: Path, data: bytes) -> list[str]:
    """The types skops itself does not trust in the model file; UsradError if any is not in TRUSTED_TYPES."""
    try:
        present = types_in(data)  # stricter than skops' default: sklearn types must be listed too
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # noqa: BLE001 - a corrupt file is the user's problem, reported as such
        raise UsradError(f"Model bundle {d} cannot be read", [Problem(
            f"{MODEL_FILE} is not a skops file ({type(exc).__name__}: {exc})", file=str(d / MODEL_FILE))]) from None
    refused = sorted({t for t in present + untrusted if t not in TRUSTED_TYPES})
    if refused:
        raise UsradError(f"Model bundle {d} contains types usrad does not trust; refusing to load it",
                         [Problem(f"untrusted type {t}", file=str(d / MODEL_FILE)) for t in refused])
    return untrusted
