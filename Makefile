.PHONY: demo test bench bootstrap

bootstrap:
	scripts/bootstrap.sh

demo:
	scripts/demo.sh

test:
	scripts/test.sh

bench:
	scripts/bootstrap.sh && .venv/bin/python -m benchmarks
