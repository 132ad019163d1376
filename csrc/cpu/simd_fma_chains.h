// The FMA probe's inner loop, written once for every instruction set.
//
// No include guard on purpose: fma_probe.cpp includes this file once per ISA, inside a namespace
// that brings that ISA's simd:: overloads into scope and inside a `#pragma GCC target(...)` region.
//
// chains<T, C>: C independent chains x_j <- x_j * mul + add, each a dependent sequence of vector
// FMAs, run for `iters` steps; returns a sum of the chains so that no step can be optimised away.

template <typename T, int C>
__attribute__((noinline)) T chains(long iters, T seed, T mul, T add_) {
  using V = decltype(zero(T{}));
  V x[C];
#pragma GCC unroll 16
  for (int j = 0; j < C; ++j) x[j] = set1(seed + T(j));
  const V m = set1(mul), a = set1(add_);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int j = 0; j < C; ++j) x[j] = fma(x[j], m, a);
  }
#pragma GCC unroll 16
  for (int j = 1; j < C; ++j) x[0] = add(x[0], x[j]);
  return first(x[0]);
}
