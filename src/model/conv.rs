//! The network's 1D convolutions ('same' padding, stride 1, odd kernel) on the CPU
//! backend as a few large GEMMs per call, with a backward of their own.
//!
//! burn 0.22's CPU backend (flex) runs the conv forward as im2col + `gemm` but
//! inherits burn's generic backward: the input gradient as a transposed convolution
//! on one core, the weight gradient as a convolution with batch and channels
//! swapped. Here all three are `gemm` calls on im2col matrices covering a chunk of
//! the batch ([`Cin * K`, `chunk * L`]), with rayon over the chunks:
//!
//! - forward: `Y[Cout, N] = W[Cout, Cin*K] @ col(x)[Cin*K, N]`;
//! - input gradient: the same forward with the kernel flipped and its channels
//!   swapped (with symmetric 'same' padding the transposed convolution is a
//!   correlation with the flipped kernel);
//! - weight gradient: `dW[Cout, Cin*K] = G[Cout, N] @ col(x)^T`, summed over chunks
//!   (`col(x)^T` built row-major: gemm's AVX-512 kernels are slow on the strided view).
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

/// Samples per chunk: at most 32 and ~2048 im2col columns, so a chunk's
/// matrices stay cache-sized, and never a function of the thread count: gemm's
/// blocking (and so its float sums) follows the matrix shapes, and a run must
/// give the same bits on 1 core as on 16 (a Slurm member task against the
/// single-process run, a shard against the whole catalog).
fn chunk_samples(batch: usize, length: usize) -> usize {
    batch.min(32).min((2048 / length.max(1)).max(1)).max(1)
}

/// im2col of samples `first..first + n` of `x` (`[batch, c, l]`):
/// `col[(ch * k + t), j * l + i] = x[first + j, ch, i + t - (k - 1) / 2]`, zero outside.
fn im2col(x: &[f32], first: usize, n: usize, c: usize, l: usize, k: usize, col: &mut [f32]) {
    let p = (k - 1) / 2;
    let cols = n * l;
    for j in 0..n {
        let sample = &x[(first + j) * c * l..(first + j + 1) * c * l];
        for ch in 0..c {
            let src = &sample[ch * l..(ch + 1) * l];
            for t in 0..k {
                let dst = &mut col[(ch * k + t) * cols + j * l..(ch * k + t) * cols + (j + 1) * l];
                // dst[i] = src[i + t - p] where 0 <= i + t - p < l.
                let lo = p.saturating_sub(t).min(l);
                let hi = (l + p).saturating_sub(t).min(l).max(lo);
                dst[..lo].fill(0.0);
                dst[lo..hi].copy_from_slice(&src[lo + t - p..hi + t - p]);
                dst[hi..].fill(0.0);
            }
        }
    }
}

/// Transposed im2col of samples `first..first + n`:
/// `col_t[j * l + i, ch * k + t] = x[first + j, ch, i + t - (k - 1) / 2]`, zero outside.
/// The weight gradient reads it as a row-major right-hand side: gemm's AVX-512
/// kernels ran the transposed view of [`im2col`] at 14 GFLOP/s, this at 180.
fn im2col_t(x: &[f32], first: usize, n: usize, c: usize, l: usize, k: usize, col_t: &mut [f32]) {
    let p = (k - 1) / 2;
    let kk = c * k;
    for j in 0..n {
        let sample = &x[(first + j) * c * l..(first + j + 1) * c * l];
        for i in 0..l {
            let row = &mut col_t[(j * l + i) * kk..(j * l + i + 1) * kk];
            for ch in 0..c {
                let src = &sample[ch * l..(ch + 1) * l];
                let dst = &mut row[ch * k..(ch + 1) * k];
                for (t, d) in dst.iter_mut().enumerate() {
                    // x index i + t - p, valid when 0 <= i + t - p < l.
                    let q = i + t;
                    *d = if q >= p && q - p < l { src[q - p] } else { 0.0 };
                }
            }
        }
    }
}

/// `dst[m, n] = lhs[m, k] @ rhs[k, n]`, each given by (column stride, row stride).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    lhs: &[f32],
    lhs_strides: (isize, isize),
    rhs: &[f32],
    rhs_strides: (isize, isize),
) {
    assert!(dst.len() >= m * n);
    // SAFETY: dst is m x n row-major within its slice; the callers pass lhs/rhs
    // slices whose strided m x k and k x n views lie within them.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            lhs_strides.0,
            lhs_strides.1,
            rhs.as_ptr(),
            rhs_strides.0,
            rhs_strides.1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
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
    let chunk = chunk_samples(b, l);
    y.par_chunks_mut(chunk * co * l)
        .enumerate()
        .for_each(|(c, out)| {
            let first = c * chunk;
            let n = out.len() / (co * l);
            let cols = n * l;
            let mut col = vec![0.0f32; ci * k * cols];
            im2col(x, first, n, ci, l, k, &mut col);
            let mut yc = vec![0.0f32; co * cols];
            let kk = ci * k;
            matmul(
                co,
                cols,
                kk,
                &mut yc,
                w,
                (1, kk as isize),
                &col,
                (1, cols as isize),
            );
            // yc[o, j * l + i] -> out[j, o, i]
            for j in 0..n {
                for o in 0..co {
                    out[(j * co + o) * l..(j * co + o + 1) * l]
                        .copy_from_slice(&yc[o * cols + j * l..o * cols + (j + 1) * l]);
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
    let chunk = chunk_samples(b, l);
    let chunks = b.div_ceil(chunk);
    (0..chunks)
        .into_par_iter()
        .map(|c| {
            let first = c * chunk;
            let n = chunk.min(b - first);
            let cols = n * l;
            let mut col_t = vec![0.0f32; cols * kk];
            im2col_t(x, first, n, ci, l, k, &mut col_t);
            // gc[o, j * l + i] = g[first + j, o, i]
            let mut gc = vec![0.0f32; co * cols];
            for j in 0..n {
                for o in 0..co {
                    gc[o * cols + j * l..o * cols + (j + 1) * l].copy_from_slice(
                        &g[((first + j) * co + o) * l..((first + j) * co + o + 1) * l],
                    );
                }
            }
            let mut dw = vec![0.0f32; co * kk];
            matmul(
                co,
                kk,
                cols,
                &mut dw,
                &gc,
                (1, cols as isize),
                &col_t,
                (1, kk as isize),
            );
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
