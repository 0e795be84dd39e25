"""The methods part of the summary (:func:`usrad.reporting.summary.write_summary`): title and notes, cohort
and split, feature extraction, reproducibility, selection and modelling, evaluation. Every number is read from
a results file through the summary's :class:`usrad.reporting.sources.Sources`; values a later part repeats
(the checklist) are kept in :attr:`SummaryContext.values`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..tables import read_table
from .sources import Sources, resolve_source, settings_value


@dataclass
class SummaryContext:
    """What every part of the summary reads: the working directory, the results folder, the sources table
    being filled, the run's kind, the main files, and the values one part prints and a later one repeats."""

    root: Path
    results: str
    sources: Sources
    demo: bool
    radiomics_only: bool
    feat: str
    counts: str
    settings: str
    values: dict = field(default_factory=dict)


def header_lines(c: SummaryContext) -> list[str]:
    """Title, the simulated-data and radiomics-only notes."""
    results = c.results
    lines: list[str] = []
    lines.append("# usrad: methods and results summary")
    lines.append("")
    if c.demo:
        lines.append("> **Simulated data.** These results come from the simulated demo cohort, not from patients; "
                     "they show that the workflow runs end to end and recovers a known signal.")
        lines.append("")
    lines.append(f"Every number below is read from a file under `{results}/`; `{results}/report/summary_sources.tsv` "
                 "lists each one with its file and location.")
    lines.append("")
    if c.radiomics_only:
        lines.append("> **Radiomics only.** The configuration lists no clinical predictor (`clinical.predictors: []`): "
                     "only the rad-score and the radiomics classifiers were fitted; the clinical, nomogram and combined "
                     "models, Table 2 (odds ratios) and the nomogram are not part of this run.")
        lines.append("")
    return lines


#: The ``study.*`` texts the summary shows, in this order, with their headings (the schema documents each key).
STUDY_HEADINGS = {
    "title": "Title", "design": "Design", "intended_use": "Intended use", "eligibility": "Eligibility",
    "centres": "Centres", "dates": "Dates", "outcome": "Outcome", "reference_standard": "Reference standard",
    "reference_interval": "Time between imaging and reference standard", "imaging_protocol": "Imaging protocol",
    "segmentation": "Segmentation", "readers": "Readers", "ethics": "Ethics", "registration": "Registration",
    "protocol": "Protocol", "funding": "Funding", "conflicts_of_interest": "Conflicts of interest",
    "public_involvement": "Public involvement", "data_availability": "Data availability",
    "code_availability": "Code availability"}


def study_lines(study) -> list[str]:
    """The study as its authors describe it (the ``study.*`` texts that are set, each on one line, shown as written;
    the HTML escapes them); no section when none is set."""
    items = [(head, " ".join(study[key].split())) for key, head in STUDY_HEADINGS.items()
             if isinstance((study or {}).get(key), str) and study[key].strip()]
    if not items:
        return []
    lines = ["## Study", "", "As the authors describe it (config `study.*`; the run does not check these texts).", ""]
    for head, text in items:
        lines += [f"**{head}.** {text}", ""]
    return lines


def cohort_lines(c: SummaryContext) -> list[str]:
    """Cohort and split (and the external set when there is one)."""
    root, results, sources = c.root, c.results, c.sources
    lines: list[str] = []
    split_file = f"{results}/split/split.tsv"
    counts = (("patients", "patients", "all"), ("images", "images", "all"), ("patients_train", "patients", "train"),
              ("patients_test", "patients", "test"))  # (summary key, column, split) of the counts table
    n_pat, n_img, n_tr, n_te = (sources.num(key, c.counts, f"col={col};split={part}", "d") for key, col, part in counts)
    lines.append(f"**Cohort and split.** {n_pat} patients ({n_img} images) were split at patient level into a training "
                 f"set of {n_tr} and a test set of {n_te} patients, stratified by every task's outcome "
                 f"(`{split_file}`); all images of a patient are in the same set, so no patient informs both "
                 f"training and testing. Baseline characteristics: `{results}/report/table1.tsv`.")
    if "external" in set(read_table(root / c.counts, text=("split",))["split"]):
        n_ext = sources.num("patients_external", c.counts, "col=patients;split=external", "d")
        n_ext_img = sources.num("images_external", c.counts, "col=images;split=external", "d")
        lines.append(f"An external validation set of {n_ext} patients ({n_ext_img} images), selected by "
                     f"`split.by_column`, was never used for training, selection or tuning.")
    lines.append("")
    c.values.update(n_tr=n_tr, n_te=n_te)
    return lines


def qc_lines(c: SummaryContext) -> list[str]:
    """How many images the QC gallery flagged and where it is (nothing when there is no qc_flags.tsv)."""
    flags = f"{c.results}/report/qc/qc_flags.tsv"
    if not (c.root / flags).exists():
        return []
    n_flagged = c.sources.num("qc_flagged", flags, "count=flagged:1", "d")
    n_images = c.sources.num("qc_images", flags, "count=", "d")
    return [f"**Quality control.** {n_flagged} of {n_images} images were flagged (a mask touching the image border, "
            f"readers' masks that disagree, outlying features or duplicate pixels; `{flags}`); the contact sheets in "
            f"`{c.results}/report/qc/gallery/` show every image with both readers' contours, flagged images first.", ""]


def extraction_lines(c: SummaryContext) -> list[str]:
    """Feature extraction: software, settings, filters, feature counts."""
    root, sources, feat = c.root, c.sources, c.feat
    lines: list[str] = []
    pyr = sources.num("pyradiomics_version", feat, "meta:/versions/pyradiomics", "s")
    sitk = sources.num("simpleitk_version", feat, "meta:/versions/SimpleITK", "s")
    bw = sources.num("bin_width", feat, "params:/setting/binWidth", "g")
    settings = resolve_source(root, feat, "params:/setting") or {}
    sig = [sources.num(f"log_sigma_{i}", feat, f"params:/setting/sigma/{i}", "g")
           for i in range(len(settings.get("sigma") or []))] if "LoG" in (resolve_source(root, feat, "params:/imageType") or {}) else []
    n_feat = sources.num("n_features", feat, "meta:/feature_counts/total", "d")
    by_class = resolve_source(root, feat, "meta:/feature_counts/by_class")
    cls_txt = ", ".join(f"{c} {sources.num(f'n_features_{c}', feat, f'meta:/feature_counts/by_class/{c}', 'd')}"
                        for c in sorted(by_class))
    image_types = resolve_source(root, feat, "params:/imageType")
    lines.append(f"**Feature extraction.** PyRadiomics {pyr} (SimpleITK {sitk}) on two-dimensional images and masks, "
                 f"fixed bin width {bw}, image types `{', '.join(image_types)}`"
                 + (f" (Laplacian of Gaussian with sigma {', '.join(sig)} mm)" if sig else "")
                 + f"; {n_feat} features per image ({cls_txt}). The parameter file and its `SHA-256` are stored in the "
                 "feature table's metadata.")
    by_region = (resolve_source(root, feat, "meta:/feature_counts") or {}).get("by_region")  # absent: the lesion only
    if by_region:  # peritumoral rings (extraction.regions): where each feature comes from
        reg_txt = ", ".join(f"{r} {sources.num(f'n_features_{r}', feat, f'meta:/feature_counts/by_region/{r}', 'd')}"
                            for r in by_region)
        lines.append(f"Besides the lesion, peritumoral rings around every mask (the pixels within the ring's width of "
                     f"the lesion, in mm, clipped to the image and the imaged tissue) were extracted in the same pass; "
                     f"features by region: {reg_txt}.")
    lines.append("")
    c.values.update(pyr=pyr, sitk=sitk, bw=bw, sig=sig, n_feat=n_feat, cls_txt=cls_txt, image_types=image_types)
    return lines


def reproducibility_lines(c: SummaryContext) -> list[str]:
    """The ICC filter (or that it was off)."""
    root, sources = c.root, c.sources
    lines: list[str] = []
    icc_form = settings_value(root / c.settings, "icc_form")
    icc_thr = settings_value(root / c.settings, "icc_threshold")
    if icc_thr:
        lines.append(f"**Reproducibility.** Features were computed from a second segmentation "
                     f"({settings_value(root / c.settings, 'icc_source')}); features with "
                     f"`{icc_form}` (two-way random, absolute agreement, single measurement) below "
                     f"{sources.num('icc_threshold', c.settings, 'col=value;key=icc_threshold', 'g')} were dropped, "
                     "inside every cross-validation fold.")
    else:
        lines.append("**Reproducibility.** No second reading was available: the ICC filter was off.")
    lines.append("")
    c.values.update(icc_form=icc_form, icc_thr=icc_thr)
    return lines


def modelling_lines(c: SummaryContext) -> list[str]:
    """Selection and modelling: the pipeline, tuning, second-stage models, thresholds."""
    root, sources = c.root, c.sources
    lines: list[str] = []
    folds = sources.num("cv_folds", c.settings, "col=value;key=cv_folds", "d")
    lfolds = sources.num("lasso_cv_folds", c.settings, "col=value;key=lasso_cv_folds", "d")
    lines.append(f"**Selection and modelling.** All selection steps are scikit-learn transformers inside the model "
                 f"pipelines, refitted in each of the {folds} patient-grouped, stratified cross-validation folds "
                 f"(leak-free by construction): ICC filter, near-zero variance, Mann–Whitney filter, redundancy filter "
                 f"(Spearman), LASSO logistic regression ({lfolds}-fold inner CV, one-standard-error rule) whose linear predictor is "
                 f"the rad-score. Classifiers `{settings_value(root / c.settings, 'classifiers')}` were fitted "
                 "unweighted (probabilities at the training prevalence) and their hyperparameters tuned by grid search on "
                 f"the cross-validated log loss (search spaces: `{settings_value(root / c.settings, 'search_spaces')}`); "
                 "every reported CV AUC is nested (the tuning and every model choice repeated inside each outer fold). "
                 + ("No clinical model (radiomics only). " if c.radiomics_only else
                "Clinical model: univariable then multivariable logistic regression (Firth's penalised likelihood "
                "under separation); nomogram: rad-score plus the independent clinical predictors; combined: rad-score "
                "plus clinical predictors with a classifier type chosen among a few pre-specified ones "
                f"(`{settings_value(root / c.settings, 'model_choice')}` rule: the simplest within one standard error "
                "of the best nested CV AUC). Both second-stage models were trained on a cross-fitted (out-of-fold, "
                "patient-grouped) rad-score of the training patients, never on the rad-score of their own rows. ")
                 + "Classification thresholds (Youden) were fixed on training data "
                 f"({settings_value(root / c.settings, 'threshold_basis')}).")
    lines.append("")
    c.values.update(folds=folds)
    return lines


def evaluation_lines(c: SummaryContext) -> list[str]:
    """Evaluation: patient-level intervals and tests, calibration, decision curves."""
    sources = c.sources
    lines: list[str] = []
    formats = {"n_boot": "d", "ci_level": "%", "hl_groups": "d", "calibration_curve_n_boot": "d"}
    settings_key = {"hl_groups": "hosmer_lemeshow_groups"}  # the summary key where the settings table's differs
    nb, lvl, hlg, cnb = (sources.num(key, c.settings, f"col=value;key={settings_key.get(key, key)}", fmt)
                         for key, fmt in formats.items())
    lines.append(f"**Evaluation.** The patient, not the image, is the unit of every interval and test: the images of "
                 f"a patient are resampled and counted together. AUC with {lvl} confidence intervals from {nb} "
                 "stratified patient-level bootstrap resamples (seeded); sensitivity, specificity, accuracy, PPV and NPV "
                 "with Wilson intervals widened by the design effect of images clustered within patients; paired AUCs "
                 "compared by DeLong's test with the clustered (Obuchowski) variance, reported as the AUC difference "
                 f"with its {lvl} CI and P; calibration intercept and slope with cluster-robust {lvl} CIs, "
                 f"calibration-in-the-large (mean predicted risk against observed prevalence), Brier score and the "
                 f"Hosmer–Lemeshow test ({hlg} groups; as many degrees of freedom as groups on cross-validated and test "
                 "predictions, two fewer on the apparent training predictions); smoothed calibration curves (logistic "
                 f"regression on a restricted cubic spline of logit p) with {lvl} bands from {cnb} patient-level "
                 "bootstrap resamples; decision-curve analysis (net benefit).")
    lines.append("")
    c.values.update(nb=nb, lvl=lvl)
    return lines
