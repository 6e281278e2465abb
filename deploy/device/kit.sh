#!/usr/bin/env bash
# Builds the device kit: what a GPU machine with PyTorch and transformers but no network and no model packages
# needs to run `mixlm train` (see deploy/device/README.md). Run here, from the repo root:
#   deploy/device/kit.sh [PRESET] [DATA]          # defaults: gpu ../shared/data
# Writes .kit-a/ and .kit-b/ (the SmolLM2 GGUF in two parts: 98 MB do not fit one call's 64 MiB) and .kit/
# (wheels, the preset's data sets, the bi-encoder cache, the GGUF's checksum). All three are git-ignored.
set -euo pipefail
PRESET=${1:-gpu}
DATA=${2:-../shared/data}
PY=${PYTHON:-.venv/bin/python}
PYVER=${KIT_PYTHON_VERSION:-3.12}  # the device image's python3

rm -rf .kit .kit-a .kit-b
mkdir -p .kit/whl .kit/data .kit-a .kit-b

gguf=$("$PY" -c 'from mixlm.loading import smollm2_gguf; print(smollm2_gguf())')
split -b 48M -d "$gguf" .kit/gguf.part-
mv .kit/gguf.part-00 .kit-a/ && mv .kit/gguf.part-01 .kit-b/
test ! -e .kit/gguf.part-02 || { echo "kit.sh: the GGUF needs more than two parts" >&2; exit 1; }
(cd "$(dirname "$gguf")" && sha256sum "$(basename "$gguf")") > .kit/gguf.sha256

# The packages `mixlm train` imports that the device image lacks (peft and click pinned to ours), at the lock's
# versions; no dependencies: the image has numpy, scipy, torch, transformers, tokenizers, pyyaml, requests, tqdm.
wheels=$(grep -i -E '^(bm25s|ir.measures|pytrec.eval.terrier|msgspec|pydantic|pydantic.core|pydantic.settings|python.dotenv|typing.inspection|annotated.types|gguf|peft|click)==' requirements.lock)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .kit/whl $wheels

sets=$("$PY" -c "from training.config import load_config; print(' '.join(load_config('$PRESET').data.sets))")
for s in $sets; do cp -r "$DATA/$s" .kit/data/; done

# Every bi-encoder embedding the run will ask for (training candidates, dev candidates, the dev baselines),
# computed here once so the device needs no MiniLM package.
MIXLM_HOME=.kit/home "$PY" -m mixlm train --preset "$PRESET" --data .kit/data --run-dir .kit/prepare \
  --prepare-only
rm -rf .kit/prepare .kit/home/models  # the converted model is rebuilt there from the GGUF
du -sh .kit .kit-a .kit-b
