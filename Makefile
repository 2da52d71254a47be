# Developer shortcuts. The README's commands do not need make.
.PHONY: test lint images

test:
	scripts/test

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports --no-logo

# Every picture from the source beside it: Graphviz (apt-get install graphviz) for the architecture,
# matplotlib (.venv/bin/pip install matplotlib; not a loglake dependency) for the others.
images: Image/architecture.png Image/architecture.svg Image/partition-log.png Image/benchmarks.png

Image/architecture.png: Image/architecture.dot
	dot -Tpng -Gdpi=100 $< -o $@

Image/architecture.svg: Image/architecture.dot
	dot -Tsvg $< -o $@

Image/partition-log.png Image/consumer-groups.png: Image/concepts.py
	.venv/bin/python Image/concepts.py

Image/benchmarks.png: Image/plot_bench.py Image/bench-results.json
	.venv/bin/python Image/plot_bench.py
