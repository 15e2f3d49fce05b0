"""The architecture columns of CVPR 2015 Table 1, computed from the net descriptions.

Table 1 (Long, Shelhamer, Darrell, arXiv 1411.4038, Sec. 4.1) compares the adapted
classifiers by "# param" (learnable parameters of the FCN — the fixed bilinear upsampling is
not learned and not counted), "rf size" (receptive field of the coarse score layer, in input
pixels) and "max stride" (the output stride of the coarse scores): FCN-AlexNet 57M / 355 / 32,
FCN-VGG16 134M / 404 / 32, FCN-GoogLeNet 6M / 907 / 32.

FCN-GoogLeNet's figures: 5,995,077 learned parameters (the trunk up to ``inception_5b/output``
and ``score_fr``; the auxiliary classifiers are gone), stride 32 — and its ``score_fr`` sees
715 pixels, not 907. The 907 is the receptive field of GoogLeNet's ``pool5/7x7_s1``, the final
7×7/1 average pooling that feeds ``loss3/classifier`` in the classifier as the model zoo has
it: 715 + (7 − 1)·32 = 907. The paper's column counts the classifier's own output, although
Sec. 4.1 discards that pooling from the FCN; ``receptive_field_of(googlenet_classifier_net(),
"pool5/7x7_s1")`` computes it from ``reproduce.models.ilsvrc``'s description.

``learnable_parameters(name)`` counts the parameter blobs of the release net's deploy
definition whose ``lr_mult`` is not 0 (Caffe's test for a learned blob; the final
Deconvolutions have ``lr_mult: 0``), built on PyTorch's ``meta`` device so no memory is
allocated. ``receptive_field(name, blob)`` walks back from ``blob`` through each layer's
bottoms to the input and composes kernels and strides as Caffe's geometry defines them
(``k_eff = (kernel - 1)·dilation + 1``): ``rf += (k_eff - 1)·stride_so_far``; padding moves the
field, it does not widen it. Where a layer has several bottoms (an inception module's Concat)
the walk follows every one and keeps the widest field (its 5×5 branch); the bottoms must agree
on the stride. Both read the one description per net (``reproduce.models``).
"""
from __future__ import annotations

from dataclasses import dataclass

from reproduce.caffe.schema import Message

__all__ = ["Geometry", "learnable_parameters", "receptive_field", "receptive_field_of"]


@dataclass(frozen=True)
class Geometry:
    """Receptive field (input pixels) and stride (input pixels per output cell) of a blob."""

    receptive_field: int
    stride: int


def learnable_parameters(name: str, widths: str = "full") -> int:
    """Learned parameters of release net ``name`` (blobs with ``lr_mult`` ≠ 0), Table 1's "# param"."""
    import torch

    from reproduce.models import net_param, param_specs
    from reproduce.net import Net

    definition = net_param(name, "deploy", widths=widths)
    specs = param_specs(definition)
    with torch.device("meta"):
        net = Net(definition, phase="test")
    total = 0
    for layer, blobs in net.params.items():
        for index, blob in enumerate(blobs):
            if specs[layer][index][0] != 0:
                total += blob.data.numel()
    return total


def _kernel_stride(layer: Message) -> tuple[int, int] | None:
    """(effective kernel, stride) along H of a Convolution or Pooling; None for other layers."""
    if layer.type == "Convolution":
        p = layer.convolution_param
        kernel = p.kernel_h if p.has("kernel_h") else (p.kernel_size[0] if len(p.kernel_size) else 1)
        stride = p.stride_h if p.has("stride_h") else (p.stride[0] if len(p.stride) else 1)
        dilation = p.dilation[0] if len(p.dilation) else 1
        return (kernel - 1) * dilation + 1, stride
    if layer.type == "Pooling":
        p = layer.pooling_param
        if p.global_pooling:
            raise ValueError(f"layer {layer.name!r}: global pooling has no fixed receptive field")
        kernel = p.kernel_h if p.has("kernel_h") else p.kernel_size
        stride = p.stride_h if p.has("stride_h") else p.stride
        return kernel, stride
    if layer.type in ("Deconvolution", "Crop", "InnerProduct"):
        raise ValueError(f"layer {layer.name!r} ({layer.type}): the walk covers the coarse "
                         f"(downsampling) path only")
    return None


def receptive_field(name: str, blob: str = "score_fr") -> Geometry:
    """Receptive field and stride of ``blob`` in release net ``name`` (Table 1's "rf size", "max stride")."""
    from reproduce.models import net_param

    return receptive_field_of(net_param(name, "deploy"), blob, name)


def receptive_field_of(definition: Message, blob: str, what: str = "") -> Geometry:
    """Receptive field and stride of ``blob`` in the NetParameter ``definition``."""
    what = what or definition.name or "the net"
    producer = {}
    for layer in definition.layer:
        for top in layer.top:
            if top not in layer.bottom:   # in-place layers (ReLU, Dropout) move nothing
                producer[top] = layer
    if blob not in producer:
        raise ValueError(f"net {what!r} has no blob {blob!r}")
    geometry: dict[str, Geometry] = {}
    pending = [blob]
    while pending:  # iterative depth-first walk back to the inputs, each blob once
        current = pending[-1]
        layer = producer.get(current)
        if layer is None or not len(layer.bottom):
            geometry[current] = Geometry(1, 1)
            pending.pop()
            continue
        missing = [b for b in layer.bottom if b not in geometry]
        if missing:
            pending.extend(missing)
            continue
        pending.pop()
        step = _kernel_stride(layer)
        below = [geometry[b] for b in layer.bottom]
        strides = {g.stride for g in below}
        if len(strides) > 1:
            raise ValueError(f"layer {layer.name!r} joins bottoms of different strides {sorted(strides)}")
        field, stride = max(g.receptive_field for g in below), below[0].stride
        if step is not None:
            kernel, factor = step
            field += (kernel - 1) * stride
            stride *= factor
        geometry[current] = Geometry(field, stride)
    return geometry[blob]
