"""Training: the release's staged runs (``stages``: FCN-32s → 16s → 8s and the others, as
the reference ``solve.py`` files run them), their run log (``stagelog``) and data-parallel
training with torchrun (``distributed``)."""
