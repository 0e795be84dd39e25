"""The checks of a manifest, one module per concept; :mod:`usrad.cohort` runs them and builds the cohort table.

* :mod:`usrad.manifest.reading`: the text (CSV/TSV, header, rows), the cell rules (missing values, numbers,
  the allowed values of ``usrad/schemas/manifest.schema.yaml``) and the order problems are reported in;
* :mod:`usrad.manifest.paths`: absolute paths, a file listed twice, image ids, pixel spacings;
* :mod:`usrad.manifest.images`: reading the images and masks, the PyRadiomics minimum ROI, identical pixels;
* :mod:`usrad.manifest.values`: clinical values and categorical spellings, outcomes, patient ids, patient-level values.

Task labels are :mod:`usrad.tasks` (the split and the models use them too). Nothing is imported here, so that
importing one module does not import the others.
"""
