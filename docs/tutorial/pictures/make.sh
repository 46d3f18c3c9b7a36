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
# The classic programs of classics.md: commstime drawn by SIGUSR1 while it
# runs (the graph is copied before its exit redraws it), the sorting pump and
# the token ring summed up from their traces.
CSP_GRAPH="$scratch/commstime.dot" "$build/samples/commstime" 20000000 > /dev/null &
pid=$!
sleep 0.3
kill -USR1 "$pid"
sleep 0.3
cp "$scratch/commstime.dot" "$scratch/commstime-live.dot"
wait "$pid"
dot -Tsvg "$scratch/commstime-live.dot" -o "$here/commstime.svg"
CSP_TRACE="$scratch/pump.json" "$build/samples/sorting_pump" 12 > /dev/null
python3 "$here/../../../tools/trace_summary.py" "$scratch/pump.json" "$here/pump-trace.svg" \
    --title "samples/sorting_pump.cpp: 12 values through 12 cells"
CSP_TRACE="$scratch/ring.json" "$build/samples/token_ring" 40 8 > /dev/null
python3 "$here/../../../tools/trace_summary.py" "$scratch/ring.json" "$here/ring-trace.svg" \
    --title "samples/token_ring.cpp: a token round a ring of 8, 40 hops, then poison"
echo "drew the pictures in $here"
