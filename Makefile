# WAC Extractor: set-up, tests, local openEO backend and the installable plugin zip.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BACKEND_VENV := .venv-backend
# The oldest openeo release the plugin supports (constraints-openeo-oldest.txt): make test runs the runner and
# end-to-end tests with it too, in its own venv.
OLDEST_VENV := .venv-openeo-oldest
OLDEST_PY := $(OLDEST_VENV)/bin/python
OLDEST_TESTS := tests/test_openeo_reliances.py tests/test_runner.py tests/test_gateway.py tests/test_cli.py
PY := $(VENV)/bin/python
BACKEND_PY := $(BACKEND_VENV)/bin/python
SYSTEM_PY := /usr/bin/python3
# Pins follow the system they run on: Debian 13 has Python 3.13 and numpy 2 (constraints-trixie.txt).
CODENAME := $(shell . /etc/os-release 2>/dev/null; echo $$VERSION_CODENAME)
CONSTRAINTS := $(if $(wildcard constraints-$(CODENAME).txt),constraints-$(CODENAME).txt,constraints.txt)
PIP_FLAGS := --disable-pip-version-check -q --prefer-binary -c $(CONSTRAINTS)
PORT ?= 8765
APT_PACKAGES := qgis python3-qgis qgis-providers python3-gdal python3-venv xvfb xdotool imagemagick zip unzip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PLUGIN := wac_extractor
VERSION := $(shell sed -n 's/^version=//p' metadata.txt)
QGIS_PROFILE_DIR ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default
export QT_QPA_PLATFORM ?= offscreen

.PHONY: help setup apt test lint backend demo zip deploy bench mutation clean

help:
	@echo "make setup   install QGIS (apt), the dev venv and the local-backend venv"
	@echo "make test    run the test suite (offscreen)"
	@echo "make lint    ruff, and the Qt6 / QGIS 4 check (scoped enums, exec(), qgis.PyQt imports)"
	@echo "make backend run the local openEO backend on 127.0.0.1:\$${PORT:-8765} (user demo, password demo)"
	@echo "make demo    offline demo against the local backend"
	@echo "make zip     build $(PLUGIN).zip;  make deploy  install it into a QGIS profile"
	@echo "make mutation  mutation score of the key modules (bench/mutation.py, slow; MUTATION=\"credits\" for one)"

setup: apt $(VENV)/.installed $(BACKEND_VENV)/.installed $(OLDEST_VENV)/.installed

# Debian's QGIS and GDAL, only what is missing. On Debian 12 QGIS comes from bookworm-backports
# (3.40 LTR, same Python 3.11 and GDAL 3.6): the plugin needs QGIS >= 3.40 (metadata.txt).
BACKPORTS_LIST := /etc/apt/sources.list.d/bookworm-backports.list
apt:
	@. /etc/os-release; backports=""; \
	if [ "$$VERSION_CODENAME" = bookworm ]; then \
	  backports="-t bookworm-backports"; \
	  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then \
	    mirror=$$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
	      | grep -v '^ *#' | grep -o 'https\?://[^ ]*/debian\b' | head -n1); \
	    echo "deb $${mirror:-http://deb.debian.org/debian} bookworm-backports main" | $(SUDO) tee $(BACKPORTS_LIST) >/dev/null; \
	    $(SUDO) apt-get update -q; \
	  fi; \
	fi; \
	want=$$(if [ -n "$$backports" ]; then echo 3.40; fi); \
	have=$$(dpkg-query -W -f='$${Version}' qgis 2>/dev/null); \
	missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	case "$$have" in *"$$want"*) ;; *) [ -n "$$want" ] && missing="$(APT_PACKAGES)";; esac; \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing $$missing $$backports"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$backports $$missing; \
	else echo "apt: QGIS $$have and friends already installed"; fi

# The dev venv sees Debian's qgis and osgeo (system site packages); numpy stays Debian's.
$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-backend-nodeps.txt $(CONSTRAINTS)
	[ -x $(PY) ] || $(SYSTEM_PY) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -r requirements-dev.txt
	# Only the openEO process specifications (JSON) are needed here, to validate our graphs.
	$(PY) -m pip install $(PIP_FLAGS) --no-deps -r requirements-backend-nodeps.txt
	# Debian's pyproj looks for PROJ's data under sys.prefix, which in a venv is the venv.
	mkdir -p $(VENV)/share && ln -sfn /usr/share/proj $(VENV)/share/proj
	# Make the repo importable from anywhere (python -m wac_extractor ...).
	echo "$(CURDIR)" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/wac_extractor_dev.pth"
	touch $@

# The same as the dev venv, with the oldest supported openeo.
$(OLDEST_VENV)/.installed: requirements.txt requirements-dev.txt requirements-backend-nodeps.txt constraints-openeo-oldest.txt $(CONSTRAINTS)
	[ -x $(OLDEST_PY) ] || $(SYSTEM_PY) -m venv --system-site-packages $(OLDEST_VENV)
	$(OLDEST_PY) -m pip install $(PIP_FLAGS) -c constraints-openeo-oldest.txt -r requirements-dev.txt
	$(OLDEST_PY) -m pip install $(PIP_FLAGS) --no-deps -r requirements-backend-nodeps.txt
	mkdir -p $(OLDEST_VENV)/share && ln -sfn /usr/share/proj $(OLDEST_VENV)/share/proj
	echo "$(CURDIR)" > "$$($(OLDEST_PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/wac_extractor_dev.pth"
	touch $@

# The local backend's own venv: heavy (dask, rasterio), isolated from QGIS's libraries.
$(BACKEND_VENV)/.installed: requirements-backend.txt requirements-backend-nodeps.txt $(CONSTRAINTS)
	[ -x $(BACKEND_PY) ] || $(SYSTEM_PY) -m venv $(BACKEND_VENV)
	$(BACKEND_PY) -m pip install $(PIP_FLAGS) -r requirements-backend.txt
	$(BACKEND_PY) -m pip install $(PIP_FLAGS) --no-deps -r requirements-backend-nodeps.txt
	echo "$(CURDIR)" > "$$($(BACKEND_PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/wac_extractor_dev.pth"
	touch $@

test:
	$(PY) -m pytest
	@echo "== the runner and end-to-end tests again with openeo $$($(OLDEST_PY) -c 'import openeo; print(openeo.__version__)'), the oldest supported"
	$(OLDEST_PY) -m pytest -p no:cacheprovider $(OLDEST_TESTS)

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) tools/check_qt6.py

backend:  # PROFILE=cdse behaves like CDSE (README, "The local openEO backend")
	$(BACKEND_PY) -m tests.local_backend --host 127.0.0.1 --port $(PORT) --profile $(or $(PROFILE),default)

demo:
	$(PY) -m demo.run_demo

zip: $(PLUGIN).zip

$(PLUGIN).zip: $(shell find $(PLUGIN) resources -type f -not -path '*/__pycache__/*') metadata.txt
	rm -rf build/$(PLUGIN) $@
	mkdir -p build/$(PLUGIN)
	cp -r $(PLUGIN)/. build/$(PLUGIN)/
	cp -r resources metadata.txt LICENSE requirements.txt constraints.txt build/$(PLUGIN)/
	find build/$(PLUGIN) -name __pycache__ -prune -exec rm -rf {} +
	cd build && zip -q -r ../$@ $(PLUGIN)
	@echo "built $@ (version $(VERSION))"

deploy: zip
	mkdir -p $(QGIS_PROFILE_DIR)/python/plugins
	rm -rf $(QGIS_PROFILE_DIR)/python/plugins/$(PLUGIN)
	cd $(QGIS_PROFILE_DIR)/python/plugins && unzip -q -o $(CURDIR)/$(PLUGIN).zip
	@echo "installed into $(QGIS_PROFILE_DIR)/python/plugins/$(PLUGIN)"

# make bench: every section (~30 min); make bench BENCH="ui layers": only those, updated in bench/results.json
bench:
	$(PY) -m bench.run $(BENCH)

# make mutation: mutmut over the modules of issue 26 with their fast tests (bench/README.md, "Mutation score"); never
# part of make test. MUTATION="credits tracker" runs only those groups; updates bench/mutation.json and the table.
mutation:
	$(PY) -m bench.mutation $(MUTATION)

clean:
	rm -rf build $(PLUGIN).zip .pytest_cache tests/artifacts
