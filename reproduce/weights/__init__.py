"""Weights: the released caffemodels and what is done with them.

* ``manifest`` — every released file: URLs, sha1, published scores, where it lands;
* ``download`` — resumable, checked downloads (and the trust-on-first-use lock file);
* ``convert`` — caffemodel ↔ PyTorch state_dict (``load_weights``, ``save_weights``);
* ``surgery`` — the reference's ``transplant`` and bilinear ``interp`` (classifier → FCN);
* ``legacy_v1`` — the V1 caffemodel writer (the 2014 release format);
* ``pretrained`` — a model's weights by name, as torchvision's builders take them;
* ``safe_load`` — ``torch.load`` restricted to tensors, for weights and solver states.
"""
