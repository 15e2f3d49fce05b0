"""Export a net out of PyTorch: ONNX and ``torch.export``, with dynamic batch, height and width.

``to_exported_program(net)`` gives a ``torch.export.ExportedProgram`` and ``to_onnx(net,
path)`` writes an ONNX model (opset ≥ 17) for a ``reproduce.net.Net`` or any ``FCN*`` module;
``save_exported_program`` writes the ``.pt2`` that ``torch.export.load`` reads. What is
exported is the net's *deploy* computation, as Caffe's deploy prototxts hold it:

* loss, accuracy and silence layers are left out (with whatever only they consume, e.g. a
  ``label`` input), so a train/val net exports as its deploy net; its outputs are then the
  blobs the remaining layers leave unconsumed — Caffe's rule for net outputs — in sorted
  order (``score``; ``score_geo``, ``score_sem``);
* inputs and outputs are named after the net's blobs (``data``; ``color``/``depth``/``hha``;
  ``score``…): the ``.pt2`` program's module takes the inputs as keyword arguments of those
  names and returns ``{output blob: tensor}``; the ONNX graph's inputs and outputs carry the
  same names;
* every layer runs in the plain formulation (``reproduce.net.plain``): standard operators
  only, Caffe's ceil-mode pooling as explicit padding plus floor-mode pooling, crops with their
  constant (coordinate-mapped) offsets, output sizes symbolic — the graph is Caffe's
  arithmetic at every size, not the example's;
* which sizes are dynamic is read off the net itself: its shape inference is run for every
  height and width up to ``SCAN_LIMIT`` (and batch 1 to 4); an axis is dynamic from the
  smallest size beyond which every size is valid (FCN-VGG16 at pad 100: from 1), and static
  when the net accepts only the size it was built for (an InnerProduct over the plane). Several
  inputs share their batch, height and width (NYUDv2 color + depth).

onnx and onnxruntime are optional (``pip install -e .[export]``); this module imports
without them, and ``to_onnx`` says what to install when they are missing.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import keyword
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from reproduce.net.layers.base import LayerError
from reproduce.net.net import Net, NetError

__all__ = ["DeployGraph", "ExportError", "MIN_OPSET", "SCAN_LIMIT", "dynamic_axes",
           "save_exported_program", "to_exported_program", "to_onnx"]

MIN_OPSET = 17
DEFAULT_OPSET = 18
SCAN_LIMIT = 640        # heights/widths probed by the net's shape inference
BATCH_PROBE = 4
# not part of a deploy graph: they consume labels, or consume and produce nothing
LEFT_OUT = ("Accuracy", "Silence")
# compute layers whose graph cannot have dynamic sizes: refused, saying why
NOT_EXPORTABLE = {
    "SPP": "its pooling kernels, strides and pads are computed from the input's height and "
           "width at every pass (Caffe's SPPLayer::Reshape)",
    "Filter": "the number of items it outputs depends on the selector's values",
}
INSTALL_HINT = "pip install -e '.[export]' (onnx, onnxruntime, onnxscript)"


class ExportError(ValueError):
    """A net, option or environment the export cannot serve; the message says what to do."""


def _left_out(layer_type: str) -> bool:
    return layer_type.endswith("Loss") or layer_type in LEFT_OUT


class DeployGraph(nn.Module):
    """A net's deploy computation as a module: ``forward(**inputs) -> {output blob: tensor}``.

    Holds the ``Net`` (its parameters are the net's, not copies) and the plan's steps that
    remain once loss, accuracy and silence layers are left out; ``inputs`` and ``outputs``
    are the blob names it takes and gives. Every step runs in the plain formulation.
    """

    def __init__(self, net: Net):
        super().__init__()
        if not isinstance(net, Net):
            raise ExportError(f"export takes a reproduce Net or FCN module, not "
                              f"{type(net).__name__}")
        self.net = net
        steps, available, consumed = [], set(), set()
        for index, step in enumerate(net._plan):
            if step.layer.layer_type == "Silence":  # consumes, so no output; computes nothing
                available.difference_update(step.bottoms)
                continue
            if step.layer.layer_type in ("DummyData", "MemoryData"):   # data sources (pycaffe nets)
                raise ExportError(f"net {net.name!r}: layer {step.layer.layer_name!r} is a "
                                  f"{step.layer.layer_type} source; export the net with Input "
                                  f"layers in its place")
            refusal = getattr(step.layer, "export_refusal", None)
            if refusal:
                raise ExportError(f"net {net.name!r}: layer {step.layer.layer_name!r} "
                                  f"({step.layer.layer_type}): {refusal}")
            if _left_out(step.layer.layer_type):
                continue
            if step.layer.layer_type in NOT_EXPORTABLE:
                raise ExportError(f"net {net.name!r}: layer {step.layer.layer_name!r} "
                                  f"({step.layer.layer_type}) cannot be exported: "
                                  f"{NOT_EXPORTABLE[step.layer.layer_type]}")
            steps.append(index)
            consumed.update(step.bottoms)
            available.difference_update(step.bottoms)
            available.update(top for top in step.tops if not top.startswith("("))
        self.steps = steps
        self.inputs = [name for name in net.inputs if name in consumed]
        self.outputs = sorted(available)
        if not self.outputs:
            raise ExportError(f"net {net.name!r}: nothing to export — no layer output remains "
                              f"once loss, accuracy and silence layers are left out")
        if not self.inputs:
            raise ExportError(f"net {net.name!r}: its deploy graph takes no input")

        self.arguments = [_identifier(name) for name in self.inputs]
        if len(set(self.arguments)) != len(self.arguments):
            raise ExportError(f"net {net.name!r}: inputs {self.inputs} do not make distinct "
                              f"argument names")
        # forward's signature names the inputs, so that tracers (and the exported program's
        # module) take them as keyword arguments of those names
        parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        parameters += [inspect.Parameter(a, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                       for a in self.arguments]
        forward = _forward_by_signature(inspect.Signature(parameters))
        self.__class__ = type(f"DeployGraph[{net.name}]", (DeployGraph,), {"forward": forward})

    def forward(self, *args: torch.Tensor, **kwargs: torch.Tensor) -> dict[str, torch.Tensor]:
        blobs = dict(zip(self.inputs, args))
        by_argument = dict(zip(self.arguments, self.inputs))
        for key, value in kwargs.items():
            if key not in by_argument or by_argument[key] in blobs:
                raise ExportError(f"unexpected or repeated input {key!r} (inputs: "
                                  f"{self.arguments})")
            blobs[by_argument[key]] = value
        missing = [a for a, name in by_argument.items() if name not in blobs]
        if missing:
            raise ExportError(f"missing inputs {missing}")
        self.net.run_plain(blobs, self.steps)
        return {name: blobs[name] for name in self.outputs}

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shapes the net was built for, by input."""
        return {name: tuple(self.net.blob_shapes[name]) for name in self.inputs}

    def shapes_valid(self, shapes: Mapping[str, Sequence[int]]) -> bool:
        """Whether Caffe's shape inference accepts these input shapes in every layer."""
        blobs = {name: tuple(shape) for name, shape in shapes.items()}
        for index in self.steps:
            step = self.net._plan[index]
            try:
                tops = step.layer.top_shapes([blobs[b] for b in step.bottoms])
            except (LayerError, NetError, ValueError, ZeroDivisionError, IndexError):
                return False
            if any(d <= 0 for shape in tops for d in shape):
                return False
            blobs.update(zip(step.tops, (tuple(t) for t in tops)))
        return True


def _identifier(name: str) -> str:
    """A Python argument name for blob ``name`` (other characters become ``_``)."""
    text = re.sub(r"\W", "_", name)
    return text if text.isidentifier() and not keyword.iskeyword(text) else f"_{text}"


def _forward_by_signature(signature: inspect.Signature):
    def forward(self, *args, **kwargs):
        return DeployGraph.forward(self, *args, **kwargs)

    forward.__signature__ = signature
    return forward


@dataclass(frozen=True)
class Axis:
    """One dynamic axis: its name, the smallest size the net accepts, the example's size."""

    name: str
    minimum: int
    example: int


def dynamic_axes(graph: DeployGraph,
                 shapes: Mapping[str, Sequence[int]] | None = None) -> dict[str, dict[int, Axis]]:
    """``{input: {axis: Axis}}`` — which axes of each input may vary, and from which size.

    ``shapes`` (default: the build shapes) fixes the channel and any other static axis. The
    batch axis of every input is one ``batch`` axis, the last two axes of 4-axis inputs one
    ``height`` and one ``width`` (inputs with other plane sizes get their own)."""
    base = {name: tuple(int(d) for d in (shapes or {}).get(name, built))
            for name, built in graph.input_shapes().items()}
    groups: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for name, shape in base.items():
        if len(shape) >= 1:
            groups.setdefault(("batch", -1), []).append((name, 0))
        if len(shape) == 4:
            for axis, label in ((2, "height"), (3, "width")):
                groups.setdefault((label, shape[axis]), []).append((name, axis))
    labels = [label for label, _ in groups]
    result: dict[str, dict[int, Axis]] = {name: {} for name in base}
    for (label, size), members in groups.items():
        name = label if labels.count(label) == 1 else f"{label}_{members[0][0]}"

        def valid(value: int) -> bool:
            probe = {n: list(s) for n, s in base.items()}
            for member, axis in members:
                probe[member][axis] = value
            return graph.shapes_valid(probe)

        limit = BATCH_PROBE if label == "batch" else SCAN_LIMIT
        ok = [valid(v) for v in range(1, limit + 1)]
        if not ok[-1]:
            continue  # static: the net accepts its built size only (or none beyond it)
        minimum = limit
        while minimum > 1 and ok[minimum - 2]:
            minimum -= 1
        if minimum == limit:
            continue
        built = base[members[0][0]][members[0][1]]
        example = max(built, minimum, 2)  # never 1: torch.export would specialize it
        for member, axis in members:
            result[member][axis] = Axis(name, minimum, example)
    return result


def _example_inputs(graph: DeployGraph, axes: Mapping[str, Mapping[int, Axis]],
                    shapes: Mapping[str, Sequence[int]] | None, device) -> dict[str, torch.Tensor]:
    examples = {}
    for name, built in graph.input_shapes().items():
        shape = list((shapes or {}).get(name, built))
        for axis, info in axes[name].items():
            shape[axis] = info.example
        examples[_identifier(name)] = torch.zeros(shape, device=device)
    return examples


def _torch_dims(axes: Mapping[str, Mapping[int, Axis]]) -> dict[str, dict[int, Any]]:
    from torch.export import Dim

    return {_identifier(name): {axis: Dim.DYNAMIC(min=info.minimum)
                                for axis, info in per_axis.items()}
            for name, per_axis in axes.items()}


def _graph(net: Net | DeployGraph) -> DeployGraph:
    return net if isinstance(net, DeployGraph) else DeployGraph(net)


def to_exported_program(net: Net | DeployGraph, *,
                        input_shapes: Mapping[str, Sequence[int]] | None = None,
                        dynamic: bool = True) -> "torch.export.ExportedProgram":
    """The deploy graph of ``net`` as a ``torch.export.ExportedProgram`` (module docstring).

    ``input_shapes`` (``{input: (N, C, H, W)}``) sets the static axes and the example sizes;
    with ``dynamic`` (default) batch, height and width stay symbolic where the net allows.
    The program's ``module()`` takes the inputs by name and returns ``{output: tensor}``.
    """
    graph = _graph(net).eval()
    unknown = set(input_shapes or {}) - set(graph.inputs)
    if unknown:
        raise ExportError(f"--input names {sorted(unknown)}, which the deploy graph does not "
                          f"take (inputs: {graph.inputs})")
    axes = dynamic_axes(graph, input_shapes) if dynamic else {n: {} for n in graph.inputs}
    device = next((p.device for p in graph.parameters()), torch.device("cpu"))
    examples = _example_inputs(graph, axes, input_shapes, device)
    shapes = dict(zip(graph.inputs, (tuple(t.shape) for t in examples.values())))
    if not graph.shapes_valid(shapes):
        raise ExportError(f"net {graph.net.name!r} does not accept the input shapes {shapes}")
    dims = _torch_dims(axes)
    # sympy's "cannot be solved" while torch simplifies a floor-division bound is logged as a
    # warning with a traceback; it only means the bound stays unsimplified
    with torch.no_grad(), warnings.catch_warnings(), _quiet("torch.fx.experimental.symbolic_shapes"):
        warnings.filterwarnings("ignore", message=".*LeafSpec", category=FutureWarning)
        try:
            # size-oblivious: a symbolic size is not assumed to differ from 1 (a stride or
            # contiguity question would otherwise become a guard failing at size 1)
            with torch.fx.experimental._config.patch(backed_size_oblivious=True):
                program = torch.export.export(graph, (), examples, dynamic_shapes=dims if any(
                    dims.values()) else None, strict=False)
        except Exception as err:  # torch's message is long; name the net and what failed
            raise ExportError(_export_failure(graph, err)) from err
    # the program keeps its example inputs (a .pt2 stores them): the smallest valid ones,
    # not megabytes of zeros at the example's size
    smallest = {}
    for name, example in examples.items():
        shape = list(example.shape)
        for axis, info in axes[graph.inputs[graph.arguments.index(name)]].items():
            shape[axis] = info.minimum
        smallest[name] = example.new_zeros(shape)
    program.example_inputs = ((), smallest)
    return program


@contextlib.contextmanager
def _quiet(name: str):
    """Logger ``name`` at ERROR while the block runs."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _export_failure(graph: DeployGraph, err: Exception) -> str:
    text = str(err).strip().splitlines()
    first = next((line for line in text if line.strip()), type(err).__name__)
    tb = err.__traceback__
    layer = None
    while tb is not None:  # the innermost frame that belongs to one of the net's layers
        owner = tb.tb_frame.f_locals.get("self")
        if hasattr(owner, "layer_param") and hasattr(owner, "layer_type"):
            layer = owner
        tb = tb.tb_next
    where = (f" in layer {layer.layer_name!r} ({layer.layer_type})" if layer is not None
             else "")
    return f"net {graph.net.name!r} could not be exported{where}: {first[:500]}"


def save_exported_program(program: "torch.export.ExportedProgram", path: str | os.PathLike) -> Path:
    """Write ``program`` as a ``.pt2`` archive (``torch.export.load`` reads it back)."""
    from reproduce.caffe.files import atomic_output

    path = Path(path)
    with warnings.catch_warnings(), atomic_output(path) as tmp, open(tmp, "wb") as f:
        warnings.filterwarnings("ignore", message=".*LeafSpec", category=FutureWarning)
        torch.export.save(program, f)   # a temporary renamed into place: a planted link is replaced
    return path


def require_onnx() -> None:
    """Raise an ``ExportError`` naming what to install unless onnx and onnxscript import."""
    missing = []
    for module in ("onnx", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ExportError(f"ONNX export needs {', '.join(missing)}: {INSTALL_HINT}")


def to_onnx(net: Net | DeployGraph, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET,
            input_shapes: Mapping[str, Sequence[int]] | None = None,
            dynamic: bool = True,
            program: "torch.export.ExportedProgram | None" = None) -> Path:
    """Write the deploy graph of ``net`` as an ONNX model at ``path`` (module docstring).

    Inputs and outputs are named after the net's blobs; batch, height and width are dynamic
    axes where the net allows (``dynamic_axes``). ``program``, if given, is the
    ``to_exported_program`` result of the same net, translated instead of exporting again.
    Weights above 2 GB go to an external data file beside it, as ONNX requires.
    """
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is below {MIN_OPSET}, the lowest this export writes")
    require_onnx()
    graph = _graph(net)
    if program is None:
        program = to_exported_program(graph, input_shapes=input_shapes, dynamic=dynamic)
    path = Path(path)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed"
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), \
                _quiet("torch.fx.experimental.symbolic_shapes"):  # progress lines, notices
            warnings.filterwarnings("ignore", message=".*LeafSpec", category=FutureWarning)
            onnx_program = torch.onnx.export(program, f=None, input_names=list(graph.inputs),
                                             output_names=list(graph.outputs),
                                             opset_version=opset, dynamo=True, verbose=False)
    except Exception as err:
        raise ExportError(_export_failure(graph, err)) from err
    size = sum(p.numel() * p.element_size() for p in graph.parameters())
    external = size >= 2 * 10**9
    if external:   # the data file is named after the model's: written in place, a planted link removed
        if path.is_symlink():
            path.unlink()
        onnx_program.save(path, external_data=True)
        return path
    from reproduce.caffe.files import atomic_output

    with atomic_output(path) as tmp:   # a temporary renamed into place: a planted link is replaced
        onnx_program.save(str(tmp), external_data=False)
    return path
