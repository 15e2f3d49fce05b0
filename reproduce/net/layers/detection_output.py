"""DetectionOutput (SSD's ``DetectionOutputLayer``, a fork layer): decode boxes, per-class NMS.

As the fork (``detection_output_layer.cpp``, ``bbox_util.cpp``), with
``detection_output_param`` (the fork's field 204). Bottoms: location offsets
``N×(priors·L·4)`` (``L`` = 1 with ``share_location``, else ``num_classes``), confidences
``N×(priors·num_classes)`` (already soft-maxed) and the priors ``1×2×(priors·4)`` (PriorBox's
boxes and variances). Each offset is decoded against its prior by ``code_type`` — CORNER
(``prior + var·offset``), CENTER_SIZE (centre moved by ``var·offset·prior size``, size scaled by
``exp(var·offset)``) or CORNER_SIZE — with the variance left out when
``variance_encoded_in_target``. For each image and each class but ``background_label_id`` (-1:
none; refused with ``share_location``, where the fork aborts):
boxes scoring above ``confidence_threshold`` in score order (stable), the first
``nms_param.top_k``, greedy non-maximum suppression at ``nms_threshold`` (IoU of normalised
boxes; an adaptive threshold multiplied by ``eta`` while above 0.5); then at most
``keep_top_k`` detections per image by score. Top: ``1×1×D×7`` rows ``[image, label, score,
xmin, ymin, xmax, ymax]``, by image, then label, then score; with no detection at all one row
``[image, -1, …]`` per image, as the fork writes it. ``save_output_param`` and ``visualize``
(file output, display) are refused rather than ignored.

Deploy-only and data-dependent in size: ``reproduce export`` refuses it (``export_refusal``).
"""
from __future__ import annotations

import numpy as np
import torch

from .base import CaffeLayer
from .registry import register

FLT_MAX = float(np.finfo(np.float32).max)


@register("DetectionOutput")
class DetectionOutput(CaffeLayer):
    """SSD's DetectionOutput layer (see the module docstring)."""

    bottoms = (3, 3)
    export_refusal = ("DetectionOutput's output has a data-dependent size (per-class non-maximum "
                      "suppression); export the net up to its location and confidence blobs and "
                      "PriorBox, and run the suppression outside the graph")

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.detection_output_param
        if not p.has("num_classes"):
            raise self.error("Must specify num_classes")
        self.num_classes = int(p.num_classes)
        self.share_location = bool(p.share_location)
        self.num_loc_classes = 1 if self.share_location else self.num_classes
        self.background = int(p.background_label_id)
        if self.share_location and self.background == -1:
            # the fork's DecodeBBoxesAll skips the shared location label -1 as "background",
            # then aborts: "Could not find location predictions for label -1"
            raise self.error("background_label_id -1 with share_location: the fork aborts "
                             "(its shared location label is -1 too); give share_location: false "
                             "or a background class")
        self.code_type = p.code_type
        self.variance_encoded = bool(p.variance_encoded_in_target)
        self.keep_top_k = int(p.keep_top_k)
        self.confidence_threshold = (float(p.confidence_threshold)
                                     if p.has("confidence_threshold") else -FLT_MAX)
        nms = p.nms_param
        self.nms_threshold = float(nms.nms_threshold)
        if self.nms_threshold < 0:
            raise self.error(f"nms_threshold must be non negative, got {self.nms_threshold}")
        self.eta = float(nms.eta)
        if not 0 < self.eta <= 1:
            raise self.error(f"eta must be in (0, 1], got {self.eta}")
        self.top_k = int(nms.top_k) if nms.has("top_k") else -1
        if p.has("save_output_param") and p.save_output_param.output_directory:
            raise self.error("save_output_param (writing detection files) is not supported; "
                             "read the layer's top instead")
        if p.visualize:
            raise self.error("visualize (an OpenCV window) is not supported")
        loc, conf, prior = (tuple(s) for s in bottom_shapes)
        self.num_priors = int(prior[-1]) // 4
        if loc[0] != conf[0]:
            raise self.error(f"location and confidence bottoms differ in batch ({loc[0]} vs {conf[0]})")
        if int(np.prod(loc[1:])) != self.num_priors * self.num_loc_classes * 4:
            raise self.error(f"Number of priors must match number of location predictions "
                             f"({self.num_priors} priors, location shape {loc})")
        if int(np.prod(conf[1:])) != self.num_priors * self.num_classes:
            raise self.error(f"Number of priors must match number of confidence predictions "
                             f"({self.num_priors} priors, {self.num_classes} classes, confidence "
                             f"shape {conf})")

    def top_shapes(self, bottom_shapes):
        return [(1, 1, 1, 7)]   # at least; the number of rows depends on the data

    def forward(self, loc, conf, prior):
        device = loc.device
        num = loc.shape[0]
        loc = loc.detach().cpu().numpy().astype(np.float32).reshape(
            num, self.num_priors, self.num_loc_classes, 4)
        conf = conf.detach().cpu().numpy().astype(np.float32).reshape(
            num, self.num_priors, self.num_classes)
        prior = prior.detach().cpu().numpy().astype(np.float32).reshape(2, self.num_priors, 4)
        rows = []
        for i in range(num):
            decoded = [self._decode(loc[i, :, c], prior[0], prior[1])
                       for c in range(self.num_loc_classes)]
            kept: dict[int, list[int]] = {}
            for c in range(self.num_classes):
                if c == self.background:
                    continue
                boxes = decoded[0 if self.share_location else c]
                kept[c] = self._nms(boxes, conf[i, :, c])
            total = sum(len(v) for v in kept.values())
            if self.keep_top_k > -1 and total > self.keep_top_k:
                pairs = [(conf[i, idx, c], c, idx) for c, idx_list in kept.items()
                         for idx in idx_list]
                pairs.sort(key=lambda t: -t[0])
                kept = {}
                for _, c, idx in pairs[:self.keep_top_k]:
                    kept.setdefault(c, []).append(idx)
            for c in sorted(kept):
                boxes = decoded[0 if self.share_location else c]
                for idx in kept[c]:
                    rows.append([i, c, conf[i, idx, c], *boxes[idx]])
        if not rows:
            rows = [[i] + [-1.0] * 6 for i in range(num)]
        out = torch.tensor(np.asarray(rows, dtype=np.float32).reshape(1, 1, -1, 7))
        return (out.to(device),)

    # -- bbox_util ---------------------------------------------------------------------
    def _decode(self, offsets: np.ndarray, priors: np.ndarray, variances: np.ndarray):
        """``DecodeBBoxes`` for normalised boxes, float32 as the fork's."""
        var = np.ones_like(variances) if self.variance_encoded else variances
        pw = priors[:, 2] - priors[:, 0]
        ph = priors[:, 3] - priors[:, 1]
        if self.code_type == "CORNER":
            return priors + var * offsets
        if self.code_type == "CORNER_SIZE":
            size = np.stack([pw, ph, pw, ph], axis=1)
            return priors + var * offsets * size
        pcx = (priors[:, 0] + priors[:, 2]) / np.float32(2)
        pcy = (priors[:, 1] + priors[:, 3]) / np.float32(2)
        cx = var[:, 0] * offsets[:, 0] * pw + pcx
        cy = var[:, 1] * offsets[:, 1] * ph + pcy
        w = np.exp(var[:, 2] * offsets[:, 2]) * pw
        h = np.exp(var[:, 3] * offsets[:, 3]) * ph
        half_w, half_h = w / np.float32(2), h / np.float32(2)
        return np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)

    def _nms(self, boxes: np.ndarray, scores: np.ndarray) -> list[int]:
        """``ApplyNMSFast``: indices kept, in descending score order."""
        candidates = [int(i) for i in np.flatnonzero(scores > self.confidence_threshold)]
        candidates.sort(key=lambda i: -scores[i])            # stable, as std::stable_sort
        if -1 < self.top_k < len(candidates):
            candidates = candidates[:self.top_k]
        threshold = self.nms_threshold
        kept: list[int] = []
        for idx in candidates:
            keep = all(_jaccard(boxes[idx], boxes[k]) <= threshold for k in kept)
            if keep:
                kept.append(idx)
                if self.eta < 1 and threshold > 0.5:
                    threshold *= self.eta
        return kept


def _size(box) -> float:
    if box[2] < box[0] or box[3] < box[1]:
        return 0.0
    return float(np.float32(box[2] - box[0]) * np.float32(box[3] - box[1]))


def _jaccard(a, b) -> float:
    """``JaccardOverlap`` of two normalised boxes."""
    if b[0] > a[2] or b[2] < a[0] or b[1] > a[3] or b[3] < a[1]:
        return 0.0
    inter = _size((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    return inter / (_size(a) + _size(b) - inter) if inter > 0 else 0.0
