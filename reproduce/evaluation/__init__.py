"""Evaluation: the reference ``score.py`` metrics (``score``), a net scored over a split
(``evaluate``), the published numbers checked (``verify``, ``make verify``) and label maps
written for images (``infer``)."""
