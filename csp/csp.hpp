// csp.hpp: the umbrella header of csp, CSP process networks for C++20.
//
//   csp::Channel<T>, csp::ChannelIn<T>, csp::ChannelOut<T>, csp::buffer(n)
//   csp::process(f), csp::Process<R>, Parallel, Sequence, Spawn, proc * n
//   csp::sleep, csp::io, retire/poison, and the exceptions in errors.hpp.
//   csp::multiprocess(f): processes in OS processes of their own (multiprocess.hpp).
//   Guards, csp::Alternation, AltSelect/PriSelect/FairSelect (alternation.hpp).
//   csp::Barrier, csp::BarrierEnd (barrier.hpp).
//   csp::lib: ready-made processes (library.hpp); csp::pipeline (pipeline.hpp).
//   csp::write_graph: the network as Graphviz DOT (graph.hpp).
#pragma once

#include "csp/alternation.hpp"
#include "csp/barrier.hpp"
#include "csp/channel.hpp"
#include "csp/errors.hpp"
#include "csp/graph.hpp"
#include "csp/library.hpp"
#include "csp/multiprocess.hpp"
#include "csp/pipeline.hpp"
#include "csp/process.hpp"
#include "csp/sim.hpp"
