/*
 * geometry.h: the convolution geometry, one struct for Python, C++, CUDA and the direct kernels.
 *
 * The fields are those of approxsim.geometry.ConvGeometry, by name and in order (the Python
 * side checks the order against approxsim_geometry_fields() at import). Python passes the
 * struct by name: pybind11 keyword construction (the CPU backend), ctypes (direct CPU
 * kernels), a NumPy structured scalar (CuPy kernels, by value).
 *
 * Valid C, C++, CUDA and NVRTC (which has no <stdint.h>: long long there).
 */
#ifndef APPROXSIM_GEOMETRY_H_
#define APPROXSIM_GEOMETRY_H_

#define APPROXSIM_GEOMETRY_FIELDS(X)                                                     \
  X(n) X(h) X(w) X(c) X(kh) X(kw) X(cout) X(groups) X(sh) X(sw) X(dh) X(dw) X(pad_top) \
  X(pad_bottom) X(pad_left) X(pad_right) X(oh) X(ow)

#if defined(__CUDACC_RTC__)
typedef long long approxsim_geom_int;
#else
#include <stdint.h>
typedef int64_t approxsim_geom_int;
#endif

#define APPROXSIM_GEOMETRY_MEMBER(f) approxsim_geom_int f;
typedef struct approxsim_geometry {
  APPROXSIM_GEOMETRY_FIELDS(APPROXSIM_GEOMETRY_MEMBER)
} approxsim_geometry;
#undef APPROXSIM_GEOMETRY_MEMBER

#if !defined(__CUDACC_RTC__) && !defined(__CUDA_ARCH__)
/*
 * Checks a geometry with overflow-checked arithmetic: every field in range, the output size
 * consistent with the padded input and the dilated filter, and every size the kernels form
 * (padded extents, element counts) below 2^62.  Returns 0 when valid, else a message.
 */
static inline const char* approxsim_geometry_check(const approxsim_geometry* g) {
  const approxsim_geom_int limit = (approxsim_geom_int)1 << 62;
  approxsim_geom_int ekh, ekw, ph, pw, t;
#define APPROXSIM_GEOM_MUL(a, b, out) (__builtin_mul_overflow((a), (b), (out)) || *(out) >= limit)
#define APPROXSIM_GEOM_ADD(a, b, out) (__builtin_add_overflow((a), (b), (out)) || *(out) >= limit)
  if (g->n < 0 || g->h < 0 || g->w < 0 || g->c < 1 || g->kh < 1 || g->kw < 1 || g->cout < 1 || g->groups < 1 ||
      g->sh < 1 || g->sw < 1 || g->dh < 1 || g->dw < 1 || g->pad_top < 0 || g->pad_bottom < 0 || g->pad_left < 0 ||
      g->pad_right < 0 || g->oh < 1 || g->ow < 1)
    return "a size, stride, dilation or padding is out of range";
  if (g->c % g->groups || g->cout % g->groups) return "channels not divisible by groups";
  if (APPROXSIM_GEOM_MUL(g->kh - 1, g->dh, &ekh) || APPROXSIM_GEOM_MUL(g->kw - 1, g->dw, &ekw))
    return "the dilated filter is too large";
  ekh += 1;
  ekw += 1;
  if (APPROXSIM_GEOM_ADD(g->h, g->pad_top, &ph) || APPROXSIM_GEOM_ADD(ph, g->pad_bottom, &ph) ||
      APPROXSIM_GEOM_ADD(g->w, g->pad_left, &pw) || APPROXSIM_GEOM_ADD(pw, g->pad_right, &pw))
    return "the padded input is too large";
  if (ph < ekh || pw < ekw || g->oh != (ph - ekh) / g->sh + 1 || g->ow != (pw - ekw) / g->sw + 1)
    return "the output size does not match the padded input and the dilated filter";
  if (APPROXSIM_GEOM_MUL(g->n, g->h, &t) || APPROXSIM_GEOM_MUL(t, g->w, &t) || APPROXSIM_GEOM_MUL(t, g->c, &t) ||
      APPROXSIM_GEOM_MUL(g->n, g->oh, &t) || APPROXSIM_GEOM_MUL(t, g->ow, &t) || APPROXSIM_GEOM_MUL(t, g->cout, &t) ||
      APPROXSIM_GEOM_MUL(g->kh, g->kw, &t) || APPROXSIM_GEOM_MUL(t, g->c, &t) || APPROXSIM_GEOM_MUL(t, g->cout, &t))
    return "an element count is too large";
#undef APPROXSIM_GEOM_MUL
#undef APPROXSIM_GEOM_ADD
  return 0;
}
#endif

#endif /* APPROXSIM_GEOMETRY_H_ */
