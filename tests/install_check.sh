#!/usr/bin/env bash
# install_check.sh BUILD_DIR SOURCE_DIR: `meson install` into a scratch
# prefix, then build samples/hello.cpp the way a user would, with
# pkg-config, and run it.
set -euo pipefail
build=$1 source=$2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
meson install -C "$build" --no-rebuild --quiet --destdir "$scratch" >/dev/null
pc=$(find "$scratch" -name csp.pc | head -n1)
[ -n "$pc" ] || { echo "csp.pc was not installed" >&2; exit 1; }
prefix=$(sed -n 's/^prefix=//p' "$pc")
export PKG_CONFIG_PATH=$(dirname "$pc")
flags=$(pkg-config --define-variable=prefix="$scratch$prefix" --cflags --libs csp)
# shellcheck disable=SC2086
c++ -std=c++20 "$source/samples/hello.cpp" -o "$scratch/hello" $flags
libdir=$(dirname "$(dirname "$pc")")
output=$(LD_LIBRARY_PATH="$libdir" "$scratch/hello")
[ "$output" = $'hello\nworld' ] || { echo "unexpected output: $output" >&2; exit 1; }
echo "installed headers, libcsp and csp.pc build and run a user's program"

# cspp, when it was built: the installed package imports and runs the
# README's Python hello.
init=$(find "$scratch" -path '*/cspp/__init__.py' | head -n1)
if [ -n "$init" ]; then
    output=$(PYTHONPATH="$(dirname "$(dirname "$init")")" LD_LIBRARY_PATH="$libdir" /usr/bin/python3 -c '
from cspp.pycsp import *
@process
def hello(cout):
    cout("hello from Python")
c = Channel()
print(Parallel(hello(-c), process(lambda cin: cin())(+c))[1])')
    [ "$output" = "hello from Python" ] || { echo "unexpected output from cspp: $output" >&2; exit 1; }
    echo "the installed cspp imports and runs"
fi
