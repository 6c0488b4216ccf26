# Two commands do all set-up on a fresh machine: `make lab` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PORT   ?= 8888
# Jupyter refuses to run as root unless told; containers and Colab-like machines often are root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root)

CHROMIUM := /usr/bin/chromium

.PHONY: lab test test-unit test-lessons test-browser browser-deps bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Reinstall only when the dependencies change.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (teachkit)" > /dev/null
	touch $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=lessons --port=$(PORT) $(ROOT_FLAG)

# The real-browser test needs Debian's Chromium; install it when we can (root + apt), else that test skips.
browser-deps:
	@[ -x $(CHROMIUM) ] || { [ "$$(id -u)" = 0 ] && command -v apt-get > /dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null; } \
	  || echo "note: Chromium is not installed and could not be installed here; the browser test will be skipped"

test: $(STAMP) browser-deps
	TEACHKIT_SMOKE=1 $(PY) -m pytest tests lessons --nbval-lax -p no:cacheprovider

test-unit: $(STAMP)
	$(PY) -m pytest tests --ignore=tests/browser -p no:cacheprovider

test-browser: $(STAMP) browser-deps
	$(PY) -m pytest tests/browser -p no:cacheprovider

test-lessons: $(STAMP)
	TEACHKIT_SMOKE=1 $(PY) -m pytest lessons --nbval-lax -p no:cacheprovider

bench: $(STAMP)
	$(PY) -m benchmarks.report

clean:
	rm -rf $(VENV) build .pytest_cache
