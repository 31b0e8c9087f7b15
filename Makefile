ARGS ?=

.PHONY: bench
# Benchmark scenarios against the release binary; prints figures (see bench/).
bench:
	cargo build --release -p chorus-server --bin chorus -p chorus-bench --bin bench
	target/release/bench $(ARGS)

.PHONY: soak
# The 30-minute soak: three servers on one Redis, churn, restarts; prints the figures.
soak:
	cargo build --release -p chorus-server --bin chorus -p chorus-bench --bin bench
	target/release/bench --scenario soak --nodes 3 $(ARGS)
