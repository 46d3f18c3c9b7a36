// graph.hpp: the process network as a picture (API.md, "Seeing the network").
//
//   csp::write_graph("net.dot");   // then: dot -Tsvg net.dot -o net.svg
//
// Writes the processes of the network as Graphviz DOT, one cluster per OS
// process (the program's own and its csp::multiprocess children, each asked
// for its part and given up to a second to answer, and in an MPI job every
// rank too, another second: one whose workers are all busy with processes
// that never pause, or one stopped, is drawn as not answering), each
// process with its state (running, ready to run, blocked reading, writing,
// in a choice, at a barrier, waiting for its processes, timed), grouped by
// the Parallel that runs it, the channels they wait on with name, kind and buffer
// occupancy, and the barriers they wait at with the ends enrolled; an arrow
// for each end a process holds among its arguments (writer -> channel ->
// reader, process -> barrier), a dashed one for each wait. With
// CSP_GRAPH=file.dot the same is written when a deadlock is found (the
// wait-for cycle in red; across OS processes written by whichever of them
// broke it), on SIGUSR1, and at exit (unless a deadlock's graph is there).
// Callable at any time, from any process or thread: what the others are
// doing while it looks is taken only where it held still. (While it waits
// for other OS processes or ranks, a process that calls it keeps its
// worker.)
#pragma once

#include <string>

namespace csp {

// write_graph: throws csp::UsageError when the file cannot be written.
void write_graph(const std::string& path);

}  // namespace csp
