#!/bin/sh
# make.sh [BUILDDIR]: draw the tutorial's pictures again, from the samples
# built in BUILDDIR (default: build), with CSP_GRAPH and graphviz's dot.
set -eu
build=${1:-build}
here=$(dirname "$0")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# The deadlock of chapter 8, drawn when the runtime finds it.
CSP_GRAPH="$scratch/deadlock.dot" "$build/samples/tutorial-debugging" > /dev/null
dot -Tsvg "$scratch/deadlock.dot" -o "$here/deadlock.svg"

# The prime sieve, drawn by itself (csp::write_graph) once it has found 8 primes.
"$build/samples/prime_sieve" 60 "$scratch/sieve.dot" > /dev/null
dot -Tsvg "$scratch/sieve.dot" -o "$here/sieve.svg"
echo "drew $here/deadlock.svg and $here/sieve.svg"
