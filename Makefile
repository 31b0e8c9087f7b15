ARGS ?=

.PHONY: bench
# Fan-out benchmark against the release binary; prints figures (see server/examples/bench.rs).
bench:
	cargo build --release -p chorus-server --bin chorus --example bench
	target/release/examples/bench $(ARGS)
