// avx512.h: the AVX-512 intrinsics, for the few kernels that use them directly
// (each keeps a portable loop beside them for other CPUs and for float64).
//
// GCC 12's own intrinsic headers trip -Wuninitialized / -Wmaybe-uninitialized
// wherever they are inlined (their _mm512_undefined_* helpers read an
// uninitialised register on purpose), so a file that includes this header has
// those two warnings off from here on.
#pragma once

#if defined(__AVX512F__)
#include <immintrin.h>
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
