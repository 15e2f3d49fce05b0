"""pycaffe's ``python/draw_net.py`` script: ``python -m reproduce.pycaffe.draw_net
input_net_proto_file output_image_file [--rankdir LR] [--phase ALL] [--display_lrm]``
(``caffe.draw.main``; ``.dot``/``.gv``/``.raw`` outputs need no Graphviz)."""
import sys

from reproduce.pycaffe.draw import main

if __name__ == "__main__":
    sys.exit(main())
