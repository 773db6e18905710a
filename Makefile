.PHONY: setup demo test lint bench
setup:
	bash scripts/setup.sh
demo:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
bench: setup
	.venv/bin/python tests/benchmarks/bench_bilinear.py
