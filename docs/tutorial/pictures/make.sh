#!/bin/sh
# make.sh [BUILDDIR]: draw the tutorial's pictures again, from the samples
# built in BUILDDIR (default: build), with CSP_GRAPH and graphviz's dot, and
# CSP_TRACE with tools/trace_summary.py.
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
# The Mandelbrot farm's trace (its workers are OS processes), summed up by
# tools/trace_summary.py: a bar per process, coloured by what it was doing.
CSP_TRACE="$scratch/farm.json" "$build/samples/mandelbrot_farm" > /dev/null
python3 "$here/../../../tools/trace_summary.py" "$scratch/farm.json" "$here/farm-trace.svg" \
    --title "samples/mandelbrot_farm.cpp: a farm of four OS processes"
echo "drew $here/deadlock.svg, $here/sieve.svg and $here/farm-trace.svg"
