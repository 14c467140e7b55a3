//! The network's 1D convolutions ('same' padding, stride 1, odd kernel) on the CPU
//! backend as a few large GEMMs per call, with a backward of their own.
//!
//! burn 0.22's CPU backend (flex) runs the conv forward as im2col + `gemm` but
//! inherits burn's generic backward: the input gradient as a transposed convolution
//! on one core, the weight gradient as a convolution with batch and channels
//! swapped. Here all three are `gemm` calls, one per kernel tap `t`, on a
//! zero-padded copy of a chunk of the batch (`xpad[Cin, R]`, see `padded`; rows
//! `r` run over the chunk's samples and positions), with rayon over the chunks:
//!
//! - forward: `Y[Cout, R] += W[:, :, t] @ xpad[Cin, t .. t + R]`, summed over taps;
//! - input gradient: the same forward with the kernel flipped and its channels
//!   swapped (with symmetric 'same' padding the transposed convolution is a
//!   correlation with the flipped kernel);
//! - weight gradient: `dW[:, :, t]^T = xpad[Cin, t .. t + R] @ G^T[R, Cout]`,
//!   summed over chunks.
//!
//! An im2col (`[Cin * K, R]`) would copy every input value `K` times first; for
//! the K = 15 branches that copy took four times as long as the GEMMs.
//!
//! The op is registered with burn's backend-extension mechanism for `Flex` and
//! `Autodiff<Flex>`; [`conv1d`] chooses it at run time and falls back to burn's own
//! `Conv1d::forward` on every other backend (wgpu, ndarray) and configuration, so
//! the model stays one definition and keeps its parameters (`Conv1d` holds them).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Dispatch, Flex, TensorMetadata};
use burn::nn::conv::Conv1d;
use burn::nn::PaddingConfig1d;
use burn::tensor::{DType, Device, Tensor, TensorData};
use rayon::prelude::*;

/// A 1D 'same' convolution (stride 1, odd kernel, no bias) with its own backward.
#[backend_extension(Flex, Autodiff)]
pub trait ConvBackend: burn::backend::Backend {
    /// `x`: `[batch, cin, length]`, `weight`: `[cout, cin, kernel]` -> `[batch, cout, length]`.
    fn conv1d_same(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;
}

impl ConvBackend for Flex {
    fn conv1d_same(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        let (xs, [b, ci, l]) = contiguous(&x);
        let (ws, [co, ci_w, k]) = contiguous(&weight);
        assert_eq!(
            ci, ci_w,
            "conv1d_same: input has {ci} channels, weight {ci_w}"
        );
        let y = forward(&xs, &ws, b, ci, co, l, k);
        from_vec(y, [b, co, l])
    }
}

impl<C: CheckpointStrategy> ConvBackend for Autodiff<Flex, C> {
    fn conv1d_same(x: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Conv1dSameBackward;

        impl Backward<Flex, 2> for Conv1dSameBackward {
            type State = (NodeId, NodeId);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_w] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                let (x_state, w_state) = ops.state;
                let x: FloatTensor<Flex> = checkpointer.retrieve_node_output(x_state);
                let w: FloatTensor<Flex> = checkpointer.retrieve_node_output(w_state);
                let (gs, [b, co, l]) = contiguous(&grad);
                let (ws, [_, ci, k]) = contiguous(&w);
                if let Some(node) = node_x {
                    let dx = input_grad(&gs, &ws, b, ci, co, l, k);
                    grads.register::<Flex>(node.id, from_vec(dx, [b, ci, l]));
                }
                if let Some(node) = node_w {
                    let (xs, _) = contiguous(&x);
                    let dw = weight_grad(&xs, &gs, b, ci, co, l, k);
                    grads.register::<Flex>(node.id, from_vec(dw, [co, ci, k]));
                }
            }
        }

        match Conv1dSameBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let w_state = prep.checkpoint(&weight);
                let out = Flex::conv1d_same(x.into_primitive(), weight.into_primitive());
                prep.finish((x_state, w_state), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::conv1d_same(
                x.into_primitive(),
                weight.into_primitive(),
            )),
        }
    }
}

/// Whether `conv` applied to `x` can run as [`ConvBackend::conv1d_same`]: the CPU
/// backend (with or without autodiff), f32, stride 1, no dilation or groups, and
/// 'same' padding with an odd kernel (symmetric padding).
fn gemm_path_applies(conv: &Conv1d, x: &Tensor<3>) -> bool {
    conv.stride == 1
        && conv.dilation == 1
        && conv.groups == 1
        && conv.kernel_size % 2 == 1
        && matches!(conv.padding, PaddingConfig1d::Same)
        && x.dtype() == DType::F32
        && x.device() == Device::flex()
}

/// `conv.forward(x)` computed by the GEMM op on the CPU backend, by burn's own
/// convolution elsewhere. `x`: `[batch, cin, length]` -> `[batch, cout, length]`.
pub fn conv1d(conv: &Conv1d, x: Tensor<3>) -> Tensor<3> {
    if !gemm_path_applies(conv, &x) {
        return conv.forward(x);
    }
    let y = Tensor::<3>::from_dispatch(<Dispatch as ConvBackend>::conv1d_same(
        x.into_dispatch(),
        conv.weight.val().into_dispatch(),
    ));
    match &conv.bias {
        Some(bias) => {
            let cout = bias.dims()[0];
            y + bias.val().reshape([1, cout, 1])
        }
        None => y,
    }
}

/// The tensor's f32 values in row-major order, and its three dimensions.
fn contiguous(t: &FloatTensor<Flex>) -> (std::borrow::Cow<'_, [f32]>, [usize; 3]) {
    let shape = t.shape();
    assert_eq!(shape.num_dims(), 3, "conv1d_same works on rank-3 tensors");
    let dims: [usize; 3] = shape.dims();
    (super::norm::values(t), dims)
}

fn from_vec(values: Vec<f32>, shape: [usize; 3]) -> FloatTensor<Flex> {
    Flex::float_from_data(TensorData::new(values, shape), &Default::default())
}

/// Samples per chunk: at most 32 and ~2048 GEMM columns, so a chunk's
/// matrices stay cache-sized, and never a function of the thread count: gemm's
/// blocking (and so its float sums) follows the matrix shapes, and a run must
/// give the same bits on 1 core as on 16 (a Slurm member task against the
/// single-process run, a shard against the whole catalog).
fn chunk_samples(batch: usize, length: usize) -> usize {
    batch.min(32).min((2048 / length.max(1)).max(1)).max(1)
}

/// `dst[m, n] = lhs[m, k] @ rhs[k, n]` (each given by (column stride, row
/// stride); `dst` row-major), or `dst += lhs @ rhs` when `accumulate`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_into(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    lhs: &[f32],
    lhs_strides: (isize, isize),
    rhs: &[f32],
    rhs_strides: (isize, isize),
    accumulate: bool,
) {
    assert!(dst.len() >= m * n);
    let last = |(cs, rs): (isize, isize), rows: usize, cols: usize| {
        (rows.saturating_sub(1) as isize * rs + cols.saturating_sub(1) as isize * cs) as usize
    };
    assert!(m == 0 || k == 0 || last(lhs_strides, m, k) < lhs.len());
    assert!(k == 0 || n == 0 || last(rhs_strides, k, n) < rhs.len());
    // SAFETY: dst is m x n row-major within its slice; the strided m x k and
    // k x n views of lhs and rhs lie within their slices (asserted above).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_strides.0,
            lhs_strides.1,
            rhs.as_ptr(),
            rhs_strides.0,
            rhs_strides.1,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Samples `first..first + n` of `x` (`[batch, c, l]`) zero-padded for a kernel
/// reaching `p` values each side, as `[c, width]` rows: `p` zeros, then each
/// sample followed by `p` zeros (its right padding and the next one's left), then
/// `p` more so that every tap's window of `n * (l + p)` values stays inside.
/// Sample `j`'s value `i` sits at `p + j * (l + p) + i`. Returns the rows and `width`.
fn padded(x: &[f32], first: usize, n: usize, c: usize, l: usize, p: usize) -> (Vec<f32>, usize) {
    let s = l + p;
    let width = n * s + 2 * p;
    let mut xpad = vec![0.0f32; c * width];
    for j in 0..n {
        for ch in 0..c {
            let src = &x[((first + j) * c + ch) * l..((first + j) * c + ch + 1) * l];
            let at = ch * width + p + j * s;
            xpad[at..at + l].copy_from_slice(src);
        }
    }
    (xpad, width)
}

/// Forward: `x` `[b, ci, l]`, `w` `[co, ci, k]` -> `[b, co, l]`.
pub fn forward(
    x: &[f32],
    w: &[f32],
    b: usize,
    ci: usize,
    co: usize,
    l: usize,
    k: usize,
) -> Vec<f32> {
    assert_eq!(x.len(), b * ci * l);
    assert_eq!(w.len(), co * ci * k);
    assert!(k % 2 == 1, "'same' padding needs an odd kernel");
    let mut y = vec![0.0f32; b * co * l];
    if b == 0 || l == 0 {
        return y;
    }
    // One GEMM per kernel tap on the padded samples (see [`padded`]), summed
    // in dst: `Y[co, r] += W[:, :, t] @ xpad[ci, t + r]`, rows `r = j * s + i`
    // (the `p` rows after each sample are computed and dropped). An im2col would
    // copy every input value `k` times first.
    let p = (k - 1) / 2;
    let s = l + p;
    let chunk = chunk_samples(b, l);
    let taps: Vec<Vec<f32>> = (0..k)
        .map(|t| (0..co * ci).map(|oc| w[oc * k + t]).collect())
        .collect();
    y.par_chunks_mut(chunk * co * l)
        .enumerate()
        .for_each(|(c, out)| {
            let first = c * chunk;
            let n = out.len() / (co * l);
            let rows = n * s;
            let (xpad, width) = padded(x, first, n, ci, l, p);
            let mut yc = vec![0.0f32; co * rows];
            for (t, wt) in taps.iter().enumerate() {
                gemm_into(
                    co,
                    rows,
                    ci,
                    &mut yc,
                    wt,
                    (1, ci as isize),
                    &xpad[t..],
                    (1, width as isize),
                    t > 0,
                );
            }
            // yc[o, j * s + i] -> out[j, o, i]
            for j in 0..n {
                for o in 0..co {
                    out[(j * co + o) * l..(j * co + o + 1) * l]
                        .copy_from_slice(&yc[o * rows + j * s..o * rows + j * s + l]);
                }
            }
        });
    y
}

/// Input gradient: `g` `[b, co, l]`, `w` `[co, ci, k]` -> `[b, ci, l]`. The forward
/// with `w'[c, o, t] = w[o, c, k - 1 - t]`.
pub fn input_grad(
    g: &[f32],
    w: &[f32],
    b: usize,
    ci: usize,
    co: usize,
    l: usize,
    k: usize,
) -> Vec<f32> {
    let mut flipped = vec![0.0f32; ci * co * k];
    for o in 0..co {
        for c in 0..ci {
            for t in 0..k {
                flipped[(c * co + o) * k + t] = w[(o * ci + c) * k + (k - 1 - t)];
            }
        }
    }
    forward(g, &flipped, b, co, ci, l, k)
}

/// Weight gradient: `x` `[b, ci, l]`, `g` `[b, co, l]` -> `[co, ci, k]`.
///
/// One GEMM per kernel tap `t` on a zero-padded copy of the input, not an
/// im2col (which copies every input value `k` times; for the 15-tap branches
/// that copy took four times as long as the GEMMs):
/// `dW[:, :, t]^T [ci, co] = xpad[ci, t .. t + R] @ gT[R, co]`, where the rows
/// `r = j * s + i` (`s = l + p`) run over a chunk's samples `j` and positions `i`,
/// `xpad[c, j * s + i + t] = x[j, c, i + t - p]` (zero outside the sample) and
/// `gT[r, o] = g[j, o, i]`, zero for the `p` rows between samples.
pub fn weight_grad(
    x: &[f32],
    g: &[f32],
    b: usize,
    ci: usize,
    co: usize,
    l: usize,
    k: usize,
) -> Vec<f32> {
    assert_eq!(x.len(), b * ci * l);
    assert_eq!(g.len(), b * co * l);
    let kk = ci * k;
    if b == 0 || l == 0 {
        return vec![0.0; co * kk];
    }
    let p = (k - 1) / 2;
    let s = l + p;
    let chunk = chunk_samples(b, l);
    let chunks = b.div_ceil(chunk);
    (0..chunks)
        .into_par_iter()
        .map(|c| {
            let first = c * chunk;
            let n = chunk.min(b - first);
            let rows = n * s;
            let (xpad, width) = padded(x, first, n, ci, l, p);
            // The gradient transposed to [rows, co], zero rows between samples.
            let mut g_t = vec![0.0f32; rows * co];
            for j in 0..n {
                for o in 0..co {
                    let src = &g[((first + j) * co + o) * l..((first + j) * co + o + 1) * l];
                    for (i, &v) in src.iter().enumerate() {
                        g_t[(j * s + i) * co + o] = v;
                    }
                }
            }
            let mut dw = vec![0.0f32; co * kk];
            let mut tap = vec![0.0f32; ci * co];
            for t in 0..k {
                gemm_into(
                    ci,
                    co,
                    rows,
                    &mut tap,
                    &xpad[t..],
                    (1, width as isize),
                    &g_t,
                    (1, co as isize),
                    false,
                );
                for ch in 0..ci {
                    for o in 0..co {
                        dw[(o * ci + ch) * k + t] = tap[ch * co + o];
                    }
                }
            }
            dw
        })
        .collect::<Vec<_>>()
        // Added in chunk order, not rayon's reduction tree (whose shape follows
        // the thread count), so the sum is the same on any number of cores.
        .into_iter()
        .reduce(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
            a
        })
        .expect("at least one chunk")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition, for the kernels' unit tests.
    fn naive(x: &[f32], w: &[f32], b: usize, ci: usize, co: usize, l: usize, k: usize) -> Vec<f32> {
        let p = (k - 1) / 2;
        let mut y = vec![0.0f32; b * co * l];
        for s in 0..b {
            for o in 0..co {
                for i in 0..l {
                    let mut acc = 0.0;
                    for c in 0..ci {
                        for t in 0..k {
                            let j = i + t;
                            if j >= p && j - p < l {
                                acc += w[(o * ci + c) * k + t] * x[(s * ci + c) * l + j - p];
                            }
                        }
                    }
                    y[(s * co + o) * l + i] = acc;
                }
            }
        }
        y
    }

    #[test]
    fn weight_gradient_matches_the_definition() {
        for (b, ci, co, l, k) in [
            (3, 5, 4, 9, 7),
            (2, 1, 3, 5, 15),
            (1, 4, 2, 16, 1),
            (5, 3, 2, 4, 3),
        ] {
            let x: Vec<f32> = (0..b * ci * l)
                .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
                .collect();
            let g: Vec<f32> = (0..b * co * l)
                .map(|i| ((i * 29 % 19) as f32 - 9.0) / 5.0)
                .collect();
            let got = weight_grad(&x, &g, b, ci, co, l, k);
            let p = (k - 1) / 2;
            for o in 0..co {
                for c in 0..ci {
                    for t in 0..k {
                        let mut want = 0.0f64;
                        for s in 0..b {
                            for i in 0..l {
                                if i + t >= p && i + t - p < l {
                                    want += g[(s * co + o) * l + i] as f64
                                        * x[(s * ci + c) * l + i + t - p] as f64;
                                }
                            }
                        }
                        let v = got[(o * ci + c) * k + t] as f64;
                        assert!(
                            (v - want).abs() < 1e-3,
                            "{b} {ci} {co} {l} {k}: {v} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn gemm_forward_matches_the_definition() {
        let (b, ci, co, l, k) = (3, 5, 4, 9, 7);
        let x: Vec<f32> = (0..b * ci * l)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let w: Vec<f32> = (0..co * ci * k)
            .map(|i| ((i * 17 % 13) as f32 - 6.0) / 5.0)
            .collect();
        let got = forward(&x, &w, b, ci, co, l, k);
        let want = naive(&x, &w, b, ci, co, l, k);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "{g} vs {w}");
        }
    }
}
