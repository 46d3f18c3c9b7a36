#!/usr/bin/env bash
# Set up, build and check csp on Debian (bookworm or later).
#
#   ./setup.sh                   install missing packages, configure build/ (release), build
#   ./setup.sh demo              set up if needed, then run two samples
#   ./setup.sh test [ARGS...]    set up if needed, then meson test in build/ (ARGS go to meson test)
#   ./setup.sh sanitize asan|tsan [ARGS...]
#                                build build-asan (ASan+UBSan) or build-tsan (TSan) and run
#                                meson test there; any sanitizer report fails the run
#   ./setup.sh mpich [ARGS...]   build build-mpich with MPICH instead of Open MPI (installing
#                                libmpich-dev beside it) and run its MPI suite: meson test
#                                --suite mpi ARGS... (CI runs it; Open MPI stays the default)
#   ./setup.sh bench [ARGS...]   set up if needed (plus gnuplot-nox for the charts), then run
#                                every benchmark against its peers: bench/run build ARGS...
#                                (e.g. --only commstime --runs 3; see bench/run --help);
#                                updates BENCHMARKS.md and the charts in docs/bench/
#
# Safe to run again: packages are checked with dpkg-query first and apt-get runs
# only when one is missing; an existing build directory is reused.
# CSP_JOBS sets the number of compile jobs (default: the number of cores).
set -euo pipefail

cd "$(dirname "$0")"

packages=(meson ninja-build g++ pkg-config libboost-context-dev libboost-dev libboost-fiber-dev
          catch2 libspdlog-dev libfmt-dev libcereal-dev golang-go python3
          libopenmpi-dev openmpi-bin libtbb-dev graphviz
          pybind11-dev python3-dev python3-pytest python3-pytest-timeout python3-greenlet)
# Only ./setup.sh bench needs these: mpi4py is the Python peer of the MPI benchmark, and
# gnuplot draws the charts in docs/bench/.
bench_packages=(python3-mpi4py gnuplot-nox)
jobs=${CSP_JOBS:-$(nproc 2>/dev/null || echo 2)}

say() { printf '==> %s\n' "$*"; }

# install_packages [EXTRA-PACKAGE...]: the common list plus those given.
install_packages() {
    local missing=() package
    for package in "${packages[@]}" "$@"; do
        [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" = "install ok installed" ] ||
            missing+=("$package")
    done
    if [ ${#missing[@]} -eq 0 ]; then return; fi

    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "setup.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
        sudo=(sudo)
    fi
    say "installing ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# configure DIR always|if-needed MESON-OPTIONS...: set DIR up, or reconfigure it
# when it exists and "always" is asked (plain ./setup.sh).
configure() {
    local dir=$1 when=$2; shift 2
    if [ -f "$dir/meson-private/coredata.dat" ]; then
        [ "$when" = always ] || return 0
        say "reconfiguring $dir"
        meson setup --reconfigure "$dir" "$@"
    else
        say "configuring $dir"
        rm -rf "$dir"  # a half-made directory from an interrupted set-up
        meson setup "$dir" "$@"
    fi
}

build() {
    say "building $1"
    ninja -C "$1" -j "$jobs"
}

# set_up always|if-needed [EXTRA-PACKAGE...]
set_up() {
    local when=$1; shift
    install_packages "$@"
    configure build "$when" --buildtype=release
    build build
}

# Let every sanitizer report fail the test that triggered it.
sanitize() {
    local kind=${1:-} dir wrapper=()
    case "$kind" in
        asan)
            dir=build-asan
            install_packages
            configure "$dir" if-needed --buildtype=debugoptimized \
                -Db_sanitize=address,undefined -Db_lundef=false -Dpython=disabled -Dmpi=disabled
            export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1
            export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
            ;;
        tsan)
            dir=build-tsan
            install_packages
            configure "$dir" if-needed --buildtype=debugoptimized -Db_sanitize=thread -Dpython=disabled -Dmpi=disabled
            # die_after_fork=0: a multiprocess child starts worker threads of its own
            # after the fork (only the forking thread is copied, so that is safe).
            export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:die_after_fork=0
            # TSan's fixed memory layout breaks on kernels with more mmap
            # randomisation than it expects; without ASLR it always fits.
            if setarch "$(uname -m)" -R true 2>/dev/null; then
                wrapper=(setarch "$(uname -m)" -R)
            fi
            ;;
        *)
            echo "usage: ./setup.sh sanitize asan|tsan [meson test args...]" >&2
            exit 2
            ;;
    esac
    shift
    build "$dir"
    say "testing $dir"
    # Sanitized code runs slower: give each test twice its time.
    "${wrapper[@]}" meson test -C "$dir" --no-rebuild --print-errorlogs --timeout-multiplier 2 "$@"
}

command=${1:-}
if [ $# -gt 0 ]; then shift; fi
case "$command" in
    "")
        set_up always
        say "done: ./setup.sh demo runs the samples, ./setup.sh test runs the tests"
        ;;
    demo)
        set_up if-needed
        say "build/samples/hello"
        build/samples/hello
        say "build/samples/pycsp_parallel (two one-second sleeps in Parallel)"
        time build/samples/pycsp_parallel
        ;;
    test)
        set_up if-needed
        meson test -C build --no-rebuild --print-errorlogs "$@"
        ;;
    sanitize)
        sanitize "$@"
        ;;
    mpich)
        install_packages libmpich-dev mpich
        configure build-mpich if-needed --buildtype=release -Dmpi=enabled -Dmpi_impl=mpich -Dpython=disabled
        build build-mpich
        say "testing build-mpich (MPICH)"
        meson test -C build-mpich --no-rebuild --print-errorlogs --suite mpi "$@"
        ;;
    bench)
        # Any gnuplot will do: a gnuplot-qt or -x11 already there is not replaced.
        if command -v gnuplot >/dev/null; then bench_packages=(${bench_packages[@]/gnuplot-nox}); fi  # (names have no spaces)
        set_up if-needed "${bench_packages[@]}"
        bench/run build "$@"
        ;;
    -h|--help|help)
        sed -n '2,/^[^#]/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        ;;
    *)
        echo "setup.sh: unknown command '$command' (try ./setup.sh --help)" >&2
        exit 2
        ;;
esac
