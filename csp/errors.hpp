// errors.hpp: the exceptions of csp.
#pragma once

#include <exception>
#include <stdexcept>
#include <string>

namespace csp {

// ChannelPoisonException is thrown by every operation on a poisoned channel.
// A process that ends with it has ended normally.
class ChannelPoisonException : public std::exception {
public:
    explicit ChannelPoisonException(std::string channel = {});
    const char* what() const noexcept override { return message_.c_str(); }
    // channel names the poisoned channel ("" when unknown).
    const std::string& channel() const noexcept { return channel_; }

private:
    std::string channel_;
    std::string message_;
};

// ChannelRetireException is thrown by operations on a retired channel (and
// by a retired end used again). A process that ends with it has ended
// normally; ends destroyed while it unwinds retire instead of poisoning.
class ChannelRetireException : public std::exception {
public:
    explicit ChannelRetireException(std::string channel = {});
    // (With a message of its own, for a retire that is not a peer's: an end
    // used again after its own retire(), a choice whose guards all retired.)
    ChannelRetireException(std::string channel, std::string message);
    ChannelRetireException(const ChannelRetireException& other);
    ChannelRetireException& operator=(const ChannelRetireException&) = default;
    ~ChannelRetireException() override;
    const char* what() const noexcept override { return message_.c_str(); }
    const std::string& channel() const noexcept { return channel_; }

private:
    std::string channel_;
    std::string message_;
    const void* process_;  // the process it was thrown in
};

// ProcessError: a process of a Parallel or Sequence failed with an exception
// other than poison or retire. Rethrown by the combinator after all its
// processes have ended; holds the original (also as std::nested_exception).
class ProcessError : public std::runtime_error, public std::nested_exception {
public:
    // Call inside a catch block handling the original exception.
    ProcessError(std::string process, std::exception_ptr original, const std::string& what);
    // process_name names the process that failed.
    const std::string& process_name() const noexcept { return process_; }
    // original is the exception the process ended with.
    std::exception_ptr original() const noexcept { return original_; }
    // rethrow_original throws the original exception.
    [[noreturn]] void rethrow_original() const { std::rethrow_exception(original_); }

private:
    std::string process_;
    std::exception_ptr original_;
};

// DeadlockError: every process was blocked and nothing could wake any of
// them. Its message lists each blocked process and the channel it waited on.
class DeadlockError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// RemoteError: an exception that ended a process in another OS process (a
// csp::multiprocess), as the parent sees it: the original's message and the
// name of its type. (The object itself cannot cross OS processes.)
class RemoteError : public std::runtime_error {
public:
    RemoteError(std::string type_name, const std::string& message)
        : std::runtime_error(message), type_name_(std::move(type_name)) {}
    // type_name: the demangled type of the original, e.g. "std::out_of_range".
    const std::string& type_name() const noexcept { return type_name_; }

private:
    std::string type_name_;
};

// OSProcessError: the OS process of a csp::multiprocess died (killed by a
// signal, or exited with a non-zero status) before its body ended. Its
// channels were poisoned.
class OSProcessError : public std::runtime_error {
public:
    OSProcessError(int pid, int signal, int exit_status);
    int pid() const noexcept { return pid_; }
    // signal: the signal that killed it (0 if it exited).
    int signal() const noexcept { return signal_; }
    // exit_status: its exit status (-1 if a signal killed it).
    int exit_status() const noexcept { return status_; }

private:
    int pid_, signal_, status_;
};

// UsageError: misuse of csp's API, a logic error in the program rather than
// a communication outcome: an invalid buffer size, a moved-from Process run,
// a choice with nothing to choose from, a move-only value sent twice. Its
// message says what was wrong and what to do instead.
class UsageError : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

// ChannelEndError: misuse of a channel end: an empty (moved-from or
// default-constructed) end, or an end used from an OS process it was not
// handed to.
class ChannelEndError : public UsageError {
public:
    using UsageError::UsageError;
};

}  // namespace csp
