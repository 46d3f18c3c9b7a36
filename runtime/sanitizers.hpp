// sanitizers.hpp: CSP_ASAN / CSP_TSAN, defined when the build runs under
// AddressSanitizer / ThreadSanitizer (GCC's and Clang's ways of saying so).
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define CSP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CSP_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CSP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CSP_TSAN 1
#endif
#endif
