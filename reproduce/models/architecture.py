"""The architecture columns of CVPR 2015 Table 1, computed from the net descriptions.

Table 1 (Long, Shelhamer, Darrell, arXiv 1411.4038, Sec. 4.1) compares the adapted
classifiers by "# param" (learnable parameters of the FCN — the fixed bilinear upsampling is
not learned and not counted), "rf size" (receptive field of the coarse score layer, in input
pixels) and "max stride" (the output stride of the coarse scores): FCN-AlexNet 57M / 355 / 32,
FCN-VGG16 134M / 404 / 32 (FCN-GoogLeNet 6M / 907 / 32, not yet described here).

``learnable_parameters(name)`` counts the parameter blobs of the release net's deploy
definition whose ``lr_mult`` is not 0 (Caffe's test for a learned blob; the final
Deconvolutions have ``lr_mult: 0``), built on PyTorch's ``meta`` device so no memory is
allocated. ``receptive_field(name, blob)`` walks back from ``blob`` through each layer's first
bottom to the input and composes kernels and strides as Caffe's geometry defines them
(``k_eff = (kernel - 1)·dilation + 1``): ``rf += (k_eff - 1)·stride_so_far``; padding moves the
field, it does not widen it. Both read the one description per net (``reproduce.models``).
"""
from __future__ import annotations

from dataclasses import dataclass

from reproduce.caffe.schema import Message

__all__ = ["Geometry", "learnable_parameters", "receptive_field"]


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

    definition = net_param(name, "deploy")
    producer = {}
    for layer in definition.layer:
        for top in layer.top:
            if top not in layer.bottom:   # in-place layers (ReLU, Dropout) move nothing
                producer[top] = layer
    if blob not in producer:
        raise ValueError(f"net {name!r} has no blob {blob!r}")
    path = []
    current = blob
    while current in producer and len(producer[current].bottom):
        layer = producer[current]
        path.append(layer)
        current = layer.bottom[0]
    field, stride = 1, 1
    for layer in reversed(path):
        geometry = _kernel_stride(layer)
        if geometry is None:
            continue
        kernel, step = geometry
        field += (kernel - 1) * stride
        stride *= step
    return Geometry(field, stride)
