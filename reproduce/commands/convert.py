"""Convert weights between Caffe and PyTorch: ``.caffemodel`` (V1 or current), ``.caffemodel.h5``, ``.pth``.

``SRC`` → ``DST`` by their file names. A ``.pth`` is a plain state_dict (``<layer>.weight``,
``<layer>.bias``, ``<layer>.blob<i>``) in the shapes Caffe holds after its legacy upgrade.
Writing a caffemodel needs ``--prototxt NET`` (its layer definitions go into the file, as
Caffe's ``Net.save`` writes them); the weights must then fit NET as Caffe's
``CopyTrainedLayersFrom`` checks (blob count and shapes per layer), or nothing is written.

With ``--prototxt NET`` and a Caffe ``SRC`` the weights are *transplanted* into NET's
parameter layout as the reference surgery does — copied where shapes match, coerced by flat
copy where only element counts match (fc6 InnerProduct → 7×7 convolution), dropped where NET
lacks the layer — and NET's ``*up*`` deconvolutions are set to bilinear kernels; each
decision is printed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from reproduce.cli import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reproduce.commands.common import add_quiet

    parser.add_argument("src", type=Path, help="source weights: .caffemodel, .caffemodel.h5 or .pth")
    parser.add_argument("-o", "--out", type=Path, required=True, help="destination: .pth, .caffemodel or .caffemodel.h5")
    parser.add_argument("--prototxt", type=Path, help="target net: transplant into it, or describe the layers when writing a caffemodel")
    parser.add_argument("--no-interp", action="store_true", help="with --prototxt: leave *up* deconvolutions as NET's fillers make them")
    add_quiet(parser, "no progress bar, no per-blob log")


def run(args: argparse.Namespace) -> int:
    from reproduce.weights.convert import check_weights_fit, is_caffe_weights, load_weights, save_weights

    if args.src.resolve() == args.out.resolve():
        raise UserError(f"{args.out}: destination is the source file")
    large = args.src.is_file() and args.src.stat().st_size > 64 * 2**20
    weights = load_weights(args.src, progress=large and not args.quiet)
    net_param = None
    if args.prototxt is not None:
        from reproduce.caffe import read_net

        net_param = read_net(args.prototxt)
        if is_caffe_weights(args.src):
            refuse_unusable_source(net_param, weights, args.src, args.prototxt)
            weights = transplant_into(net_param, weights, interp=not args.no_interp,
                                      log=(lambda line: None) if args.quiet else print)
        else:  # never write a caffemodel that Caffe would refuse to load into NET
            refuse_extra_layers(net_param, weights, args.src, args.prototxt)
            check_weights_fit(net_param, weights, str(args.src))
    elif args.out.name.lower().endswith((".caffemodel", ".h5", ".hdf5")) and not is_caffe_weights(args.src):
        raise UserError(f"{args.out}: writing a caffemodel from {args.src.name} needs --prototxt NET "
                        "(the layer definitions Caffe stores beside the blobs)")
    else:
        refuse_empty_parameter_layers(weights, args.src)
    save_weights(args.out, weights, net_param)
    count = sum(b.size for blobs in weights.values() for b in blobs)
    print(f"wrote {args.out} ({len(weights)} layers, {count:,} parameters)")
    return 0


def refuse_extra_layers(net_param, weights, src: Path, prototxt: Path, shown: int = 4) -> None:
    """One line when ``weights`` hold layers NET lacks: the first few names and the count."""
    from reproduce.caffe.blobs import net_layers

    have = {layer.name for layer in net_layers(net_param)}
    extra = [name for name in weights if name not in have]
    if extra:
        names = ", ".join(extra[:shown]) + (", …" if len(extra) > shown else "")
        raise UserError(f"{src}: weights for {len(extra)} layer(s) that {prototxt} lacks ({names}); "
                        f"is it the net these weights belong to? (a caffemodel SRC is transplanted instead, "
                        f"dropping them)")


# layer types that always hold parameter blobs (current and V1 names)
PARAMETER_TYPES = frozenset({"Convolution", "Deconvolution", "InnerProduct", "BatchNorm", "PReLU", "Embed",
                             "LSTM", "RNN", "CONVOLUTION", "DECONVOLUTION", "INNER_PRODUCT"})


def refuse_empty_parameter_layers(weights, src) -> None:
    """Without a net to check against: a layer of a parameter type stored with no blobs is
    refused (Caffe would stop at it with "Incompatible number of blobs" in any net that has it)."""
    from reproduce.caffe.blobs import empty_layers

    for name, type_ in empty_layers(weights).items():
        if type_ in PARAMETER_TYPES:
            raise UserError(f"{src}: Incompatible number of blobs for layer {name!r}: a {type_} layer "
                            f"stored with none (a damaged or cut file?); nothing written")


def refuse_unusable_source(net_param, weights, src, prototxt) -> None:
    """Before a transplant: a parameter layer of NET stored in ``src`` with no blobs (Caffe's
    "Incompatible number of blobs"), or no layer of ``src`` that NET has (the output would be
    NET's fresh initialisation, nothing of ``src``), is refused in one line."""
    from reproduce.caffe.blobs import empty_layers
    from reproduce.net import Net

    net = Net(net_param, phase="test")
    held = {name for name, blobs in net.params.items() if len(blobs)}
    for name in empty_layers(weights):
        if name in held:
            raise UserError(f"{src}: Incompatible number of blobs for layer {name!r}: the file stores it "
                            f"with none, {prototxt} gives it {len(net.params[name])}; nothing written")
    if held and not held & set(weights):
        sample = ", ".join(list(weights)[:4]) or "none"
        raise UserError(f"{src}: no layer of it is a parameter layer of {prototxt} (its layers: {sample}"
                        f"{' …' if len(weights) > 4 else ''}; the net's: {', '.join(sorted(held)[:4])} …); "
                        f"the output would hold only fresh initialisation — nothing written")


def transplant_into(net_param, source, interp: bool = True, log=print):
    """Reference surgery: NET's freshly initialised parameters, with ``source`` transplanted in."""
    from reproduce.net import Net
    from reproduce.weights import surgery

    net = Net(net_param, phase="test")
    target = net.weights_dict() if hasattr(net, "weights_dict") else {
        name: [p.detach().cpu().numpy() for p in blobs] for name, blobs in net.params.items()}
    result = surgery.transplant(target, source, log=log)
    if interp:
        layers = surgery.interp_layer_names(result)
        surgery.interp(result, layers)
        for name in layers:
            log(f"interp {name} (bilinear)")
    return result

