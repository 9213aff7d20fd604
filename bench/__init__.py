"""Load-test bench for the verifier."""
