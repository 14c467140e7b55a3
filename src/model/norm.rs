//! Batch norm followed by ReLU, fused and parallel over channels on the CPU backend.
//!
//! burn 0.22's CPU backend (flex) builds batch norm from generic ops: channel
//! swaps and copies, serial reductions and several serial elementwise passes,
//! forward and backward. Every batch norm of the DenseNet is followed by a ReLU,
//! so here the pair is one pass for the statistics (parallel over channels) and
//! one for the output (parallel over rows), with a backward of its own, registered
//! through burn's backend-extension mechanism like `conv.rs`. [`batch_norm_relu`]
//! keeps `BatchNorm` as the holder of parameters and running statistics (updated
//! as burn updates them) and falls back to `relu(norm.forward(x))` on every other
//! backend.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    backend_extension, AutodiffBackend, Dispatch, ExtensionType, Flex, TensorMetadata,
};
use burn::nn::BatchNorm;
use burn::tensor::activation::relu;
use burn::tensor::{DType, Device, Tensor, TensorData};
use rayon::prelude::*;

/// Output of the training-mode op: `relu(batch_norm(x))` and the batch statistics.
#[derive(ExtensionType)]
pub struct BnReluTrain<B: burn::backend::Backend> {
    pub output: FloatTensor<B>,
    /// Per-channel batch mean, `[channels]`.
    pub mean: FloatTensor<B>,
    /// Per-channel biased batch variance, `[channels]`.
    pub variance: FloatTensor<B>,
}

/// Training mode: normalise with the batch statistics.
#[backend_extension(Flex, Autodiff)]
pub trait BnReluTrainBackend: burn::backend::Backend {
    /// `x`: `[batch, channels, length]`; `gamma`, `beta`: `[channels]`.
    fn bn_relu_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> BnReluTrain<Self>;
}

/// Inference: `relu(x * scale[c] + shift[c])`, no gradient.
#[backend_extension(Flex)]
pub trait BnReluEvalBackend: burn::backend::Backend {
    fn bn_relu_eval(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// A tensor's values, borrowed when they are already contiguous.
pub(crate) fn values(t: &FloatTensor<Flex>) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("f32 tensor")
                .to_vec(),
        ),
    }
}

/// The dimensions of a `[batch, channels, length]` tensor (the CPU ops' layout).
pub(crate) fn dims3(t: &FloatTensor<Flex>) -> [usize; 3] {
    let shape = t.shape();
    assert_eq!(
        shape.num_dims(),
        3,
        "the CPU ops work on [batch, channels, length]"
    );
    shape.dims()
}

pub(crate) fn from_vec<const D: usize>(values: Vec<f32>, shape: [usize; D]) -> FloatTensor<Flex> {
    Flex::float_from_data(TensorData::new(values, shape), &Default::default())
}

/// `y[b, c, i] = max(0, x[b, c, i] * scale[c] + shift[c])`, parallel over samples.
fn affine_relu(x: &[f32], scale: &[f32], shift: &[f32], c: usize, l: usize) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    if l == 0 || c == 0 {
        return y;
    }
    y.par_chunks_mut(c * l)
        .zip(x.par_chunks(c * l))
        .for_each(|(y, x)| {
            for (ch, (y, x)) in y.chunks_exact_mut(l).zip(x.chunks_exact(l)).enumerate() {
                let (a, b) = (scale[ch], shift[ch]);
                for (y, x) in y.iter_mut().zip(x) {
                    *y = (x * a + b).max(0.0);
                }
            }
        });
    y
}

/// Lanes of the per-row partial sums below: wide enough for the compiler to keep
/// them in one vector register each, and a fixed summation order on every machine.
const LANES: usize = 8;

/// `f` summed over one row in `LANES` f32 partial sums added in lane order,
/// then the tail (a row holds at most a few hundred values, so f32 partials lose
/// nothing that matters; rows are added in f64). Fixed-size chunks let the
/// compiler drop the bounds checks and vectorise; `f` must be branch-free.
#[inline(always)]
fn row_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += f(v);
        }
    }
    acc.iter().sum::<f32>() + tail.iter().map(|&v| f(v)).sum::<f32>()
}

/// `[sum gm, sum gm * (x - m)]` over one row, `gm = g * (y > 0)`, in `LANES`
/// partial sums added in lane order, then the tail.
fn masked_row_sums(x: &[f32], y: &[f32], g: &[f32], m: f32) -> [f32; 2] {
    let n = x.len();
    let (y, g) = (&y[..n], &g[..n]);
    let full = n / LANES * LANES;
    let (sg, sgx) = masked_lanes(&x[..full], &y[..full], &g[..full], m);
    let mut out = [sg.iter().sum::<f32>(), sgx.iter().sum::<f32>()];
    for i in full..n {
        let gm = relu_masked(y[i], g[i]);
        out[0] += gm;
        out[1] += gm * (x[i] - m);
    }
    out
}

/// The lane sums of [`masked_row_sums`] over whole chunks of `LANES`. With SSE
/// (every x86-64): left to itself the compiler turns the mask back into a branch
/// per value, which mispredicts on half of them (a ReLU's output signs are data).
#[cfg(target_arch = "x86_64")]
fn masked_lanes(x: &[f32], y: &[f32], g: &[f32], m: f32) -> ([f32; LANES], [f32; LANES]) {
    use std::arch::x86_64::*;
    debug_assert!(x.len() % LANES == 0 && y.len() == x.len() && g.len() == x.len());
    // SAFETY: SSE is part of x86-64; every load reads 4 values inside the slices
    // (`i + 4 <= len`, len a multiple of LANES = 8).
    unsafe {
        let zero = _mm_setzero_ps();
        let mv = _mm_set1_ps(m);
        let (mut sg0, mut sg1, mut sgx0, mut sgx1) = (zero, zero, zero, zero);
        let mut i = 0;
        while i < x.len() {
            let (xp, yp, gp) = (x.as_ptr().add(i), y.as_ptr().add(i), g.as_ptr().add(i));
            let gm0 = _mm_and_ps(_mm_loadu_ps(gp), _mm_cmpgt_ps(_mm_loadu_ps(yp), zero));
            let gm1 = _mm_and_ps(
                _mm_loadu_ps(gp.add(4)),
                _mm_cmpgt_ps(_mm_loadu_ps(yp.add(4)), zero),
            );
            sg0 = _mm_add_ps(sg0, gm0);
            sg1 = _mm_add_ps(sg1, gm1);
            sgx0 = _mm_add_ps(sgx0, _mm_mul_ps(gm0, _mm_sub_ps(_mm_loadu_ps(xp), mv)));
            sgx1 = _mm_add_ps(
                sgx1,
                _mm_mul_ps(gm1, _mm_sub_ps(_mm_loadu_ps(xp.add(4)), mv)),
            );
            i += LANES;
        }
        let mut sg = [0.0f32; LANES];
        let mut sgx = [0.0f32; LANES];
        _mm_storeu_ps(sg.as_mut_ptr(), sg0);
        _mm_storeu_ps(sg.as_mut_ptr().add(4), sg1);
        _mm_storeu_ps(sgx.as_mut_ptr(), sgx0);
        _mm_storeu_ps(sgx.as_mut_ptr().add(4), sgx1);
        (sg, sgx)
    }
}

/// The same sums, portably (bit for bit the SSE version's).
#[cfg(not(target_arch = "x86_64"))]
fn masked_lanes(x: &[f32], y: &[f32], g: &[f32], m: f32) -> ([f32; LANES], [f32; LANES]) {
    let mut sg = [0.0f32; LANES];
    let mut sgx = [0.0f32; LANES];
    for ((x, y), g) in x
        .chunks_exact(LANES)
        .zip(y.chunks_exact(LANES))
        .zip(g.chunks_exact(LANES))
    {
        for t in 0..LANES {
            let gm = relu_masked(y[t], g[t]);
            sg[t] += gm;
            sgx[t] += gm * (x[t] - m);
        }
    }
    (sg, sgx)
}

/// `g` where `y > 0`, else 0 (ReLU's gradient mask), written as a bit mask. The
/// compiler may still turn it into a branch, which mispredicts on half the
/// values: the per-channel sums use [`masked_lanes`]; here it serves the tails
/// and the elementwise `dx` pass.
#[inline(always)]
fn relu_masked(y: f32, g: f32) -> f32 {
    let keep = ((y > 0.0) as u32).wrapping_neg();
    f32::from_bits(g.to_bits() & keep)
}

/// Samples per partial result of [`channel_sums`]: fixed, so the sums are the
/// same on any number of threads.
const GROUP: usize = 4;

/// Per channel `ch`, the sum over samples of `row(sample, ch)` (`S` sums at once),
/// read in memory order: samples in groups of [`GROUP`], rayon over the groups,
/// every channel of a sample in turn, the groups' partials added in order. (One
/// channel at a time instead would jump a whole sample ahead after every row:
/// a cache miss per row of 16 to 64 values.)
fn channel_sums<const S: usize>(
    b: usize,
    c: usize,
    row: impl Fn(usize, usize) -> [f32; S] + Sync,
) -> Vec<[f64; S]> {
    let partials: Vec<Vec<[f64; S]>> = (0..b.div_ceil(GROUP))
        .into_par_iter()
        .map(|group| {
            let mut acc = vec![[0.0f64; S]; c];
            for smp in group * GROUP..((group + 1) * GROUP).min(b) {
                for (ch, acc) in acc.iter_mut().enumerate() {
                    for (a, v) in acc.iter_mut().zip(row(smp, ch)) {
                        *a += v as f64;
                    }
                }
            }
            acc
        })
        .collect();
    let mut total = vec![[0.0f64; S]; c];
    for partial in partials {
        for (t, p) in total.iter_mut().zip(partial) {
            for (t, p) in t.iter_mut().zip(p) {
                *t += p;
            }
        }
    }
    total
}

/// Per-channel mean and biased variance of `x` `[b, c, l]` (two passes; rows
/// summed in f32 lanes, rows added in f64).
pub fn channel_stats(x: &[f32], b: usize, c: usize, l: usize) -> (Vec<f32>, Vec<f32>) {
    let n = (b * l).max(1) as f64;
    let row = |smp: usize, ch: usize| &x[(smp * c + ch) * l..(smp * c + ch + 1) * l];
    // Summed relative to a value of the channel: f32 partial sums of the raw
    // values would lose digits to the offset when the spread is small next to it
    // (mean 0.9, standard deviation 0.007: an ulp of the mean is 1e-5 of the
    // spread, and every output carries that error).
    let shift: Vec<f32> = (0..c)
        .map(|ch| if b * l > 0 { x[ch * l] } else { 0.0 })
        .collect();
    let mean: Vec<f32> = channel_sums(b, c, |smp, ch| {
        let s = shift[ch];
        [row_sum(row(smp, ch), |v| v - s)]
    })
    .into_iter()
    .zip(&shift)
    .map(|([s], &shift)| (shift as f64 + s / n) as f32)
    .collect();
    let var = channel_sums(b, c, |smp, ch| {
        let m = mean[ch];
        [row_sum(row(smp, ch), |v| (v - m) * (v - m))]
    })
    .into_iter()
    .map(|[s]| (s / n) as f32)
    .collect();
    (mean, var)
}

/// Forward in training mode: output, mean, variance.
pub fn train_forward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
    [b, c, l]: [usize; 3],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mean, var) = channel_stats(x, b, c, l);
    let (scale, shift) = scale_shift(gamma, beta, &mean, &var, epsilon);
    (affine_relu(x, &scale, &shift, c, l), mean, var)
}

/// `scale = gamma / sqrt(var + eps)`, `shift = beta - mean * scale`.
fn scale_shift(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>) {
    (0..gamma.len())
        .map(|ch| {
            let inv_std = 1.0 / (var[ch] as f64 + epsilon).sqrt();
            let scale = gamma[ch] as f64 * inv_std;
            (
                scale as f32,
                (beta[ch] as f64 - mean[ch] as f64 * scale) as f32,
            )
        })
        .unzip()
}

/// Gradients of `relu(batch_norm_train(x))` given the output `y` and its gradient
/// `g`: (x, gamma, beta).
#[allow(clippy::too_many_arguments)]
pub fn train_backward(
    x: &[f32],
    y: &[f32],
    g: &[f32],
    gamma: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f64,
    [b, c, l]: [usize; 3],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = (b * l).max(1) as f64;
    let inv_std: Vec<f64> = var
        .iter()
        .map(|&v| 1.0 / (v as f64 + epsilon).sqrt())
        .collect();
    // Per channel: sum of the ReLU-masked gradient (beta's gradient) and of its
    // product with the normalised input (gamma's gradient).
    let (dbeta, dgamma): (Vec<f64>, Vec<f64>) = channel_sums(b, c, |smp, ch| {
        let r = (smp * c + ch) * l..(smp * c + ch + 1) * l;
        masked_row_sums(&x[r.clone()], &y[r.clone()], &g[r], mean[ch])
    })
    .into_iter()
    .enumerate()
    .map(|(ch, [sg, sgx])| (sg, sgx * inv_std[ch]))
    .unzip();
    // dx = gamma * inv_std / n * (n * g' - sum g' - xhat * sum g' xhat), g' = g * (y > 0).
    let coef: Vec<(f32, f32, f32, f32, f32)> = (0..c)
        .map(|ch| {
            let k = gamma[ch] as f64 * inv_std[ch];
            (
                k as f32,
                (k * dbeta[ch] / n) as f32,
                (k * dgamma[ch] / n) as f32,
                mean[ch],
                inv_std[ch] as f32,
            )
        })
        .collect();
    let mut dx = vec![0.0f32; x.len()];
    if l > 0 && c > 0 {
        dx.par_chunks_mut(c * l).enumerate().for_each(|(smp, dx)| {
            for (ch, dx) in dx.chunks_exact_mut(l).enumerate() {
                let (k, kb, kg, m, s) = coef[ch];
                let r = (smp * c + ch) * l..(smp * c + ch + 1) * l;
                for (((dx, &x), &y), &g) in dx
                    .iter_mut()
                    .zip(&x[r.clone()])
                    .zip(&y[r.clone()])
                    .zip(&g[r])
                {
                    *dx = k * relu_masked(y, g) - kb - (x - m) * s * kg;
                }
            }
        });
    }
    let to32 = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    (dx, to32(dgamma), to32(dbeta))
}

impl BnReluTrainBackend for Flex {
    fn bn_relu_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> BnReluTrain<Self> {
        let dims = dims3(&x);
        let (y, mean, var) =
            train_forward(&values(&x), &values(&gamma), &values(&beta), epsilon, dims);
        BnReluTrain {
            output: from_vec(y, dims),
            mean: from_vec(mean, [dims[1]]),
            variance: from_vec(var, [dims[1]]),
        }
    }
}

impl<C: CheckpointStrategy> BnReluTrainBackend for Autodiff<Flex, C> {
    fn bn_relu_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> BnReluTrain<Self> {
        #[derive(Debug)]
        struct BnReluBackward;

        impl Backward<Flex, 3> for BnReluBackward {
            // x, gamma (checkpointed); output, mean, variance as the forward made them.
            type State = (
                NodeId,
                NodeId,
                FloatTensor<Flex>,
                FloatTensor<Flex>,
                FloatTensor<Flex>,
                f64,
            );

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_gamma, node_beta] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                let (x_state, gamma_state, y, mean, var, epsilon) = ops.state;
                let x: FloatTensor<Flex> = checkpointer.retrieve_node_output(x_state);
                let gamma: FloatTensor<Flex> = checkpointer.retrieve_node_output(gamma_state);
                let dims = dims3(&x);
                let (dx, dgamma, dbeta) = train_backward(
                    &values(&x),
                    &values(&y),
                    &values(&grad),
                    &values(&gamma),
                    &values(&mean),
                    &values(&var),
                    epsilon,
                    dims,
                );
                if let Some(node) = node_x {
                    grads.register::<Flex>(node.id, from_vec(dx, dims));
                }
                if let Some(node) = node_gamma {
                    grads.register::<Flex>(node.id, from_vec(dgamma, [dims[1]]));
                }
                if let Some(node) = node_beta {
                    grads.register::<Flex>(node.id, from_vec(dbeta, [dims[1]]));
                }
            }
        }

        match BnReluBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let r = Flex::bn_relu_train(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                );
                let state = (
                    x_state,
                    gamma_state,
                    r.output.clone(),
                    r.mean.clone(),
                    r.variance.clone(),
                    epsilon,
                );
                BnReluTrain {
                    output: prep.finish(state, r.output),
                    mean: Self::from_inner(r.mean),
                    variance: Self::from_inner(r.variance),
                }
            }
            OpsKind::UnTracked(prep) => {
                let r = Flex::bn_relu_train(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                );
                BnReluTrain {
                    output: prep.finish(r.output),
                    mean: Self::from_inner(r.mean),
                    variance: Self::from_inner(r.variance),
                }
            }
        }
    }
}

impl BnReluEvalBackend for Flex {
    fn bn_relu_eval(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let dims = dims3(&x);
        let y = affine_relu(
            &values(&x),
            &values(&scale),
            &values(&shift),
            dims[1],
            dims[2],
        );
        from_vec(y, dims)
    }
}

/// `relu(norm.forward(x))` for `x` `[batch, channels, length]`: fused on the CPU
/// backend, burn's own ops elsewhere. Updates the running statistics in training
/// mode exactly as `BatchNorm::forward` does.
pub fn batch_norm_relu(norm: &BatchNorm, x: Tensor<3>) -> Tensor<3> {
    let device = x.device();
    if x.dtype() != DType::F32 || device != Device::flex() {
        return relu(norm.forward(x));
    }
    let training = device.is_autodiff() && norm.training.is_enabled();
    if training {
        let r = <Dispatch as BnReluTrainBackend>::bn_relu_train(
            x.into_dispatch(),
            norm.gamma.val().into_dispatch(),
            norm.beta.val().into_dispatch(),
            norm.epsilon,
        );
        let mean = Tensor::<1>::from_dispatch(r.mean);
        let variance = Tensor::<1>::from_dispatch(r.variance);
        let m = norm.momentum;
        let running_mean = norm.running_mean.value_sync().to_device(&device);
        let running_var = norm.running_var.value_sync().to_device(&device);
        norm.running_mean
            .update((running_mean.mul_scalar(1.0 - m) + mean.detach().mul_scalar(m)).detach());
        norm.running_var
            .update((running_var.mul_scalar(1.0 - m) + variance.detach().mul_scalar(m)).detach());
        return Tensor::from_dispatch(r.output);
    }
    if device.is_autodiff() {
        // A frozen layer on a training device: gradients may still flow through it.
        return relu(norm.forward(x));
    }
    let mean = norm.running_mean.value().to_device(&device);
    let var = norm.running_var.value().to_device(&device);
    let scale = norm.gamma.val() / (var + norm.epsilon).sqrt();
    let shift = norm.beta.val() - mean * scale.clone();
    Tensor::from_dispatch(<Dispatch as BnReluEvalBackend>::bn_relu_eval(
        x.into_dispatch(),
        scale.into_dispatch(),
        shift.into_dispatch(),
    ))
}
