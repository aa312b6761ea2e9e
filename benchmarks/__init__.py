"""Load generators and micro-benchmarks; each prints one JSON result line."""
