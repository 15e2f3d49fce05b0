# FCN reproduction suite. `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON_SYS ?= python3
VENV       ?= .venv
# CPU build by default; CUDA users: make install TORCH_SPEC='torch==2.13.0' TORCH_INDEX='--index-url https://…'
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=
PY         := $(VENV)/bin/python
STAMP      := $(VENV)/.installed

# The staged pipeline (see README "Train the staged pipeline"). Paths are the reference layout.
DATA_DIR ?= data
SBD_DIR  ?= $(DATA_DIR)/sbdd/dataset
VOC_DIR  ?= $(DATA_DIR)/pascal/VOC2011
VGG16    ?= weights/VGG_ILSVRC_16_layers.caffemodel
ALEXNET  ?= weights/bvlc_alexnet.caffemodel
GOOGLENET ?= weights/bvlc_googlenet.caffemodel
DEVICE   ?= auto
RUNS     ?= runs
MAX_ITER ?=
WIDTHS   ?= full
STAGE_FLAGS ?=
DATASET  ?=
VERIFY_FLAGS ?=
DEMO_DIR ?= demo-run
STAGE = $(PY) -m reproduce stage --data-dir "$(DATA_DIR)" --sbd-dir "$(SBD_DIR)" --voc-dir "$(VOC_DIR)" --device $(DEVICE) \
        --runs "$(RUNS)" --widths $(WIDTHS) $(if $(MAX_ITER),--max-iter $(MAX_ITER)) \
        $(if $(DATASET),--dataset "$(DATASET)") $(STAGE_FLAGS)

.PHONY: help install test prototxt benchmark weights verify infer demo \
        stage-32s stage-16s stage-8s stage-8s-atonce stage-alexnet stage-googlenet \
        stage-nyud-color stage-nyud-hha stage-nyud-color-d stage-nyud-color-hha \
        stage-siftflow-32s stage-siftflow-16s stage-siftflow-8s \
        stage-pascalcontext-32s stage-pascalcontext-16s stage-pascalcontext-8s

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml Makefile
	$(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test,export]"
	@touch $@

install: $(STAMP) ## create .venv with pinned CPU torch and the package (TORCH_SPEC, TORCH_INDEX to override)

test: $(STAMP) ## run the test suite (golden tests read ../shared/caffe-golden)
	$(PY) -m pytest -q

prototxt: $(STAMP) ## regenerate prototxt_ref/ from the net definitions
	$(PY) -m reproduce prototxt -o prototxt_ref

benchmark: $(STAMP) ## speed and memory benchmarks; results in BENCHMARKS.md
	$(PY) benchmarks/run.py

# The release's own scripts through the pycaffe shim (README "pycaffe scripts, unchanged").
RELEASE ?=
CHECK_RELEASE_FLAGS ?=
.PHONY: check-release
check-release: $(STAMP) ## run RELEASE=DIR's (a fcn.berkeleyvision.org checkout or mirror) scripts through the shim against the suite
	@test -n "$(RELEASE)" || { echo "check-release: give RELEASE=DIR (a checkout of shelhamer/fcn.berkeleyvision.org)" >&2; exit 2; }
	$(PY) benchmarks/check_release_scripts.py --release "$(RELEASE)" $(CHECK_RELEASE_FLAGS)

# The release's datasets under DATA_DIR in the layout its data layers read (README "Data").
DATASETS ?= sbd voc2011
DATA_FROM ?=
.PHONY: data
data: $(STAMP) ## download (or DATA_FROM=DIR|URL: import), extract and check DATASETS into DATA_DIR
	$(PY) -m reproduce data fetch $(DATASETS) --dir "$(DATA_DIR)" $(if $(DATA_FROM),--from "$(DATA_FROM)")

# WEIGHTS_FROM=DIR imports the release's caffemodels from a folder, as DATA_FROM=DIR|URL does the
# datasets; FROM= is the old spelling of WEIGHTS_FROM= (still read, with a note).
WEIGHTS_FROM ?= $(FROM)
weights: $(STAMP) ## download (or WEIGHTS_FROM=DIR: import), check and convert the official caffemodels into weights/
	@$(if $(FROM),echo "note: FROM= is the old name of WEIGHTS_FROM= (as DATA_FROM= for data); use make weights WEIGHTS_FROM=$(FROM)" >&2,:)
	$(PY) -m reproduce weights --dir weights $(if $(WEIGHTS_FROM),--from "$(WEIGHTS_FROM)")

stage-32s: $(STAMP) ## FCN-32s from the VGG16 ILSVRC caffemodel (SBD_DIR, VOC_DIR, VGG16, DEVICE, MAX_ITER, RUNS; DATASET=DIR: your data)
	$(STAGE) fcn32s --init "$(VGG16)"

stage-16s: $(STAMP) ## FCN-16s from the FCN-32s result
	$(STAGE) fcn16s --init "$(RUNS)/fcn32s/final.caffemodel"

stage-8s: $(STAMP) ## FCN-8s from the FCN-16s result
	$(STAGE) fcn8s --init "$(RUNS)/fcn16s/final.caffemodel"

stage-8s-atonce: $(STAMP) ## FCN-8s at-once (scaled skips, 300k iterations) from VGG16
	$(STAGE) fcn8s-atonce --init "$(VGG16)"

stage-alexnet: $(STAMP) ## FCN-AlexNet (normalized loss, iter_size 20) from the AlexNet caffemodel
	$(STAGE) fcn-alexnet --init "$(ALEXNET)"

stage-googlenet: $(STAMP) ## FCN-GoogLeNet (CVPR 2015 Table 1; never released) from the GoogLeNet caffemodel
	$(STAGE) fcn-googlenet --init "$(GOOGLENET)"

# The other datasets' nets (data under DATA_DIR, as `make data DATASETS=…` lays it out).
stage-nyud-color: $(STAMP) ## NYUDv2 FCN-32s on color from VGG16 (DATA_DIR, VGG16, DEVICE, MAX_ITER, RUNS)
	$(STAGE) nyud-fcn32s-color --init "$(VGG16)"

stage-nyud-hha: $(STAMP) ## NYUDv2 FCN-32s on HHA from VGG16
	$(STAGE) nyud-fcn32s-hha --init "$(VGG16)"

stage-nyud-color-d: $(STAMP) ## NYUDv2 early fusion (color + log depth, 4-channel conv1_1_bgrd) from VGG16
	$(STAGE) nyud-fcn32s-color-d --init "$(VGG16)"

stage-nyud-color-hha: $(STAMP) ## NYUDv2 late fusion of the stage-nyud-color and stage-nyud-hha results
	$(STAGE) nyud-fcn32s-color-hha

stage-siftflow-32s: $(STAMP) ## SIFT Flow FCN-32s, semantic + geometric heads, from VGG16
	$(STAGE) siftflow-fcn32s --init "$(VGG16)"

stage-siftflow-16s: $(STAMP) ## SIFT Flow FCN-16s from the siftflow FCN-32s result
	$(STAGE) siftflow-fcn16s --init "$(RUNS)/siftflow-fcn32s/final.caffemodel"

stage-siftflow-8s: $(STAMP) ## SIFT Flow FCN-8s from the siftflow FCN-16s result
	$(STAGE) siftflow-fcn8s --init "$(RUNS)/siftflow-fcn16s/final.caffemodel"

stage-pascalcontext-32s: $(STAMP) ## PASCAL-Context (59 classes) FCN-32s from VGG16
	$(STAGE) pascalcontext-fcn32s --init "$(VGG16)"

stage-pascalcontext-16s: $(STAMP) ## PASCAL-Context FCN-16s from the pascalcontext FCN-32s result
	$(STAGE) pascalcontext-fcn16s --init "$(RUNS)/pascalcontext-fcn32s/final.caffemodel"

stage-pascalcontext-8s: $(STAMP) ## PASCAL-Context FCN-8s from the pascalcontext FCN-16s result
	$(STAGE) pascalcontext-fcn8s --init "$(RUNS)/pascalcontext-fcn16s/final.caffemodel"

.PHONY: paper
paper: $(STAMP) ## the CVPR 2015 experiments: command, published figure, run state; Fig. 5 from the runs found
	$(PY) -m reproduce paper --runs "$(RUNS)" --data-dir "$(DATA_DIR)" --plot "$(RUNS)/paper/fig5.png"

verify: $(STAMP) ## score every available stage (VOC: seg11valid against the published mean IU; other datasets: MEASURED)
	$(PY) -m reproduce verify --voc-dir "$(VOC_DIR)" --data-dir "$(DATA_DIR)" --runs "$(RUNS)" --weights-dir weights --device $(DEVICE) $(if $(DATASET),--dataset "$(DATASET)") $(VERIFY_FLAGS)

NET ?= fcn8s
INFER_WEIGHTS ?= weights/fcn8s-heavy-pascal.pth
OUT ?= predictions
infer: $(STAMP) ## segment IMAGES (files or folders) into OUT with NET and INFER_WEIGHTS
	$(PY) -m reproduce infer --net $(NET) --weights "$(INFER_WEIGHTS)" $(IMAGES) -o "$(OUT)"

# The demo runs the same targets as the full-scale path, on generated data and tiny widths.
# base_lr 1e-8 for all three stages: the reference's 1e-10/1e-12/1e-14 do not move these tiny
# nets on ~150 px images within the budget; 3e-8 and up already diverge or stall (see reproduce/demo/pipeline.py).
DEMO_ITER ?= 600
DEMO_STAGE_FLAGS ?= --base-lr 1e-8 --test-interval 200 --snapshot 200
DEMO_VARS = SBD_DIR="$(DEMO_DIR)/data/sbdd/dataset" VOC_DIR="$(DEMO_DIR)/data/pascal/VOC2011" \
            VGG16="$(DEMO_DIR)/vgg16-tiny-v1.caffemodel" RUNS="$(DEMO_DIR)/runs" WIDTHS=tiny \
            MAX_ITER=$(DEMO_ITER) STAGE_FLAGS="$(DEMO_STAGE_FLAGS)" VERIFY_FLAGS="--demo"

DEMO_STEP = @$(PY) -m reproduce demo estimate --out "$(DEMO_DIR)" --step
demo: $(STAMP) ## the whole pipeline at small scale on generated data (no data, GPU or download needed)
	$(PY) -m reproduce demo estimate --out "$(DEMO_DIR)"
	$(PY) -m reproduce demo prepare --out "$(DEMO_DIR)" --device $(DEVICE)
	$(DEMO_STEP) stage-32s
	$(MAKE) --no-print-directory stage-32s $(DEMO_VARS)
	$(DEMO_STEP) stage-16s
	$(MAKE) --no-print-directory stage-16s $(DEMO_VARS)
	$(DEMO_STEP) stage-8s
	$(MAKE) --no-print-directory stage-8s $(DEMO_VARS)
	$(DEMO_STEP) verify
	$(MAKE) --no-print-directory verify $(DEMO_VARS)
	$(DEMO_STEP) report
	$(PY) -m reproduce demo report --out "$(DEMO_DIR)"
