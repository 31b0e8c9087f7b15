ARGS ?=

.PHONY: bench
# Benchmark scenarios against the release binary; prints figures (see server/examples/bench/).
bench:
	cargo build --release -p chorus-server --bin chorus --example bench
	target/release/examples/bench $(ARGS)
