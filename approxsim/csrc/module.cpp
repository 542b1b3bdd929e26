// approxsim._cpu: the C++ CPU backend (pybind11).
//
// Bindings only: argument checks, the GIL release, and calls into the kernels of
// cpu_gemm.cpp / cpu_kernels.cpp. Every size is validated here against the arrays,
// so the kernels never read or write out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "approx_product.h"
#include "cpu_driver.h"
#include "cpu_gemm.h"
#include "cpu_int.h"
#include "cpu_kernels.h"
#include "cpu_pool.h"

namespace py = pybind11;
using approxsim::Geom;
using approxsim::IntTable;
using approxsim::Table;

namespace {

using FArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using IArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

std::string shape_str(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) s << (d ? ", " : "") << a.shape(d) << (a.ndim() == 1 ? "," : "");
  s << ")";
  return s.str();
}

// Elementwise approximate product of two same-size float32 arrays.
py::array_t<float> multiply(const FArray& a, const FArray& b, const FArray& table, int m) {
  if (a.size() != b.size())
    throw std::invalid_argument("multiply: a and b must have the same size. Received: a shape=" + shape_str(a) +
                                ", b shape=" + shape_str(b));
  if (m < 1 || m > 11 || table.size() != (py::ssize_t(1) << (2 * m)))
    throw std::invalid_argument("multiply: table must hold 2^(2M) entries, M in 1..11");
  py::array_t<float> out(a.request().shape);
  const float* pa = a.data();
  const float* pb = b.data();
  const float* pt = table.data();
  float* po = out.mutable_data();
  const py::ssize_t n = a.size();
  {
    py::gil_scoped_release release;
    for (py::ssize_t k = 0; k < n; ++k) po[k] = approxsim_mul(pa[k], pb[k], pt, m);
  }
  return out;
}

// A table prepared for the kernels; `structure` (approxsim.structure.TableStructure or None) adds
// the linear-sum form when it has one (approxsim verified it entry by entry).
std::shared_ptr<Table> prepare_table(const py::object& table, int m, const py::object& structure) {
  if (table.is_none()) {
    if (m != 0) throw std::invalid_argument("prepare_table: no table given; pass mantissa_bits=0 for the exact product");
    return std::make_shared<Table>(approxsim::make_table(nullptr, 0));
  }
  FArray t = FArray::ensure(table);
  if (!t || m < 1 || m > 11 || t.size() != (py::ssize_t(1) << (2 * m)))
    throw std::invalid_argument("prepare_table: the table must hold 2^(2M) float32 entries with M in 1..11. "
                                "Received: mantissa_bits=" + std::to_string(m));
  auto out = std::make_shared<Table>(approxsim::make_table(t.data(), m));
  if (!structure.is_none() && structure.attr("kind").cast<std::string>() == "linear-sum") {
    const FArray u = FArray::ensure(structure.attr("u")), v = FArray::ensure(structure.attr("v"));
    const auto alphas = structure.attr("alphas").cast<std::vector<float>>();
    const auto betas = structure.attr("betas").cast<std::vector<float>>();
    auto theta = structure.attr("thresholds").cast<std::vector<float>>();
    theta.insert(theta.begin(), 0.0f);
    const py::ssize_t side = py::ssize_t(1) << m;
    if (!u || !v || u.size() != side || v.size() != side || alphas.size() != betas.size() ||
        theta.size() != alphas.size() || alphas.empty() || alphas.size() > 4)
      throw std::invalid_argument("prepare_table: a linear-sum structure needs 2^M classes per side and 1..4 pieces");
    approxsim::set_linear_sum(*out, u.data(), v.data(), static_cast<int>(alphas.size()), theta.data(), alphas.data(),
                              betas.data());
  }
  return out;
}

// Batched matmul. a: (A, M, K) or (A, K, M) with transpose_a; b: (B, K, N) or (B, N, K).
// a_index/b_index give, for each output batch entry, the batch entry of a and b (broadcast).
py::array_t<float> matmul(const FArray& a, const FArray& b, const Table& t, bool ta, bool tb, const IArray& a_index,
                          const IArray& b_index) {
  if (a.ndim() != 3 || b.ndim() != 3)
    throw std::invalid_argument("matmul: a and b must be 3-D (batch, rows, cols). Received: a shape=" +
                                shape_str(a) + ", b shape=" + shape_str(b));
  const int64_t m = ta ? a.shape(2) : a.shape(1), ka = ta ? a.shape(1) : a.shape(2);
  const int64_t kb = tb ? b.shape(2) : b.shape(1), n = tb ? b.shape(1) : b.shape(2);
  if (ka != kb)
    throw std::invalid_argument("matmul: inner dimensions differ (" + std::to_string(ka) + " vs " +
                                std::to_string(kb) + "). Received: a shape=" + shape_str(a) +
                                ", b shape=" + shape_str(b));
  const int64_t batch = a_index.size();
  if (b_index.size() != batch) throw std::invalid_argument("matmul: a_index and b_index differ in length");
  const int64_t* ai = a_index.data();
  const int64_t* bi = b_index.data();
  for (int64_t q = 0; q < batch; ++q)
    if (ai[q] < 0 || ai[q] >= a.shape(0) || bi[q] < 0 || bi[q] >= b.shape(0))
      throw std::invalid_argument("matmul: batch index out of range. Received: a shape=" + shape_str(a) +
                                  ", b shape=" + shape_str(b));
  py::array_t<float> out({batch, m, n});
  float* po = out.mutable_data();
  const float* pa = a.data();
  const float* pb = b.data();
  const int64_t asz = a.shape(1) * a.shape(2), bsz = b.shape(1) * b.shape(2);
  {
    py::gil_scoped_release release;
    approxsim::matmul_batched(pa, pb, po, ai, bi, batch, asz, bsz, m, n, ka, ta, tb, t, approxsim::num_threads());
  }
  return out;
}

// A Geometry made from keyword arguments, one per field of approxsim.geometry.ConvGeometry.
Geom geometry_from_kwargs(const py::kwargs& kw) {
  Geom g{};
  size_t used = 0;
#define APPROXSIM_FROM_KW(f)                                                                    \
  if (!kw.contains(#f)) throw std::invalid_argument("Geometry: missing field '" #f "'");       \
  g.f = kw[#f].cast<int64_t>();                                                                  \
  ++used;
  APPROXSIM_GEOMETRY_FIELDS(APPROXSIM_FROM_KW)
#undef APPROXSIM_FROM_KW
  if (used != kw.size()) throw std::invalid_argument("Geometry: unknown field (the fields are those of ConvGeometry)");
  if (const char* why = approxsim_geometry_check(&g))
    throw std::invalid_argument(std::string("inconsistent convolution geometry: ") + why);
  return g;
}

void check_shape(const FArray& a, const char* what, std::initializer_list<int64_t> want, const Geom& g) {
  std::vector<int64_t> w(want);
  bool ok = a.ndim() == static_cast<py::ssize_t>(w.size());
  for (size_t d = 0; ok && d < w.size(); ++d) ok = a.shape(d) == w[d];
  if (!ok) {
    std::ostringstream s;
    s << what << " has shape " << shape_str(a) << " but the geometry needs (";
    for (size_t d = 0; d < w.size(); ++d) s << (d ? ", " : "") << w[d];
    s << "). Received: input shape=(" << g.n << ", " << g.h << ", " << g.w << ", " << g.c << "), filter shape=("
      << g.kh << ", " << g.kw << ", " << approxsim::cin_per_group(g) << ", " << g.cout << ")";
    throw std::invalid_argument(s.str());
  }
}

// The three convolutions: (first operand, second operand) -> result, each a tensor of the geometry.
enum class ConvPart { kInput, kFilter, kOutput };

std::vector<int64_t> conv_shape(const Geom& g, ConvPart part) {
  switch (part) {
    case ConvPart::kInput: return {g.n, g.h, g.w, g.c};
    case ConvPart::kFilter: return {g.kh, g.kw, approxsim::cin_per_group(g), g.cout};
    default: return {g.n, g.oh, g.ow, g.cout};
  }
}

using ConvKernel = void (*)(const float*, const float*, float*, const Geom&, const Table&, int);

template <ConvKernel kernel, ConvPart first, ConvPart second, ConvPart result>
py::array_t<float> conv(const FArray& p0, const FArray& p1, const Geom& g, const Table& t, const char* n0,
                        const char* n1) {
  const std::vector<int64_t> s0 = conv_shape(g, first), s1 = conv_shape(g, second);
  check_shape(p0, n0, {s0[0], s0[1], s0[2], s0[3]}, g);
  check_shape(p1, n1, {s1[0], s1[1], s1[2], s1[3]}, g);
  py::array_t<float> out(conv_shape(g, result));
  const float* a = p0.data();
  const float* b = p1.data();
  float* o = out.mutable_data();
  py::gil_scoped_release release;
  kernel(a, b, o, g, t, approxsim::num_threads());
  return out;
}

// --- integer multipliers (cpu_int.h): encoded operands (pattern + 1 as float), int32 or int64 results ---

using I32Array = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

std::shared_ptr<IntTable> prepare_int_table(const I32Array& table, int bits) {
  if (bits < 2 || bits > 12 || table.size() != (py::ssize_t(1) << (2 * bits)))
    throw std::invalid_argument("prepare_int_table: the table must hold 2^(2n) int32 entries with n in 2..12. "
                                "Received: bits=" + std::to_string(bits));
  return std::make_shared<IntTable>(approxsim::make_int_table(table.data(), bits));
}

// Integer codes (any integer dtype, C-contiguous) of an n-bit format to the encodings the integer
// kernels take (cpu_int.h).
template <class T>
bool encode_typed(const py::array& codes, int bits, bool is_signed, float* dst) {
  const auto typed = py::array_t<T, py::array::c_style>::ensure(codes);
  if (!typed) throw std::invalid_argument("encode_int_codes: codes must be a C-contiguous integer array");
  const T* src = typed.data();
  const int64_t n = typed.size();
  py::gil_scoped_release release;
  return approxsim::encode_codes<T>(src, n, bits, is_signed, dst, approxsim::num_threads());
}

py::array_t<float> encode_int_codes(const py::array& codes, int bits, bool is_signed) {
  if (bits < 1 || bits > 16)
    throw std::invalid_argument("encode_int_codes: bits must be in 1..16. Received: bits=" + std::to_string(bits));
  const py::dtype dt = codes.dtype();
  if (dt.kind() != 'i' && dt.kind() != 'u')
    throw std::invalid_argument("encode_int_codes: codes must hold integers. Received: dtype kind '" +
                                std::string(1, dt.kind()) + "'");
  py::array_t<float> out(std::vector<py::ssize_t>(codes.shape(), codes.shape() + codes.ndim()));
  float* dst = out.mutable_data();
  const bool u = dt.kind() == 'u';
  const int bytes = static_cast<int>(dt.itemsize());
  bool ok;
  if (bytes == 1) {
    ok = u ? encode_typed<uint8_t>(codes, bits, is_signed, dst) : encode_typed<int8_t>(codes, bits, is_signed, dst);
  } else if (bytes == 2) {
    ok = u ? encode_typed<uint16_t>(codes, bits, is_signed, dst) : encode_typed<int16_t>(codes, bits, is_signed, dst);
  } else if (bytes == 4) {
    ok = u ? encode_typed<uint32_t>(codes, bits, is_signed, dst) : encode_typed<int32_t>(codes, bits, is_signed, dst);
  } else if (bytes == 8) {
    ok = u ? encode_typed<uint64_t>(codes, bits, is_signed, dst) : encode_typed<int64_t>(codes, bits, is_signed, dst);
  } else {
    throw std::invalid_argument("encode_int_codes: codes of " + std::to_string(bytes) + " bytes");
  }
  if (!ok)
    throw std::invalid_argument("encode_int_codes: a code outside the " + std::to_string(bits) + "-bit " +
                                (is_signed ? "signed" : "unsigned") + " range");
  return out;
}

void check_codes(const FArray& a, const IntTable& t, const char* what) {
  bool ok;
  {
    py::gil_scoped_release release;
    ok = approxsim::encoded_in_table(a.data(), a.size(), t, approxsim::num_threads());
  }
  if (!ok) throw std::invalid_argument(std::string(what) + ": encoded codes must be integers in 0..2^n");
}

template <class Out>
py::array int_matmul_typed(const FArray& a, const FArray& b, const IntTable& t, bool ta, bool tb, const IArray& ai,
                           const IArray& bi, int64_t m, int64_t n, int64_t k) {
  const int64_t batch = ai.size();
  py::array_t<Out> out({batch, m, n});
  Out* po = out.mutable_data();
  const int64_t asz = a.shape(1) * a.shape(2), bsz = b.shape(1) * b.shape(2);
  py::gil_scoped_release release;
  approxsim::int_matmul_batched<Out>(a.data(), b.data(), po, ai.data(), bi.data(), batch, asz, bsz, m, n, k, ta, tb, t,
                                     approxsim::num_threads());
  return out;
}

py::array int_matmul(const FArray& a, const FArray& b, const IntTable& t, bool ta, bool tb, const IArray& a_index,
                     const IArray& b_index, bool wide) {
  if (a.ndim() != 3 || b.ndim() != 3)
    throw std::invalid_argument("int_matmul: a and b must be 3-D (batch, rows, cols). Received: a shape=" +
                                shape_str(a) + ", b shape=" + shape_str(b));
  const int64_t m = ta ? a.shape(2) : a.shape(1), ka = ta ? a.shape(1) : a.shape(2);
  const int64_t kb = tb ? b.shape(2) : b.shape(1), n = tb ? b.shape(1) : b.shape(2);
  if (ka != kb)
    throw std::invalid_argument("int_matmul: inner dimensions differ. Received: a shape=" + shape_str(a) +
                                ", b shape=" + shape_str(b));
  if (b_index.size() != a_index.size()) throw std::invalid_argument("int_matmul: a_index and b_index differ in length");
  for (int64_t q = 0; q < a_index.size(); ++q)
    if (a_index.data()[q] < 0 || a_index.data()[q] >= a.shape(0) || b_index.data()[q] < 0 ||
        b_index.data()[q] >= b.shape(0))
      throw std::invalid_argument("int_matmul: batch index out of range");
  check_codes(a, t, "int_matmul a");
  check_codes(b, t, "int_matmul b");
  return wide ? int_matmul_typed<int64_t>(a, b, t, ta, tb, a_index, b_index, m, n, ka)
              : int_matmul_typed<int32_t>(a, b, t, ta, tb, a_index, b_index, m, n, ka);
}

template <class Out>
using IntConvKernel = void (*)(const float*, const float*, Out*, const Geom&, const IntTable&, int);

template <IntConvKernel<int32_t> k32, IntConvKernel<int64_t> k64, ConvPart first, ConvPart second, ConvPart result>
py::array int_conv(const FArray& p0, const FArray& p1, const Geom& g, const IntTable& t, bool wide, const char* n0,
                   const char* n1) {
  const std::vector<int64_t> s0 = conv_shape(g, first), s1 = conv_shape(g, second);
  check_shape(p0, n0, {s0[0], s0[1], s0[2], s0[3]}, g);
  check_shape(p1, n1, {s1[0], s1[1], s1[2], s1[3]}, g);
  check_codes(p0, t, n0);
  check_codes(p1, t, n1);
  const float* a = p0.data();
  const float* b = p1.data();
  if (wide) {
    py::array_t<int64_t> out(conv_shape(g, result));
    int64_t* o = out.mutable_data();
    py::gil_scoped_release release;
    k64(a, b, o, g, t, approxsim::num_threads());
    return out;
  }
  py::array_t<int32_t> out(conv_shape(g, result));
  int32_t* o = out.mutable_data();
  py::gil_scoped_release release;
  k32(a, b, o, g, t, approxsim::num_threads());
  return out;
}

// Runs items [0, items) of a direct multiplier's operation on the thread pool, in chunks of `grain`
// items, through the library's approxsim_direct_chunk (direct_cpu.h) at address `chunk`. Returns 0,
// or the first nonzero status a chunk returned (1: the model threw a C++ exception).
int run_direct(uintptr_t chunk, int op, uintptr_t args, int64_t items, int64_t grain) {
  using Chunk = int (*)(int, const void*, long long, long long);
  if (chunk == 0 || args == 0) throw std::invalid_argument("run_direct: null function or arguments");
  if (items <= 0) return 0;
  if (grain < 1) grain = 1;
  const Chunk fn = reinterpret_cast<Chunk>(chunk);
  const void* a = reinterpret_cast<const void*>(args);
  const int64_t chunks = (items + grain - 1) / grain;
  if (chunks > (int64_t(1) << 30)) throw std::invalid_argument("run_direct: too many chunks; raise the grain");
  std::atomic<int> status{0};
  {
    py::gil_scoped_release release;
    approxsim::ThreadPool::instance().parallel_for(static_cast<int>(chunks), approxsim::num_threads(), [&](int t) {
      const int64_t begin = t * grain, end = std::min(items, begin + grain);
      const int s = fn(op, a, begin, end);
      int expected = 0;
      if (s != 0) status.compare_exchange_strong(expected, s);
    });
  }
  return status.load();
}

int level_from_name(const std::string& name) {
  if (name == "avx512_vbmi") return approxsim::kAvx512Vbmi;
  if (name == "avx512") return approxsim::kAvx512;
  if (name == "avx2") return approxsim::kAvx2;
  if (name == "portable") return approxsim::kPortable;
  if (name == "auto" || name.empty()) return -1;
  throw std::invalid_argument("SIMD level must be one of auto, avx512_vbmi, avx512, avx2, portable. Received: level=" + name);
}

}  // namespace

PYBIND11_MODULE(_cpu, mod) {
  mod.doc() = "approxsim C++ CPU backend: threaded SIMD GEMM and implicit-GEMM convolution";
  mod.def("multiply", &multiply, py::arg("a"), py::arg("b"), py::arg("table"), py::arg("mantissa_bits"),
          "Elementwise approximate product (DESIGN.md section 1) of same-size float32 arrays.");
  py::class_<Table, std::shared_ptr<Table>>(mod, "Table", "A multiplier table prepared for the CPU kernels.")
      .def_property_readonly("mantissa_bits", [](const Table& t) { return t.m; })
      .def_property_readonly("bf16_exact", [](const Table& t) { return t.bf16_exact; })
      .def_property_readonly("linear_sum", [](const Table& t) { return t.lin.valid; })
      .def_property_readonly("panel_row_bits", [](const Table& t) { return t.prow; })
      .def_property_readonly("exponent_range", [](const Table& t) { return py::make_tuple(t.emin, t.emax); });
  auto geometry = py::class_<Geom>(mod, "Geometry",
                                   "A checked convolution geometry; keyword fields as approxsim.geometry.ConvGeometry.");
  geometry.def(py::init([](const py::kwargs& kw) { return geometry_from_kwargs(kw); }));
#define APPROXSIM_FIELD(f) geometry.def_readonly(#f, &Geom::f);
  APPROXSIM_GEOMETRY_FIELDS(APPROXSIM_FIELD)
#undef APPROXSIM_FIELD
  mod.def("geometry_fields", [] {
    std::vector<std::string> names;
#define APPROXSIM_NAME(f) names.push_back(#f);
    APPROXSIM_GEOMETRY_FIELDS(APPROXSIM_NAME)
#undef APPROXSIM_NAME
    return names;
  }, "The fields of the Geometry struct, in memory order.");
  mod.def("prepare_table", &prepare_table, py::arg("table"), py::arg("mantissa_bits"),
          py::arg("structure") = py::none(),
          "Prepares a (2^M, 2^M) float32 table (or None with M=0: the exact product), with its structure.");
  mod.def("matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("table"), py::arg("transpose_a"),
          py::arg("transpose_b"), py::arg("a_index"), py::arg("b_index"));
  using P = ConvPart;
  mod.def("conv2d", [](const FArray& x, const FArray& w, const Geom& g, const Table& t) {
    return conv<approxsim::conv2d_forward, P::kInput, P::kFilter, P::kOutput>(x, w, g, t, "x", "w");
  }, py::arg("x"), py::arg("w"), py::arg("geometry"), py::arg("table"));
  mod.def("conv2d_input_grad", [](const FArray& dy, const FArray& w, const Geom& g, const Table& t) {
    return conv<approxsim::conv2d_input_grad, P::kOutput, P::kFilter, P::kInput>(dy, w, g, t, "dy", "w");
  }, py::arg("dy"), py::arg("w"), py::arg("geometry"), py::arg("table"));
  mod.def("conv2d_filter_grad", [](const FArray& x, const FArray& dy, const Geom& g, const Table& t) {
    return conv<approxsim::conv2d_filter_grad, P::kInput, P::kOutput, P::kFilter>(x, dy, g, t, "x", "dy");
  }, py::arg("x"), py::arg("dy"), py::arg("geometry"), py::arg("table"));
  mod.def("simd_level", [] { return std::string(approxsim::simd_name(approxsim::simd_level())); },
          "The SIMD path in use: 'avx512_vbmi', 'avx512', 'avx2' or 'portable'.");
  mod.def("detected_simd_level", [] { return std::string(approxsim::simd_name(approxsim::detected_simd_level())); },
          "The best SIMD path this CPU supports.");
  mod.def("set_simd_level", [](const std::string& name) { approxsim::set_simd_level(level_from_name(name)); },
          py::arg("level"), "Uses at most this SIMD path ('auto' restores the best); for tests and benchmarks.");
  mod.def("halved_512bit_ops", [] { return approxsim::halved_512bit_ops(); },
          "Whether the CPU runs 512-bit operations as two 256-bit halves (AMD Zen 4), as the method choice sees it.");
  mod.def("force_halved_512bit_ops", [](int value) { approxsim::force_halved_512bit_ops(value); }, py::arg("value"),
          "Makes the method choice see halved (1) or full-width (0) 512-bit operations; -1 detects (tests).");
  mod.def("run_direct", &run_direct, py::arg("chunk"), py::arg("op"), py::arg("args"), py::arg("items"),
          py::arg("grain"), "Runs a direct multiplier's operation on the kernels' thread pool (GIL released).");
  mod.def("force_method", [](const std::string& name) {
    static const char* names[] = {"exact", "expanded", "linear", "lookup"};
    if (name == "auto") return approxsim::force_method(-1);
    for (int i = 0; i < 4; ++i)
      if (name == names[i]) return approxsim::force_method(i);
    throw std::invalid_argument("method must be auto, exact, expanded, linear or lookup. Received: method=" + name);
  }, py::arg("method"),
     "Forces the GEMM method (tests and benchmarks; 'auto' restores the choice). 'exact': the integer "
     "kernels' computed products, for tables of exact products (other tables: as 'lookup').");
  mod.def("force_input_grad", [](const std::string& name) {
    if (name == "auto") return approxsim::force_input_grad(-1);
    if (name == "patches") return approxsim::force_input_grad(0);
    if (name == "columns") return approxsim::force_input_grad(1);
    throw std::invalid_argument("decomposition must be auto, patches or columns. Received: " + name);
  }, py::arg("decomposition"), "Forces the float input gradient's decomposition (tests; 'auto' restores the choice).");
  mod.def("method_for", [](const Table& t, int64_t rows, int64_t cols) {
    return std::string(approxsim::method_name(approxsim::choose_method(t, rows, cols)));
  }, py::arg("table"), py::arg("rows"), py::arg("cols") = 1024,
     "The GEMM method the driver chooses for a table and a problem's rows and columns (as given, untransposed).");
  py::class_<IntTable, std::shared_ptr<IntTable>>(mod, "IntTable", "An integer table prepared for the CPU kernels.")
      .def_property_readonly("bits", [](const IntTable& t) { return t.bits; })
      .def_property_readonly("max_abs", [](const IntTable& t) { return t.max_abs(); });
  mod.def("prepare_int_table", &prepare_int_table, py::arg("table"), py::arg("bits"),
          "Prepares a (2^n, 2^n) int32 table, indexed by the codes' patterns, for the integer kernels.");
  mod.def("encode_int_codes", &encode_int_codes, py::arg("codes"), py::arg("bits"), py::arg("signed"),
          "Integer codes of an n-bit format -> float32 encodings (pattern + 1) for the integer kernels, threaded.");
  mod.def("int_matmul", &int_matmul, py::arg("a"), py::arg("b"), py::arg("table"), py::arg("transpose_a"),
          py::arg("transpose_b"), py::arg("a_index"), py::arg("b_index"), py::arg("wide"),
          "Batched integer matmul on encoded codes (pattern + 1); int64 results with wide, else int32.");
  mod.def("int_conv2d", [](const FArray& x, const FArray& w, const Geom& g, const IntTable& t, bool wide) {
    return int_conv<approxsim::int_conv2d_forward<int32_t>, approxsim::int_conv2d_forward<int64_t>, P::kInput,
                    P::kFilter, P::kOutput>(x, w, g, t, wide, "x", "w");
  }, py::arg("x"), py::arg("w"), py::arg("geometry"), py::arg("table"), py::arg("wide"));
  mod.def("int_conv2d_input_grad", [](const FArray& dy, const FArray& w, const Geom& g, const IntTable& t, bool wide) {
    return int_conv<approxsim::int_conv2d_input_grad<int32_t>, approxsim::int_conv2d_input_grad<int64_t>, P::kOutput,
                    P::kFilter, P::kInput>(dy, w, g, t, wide, "dy", "w");
  }, py::arg("dy"), py::arg("w"), py::arg("geometry"), py::arg("table"), py::arg("wide"));
  mod.def("int_conv2d_filter_grad", [](const FArray& x, const FArray& dy, const Geom& g, const IntTable& t, bool wide) {
    return int_conv<approxsim::int_conv2d_filter_grad<int32_t>, approxsim::int_conv2d_filter_grad<int64_t>, P::kInput,
                    P::kOutput, P::kFilter>(x, dy, g, t, wide, "x", "dy");
  }, py::arg("x"), py::arg("dy"), py::arg("geometry"), py::arg("table"), py::arg("wide"));
  mod.def("int_method_for", [](const IntTable& t, int64_t rows) { return std::string(approxsim::int_method_for(t, rows)); },
          py::arg("table"), py::arg("rows"), "The integer GEMM method for a table and a number of rows.");
  mod.def("last_method", [] { return std::string(approxsim::last_method()); },
          "The GEMM method of this thread's last call (benchmarks print it).");
  mod.def("num_threads", &approxsim::num_threads, "Threads the kernels use ($APPROXSIM_NUM_THREADS or all cores).");
}
