"""``caffe.draw``: pycaffe's drawing of a ``NetParameter`` as a Graphviz graph (``draw.py``), and
its ``python/draw_net.py`` script (``main``; ``python -m reproduce.pycaffe.draw_net``).

What it mirrors of pycaffe:

* the styles ``LAYER_STYLE_DEFAULT``, ``NEURON_LAYER_STYLE``, ``BLOB_STYLE``;
  ``get_pooling_types_dict``, ``get_edge_label`` (``Batch N`` for Data, ``num_output`` for
  Convolution/Deconvolution/InnerProduct, else ``""``), ``get_layer_lr_mult``,
  ``get_layer_label`` (name, ``(type)`` — ``(Pooling MAX)`` — kernel size/stride/pad of
  spatial layers, ``lr mult`` with ``display_lrm``; joined by spaces for ``rankdir`` TB/BT,
  else by ``\\n``; in double quotes), ``choose_color_by_layertype``;
* the graph of ``get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None,
  display_lrm=False)``: a digraph named after the net (``Net`` when unnamed) with
  ``rankdir``; per layer (those of ``phase`` only, by its include/exclude rules, when a phase
  is given: a layer with both is a ``ValueError``) a node named by its label — the neuron
  style for an in-place layer, else the default style coloured by type — and per bottom blob
  an octagon node and an edge into the layer, per top blob a plain node and an edge out of it
  labelled by ``get_edge_label`` (when ``label_edges``). Nodes are keyed as pycaffe keys them
  (``<layer>_<type>``, ``<blob>_blob``): the last definition of a key wins (so a blob last
  seen as a top is a plain node), in the order keys first appear (Python 3's dict order);
  edges in the order made;
* ``draw_net(caffe_net, rankdir, ext='png', phase=None, display_lrm=False)`` (the drawing's
  bytes) and ``draw_net_to_file(caffe_net, filename, rankdir='LR', phase=None,
  display_lrm=False)`` (the format from the file's extension).

How it draws: ``get_dot_source`` writes that graph as DOT text itself (one statement a line,
as pydot's ``to_string``; identifiers quoted where DOT needs it), with neither pydot nor
Graphviz. For ``.dot``, ``.gv`` and ``.raw`` that text is the output (pycaffe would give
``.raw`` so and have Graphviz lay out ``.dot``/``.gv``); any other extension (``png``,
``svg``, ``pdf``, ``jpg``…) is Graphviz's ``dot -T<ext>`` run on it, ``dot`` from ``PATH`` —
when it is not there, one ``GraphvizNotFoundError`` saying so. ``get_pydot_graph`` builds
the same graph as pydot objects and so needs ``pydotplus`` or ``pydot`` (tried in that order,
as pycaffe), imported when called: without them one ``ImportError`` naming
``pip install pydot``.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from reproduce.caffe.schema import ENUM_NAMES

from .layer import TEST, TRAIN

LAYER_STYLE_DEFAULT = {"shape": "record", "fillcolor": "#6495ED", "style": "filled"}
NEURON_LAYER_STYLE = {"shape": "record", "fillcolor": "#90EE90", "style": "filled"}
BLOB_STYLE = {"shape": "octagon", "fillcolor": "#E0E0E0", "style": "filled"}

RANKDIRS = ("TB", "LR", "BT", "RL")
TEXT_FORMATS = ("dot", "gv", "raw")   # written as DOT text, without Graphviz
_LEARNING_TYPES = ("Convolution", "Deconvolution", "InnerProduct")


class GraphvizNotFoundError(RuntimeError):
    """Graphviz's ``dot`` program is needed (to render an image format) and not on PATH."""


# ---------------------------------------------------------------------------- labels
def get_pooling_types_dict() -> dict[int, str]:
    """Pooling method number → name (``{0: 'MAX', 1: 'AVE', 2: 'STOCHASTIC'}``)."""
    return dict(ENUM_NAMES["PoolingParameter.PoolMethod"])


def get_edge_label(layer) -> str:
    if layer.type == "Data":
        return "Batch " + str(layer.data_param.batch_size)
    if layer.type in ("Convolution", "Deconvolution"):
        return str(layer.convolution_param.num_output)
    if layer.type == "InnerProduct":
        return str(layer.inner_product_param.num_output)
    return '""'


def get_layer_lr_mult(layer) -> tuple[float, float]:
    """The weights' and biases' ``lr_mult`` of a Convolution/Deconvolution/InnerProduct layer."""
    if layer.type not in _LEARNING_TYPES:
        raise ValueError(f"{layer.type} layers do not have a learning rate multiplier")
    params = list(layer.param)
    if len(params) == 0:
        return (1.0, 1.0)
    if len(params) == 1:
        return (params[0].lr_mult, 1.0)
    if len(params) == 2:
        return (params[0].lr_mult, params[1].lr_mult)
    raise ValueError(f"Could not parse the learning rate multiplier of layer {layer.name} "
                     f"({len(params)} param entries, at most 2)")


def get_layer_label(layer, rankdir: str, display_lrm: bool = False) -> str:
    """The node label of ``layer``, in double quotes (see the module docstring)."""
    separator = " " if rankdir in ("TB", "BT") else r"\n"
    descriptors = [layer.name]
    if layer.type == "Pooling":
        descriptors.append("(%s %s)" % (layer.type,
                                        get_pooling_types_dict()[layer.pooling_param.pool]))
    else:
        descriptors.append("(%s)" % layer.type)
    if layer.type in ("Convolution", "Deconvolution", "Pooling"):
        if layer.type == "Pooling":
            p = layer.pooling_param
            kernel_size, stride, pad = p.kernel_size, p.stride, p.pad
        else:
            p = layer.convolution_param
            kernel_size = p.kernel_size[0] if len(p.kernel_size) else 1
            stride = p.stride[0] if len(p.stride) else 1
            pad = p.pad[0] if len(p.pad) else 0
        descriptors.append(separator.join(["kernel size: %d" % kernel_size,
                                           "stride: %d" % stride, "pad: %d" % pad]))
    if display_lrm and layer.type in _LEARNING_TYPES:
        lrm0, lrm1 = get_layer_lr_mult(layer)
        if lrm0 or lrm1:
            descriptors.append("lr mult: %.1f, %.1f" % (lrm0, lrm1))
    return '"%s"' % separator.join(descriptors)


def choose_color_by_layertype(layertype: str) -> str:
    if layertype in ("Convolution", "Deconvolution"):
        return "#FF5050"
    if layertype == "Pooling":
        return "#FF9900"
    if layertype == "InnerProduct":
        return "#CC33FF"
    return "#6495ED"


# ---------------------------------------------------------------------------- the graph
def _check_arguments(caffe_net, rankdir, phase) -> None:
    if getattr(caffe_net, "type_name", None) != "NetParameter":
        raise TypeError(f"caffe.draw draws a caffe_pb2.NetParameter (a prototxt read with "
                        f"text_format.Merge), got {type(caffe_net).__name__}")
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(RANKDIRS)} (Graphviz's rankdir), "
                         f"got {rankdir!r}")
    if phase is not None and (isinstance(phase, bool) or phase not in (TRAIN, TEST)):
        raise ValueError(f"phase must be caffe.TRAIN (0), caffe.TEST (1) or None (all layers), "
                         f"got {phase!r}")


def _in_phase(layer, phase: int) -> bool:
    """pycaffe's rule: no include rule → in; an include of ``phase`` → in; an exclude of it → out
    (a rule without a phase reads as TRAIN, protobuf's default, as in pycaffe)."""
    if len(layer.include) > 0 and len(layer.exclude) > 0:
        raise ValueError("layer " + layer.name + " has both include and exclude specified.")
    included = len(layer.include) == 0
    for rule in layer.include:
        included = included or rule.phase == phase
    for rule in layer.exclude:
        included = included and not rule.phase == phase
    return included


def graph_parts(caffe_net, rankdir: str, label_edges: bool = True, phase=None,
                display_lrm: bool = False):
    """The graph pycaffe's ``get_pydot_graph`` builds: ``(graph name, nodes, edges)`` with
    ``nodes`` key → ``(node name, attributes)`` and ``edges`` a list of ``(source key,
    destination key, label)``."""
    _check_arguments(caffe_net, rankdir, phase)
    nodes: dict[str, tuple[str, dict]] = {}
    edges: list[tuple[str, str, str]] = []
    for layer in caffe_net.layer:
        if phase is not None and not _in_phase(layer, phase):
            continue
        label = get_layer_label(layer, rankdir, display_lrm=display_lrm)
        key = "%s_%s" % (layer.name, layer.type)
        bottoms, tops = list(layer.bottom), list(layer.top)
        if len(bottoms) == 1 and len(tops) == 1 and bottoms[0] == tops[0]:
            nodes[key] = (label, dict(NEURON_LAYER_STYLE))
        else:
            nodes[key] = (label, dict(LAYER_STYLE_DEFAULT,
                                      fillcolor=choose_color_by_layertype(layer.type)))
        for bottom in bottoms:
            nodes[bottom + "_blob"] = (bottom, dict(BLOB_STYLE))
            edges.append((bottom + "_blob", key, '""'))
        for top in tops:
            nodes[top + "_blob"] = (top, {})
            edges.append((key, top + "_blob", get_edge_label(layer) if label_edges else '""'))
    return (caffe_net.name if caffe_net.name else "Net"), nodes, edges


_PLAIN_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NUMERAL = re.compile(r"^-?(\.[0-9]+|[0-9]+(\.[0-9]*)?)$")
_KEYWORDS = {"node", "edge", "graph", "digraph", "subgraph", "strict"}


def _dot_id(value: str) -> str:
    """``value`` as a DOT identifier: as is when it is one (or already double-quoted), else
    quoted with its quotes and line breaks escaped."""
    value = str(value)
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return value
    if (_PLAIN_ID.match(value) and value.lower() not in _KEYWORDS) or _NUMERAL.match(value):
        return value
    return '"' + value.replace('"', r'\"').replace("\n", r"\n").replace("\r", r"\r") + '"'


def get_dot_source(caffe_net, rankdir: str = "LR", label_edges: bool = True, phase=None,
                   display_lrm: bool = False) -> str:
    """The graph of ``get_pydot_graph`` as DOT text (needs neither pydot nor Graphviz)."""
    name, nodes, edges = graph_parts(caffe_net, rankdir, label_edges, phase, display_lrm)
    lines = ["digraph %s {" % _dot_id(name), "rankdir=%s;" % _dot_id(rankdir)]
    for node_name, attributes in nodes.values():
        attrs = ", ".join("%s=%s" % (k, _dot_id(v)) for k, v in attributes.items())
        lines.append("%s [%s];" % (_dot_id(node_name), attrs) if attrs
                     else "%s;" % _dot_id(node_name))
    for src, dst, label in edges:
        lines.append("%s -> %s [label=%s];" % (_dot_id(nodes[src][0]), _dot_id(nodes[dst][0]),
                                               _dot_id(label)))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _import_pydot():
    try:
        import pydotplus as pydot
    except ImportError:
        try:
            import pydot
        except ImportError as err:
            raise ImportError(
                "caffe.draw.get_pydot_graph needs pydot (pip install pydot) or pydotplus, and "
                "neither is installed; get_dot_source and draw_net_to_file with a .dot/.gv/.raw "
                "file give the graph as DOT text without it") from err
    return pydot


def get_pydot_graph(caffe_net, rankdir: str, label_edges: bool = True, phase=None,
                    display_lrm: bool = False):
    """pycaffe's ``get_pydot_graph``: the graph as a ``pydot.Dot`` (needs pydot)."""
    name, nodes, edges = graph_parts(caffe_net, rankdir, label_edges, phase, display_lrm)
    pydot = _import_pydot()
    graph = pydot.Dot(name, graph_type="digraph", rankdir=rankdir)
    pydot_nodes = {key: pydot.Node(node_name, **attributes)
                   for key, (node_name, attributes) in nodes.items()}
    for node in pydot_nodes.values():
        graph.add_node(node)
    for src, dst, label in edges:
        graph.add_edge(pydot.Edge(pydot_nodes[src], pydot_nodes[dst], label=label))
    return graph


# ---------------------------------------------------------------------------- drawing
def _render(source: str, ext: str) -> bytes:
    if ext.lower() in TEXT_FORMATS:
        return source.encode("utf-8")
    dot = shutil.which("dot")
    if dot is None:
        raise GraphvizNotFoundError(
            f"drawing a net as .{ext} needs Graphviz's `dot` program on PATH, and there is none "
            f"(install Graphviz); .dot, .gv and .raw files get the DOT text without it")
    try:
        run = subprocess.run([dot, "-T" + ext], input=source.encode("utf-8"),
                             capture_output=True, timeout=600)
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"Graphviz's dot ({dot}) did not finish drawing the net as .{ext} "
                           f"in {err.timeout:.0f} s") from None
    if run.returncode != 0:
        raise RuntimeError(f"Graphviz's dot ({dot}) failed to draw the net as .{ext} (exit "
                           f"status {run.returncode}): "
                           f"{run.stderr.decode('utf-8', 'replace').strip()}")
    return run.stdout


def draw_net(caffe_net, rankdir: str, ext: str = "png", phase=None,
             display_lrm: bool = False) -> bytes:
    """The net drawn in format ``ext``: DOT text for dot/gv/raw, else ``dot -T<ext>``'s output."""
    source = get_dot_source(caffe_net, rankdir, phase=phase, display_lrm=display_lrm)
    return _render(source, ext)


def draw_net_to_file(caffe_net, filename, rankdir: str = "LR", phase=None,
                     display_lrm: bool = False) -> None:
    """The net drawn into ``filename``, in the format its extension names."""
    ext = Path(filename).suffix[1:]
    if not ext:
        raise ValueError(f"{os.fspath(filename)}: no extension to take the drawing's format "
                         f"from (.dot, .gv, .raw for DOT text; .png, .svg, .pdf… with Graphviz)")
    data = draw_net(caffe_net, rankdir, ext, phase, display_lrm)
    with open(filename, "wb") as fid:
        fid.write(data)


# ---------------------------------------------------------------------------- draw_net.py
def main(argv=None) -> int:
    """pycaffe's ``python/draw_net.py``: draw a net prototxt into an image (or DOT) file."""
    from reproduce.caffe.errors import CaffeFormatError

    from .proto import caffe_pb2, text_format

    parser = argparse.ArgumentParser(prog="draw_net", description="Draw a graph of the net "
                                     "architecture.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("input_net_proto_file", help="Input network prototxt file")
    parser.add_argument("output_image_file", help="Output image file")
    parser.add_argument("--rankdir", default="LR",
                        help="One of TB (top-bottom, i.e., vertical), RL (right-left, i.e., "
                             "horizontal), LR or BT (Graphviz's rankdir)")
    parser.add_argument("--phase", default="ALL",
                        help="Which network phase to draw: can be TRAIN, TEST, or ALL. If ALL, "
                             "then all layers are drawn regardless of phase.")
    parser.add_argument("--display_lrm", action="store_true",
                        help="Use this flag to visualize the learning rate multiplier, when "
                             "non-zero, for the learning layers (Convolution, Deconvolution, "
                             "InnerProduct).")
    args = parser.parse_args(argv)
    phases = {"TRAIN": TRAIN, "TEST": TEST, "ALL": None}
    if args.phase not in phases:
        parser.error("Unknown phase: " + args.phase)
    net = caffe_pb2.NetParameter()
    try:
        with open(args.input_net_proto_file) as f:
            text_format.Merge(f.read(), net)
    except OSError as err:
        parser.error(f"cannot read {args.input_net_proto_file}: {err.strerror or err}")
    except CaffeFormatError as err:   # line and column, told with the file they are in
        parser.error(f"{args.input_net_proto_file}: {err}")
    print("Drawing net to %s" % args.output_image_file)
    try:
        draw_net_to_file(net, args.output_image_file, args.rankdir, phases[args.phase],
                         args.display_lrm)
    except (RuntimeError, ValueError, OSError) as err:   # GraphvizNotFoundError among them
        print(f"draw_net: {err}", file=sys.stderr)
        return 1
    return 0
