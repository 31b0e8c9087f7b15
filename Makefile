ARGS ?=

.PHONY: bench
# Benchmark scenarios against the release binary; prints figures (see server/examples/bench/).
bench:
	cargo build --release -p chorus-server --bin chorus --example bench
	target/release/examples/bench $(ARGS)

.PHONY: soak
# The 30-minute soak: three servers on one Redis, churn, restarts; prints the figures.
soak:
	cargo build --release -p chorus-server --bin chorus --example bench
	target/release/examples/bench --scenario soak --nodes 3 $(ARGS)
