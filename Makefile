# Developer shortcuts. The README's commands do not need make.
.PHONY: test lint images

test:
	scripts/test

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

# needs Graphviz (apt-get install graphviz)
images: Image/architecture.png

Image/architecture.png: Image/architecture.dot
	dot -Tpng -Gdpi=110 $< -o $@
