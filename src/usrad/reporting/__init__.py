"""Reporting: the figures, tables, model cards and summary, by figure family.

Layers (imports point down): :mod:`.style` and :mod:`.predictions` (plumbing); figure families
:mod:`.discrimination`, :mod:`.calibration`, :mod:`.decision`, :mod:`.signature`, :mod:`.explain`,
:mod:`.cohort`, :mod:`.nomogram_figure`; :mod:`.tables`; :mod:`.nomogram_page` and :mod:`.card` (model cards);
:mod:`.evaluation` (one task's figures and tables); :mod:`.sources`, :mod:`.summary_methods` and :mod:`.summary`
(the summary); :mod:`.workflow` (the workflow diagram). The nomogram arithmetic is :mod:`usrad.nomogram`'s;
every number is :mod:`usrad.metrics`'s.
"""
