// Native CPU steps for GridLSTM (gridlstm.nn.kernels.native loads this file).
//
// Three things, each the fused counterpart of a Python path that stays the reference:
//  * lstm_gates / lstm_gates_backward: the LSTM arithmetic after the gate GEMM in one pass
//    (gridlstm.nn.block.lstm_pointwise without peepholes or coupled gates);
//  * hyperplane_forward / hyperplane_backward: every step of a hyperplane plan (gather, GEMM,
//    gates, scatter), the hand-written steps' loop (kernels/handwritten.py) in C++;
//  * scan_forward / scan_backward and scan_priority_forward / scan_priority_backward: a
//    2-LSTM layer's time loop (backends/scan.py), without and with time priority.
// The weight gradients are one GEMM per transform at the end over all steps' rows.
//
// Layouts follow the Python code: gate pre-activations are rows of n x 4 x d (i, f, g, o per
// dimension), state vectors are dimension-major (n, rows, d). What a backward needs of a
// forward is kept as "act" rows of n x 5 x d: sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
// and t, where t = tanh(m') (standard form, h' = o t) or t = h' = tanh(o m') (paper form).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/vec.h>
#include <c10/core/InferenceMode.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

namespace {

using at::Tensor;
template <typename T>
using Vec = at::vec::Vectorized<T>;

// Large buffers (saved activations, gradients, workspaces) come from a small pool of this
// library's own earlier buffers that nothing references any more. Training repeats the same
// shapes every step, and fresh multi-megabyte allocations are returned to the system and
// faulted back in page by page each time: on the 2-core development machine those page
// faults measured as much time as the gate arithmetic. Buffers under 1 MiB use the ordinary
// allocator. The pool holds at most kPoolEntries buffers and kPoolBytes in all, dropping the
// least recently used free ones first, so a run of ever-new shapes keeps at most that much
// idle memory; `pool_release` frees every idle buffer. Under inference mode nothing is pooled:
// an inference tensor handed to a later autograd call cannot be saved for backward or
// written in place there.
constexpr int64_t kPoolMinBytes = int64_t(1) << 20;
constexpr int64_t kPoolBytes = int64_t(512) << 20;
constexpr size_t kPoolEntries = 64;

struct Pool {
  std::mutex mutex;
  std::vector<Tensor> held;  // least recently used first
};

Pool& pool_instance() {
  static Pool pool;
  return pool;
}

bool unused(const Tensor& t) { return t.storage().use_count() == 1; }

// (buffers held, bytes held, bytes of those nothing else references), for tests.
std::vector<int64_t> pool_stats() {
  Pool& p = pool_instance();
  std::lock_guard<std::mutex> lock(p.mutex);
  int64_t bytes = 0, idle = 0;
  for (const auto& t : p.held) {
    bytes += static_cast<int64_t>(t.nbytes());
    if (unused(t)) idle += static_cast<int64_t>(t.nbytes());
  }
  return {static_cast<int64_t>(p.held.size()), bytes, idle};
}

// Drops every buffer nothing else references; returns the bytes released.
int64_t pool_release() {
  Pool& p = pool_instance();
  std::lock_guard<std::mutex> lock(p.mutex);
  int64_t freed = 0;
  for (auto it = p.held.begin(); it != p.held.end();) {
    if (unused(*it)) {
      freed += static_cast<int64_t>(it->nbytes());
      it = p.held.erase(it);
    } else {
      ++it;
    }
  }
  return freed;
}

Tensor pooled_empty(at::IntArrayRef shape, const at::TensorOptions& options) {
  int64_t numel = 1;
  for (auto size : shape) numel *= size;
  const int64_t bytes = numel * static_cast<int64_t>(c10::elementSize(
                                    c10::typeMetaToScalarType(options.dtype())));
  if (bytes < kPoolMinBytes || c10::InferenceMode::is_enabled())
    return at::empty(shape, options);
  Pool& p = pool_instance();
  std::vector<Tensor>& pool = p.held;
  std::lock_guard<std::mutex> lock(p.mutex);
  for (auto it = pool.begin(); it != pool.end(); ++it) {
    if (it->numel() == numel && it->dtype() == options.dtype() && unused(*it) &&
        !it->is_inference()) {
      Tensor found = *it;  // nothing else references it: reuse, now the most recent
      pool.erase(it);
      pool.push_back(found);
      return found.view(shape);
    }
  }
  Tensor fresh = at::empty({numel}, options);
  int64_t total = bytes;
  for (const auto& held : pool) total += static_cast<int64_t>(held.nbytes());
  for (auto it = pool.begin(); it != pool.end() &&
                               (total > kPoolBytes || pool.size() >= kPoolEntries);) {
    if (unused(*it)) {
      total -= static_cast<int64_t>(it->nbytes());
      it = pool.erase(it);
    } else {
      ++it;
    }
  }
  if (total <= kPoolBytes && pool.size() < kPoolEntries) pool.push_back(fresh);
  return fresh.view(shape);
}

// Rows of the gate arithmetic in one place: row `row` of a step lives at
// base + (row / per_g) * g_stride + (row % per_g) * row_size, which covers contiguous
// (rows, .) tensors (per_g = rows) and per-layer blocks of a longer buffer.
struct Rows {
  int64_t per_g;
  int64_t g_stride;  // in rows
  int64_t at(int64_t row) const { return (row / per_g) * g_stride + row % per_g; }
};

// exp within 20 units of the last place in float32 (ATen's inlined polynomial, 3x faster
// than the 1-unit Sleef call here); float64 keeps the 1-unit exp. The polynomial clamps its
// input, which would turn NaN into a number (sigmoid(NaN) near 0, tanh(NaN) = -1) and
// exp(+-inf) into finite values (sigmoid(-inf) > 0, so 0 * inf memories would not give NaN).
// `Exact` gives NaN and the infinities exp's own values back, so every NaN and inf pattern
// is the PyTorch steps' one; the gate loop takes it only for chunks with a value that is not
// finite (`not_finite`), so finite inputs pay one check per chunk instead of three blends
// per exp.
template <typename T, bool Exact>
inline Vec<T> exp_(const Vec<T>& x) {
  if constexpr (!Exact) {
    return x.exp_u20();
  } else {
    const Vec<T> inf(std::numeric_limits<T>::infinity());
    Vec<T> e = Vec<T>::blendv(x.exp_u20(), x, x.isnan());
    e = Vec<T>::blendv(e, inf, x == inf);
    return Vec<T>::blendv(e, Vec<T>(T(0)), x == inf.neg());
  }
}

template <typename T, bool Exact>
inline Vec<T> sigmoid(const Vec<T>& x) {
  return (Vec<T>(T(1)) + exp_<T, Exact>(x.neg())).reciprocal();
}

// tanh as 2 sigmoid(2x) - 1, as the PyTorch steps compute it on a CPU: one exp, where the
// vectorised tanh measured 3-4x slower (absolute error about one unit of the last place).
template <typename T, bool Exact>
inline Vec<T> tanh_(const Vec<T>& x) {
  return Vec<T>(T(2)) / (Vec<T>(T(1)) + exp_<T, Exact>(x * Vec<T>(T(-2)))) - Vec<T>(T(1));
}

// Whether any lane of the vectors is NaN or infinite: x - x is NaN exactly there, and a sum
// keeps it. (Lanes past a partial load are zero.) From finite z and m no NaN can arise, and
// an infinity only by overflow of m', whose tanh the fast exp gives exactly (+-1), so this
// check on the inputs decides the whole chunk.
template <typename T>
inline bool not_finite(const Vec<T>& a, const Vec<T>& b, const Vec<T>& c, const Vec<T>& d,
                       const Vec<T>& m) {
  const Vec<T> probe = (a - a) + (b - b) + (c - c) + (d - d) + (m - m);
  return probe.isnan().zero_mask() != (1 << Vec<T>::size()) - 1;
}

// One chunk of the gate arithmetic: h', m' and what the backward keeps.
template <typename T, bool Exact>
inline void gate_chunk(const Vec<T>& zi, const Vec<T>& zf, const Vec<T>& zg, const Vec<T>& zo,
                       const Vec<T>& m, bool paper, Vec<T>* out) {
  const auto i = sigmoid<T, Exact>(zi), f = sigmoid<T, Exact>(zf);
  const auto g = tanh_<T, Exact>(zg), o = sigmoid<T, Exact>(zo);
  // Spelled as the fused multiply-add the compiler chose for this expression before the
  // loop was split into chunks: the same rounding whatever the compiler contracts.
  const auto mnew = at::vec::fmadd(f, m, i * g);
  const Vec<T> t = paper ? tanh_<T, Exact>(o * mnew) : tanh_<T, Exact>(mnew);
  out[0] = paper ? t : o * t;  // h'
  out[1] = mnew;
  out[2] = i, out[3] = f, out[4] = g, out[5] = o, out[6] = t;
}

// Forward gate arithmetic for rows [begin, end): z rows (n*4d) at z_rows; m, h', m' per
// dimension k as (rows, d) at m[k], h[k], mn[k]; act rows (n*5d) at act_rows (may be null).
template <typename T>
void gates_forward(const T* z, Rows z_rows, const std::vector<const T*>& m,
                   const std::vector<T*>& h, const std::vector<T*>& mn, T* act, Rows act_rows,
                   int64_t rows, int64_t d, bool paper) {
  const int64_t n = static_cast<int64_t>(m.size());
  const int64_t width = n * 4 * d;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, width));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      for (int64_t k = 0; k < n; ++k) {
        const T* zr = z + z_rows.at(row) * width + k * 4 * d;
        const T* mr = m[k] + row * d;
        T* hr = h[k] + row * d;
        T* mnr = mn[k] + row * d;
        T* ar = act ? act + act_rows.at(row) * n * 5 * d + k * 5 * d : nullptr;
        for (int64_t j = 0; j < d; j += Vec<T>::size()) {
          const int64_t c = std::min<int64_t>(Vec<T>::size(), d - j);
          const auto zi = Vec<T>::loadu(zr + j, c), zf = Vec<T>::loadu(zr + d + j, c);
          const auto zg = Vec<T>::loadu(zr + 2 * d + j, c), zo = Vec<T>::loadu(zr + 3 * d + j, c);
          const auto mv = Vec<T>::loadu(mr + j, c);
          Vec<T> out[7];
          if (not_finite(zi, zf, zg, zo, mv))
            gate_chunk<T, true>(zi, zf, zg, zo, mv, paper, out);
          else
            gate_chunk<T, false>(zi, zf, zg, zo, mv, paper, out);
          out[0].store(hr + j, c);
          out[1].store(mnr + j, c);
          if (ar) {
            for (int q = 0; q < 5; ++q) out[2 + q].store(ar + q * d + j, c);
          }
        }
      }
    }
  });
}

// Backward of gates_forward: dh, dmn per dimension (null: zero); m (previous memory) and
// mn (new memory, read in the paper form) per dimension; writes dz rows (n*4d) and dm.
template <typename T>
void gates_backward(const std::vector<const T*>& dh, const std::vector<const T*>& dmn,
                    const T* act, Rows act_rows, const std::vector<const T*>& m,
                    const std::vector<const T*>& mn, T* dz, Rows dz_rows,
                    const std::vector<T*>& dm, int64_t rows, int64_t d, bool paper) {
  const int64_t n = static_cast<int64_t>(m.size());
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, n * 4 * d));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    const Vec<T> one(T(1));
    for (int64_t row = begin; row < end; ++row) {
      for (int64_t k = 0; k < n; ++k) {
        const T* ar = act + act_rows.at(row) * n * 5 * d + k * 5 * d;
        T* dzr = dz + dz_rows.at(row) * n * 4 * d + k * 4 * d;
        for (int64_t j = 0; j < d; j += Vec<T>::size()) {
          const int64_t c = std::min<int64_t>(Vec<T>::size(), d - j);
          auto i = Vec<T>::loadu(ar + j, c);
          auto f = Vec<T>::loadu(ar + d + j, c);
          auto g = Vec<T>::loadu(ar + 2 * d + j, c);
          auto o = Vec<T>::loadu(ar + 3 * d + j, c);
          auto t = Vec<T>::loadu(ar + 4 * d + j, c);
          Vec<T> gh = dh[k] ? Vec<T>::loadu(dh[k] + row * d + j, c) : Vec<T>(T(0));
          Vec<T> dmv = dmn[k] ? Vec<T>::loadu(dmn[k] + row * d + j, c) : Vec<T>(T(0));
          Vec<T> d_o;
          if (paper) {
            auto dp = gh * (one - t * t);
            dmv = dmv + dp * o;
            d_o = dp * Vec<T>::loadu(mn[k] + row * d + j, c);
          } else {
            dmv = dmv + gh * o * (one - t * t);
            d_o = gh * t;
          }
          (dmv * g * i * (one - i)).store(dzr + j, c);
          (dmv * Vec<T>::loadu(m[k] + row * d + j, c) * f * (one - f)).store(dzr + d + j, c);
          (dmv * i * (one - g * g)).store(dzr + 2 * d + j, c);
          (d_o * o * (one - o)).store(dzr + 3 * d + j, c);
          (dmv * f).store(dm[k] + row * d + j, c);
        }
      }
    }
  });
}

// ---------------------------------------------------------------- the gate op

// z (M, n*4d), m (n, M, d) -> h' (n, M, d), m' (n, M, d), act (M, n*5d).
std::tuple<Tensor, Tensor, Tensor> lstm_gates(const Tensor& z_in, const Tensor& m_in,
                                              bool paper) {
  TORCH_CHECK(m_in.dim() == 3 && z_in.dim() == 2, "lstm_gates: z (M, n*4d) and m (n, M, d)");
  const int64_t n = m_in.size(0), M = m_in.size(1), d = m_in.size(2);
  TORCH_CHECK(z_in.size(0) == M && z_in.size(1) == n * 4 * d,
              "lstm_gates: z must be (M, n*4d) for m (n, M, d)");
  TORCH_CHECK(m_in.scalar_type() == at::kFloat || m_in.scalar_type() == at::kDouble,
              "lstm_gates: m must be float32 or float64");
  // bf16 (or other) pre-activations: the arithmetic in the state's type.
  Tensor z = z_in.to(m_in.scalar_type()).contiguous();
  Tensor m = m_in.contiguous();
  Tensor h = pooled_empty(m.sizes(), m.options()), mn = pooled_empty(m.sizes(), m.options());
  Tensor act = pooled_empty({M, n * 5 * d}, m.options());
  AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "lstm_gates", [&] {
    std::vector<const scalar_t*> mp;
    std::vector<scalar_t*> hp, mnp;
    for (int64_t k = 0; k < n; ++k) {
      mp.push_back(m.const_data_ptr<scalar_t>() + k * M * d);
      hp.push_back(h.data_ptr<scalar_t>() + k * M * d);
      mnp.push_back(mn.data_ptr<scalar_t>() + k * M * d);
    }
    gates_forward<scalar_t>(z.const_data_ptr<scalar_t>(), {M, M}, mp, hp, mnp,
                            act.data_ptr<scalar_t>(), {M, M}, M, d, paper);
  });
  return {h, mn, act};
}

// Gradients of lstm_gates: (dz (M, n*4d), dm (n, M, d)).
std::tuple<Tensor, Tensor> lstm_gates_backward(const Tensor& dh_in, const Tensor& dmn_in,
                                               const Tensor& act_in, const Tensor& m_in,
                                               const Tensor& mn_in, bool paper) {
  TORCH_CHECK(m_in.dim() == 3, "lstm_gates_backward: m must be (n, M, d)");
  const int64_t n = m_in.size(0), M = m_in.size(1), d = m_in.size(2);
  for (const Tensor* t : {&dh_in, &dmn_in, &mn_in})
    TORCH_CHECK(t->sizes() == m_in.sizes() && t->scalar_type() == m_in.scalar_type(),
                "lstm_gates_backward: dh, dm_new and m_new must match m");
  TORCH_CHECK(act_in.dim() == 2 && act_in.size(0) == M && act_in.size(1) == n * 5 * d &&
                  act_in.scalar_type() == m_in.scalar_type(),
              "lstm_gates_backward: act must be (M, n*5d) in m's dtype");
  Tensor act = act_in.contiguous(), m = m_in.contiguous(), mn = mn_in.contiguous();
  Tensor dh = dh_in.contiguous(), dmn = dmn_in.contiguous();
  Tensor dz = pooled_empty({M, n * 4 * d}, m.options());
  Tensor dm = pooled_empty(m.sizes(), m.options());
  AT_DISPATCH_FLOATING_TYPES(m.scalar_type(), "lstm_gates_backward", [&] {
    std::vector<const scalar_t*> dhp, dmnp, mp, mnp;
    std::vector<scalar_t*> dmp;
    for (int64_t k = 0; k < n; ++k) {
      dhp.push_back(dh.const_data_ptr<scalar_t>() + k * M * d);
      dmnp.push_back(dmn.const_data_ptr<scalar_t>() + k * M * d);
      mp.push_back(m.const_data_ptr<scalar_t>() + k * M * d);
      mnp.push_back(mn.const_data_ptr<scalar_t>() + k * M * d);
      dmp.push_back(dm.data_ptr<scalar_t>() + k * M * d);
    }
    gates_backward<scalar_t>(dhp, dmnp, act.const_data_ptr<scalar_t>(), {M, M}, mp, mnp,
                             dz.data_ptr<scalar_t>(), {M, M}, dmp, M, d, paper);
  });
  return {dz, dm};
}

// ---------------------------------------------------------------- hyperplane steps

// What both directions read of a plan.
struct Plan {
  int64_t D, G, B, d, total, steps;
  std::vector<int64_t> slots, starts, group_dims, group_first, group_size, offsets;
  // offsets[s]: step s's first row of a per-layer block in H, act and dz (B * sum r).
  Plan(at::IntArrayRef slots_, at::IntArrayRef starts_, at::IntArrayRef dims_,
       at::IntArrayRef sizes_, int64_t groups, int64_t batch, int64_t width)
      : G(groups), B(batch), d(width), steps(slots_.size()), slots(slots_.vec()),
        starts(starts_.vec()), group_dims(dims_.vec()), group_size(sizes_.vec()) {
    TORCH_CHECK(starts.size() == slots.size() + 1, "hyperplane: starts must have steps + 1");
    D = slots.empty() || slots[0] == 0 ? 1 : starts[1] / slots[0];
    total = starts.back();
    int64_t first = 0;
    for (auto size : group_size) {
      group_first.push_back(first);
      first += size;
    }
    TORCH_CHECK(first == static_cast<int64_t>(group_dims.size()), "hyperplane: group sizes");
    int64_t at = 0;
    for (auto R : slots) {
      offsets.push_back(at);
      at += B * (R / G);
    }
    offsets.push_back(at);
  }
  int64_t dim(int64_t group, int64_t k) const { return group_dims[group_first[group] + k]; }
};

// The rows pick_h of every step's h, then the rows pick_m of its m; saved for the backward: per transform group
// H (G, B sum r, D d) and act (G, B sum r, n 5d); the gathered m (total, B, d); dropout
// noise per step after the first.
std::tuple<Tensor, std::vector<Tensor>, std::vector<Tensor>, Tensor, std::vector<Tensor>>
hyperplane_forward(const Tensor& stat, at::TensorList weights, at::TensorList biases,
                   at::TensorList index_h, at::TensorList index_m, at::IntArrayRef slots,
                   at::IntArrayRef starts, at::IntArrayRef group_dims,
                   at::IntArrayRef group_sizes, int64_t groups, double dropout, bool keep,
                   const Tensor& pick_h, const Tensor& pick_m) {
  TORCH_CHECK(stat.dim() == 4 && stat.size(0) == 2, "hyperplane: static must be (2, S, B, d)");
  const Plan p(slots, starts, group_dims, group_sizes, groups, stat.size(2), stat.size(3));
  const int64_t D = p.D, G = p.G, B = p.B, d = p.d, S = stat.size(1);
  const int64_t cell = B * d;
  // Sizes here; the index values are checked once per plan layout, in Python.
  TORCH_CHECK(index_h.size() == slots.size() && index_m.size() == slots.size(),
              "hyperplane: one index tensor per step");
  for (size_t s = 0; s < slots.size(); ++s)
    for (const Tensor* t : {&index_h[s], &index_m[s]})
      TORCH_CHECK(t->scalar_type() == at::kLong && t->is_contiguous() && t->numel() == D * slots[s],
                  "hyperplane: step ", s, "'s indices must be D * R contiguous int64 rows");
  TORCH_CHECK(weights.size() == group_sizes.size() && biases.size() == group_sizes.size(),
              "hyperplane: one weight and one bias per transform group");
  for (size_t t = 0; t < weights.size(); ++t) {
    TORCH_CHECK(weights[t].sizes() == at::IntArrayRef({G, D * d, group_sizes[t] * 4 * d}) &&
                    weights[t].scalar_type() == stat.scalar_type(),
                "hyperplane: transform group ", t, "'s weight must be (G, D d, n 4d) in the "
                "state's dtype");
    TORCH_CHECK(biases[t].numel() == 0 || (biases[t].numel() == G * group_sizes[t] * 4 * d &&
                                           biases[t].scalar_type() == stat.scalar_type()),
                "hyperplane: transform group ", t, "'s bias must be (G, 1, n 4d)");
  }
  Tensor buffer = pooled_empty({2, p.total + S, B, d}, stat.options());
  buffer.narrow(1, p.total, S).copy_(stat);
  Tensor m_all = pooled_empty({p.total, B, d}, stat.options());
  std::vector<Tensor> Hs, acts, noises;
  for (size_t t = 0; t < group_sizes.size(); ++t) {
    Hs.push_back(pooled_empty({G, p.offsets.back(), D * d}, stat.options()));
    if (keep)  // inference keeps no activations
      acts.push_back(pooled_empty({G, p.offsets.back(), group_sizes[t] * 5 * d}, stat.options()));
  }
  Tensor noise;  // the previous step's dropout factors on its depth outputs
  // One workspace for every step's pre-activations (fresh large buffers per step cost page
  // faults that measured as much as the arithmetic).
  const int64_t widest = *std::max_element(group_sizes.begin(), group_sizes.end()) * 4 * d;
  const int64_t most = *std::max_element(p.slots.begin(), p.slots.end()) / G * B;
  Tensor workspace = pooled_empty({G * most * widest}, stat.options());
  AT_DISPATCH_FLOATING_TYPES(stat.scalar_type(), "hyperplane_forward", [&] {
    using T = scalar_t;
    T* bh = buffer.data_ptr<T>();
    T* bm = bh + (p.total + S) * cell;
    for (int64_t s = 0; s < p.steps; ++s) {
      const int64_t R = p.slots[s], r = R / G, rows = R * B, at = p.starts[s];
      const int64_t* ih = index_h[s].const_data_ptr<int64_t>();
      const int64_t* im = index_m[s].const_data_ptr<int64_t>();
      T* m_in = m_all.data_ptr<T>() + at * cell;
      for (int64_t q = 0; q < D * R; ++q)
        std::memcpy(m_in + q * cell, bm + im[q] * cell, cell * sizeof(T));
      // H (G, r B, D d) of this step, in the first group's H buffer; row j*B + b.
      Tensor H = Hs[0].narrow(1, p.offsets[s], r * B);
      T* Hp = H.data_ptr<T>();
      const int64_t g_stride = p.offsets.back() * D * d;  // elements per layer block
      const T* np = noise.defined() ? noise.const_data_ptr<T>() : nullptr;
      const int64_t first = s > 0 ? p.starts[s - 1] + (D - 1) * p.slots[s - 1] : 0;
      for (int64_t dim = 0; dim < D; ++dim) {
        for (int64_t j = 0; j < R; ++j) {
          const int64_t pick = ih[dim * R + j];
          const T* src = bh + pick * cell;
          const T* mask = (np && dim == D - 1 && pick < p.total) ? np + (pick - first) * cell
                                                                 : nullptr;
          T* dst = Hp + (j / r) * g_stride + (j % r) * B * D * d + dim * d;
          for (int64_t b = 0; b < B; ++b) {
            T* out = dst + b * D * d;
            const T* in = src + b * d;
            if (mask) {
              for (int64_t e = 0; e < d; ++e) out[e] = in[e] * mask[b * d + e];
            } else {
              std::memcpy(out, in, d * sizeof(T));
            }
          }
        }
      }
      for (size_t t = 0; t < group_sizes.size(); ++t) {
        const int64_t n = group_sizes[t];
        Tensor Ht = Hs[t].narrow(1, p.offsets[s], r * B);
        if (t > 0) {  // the previous group's H with its new h in place, in one pass
          std::vector<const T*> fresh(D, nullptr);  // per dimension: its new h, if any
          for (int64_t k = 0; k < group_sizes[t - 1]; ++k) {
            const int64_t dim = p.dim(t - 1, k);
            fresh[dim] = bh + (at + dim * R) * cell;
          }
          const T* Hprev = Hs[t - 1].narrow(1, p.offsets[s], r * B).const_data_ptr<T>();
          T* Hq = Ht.data_ptr<T>();
          for (int64_t row = 0; row < rows; ++row) {
            const int64_t where = (row / (r * B)) * g_stride + (row % (r * B)) * D * d;
            for (int64_t dim = 0; dim < D; ++dim) {
              const T* src = fresh[dim] ? fresh[dim] + row * d : Hprev + where + dim * d;
              std::memcpy(Hq + where + dim * d, src, d * sizeof(T));
            }
          }
        }
        Tensor z = workspace.narrow(0, 0, G * r * B * n * 4 * d).view({G, r * B, n * 4 * d});
        if (biases[t].numel())
          at::baddbmm_out(z, biases[t], Ht, weights[t]);
        else
          at::bmm_out(z, Ht, weights[t]);
        std::vector<const T*> mp;
        std::vector<T*> hp, mnp;
        for (int64_t k = 0; k < n; ++k) {
          const int64_t dim = p.dim(t, k);
          mp.push_back(m_in + dim * R * cell);
          hp.push_back(bh + (at + dim * R) * cell);
          mnp.push_back(bm + (at + dim * R) * cell);
        }
        T* ap = keep ? acts[t].data_ptr<T>() + p.offsets[s] * n * 5 * d : nullptr;
        gates_forward<T>(z.const_data_ptr<T>(), {rows, rows}, mp, hp, mnp, ap,
                         {r * B, p.offsets.back()}, rows, d, false);
      }
      if (dropout > 0 && s + 1 < p.steps) {
        // Drawn as the Python steps draw it (same shape and order): the same units drop.
        noise = at::empty({R, B, d}, stat.options()).bernoulli_(1 - dropout).div_(1 - dropout);
        if (keep) noises.push_back(noise);
      } else {
        noise = Tensor();
      }
    }
  });
  // Only the rows the caller reads (top outputs, final states): their gradients are all a
  // backward receives, so no gradient of the whole buffer is ever materialised.
  Tensor picked = at::cat({buffer[0].index_select(0, pick_h), buffer[1].index_select(0, pick_m)});
  if (!keep) {
    Hs.clear();
    m_all = at::empty({0}, stat.options());
  }
  return {picked, Hs, acts, m_all, noises};
}

// Gradients of hyperplane_forward: (d static (2, S, B, d), d weights, d biases).
std::tuple<Tensor, std::vector<Tensor>, std::vector<Tensor>> hyperplane_backward(
    const Tensor& grad, at::TensorList weights, at::TensorList Hs, at::TensorList acts,
    const Tensor& m_all, at::TensorList noises, at::TensorList index_h, at::TensorList index_m,
    at::IntArrayRef slots, at::IntArrayRef starts, at::IntArrayRef group_dims,
    at::IntArrayRef group_sizes, int64_t groups, int64_t static_rows, at::IntArrayRef has_bias,
    const Tensor& pick_h, const Tensor& pick_m) {
  const Plan p(slots, starts, group_dims, group_sizes, groups, grad.size(1), grad.size(2));
  const int64_t D = p.D, G = p.G, B = p.B, d = p.d, cell = B * d;
  const size_t count = group_sizes.size();
  Tensor dbuffer = pooled_empty({2, p.total + static_rows, B, d}, grad.options());
  dbuffer.zero_();
  dbuffer[0].index_add_(0, pick_h, grad.narrow(0, 0, pick_h.size(0)));
  dbuffer[1].index_add_(0, pick_m, grad.narrow(0, pick_h.size(0), pick_m.size(0)));
  std::vector<Tensor> dzs, weights_t;
  for (size_t t = 0; t < count; ++t) {
    dzs.push_back(pooled_empty({G, p.offsets.back(), group_sizes[t] * 4 * d}, grad.options()));
    weights_t.push_back(weights[t].transpose(1, 2));
  }
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "hyperplane_backward", [&] {
    using T = scalar_t;
    T* dbh = dbuffer.data_ptr<T>();
    T* dbm = dbh + (p.total + static_rows) * cell;
    const T* bm = m_all.const_data_ptr<T>();
    // Workspaces for every step (see hyperplane_forward).
    const int64_t most = *std::max_element(p.slots.begin(), p.slots.end());
    Tensor dh_t = pooled_empty({D * most * cell}, grad.options());
    Tensor dm_in_t = pooled_empty({D * most * cell}, grad.options());
    Tensor dH_t = pooled_empty({most * B * D * d}, grad.options());
    for (int64_t s = p.steps - 1; s >= 0; --s) {
      const int64_t R = p.slots[s], r = R / G, rows = R * B, at = p.starts[s];
      T* dh = dh_t.data_ptr<T>();
      T* dm_in = dm_in_t.data_ptr<T>();
      std::memcpy(dh, dbh + at * cell, D * R * cell * sizeof(T));
      const T* dm_out = dbm + at * cell;
      for (int64_t t = static_cast<int64_t>(count) - 1; t >= 0; --t) {
        const int64_t n = group_sizes[t];
        std::vector<const T*> dhp, dmnp, mp, mnp;
        std::vector<T*> dmp;
        for (int64_t k = 0; k < n; ++k) {
          const int64_t dim = p.dim(t, k);
          dhp.push_back(dh + dim * R * cell);
          dmnp.push_back(dm_out + dim * R * cell);
          mp.push_back(bm + (at + dim * R) * cell);
          mnp.push_back(nullptr);  // standard form only here
          dmp.push_back(dm_in + dim * R * cell);
        }
        Tensor dz = dzs[t].narrow(1, p.offsets[s], r * B);
        const Rows blocks{r * B, p.offsets.back()};
        gates_backward<T>(dhp, dmnp, acts[t].const_data_ptr<T>() + p.offsets[s] * n * 5 * d,
                          blocks, mp, mnp, dz.data_ptr<T>(), blocks, dmp, rows, d, false);
        Tensor dH = dH_t.narrow(0, 0, rows * D * d).view({G, r * B, D * d});
        at::bmm_out(dH, dz, weights_t[t]);
        const T* dHp = dH.const_data_ptr<T>();
        // This group's new h replaced the gathered one: from here on it reaches the
        // output only through H.
        for (int64_t k = 0; k < n; ++k)
          std::memset(dh + p.dim(t, k) * R * cell, 0, R * cell * sizeof(T));
        for (int64_t dim = 0; dim < D; ++dim) {
          T* dst = dh + dim * R * cell;
          for (int64_t q = 0; q < rows; ++q) {
            T* o = dst + q * d;
            const T* i = dHp + q * D * d + dim * d;
            for (int64_t e = 0; e < d; ++e) o[e] += i[e];
          }
        }
      }
      if (s > 0 && !noises.empty()) {
        const T* np = noises[s - 1].const_data_ptr<T>();
        const int64_t* ih = index_h[s].const_data_ptr<int64_t>();
        const int64_t first = p.starts[s - 1] + (D - 1) * p.slots[s - 1];
        for (int64_t j = 0; j < R; ++j) {
          const int64_t pick = ih[(D - 1) * R + j];
          if (pick >= p.total) continue;
          T* o = dh + ((D - 1) * R + j) * cell;
          const T* mask = np + (pick - first) * cell;
          for (int64_t e = 0; e < cell; ++e) o[e] *= mask[e];
        }
      }
      // Gathers read only earlier steps' outputs and static rows: routed back before
      // those steps run backward.
      const int64_t* ih = index_h[s].const_data_ptr<int64_t>();
      const int64_t* im = index_m[s].const_data_ptr<int64_t>();
      for (int64_t q = 0; q < D * R; ++q) {
        T* oh = dbh + ih[q] * cell;
        const T* sh = dh + q * cell;
        for (int64_t e = 0; e < cell; ++e) oh[e] += sh[e];
        T* om = dbm + im[q] * cell;
        const T* sm = dm_in + q * cell;
        for (int64_t e = 0; e < cell; ++e) om[e] += sm[e];
      }
    }
  });
  std::vector<Tensor> dweights, dbiases;
  for (size_t t = 0; t < count; ++t) {
    dweights.push_back(at::bmm(Hs[t].transpose(1, 2), dzs[t]));
    dbiases.push_back(has_bias[t] ? dzs[t].sum(1, true) : at::empty({0}, grad.options()));
  }
  return {dbuffer.narrow(1, p.total, static_rows), dweights, dbiases};
}

// ---------------------------------------------------------------- scan time loops

// Rows where real (B, 1) is false keep the state (padding steps).
template <typename T>
void keep_state(const bool* real, T* h, T* m, const T* h_prev, const T* m_prev, int64_t B,
                int64_t d) {
  for (int64_t b = 0; b < B; ++b) {
    if (real[b]) continue;
    std::memcpy(h + b * d, h_prev + b * d, d * sizeof(T));
    std::memcpy(m + b * d, m_prev + b * d, d * sizeof(T));
  }
}

// The shapes and dtypes a scan loop reads raw pointers from, checked before it does.
void check_scan(const Tensor& z_in, const Tensor& h0, const Tensor& c0, const Tensor& w,
                const std::optional<Tensor>& real, const char* op) {
  TORCH_CHECK(h0.dim() == 2 && c0.sizes() == h0.sizes(), op, ": h0 and c0 must be (B, d)");
  const int64_t B = h0.size(0), d = h0.size(1);
  TORCH_CHECK(z_in.dim() == 3 && z_in.size(1) == B && z_in.size(2) == 4 * d, op,
              ": the input half must be (T, B, 4d)");
  TORCH_CHECK(w.dim() == 2 && w.size(0) == d && w.size(1) == 4 * d, op,
              ": the weight must be (d, 4d)");
  for (const Tensor* t : {&c0, &z_in, &w})
    TORCH_CHECK(t->scalar_type() == h0.scalar_type(), op, ": every tensor in one dtype");
  TORCH_CHECK(!real.has_value() ||
                  (real->scalar_type() == at::kBool &&
                   real->sizes() == at::IntArrayRef({z_in.size(0), B, 1})),
              op, ": real must be a (T, B, 1) bool mask");
}

// One layer's time loop without time priority. z_in (T, B, 4d): the input half and bias
// for all steps; w_prev (d, 4d) multiplies h_{t-1}. -> hs, ms (T, B, d), act (T, B, 5d).
std::tuple<Tensor, Tensor, Tensor> scan_forward(const Tensor& z_in_, const Tensor& h0,
                                                const Tensor& c0, const Tensor& w_prev,
                                                const std::optional<Tensor>& real_, bool paper,
                                                bool keep) {
  check_scan(z_in_, h0, c0, w_prev, real_, "scan_forward");
  Tensor z_in = z_in_.contiguous();
  const int64_t T_ = z_in.size(0), B = z_in.size(1), d = h0.size(-1);
  Tensor hs = pooled_empty({T_, B, d}, z_in.options()), ms = pooled_empty(hs.sizes(), hs.options());
  Tensor act = pooled_empty({keep ? T_ : 1, B, 5 * d}, z_in.options());
  Tensor real = real_.has_value() ? real_->contiguous() : Tensor();
  Tensor z = at::empty({B, 4 * d}, z_in.options());
  AT_DISPATCH_FLOATING_TYPES(z_in.scalar_type(), "scan_forward", [&] {
    using T = scalar_t;
    Tensor h = h0.contiguous(), m = c0.contiguous();
    for (int64_t t = 0; t < T_; ++t) {
      at::addmm_out(z, z_in[t], h, w_prev);
      Tensor ht = hs[t], mt = ms[t];
      gates_forward<T>(z.const_data_ptr<T>(), {B, B}, {m.const_data_ptr<T>()},
                       {ht.data_ptr<T>()}, {mt.data_ptr<T>()},
                       act.data_ptr<T>() + (keep ? t * B * 5 * d : 0), {B, B}, B, d, paper);
      if (real.defined())
        keep_state<T>(real[t].const_data_ptr<bool>(), ht.data_ptr<T>(), mt.data_ptr<T>(),
                      h.const_data_ptr<T>(), m.const_data_ptr<T>(), B, d);
      h = ht;
      m = mt;
    }
  });
  return {hs, ms, act};
}

// Padding rows of a backward step: no gate gradient; the state's gradient passes through.
template <typename T>
void pass_through(const bool* real, T* dz, T* dm_prev, const T* dm, int64_t B, int64_t d,
                  int64_t width) {
  for (int64_t b = 0; b < B; ++b) {
    if (real[b]) continue;
    std::memset(dz + b * width, 0, width * sizeof(T));
    std::memcpy(dm_prev + b * d, dm + b * d, d * sizeof(T));
  }
}

// The time transform's backward at step t of a scan: its gate derivatives into dz (B, 4d),
// and the previous memory's gradient (returned). Padding rows (real false) keep the state:
// no gate gradient, the memory's gradient passes through.
template <typename T>
Tensor time_step_backward(const Tensor& dh, const Tensor& dm, const Tensor& act, const Tensor& ms,
                          const Tensor& c0, const Tensor& real_t, int64_t t, Tensor& dz,
                          bool paper) {
  const int64_t B = dh.size(0), d = dh.size(1);
  const Tensor m_prev = t > 0 ? ms[t - 1] : c0.contiguous();
  const Tensor mt = ms[t];
  Tensor dm_prev = at::empty({B, d}, dh.options());
  gates_backward<T>({dh.const_data_ptr<T>()}, {dm.const_data_ptr<T>()},
                    act.const_data_ptr<T>() + t * B * 5 * d, {B, B},
                    {m_prev.const_data_ptr<T>()}, {mt.const_data_ptr<T>()}, dz.data_ptr<T>(),
                    {B, B}, {dm_prev.data_ptr<T>()}, B, d, paper);
  if (real_t.defined())
    pass_through<T>(real_t.const_data_ptr<bool>(), dz.data_ptr<T>(), dm_prev.data_ptr<T>(),
                    dm.const_data_ptr<T>(), B, d, 4 * d);
  return dm_prev;
}

// h_prev's gradient from dz: dz @ w^T (+ dh itself on padding rows, which kept h).
void add_kept(Tensor& dh_prev, const Tensor& dh, const Tensor& real_t) {
  if (real_t.defined()) dh_prev.add_(dh * real_t.logical_not());
}

// Gradients of scan_forward: (dz_in, dh0, dc0, dw_prev).
std::tuple<Tensor, Tensor, Tensor, Tensor> scan_backward(
    const Tensor& dhs_, const Tensor& dms_, const Tensor& act, const Tensor& hs,
    const Tensor& ms, const Tensor& h0, const Tensor& c0, const Tensor& w_prev,
    const std::optional<Tensor>& real_, bool paper) {
  Tensor dhs = dhs_.contiguous(), dms = dms_.contiguous();
  const int64_t T_ = hs.size(0), B = hs.size(1), d = hs.size(2);
  Tensor real = real_.has_value() ? real_->contiguous() : Tensor();
  Tensor dz_all = pooled_empty({T_, B, 4 * d}, hs.options());
  Tensor dh = at::zeros({B, d}, hs.options()), dm = at::zeros({B, d}, hs.options());
  Tensor w_t = w_prev.t();
  AT_DISPATCH_FLOATING_TYPES(hs.scalar_type(), "scan_backward", [&] {
    using T = scalar_t;
    for (int64_t t = T_ - 1; t >= 0; --t) {
      dh.add_(dhs[t]);
      dm.add_(dms[t]);
      Tensor dz = dz_all[t];
      const Tensor real_t = real.defined() ? real[t] : Tensor();
      Tensor dm_prev = time_step_backward<T>(dh, dm, act, ms, c0, real_t, t, dz, paper);
      Tensor dh_prev = at::mm(dz, w_t);
      add_kept(dh_prev, dh, real_t);
      dh = dh_prev;
      dm = dm_prev;
    }
  });
  Tensor h_prev = at::cat({h0.unsqueeze(0), hs.narrow(0, 0, T_ - 1)}).view({T_ * B, d});
  Tensor dw = at::mm(h_prev.t(), dz_all.view({T_ * B, 4 * d}));
  return {dz_all, dh, dm, dw};
}

// One layer's time loop with time priority: per step the depth transform (from h_{t-1}),
// then the time transform from h_{t-1} and the new depth vector.
// -> hs, ms, hds, mds (T, B, d), act_time, act_depth (T, B, 5d).
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> scan_priority_forward(
    const Tensor& depth_in_, const Tensor& m_depth_, const Tensor& h0, const Tensor& c0,
    const Tensor& w_depth_prev, const Tensor& w_time_prev, const Tensor& w_time_new,
    const std::optional<Tensor>& b_time, const std::optional<Tensor>& real_, bool paper_time,
    bool paper_depth, bool keep) {
  check_scan(depth_in_, h0, c0, w_depth_prev, real_, "scan_priority_forward");
  for (const Tensor* w : {&w_time_prev, &w_time_new})
    TORCH_CHECK(w->sizes() == w_depth_prev.sizes() && w->scalar_type() == h0.scalar_type(),
                "scan_priority_forward: the weights must be (d, 4d) in the state's dtype");
  TORCH_CHECK(m_depth_.sizes() == at::IntArrayRef({depth_in_.size(0), depth_in_.size(1),
                                                   h0.size(-1)}) &&
                  m_depth_.scalar_type() == h0.scalar_type(),
              "scan_priority_forward: m_depth must be (T, B, d) in the state's dtype");
  TORCH_CHECK(!b_time.has_value() || (b_time->numel() == 4 * h0.size(-1) &&
                                      b_time->scalar_type() == h0.scalar_type()),
              "scan_priority_forward: b_time must hold 4d values in the state's dtype");
  Tensor depth_in = depth_in_.contiguous(), m_depth = m_depth_.contiguous();
  const int64_t T_ = depth_in.size(0), B = depth_in.size(1), d = h0.size(-1);
  auto opts = depth_in.options();
  Tensor hs = pooled_empty({T_, B, d}, opts), ms = pooled_empty(hs.sizes(), hs.options());
  Tensor hds = pooled_empty(hs.sizes(), hs.options()), mds = pooled_empty(hs.sizes(), hs.options());
  Tensor act_t = pooled_empty({keep ? T_ : 1, B, 5 * d}, opts), act_d = pooled_empty(act_t.sizes(), act_t.options());
  Tensor real = real_.has_value() ? real_->contiguous() : Tensor();
  Tensor zd = at::empty({B, 4 * d}, opts), zt = at::empty({B, 4 * d}, opts);
  AT_DISPATCH_FLOATING_TYPES(depth_in.scalar_type(), "scan_priority_forward", [&] {
    using T = scalar_t;
    Tensor h = h0.contiguous(), m = c0.contiguous();
    for (int64_t t = 0; t < T_; ++t) {
      at::addmm_out(zd, depth_in[t], h, w_depth_prev);
      Tensor hd = hds[t], md = mds[t], ht = hs[t], mt = ms[t];
      gates_forward<T>(zd.const_data_ptr<T>(), {B, B}, {m_depth[t].const_data_ptr<T>()},
                       {hd.data_ptr<T>()}, {md.data_ptr<T>()},
                       act_d.data_ptr<T>() + (keep ? t * B * 5 * d : 0), {B, B}, B, d,
                       paper_depth);
      if (b_time.has_value())
        at::addmm_out(zt, *b_time, h, w_time_prev);
      else
        at::mm_out(zt, h, w_time_prev);
      zt.addmm_(hd, w_time_new);
      gates_forward<T>(zt.const_data_ptr<T>(), {B, B}, {m.const_data_ptr<T>()},
                       {ht.data_ptr<T>()}, {mt.data_ptr<T>()},
                       act_t.data_ptr<T>() + (keep ? t * B * 5 * d : 0), {B, B}, B, d,
                       paper_time);
      if (real.defined())
        keep_state<T>(real[t].const_data_ptr<bool>(), ht.data_ptr<T>(), mt.data_ptr<T>(),
                      h.const_data_ptr<T>(), m.const_data_ptr<T>(), B, d);
      h = ht;
      m = mt;
    }
  });
  return {hs, ms, hds, mds, act_t, act_d};
}

// Gradients of scan_priority_forward: (d depth_in, d m_depth, dh0, dc0, dw_depth_prev,
// dw_time_prev, dw_time_new, db_time).
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
scan_priority_backward(const Tensor& dhs_, const Tensor& dms_, const Tensor& dhds_,
                       const Tensor& dmds_, const Tensor& act_t, const Tensor& act_d,
                       const Tensor& hs, const Tensor& ms, const Tensor& hds, const Tensor& mds,
                       const Tensor& h0, const Tensor& c0, const Tensor& m_depth_,
                       const Tensor& w_depth_prev, const Tensor& w_time_prev,
                       const Tensor& w_time_new, const std::optional<Tensor>& real_,
                       bool paper_time, bool paper_depth) {
  Tensor dhs = dhs_.contiguous(), dms = dms_.contiguous();
  Tensor dhds = dhds_.contiguous(), dmds = dmds_.contiguous(), m_depth = m_depth_.contiguous();
  const int64_t T_ = hs.size(0), B = hs.size(1), d = hs.size(2);
  auto opts = hs.options();
  Tensor real = real_.has_value() ? real_->contiguous() : Tensor();
  Tensor dzt_all = pooled_empty({T_, B, 4 * d}, opts), dzd_all = pooled_empty(dzt_all.sizes(), dzt_all.options());
  Tensor dm_depth = pooled_empty({T_, B, d}, opts);
  Tensor dh = at::zeros({B, d}, opts), dm = at::zeros({B, d}, opts);
  Tensor wt_prev = w_time_prev.t(), wt_new = w_time_new.t(), wd_prev = w_depth_prev.t();
  AT_DISPATCH_FLOATING_TYPES(hs.scalar_type(), "scan_priority_backward", [&] {
    using T = scalar_t;
    for (int64_t t = T_ - 1; t >= 0; --t) {
      dh.add_(dhs[t]);
      dm.add_(dms[t]);
      Tensor dzt = dzt_all[t], dzd = dzd_all[t], mdt = mds[t];
      const Tensor real_t = real.defined() ? real[t] : Tensor();
      Tensor dm_prev = time_step_backward<T>(dh, dm, act_t, ms, c0, real_t, t, dzt, paper_time);
      Tensor dhd = at::addmm(dhds[t], dzt, wt_new);
      Tensor dmd = dm_depth[t];
      gates_backward<T>({dhd.const_data_ptr<T>()}, {dmds[t].const_data_ptr<T>()},
                        act_d.const_data_ptr<T>() + t * B * 5 * d, {B, B},
                        {m_depth[t].const_data_ptr<T>()}, {mdt.const_data_ptr<T>()},
                        dzd.data_ptr<T>(), {B, B}, {dmd.data_ptr<T>()}, B, d, paper_depth);
      Tensor dh_prev = at::mm(dzt, wt_prev);
      dh_prev.addmm_(dzd, wd_prev);
      add_kept(dh_prev, dh, real_t);
      dh = dh_prev;
      dm = dm_prev;
    }
  });
  Tensor h_prev = at::cat({h0.unsqueeze(0), hs.narrow(0, 0, T_ - 1)}).view({T_ * B, d});
  Tensor dzt_flat = dzt_all.view({T_ * B, 4 * d}), dzd_flat = dzd_all.view({T_ * B, 4 * d});
  Tensor dw_depth_prev = at::mm(h_prev.t(), dzd_flat);
  Tensor dw_time_prev = at::mm(h_prev.t(), dzt_flat);
  Tensor dw_time_new = at::mm(hds.view({T_ * B, d}).t(), dzt_flat);
  Tensor db_time = dzt_flat.sum(0);
  return {dzd_all, dm_depth, dh, dm, dw_depth_prev, dw_time_prev, dw_time_new, db_time};
}

}  // namespace

TORCH_LIBRARY(gridlstm, m) {
  m.def("pool_stats() -> int[]", &pool_stats);
  m.def("pool_release() -> int", &pool_release);
  m.def("lstm_gates(Tensor z, Tensor m, bool paper) -> (Tensor, Tensor, Tensor)");
  m.def(
      "lstm_gates_backward(Tensor dh, Tensor dm_new, Tensor act, Tensor m, Tensor m_new, "
      "bool paper) -> (Tensor, Tensor)");
  m.def(
      "hyperplane_forward(Tensor static, Tensor[] weights, Tensor[] biases, Tensor[] index_h, "
      "Tensor[] index_m, int[] slots, int[] starts, int[] group_dims, int[] group_sizes, "
      "int groups, float dropout, bool keep, Tensor pick_h, Tensor pick_m) "
      "-> (Tensor, Tensor[], Tensor[], Tensor, Tensor[])");
  m.def(
      "hyperplane_backward(Tensor grad, Tensor[] weights, Tensor[] H, Tensor[] act, Tensor m, "
      "Tensor[] noise, Tensor[] index_h, Tensor[] index_m, int[] slots, int[] starts, "
      "int[] group_dims, int[] group_sizes, int groups, int static_rows, int[] has_bias, "
      "Tensor pick_h, Tensor pick_m) -> (Tensor, Tensor[], Tensor[])");
  m.def(
      "scan_forward(Tensor z_in, Tensor h0, Tensor c0, Tensor w_prev, Tensor? real, "
      "bool paper, bool keep) -> (Tensor, Tensor, Tensor)");
  m.def(
      "scan_backward(Tensor dhs, Tensor dms, Tensor act, Tensor hs, Tensor ms, Tensor h0, "
      "Tensor c0, Tensor w_prev, Tensor? real, bool paper) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "scan_priority_forward(Tensor depth_in, Tensor m_depth, Tensor h0, Tensor c0, "
      "Tensor w_depth_prev, Tensor w_time_prev, Tensor w_time_new, Tensor? b_time, "
      "Tensor? real, bool paper_time, bool paper_depth, bool keep) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "scan_priority_backward(Tensor dhs, Tensor dms, Tensor dhds, Tensor dmds, Tensor act_t, "
      "Tensor act_d, Tensor hs, Tensor ms, Tensor hds, Tensor mds, Tensor h0, Tensor c0, "
      "Tensor m_depth, Tensor w_depth_prev, Tensor w_time_prev, Tensor w_time_new, "
      "Tensor? real, bool paper_time, bool paper_depth) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(gridlstm, CPU, m) {
  m.impl("lstm_gates", &lstm_gates);
  m.impl("lstm_gates_backward", &lstm_gates_backward);
  m.impl("hyperplane_forward", &hyperplane_forward);
  m.impl("hyperplane_backward", &hyperplane_backward);
  m.impl("scan_forward", &scan_forward);
  m.impl("scan_backward", &scan_backward);
  m.impl("scan_priority_forward", &scan_priority_forward);
  m.impl("scan_priority_backward", &scan_priority_backward);
}
