//! The transitions' average pooling (kernel 2, stride 2, no padding: `[b, c, l]`
//! -> `[b, c, l / 2]`, a trailing odd value dropped) on the CPU backend.
//!
//! burn 0.22's CPU backend (flex) runs a 1D average pool as its general 3D
//! pooling kernel: 8% of an inference batch here, for a pass that only averages
//! neighbours. Registered like `conv.rs` for `Flex` and `Autodiff<Flex>`;
//! [`avg_pool_half`] falls back to the module's own `forward` on every other
//! backend and configuration.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, Dispatch, Flex};
use burn::nn::pool::AvgPool1d;
use burn::nn::PaddingConfig1d;
use burn::tensor::{DType, Device, Tensor};
use rayon::prelude::*;

use super::norm::{dims3, from_vec, values};

/// Average of each pair of neighbours along the last axis.
#[backend_extension(Flex, Autodiff)]
pub trait PoolBackend: burn::backend::Backend {
    /// `x`: `[batch, channels, length]` -> `[batch, channels, length / 2]`.
    fn avg_pool1d_half(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// Rows per rayon task: enough work per task to outweigh the hand-off.
const ROWS_PER_TASK: usize = 64;

/// `y[r, i] = (x[r, 2i] + x[r, 2i + 1]) / 2` for rows `r` of length `l`.
pub fn forward(x: &[f32], rows: usize, l: usize) -> Vec<f32> {
    let h = l / 2;
    let mut y = vec![0.0f32; rows * h];
    if h == 0 {
        return y;
    }
    y.par_chunks_mut(h * ROWS_PER_TASK)
        .zip(x.par_chunks(l * ROWS_PER_TASK))
        .for_each(|(y, x)| {
            for (y, x) in y.chunks_exact_mut(h).zip(x.chunks_exact(l)) {
                for (y, pair) in y.iter_mut().zip(x.chunks_exact(2)) {
                    *y = (pair[0] + pair[1]) * 0.5;
                }
            }
        });
    y
}

/// The gradient of [`forward`]: `dx[r, 2i] = dx[r, 2i + 1] = g[r, i] / 2`, and 0
/// for a dropped trailing value.
pub fn backward(g: &[f32], rows: usize, l: usize) -> Vec<f32> {
    let h = l / 2;
    let mut dx = vec![0.0f32; rows * l];
    if h == 0 {
        return dx;
    }
    dx.par_chunks_mut(l * ROWS_PER_TASK)
        .zip(g.par_chunks(h * ROWS_PER_TASK))
        .for_each(|(dx, g)| {
            for (dx, g) in dx.chunks_exact_mut(l).zip(g.chunks_exact(h)) {
                for (pair, &g) in dx.chunks_exact_mut(2).zip(g) {
                    pair[0] = g * 0.5;
                    pair[1] = g * 0.5;
                }
            }
        });
    dx
}

impl PoolBackend for Flex {
    fn avg_pool1d_half(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let [b, c, l] = dims3(&x);
        from_vec(forward(&values(&x), b * c, l), [b, c, l / 2])
    }
}

impl<C: CheckpointStrategy> PoolBackend for Autodiff<Flex, C> {
    fn avg_pool1d_half(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct AvgPoolHalfBackward;

        impl Backward<Flex, 1> for AvgPoolHalfBackward {
            /// The input's shape.
            type State = [usize; 3];

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node] = ops.parents;
                let grad = grads.consume::<Flex>(&ops.node);
                let [b, c, l] = ops.state;
                if let Some(node) = node {
                    let dx = backward(&values(&grad), b * c, l);
                    grads.register::<Flex>(node.id, from_vec(dx, [b, c, l]));
                }
            }
        }

        let shape = dims3(x.primitive());
        match AvgPoolHalfBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(shape, Flex::avg_pool1d_half(x.into_primitive())),
            OpsKind::UnTracked(prep) => prep.finish(Flex::avg_pool1d_half(x.into_primitive())),
        }
    }
}

/// `pool.forward(x)` for `x` `[batch, channels, length]`: the op above on the CPU
/// backend when `pool` is a kernel-2, stride-2, unpadded average, burn's own
/// pooling otherwise.
pub fn avg_pool_half(pool: &AvgPool1d, x: Tensor<3>) -> Tensor<3> {
    let applies = pool.kernel_size == 2
        && pool.stride == 2
        && matches!(pool.padding, PaddingConfig1d::Valid)
        && !pool.ceil_mode
        && x.dtype() == DType::F32
        && x.device() == Device::flex();
    if !applies {
        return pool.forward(x);
    }
    Tensor::from_dispatch(<Dispatch as PoolBackend>::avg_pool1d_half(
        x.into_dispatch(),
    ))
}
