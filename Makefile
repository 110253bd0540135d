.PHONY: demo test test-matrix bench bootstrap

bootstrap:
	scripts/bootstrap.sh

demo:
	scripts/demo.sh

test:
	scripts/test.sh

test-matrix:
	scripts/test-matrix.sh

bench:
	scripts/bootstrap.sh && .venv/bin/python -m benchmarks
