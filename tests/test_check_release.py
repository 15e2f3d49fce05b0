"""The release-scripts check (``benchmarks/check_release_scripts.py``): its own parts, cheaply.

The check itself needs a checkout of the release and runs minutes of subprocesses; here only
what it does around them: the lib2to3 conversion (on Python 2 written here), the two constant
edits of solve.py, the width reduction of a release-style prototxt, the decisions read off
surgery's printing and Caffe's log, the VOC colours read back to labels, and the one-line
refusals of bad input.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import PROJECT_ROOT

TOOL = PROJECT_ROOT / "benchmarks" / "check_release_scripts.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("check_release_scripts", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PY2 = textwrap.dedent('''\
    from __future__ import division
    def show(d, n):
        print 'keys', d.keys()
        for k in xrange(n):
            print 'at', k,
        if d.has_key('a'):
            raise ValueError, 'bad'
        return dict((k, v) for k, v in d.iteritems())
    ''')


def test_conversion_runs_the_default_2to3_fixers(tool):
    converted = tool.convert_2to3(PY2, "snippet.py")
    assert "print('keys', list(d.keys()))" in converted
    assert "for k in range(n):" in converted and "print('at', k, end=' ')" in converted
    assert "if 'a' in d:" in converted and "raise ValueError('bad')" in converted
    assert "d.items()" in converted
    namespace = {}
    exec(compile(converted, "snippet.py", "exec"), namespace)   # Python 3 now
    assert namespace["show"]({"b": 2}, 2) == {"b": 2}
    # the explicit-only fixers stay off, as with the 2to3 command (idioms would rewrite this)
    assert tool.convert_2to3("if type(x) == int:\n    pass\n") == "if type(x) == int:\n    pass\n"


def test_conversion_refuses_unparsable_source_naming_the_file(tool):
    with pytest.raises(tool.CheckError, match=r"broken\.py: lib2to3 cannot parse it"):
        tool.convert_2to3("def f(:\n", "broken.py")


def test_solve_constants_are_replaced_exactly_once(tool):
    text = "for _ in range(25):\n    solver.step(4000)\n"
    text = tool._replace_once(text, tool.SOLVE_CONSTANTS["iters"], "solver.step(7)", "solve.py")
    assert tool._replace_once(text, "range(25)", "range(2)", "solve.py") == "for _ in range(2):\n    solver.step(7)\n"
    with pytest.raises(tool.CheckError, match=r"solve\.py: expected 'range\(25\)' exactly once, found it 2"):
        tool._replace_once("range(25)\nrange(25)\n", "range(25)", "range(2)", "solve.py")


def test_tiny_prototxt_maps_hidden_widths_only(tool):
    net = textwrap.dedent('''\
        layer { name: "data" type: "Python" top: "data" top: "label"
          python_param { module: "voc_layers" layer: "SBDDSegDataLayer" param_str: "{'split': 'train'}" } }
        layer { name: "conv1_1" type: "Convolution" bottom: "data" top: "conv1_1"
          convolution_param { num_output: 64 pad: 100 kernel_size: 3 } }
        layer { name: "fc6" type: "Convolution" bottom: "conv1_1" top: "fc6"
          convolution_param { num_output: 4096 kernel_size: 7 } }
        layer { name: "score_fr" type: "Convolution" bottom: "fc6" top: "score_fr"
          convolution_param { num_output: 21 kernel_size: 1 } }
        ''')
    from reproduce.caffe import text

    tiny = text.parse(tool.tiny_prototxt(net, "train.prototxt"))
    assert [l.convolution_param.num_output for l in tiny.layer[1:]] == [4, 32, 21]
    assert list(tiny.layer[1].convolution_param.pad) == [100]
    assert tiny.layer[0].python_param.param_str == "{'split': 'train'}"


def test_surgery_decisions_read_alike_from_both_formats(tool):
    printed = ["copying conv1_1  ->  conv1_1 0", "coercing fc6 0 from (32, 784) to (32, 16, 7, 7)",
               "dropping fc8"]
    logged = ["copying conv1_1 0 (4, 3, 3, 3) -> (4, 3, 3, 3)", "coercing fc6 0 (32, 784) -> (32, 16, 7, 7)",
              "dropping fc8"]
    assert tool._decisions(printed, False) == tool._decisions(logged, True) == [
        ("copying", "conv1_1", 0), ("coercing", "fc6", 0), ("dropping", "fc8", None)]
    assert tool._decisions(["copying conv1_1  ->  conv1_1 1"], False) != tool._decisions(logged[:1], True)


def test_voc_colours_read_back_to_labels(tool, tmp_path):
    from PIL import Image

    from reproduce.evaluation.score import voc_palette

    labels = np.array([[0, 1, 15], [20, 7, 0]])
    palette = np.asarray(voc_palette(), np.uint8).reshape(256, 3)
    Image.fromarray(palette[labels]).save(tmp_path / "out.png")
    np.testing.assert_array_equal(tool._label_from_rgb(tmp_path / "out.png"), labels)
    odd = palette[labels].copy()
    odd[0, 0] = (1, 2, 3)
    Image.fromarray(odd).save(tmp_path / "odd.png")
    with pytest.raises(RuntimeError, match=r"odd\.png: colours outside the VOC palette"):
        tool._label_from_rgb(tmp_path / "odd.png")


def test_a_missing_release_is_one_clear_error(tmp_path):
    missing = tmp_path / "no-such-release"
    done = subprocess.run([sys.executable, str(TOOL), "--release", str(missing)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"check_release_scripts: --release {missing}: no such folder (give a checkout of "
        f"shelhamer/fcn.berkeleyvision.org)"]


def test_a_folder_that_is_not_the_release_names_what_it_lacks(tool, tmp_path):
    (tmp_path / "voc_layers.py").write_text("")
    with pytest.raises(tool.CheckError, match=r"not a checkout of fcn\.berkeleyvision\.org — missing "
                                              r"surgery\.py$"):
        tool.check_inputs(tmp_path, tmp_path, ["surgery"])
    with pytest.raises(tool.CheckError, match=r"--golden .*missing voc-fcn8s/deploy\.prototxt"):
        (tmp_path / "infer.py").write_text("")
        (tmp_path / "vis.py").write_text("")
        (tmp_path / "demo").mkdir()
        (tmp_path / "demo" / "image.jpg").write_bytes(b"")
        tool.check_inputs(tmp_path, tmp_path / "golden", ["infer"])


def test_bad_options_are_refused(tool, tmp_path):
    assert tool.main(["--release", str(tmp_path), "--checks", "layers,bogus"]) == 2
    assert tool.main(["--release", str(tmp_path), "--n-val", "1"]) == 2
    with pytest.raises(tool.CheckError, match="--n-val must be at least 2"):
        tool.parse_args(["--release", str(tmp_path), "--n-val", "1"])
    with pytest.raises(tool.CheckError, match="--inits vgg16,nope: choose from vgg16, fcn32s"):
        tool.parse_args(["--release", str(tmp_path), "--inits", "vgg16,nope"])
