//! The 1D DenseNet-BC with parallel 3/7/15 kernels (METHOD section 4).

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::pool::{AvgPool1d, AvgPool1dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Initializer, Linear, LinearConfig,
    PaddingConfig1d,
};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::conv::conv1d;
use super::norm::batch_norm_relu;
use super::pool::avg_pool_half;

/// Every width and count of the network. Defaults are the paper's; with them the
/// model has 368,761 / 368,890 / 369,019 trainable parameters for 1 / 2 / 3 outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DenseNetConfig {
    /// Input channels (bands of the reshaped spectrum).
    pub in_channels: usize,
    /// Input length (pixels per band).
    pub length: usize,
    /// Output channels of the stem convolution.
    pub stem_channels: usize,
    pub stem_kernel: usize,
    /// Channels each branch of a dense layer adds.
    pub growth: usize,
    /// Kernel sizes of the parallel branches.
    pub kernels: Vec<usize>,
    /// Bottleneck width as a multiple of `growth`.
    pub bottleneck: usize,
    /// Dense layers per block.
    pub block_layers: Vec<usize>,
    /// Channel compression of the transition layers.
    pub compression: f64,
    /// Dropout after each dense layer's branches (0 in the paper).
    pub layer_dropout: f64,
    /// Output channels of the 1x1 "integration" convolution.
    pub integration: usize,
    /// Width of the hidden fully connected layer.
    pub hidden: usize,
    pub head_dropout: f64,
    /// Number of outputs: labels for regression, classes for classification.
    pub outputs: usize,
}

impl Default for DenseNetConfig {
    fn default() -> Self {
        Self {
            in_channels: 64,
            length: 64,
            stem_channels: 48,
            stem_kernel: 3,
            growth: 12,
            kernels: vec![3, 7, 15],
            bottleneck: 4,
            block_layers: vec![4, 4, 4],
            compression: 0.4,
            layer_dropout: 0.0,
            integration: 32,
            hidden: 128,
            head_dropout: 0.3,
            outputs: 1,
        }
    }
}

/// He (Kaiming) uniform for ReLU networks: U(-sqrt(6 / fan_in), sqrt(6 / fan_in)).
fn he_uniform() -> Initializer {
    Initializer::KaimingUniform {
        gain: std::f64::consts::SQRT_2,
        fan_out_only: false,
    }
}

fn conv(cin: usize, cout: usize, kernel: usize, bias: bool, device: &Device) -> Conv1d {
    let mut c = Conv1dConfig::new(cin, cout, kernel)
        .with_padding(PaddingConfig1d::Same)
        .with_bias(bias)
        .with_initializer(he_uniform())
        .init(device);
    if bias {
        c.bias = Some(Param::from_tensor(Tensor::zeros([cout], device)));
    }
    c
}

fn linear(din: usize, dout: usize, device: &Device) -> Linear {
    let mut l = LinearConfig::new(din, dout)
        .with_initializer(he_uniform())
        .init(device);
    l.bias = Some(Param::from_tensor(Tensor::zeros([dout], device)));
    l
}

#[derive(Module, Debug)]
struct Branch {
    norm: BatchNorm,
    conv: Conv1d,
}

/// BN -> ReLU -> 1x1 bottleneck -> parallel (BN -> ReLU -> conv k) -> concat, then
/// concatenated with the layer's input (the dense connection).
#[derive(Module, Debug)]
struct DenseLayer {
    norm: BatchNorm,
    bottleneck: Conv1d,
    branches: Vec<Branch>,
    dropout: Dropout,
}

impl DenseLayer {
    /// `[batch, c, length]` -> `[batch, c + branches * growth, length]`.
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = conv1d(&self.bottleneck, batch_norm_relu(&self.norm, x.clone()));
        let branches = self
            .branches
            .iter()
            .map(|b| conv1d(&b.conv, batch_norm_relu(&b.norm, h.clone())))
            .collect();
        let h = self.dropout.forward(Tensor::cat(branches, 1));
        Tensor::cat(vec![x, h], 1)
    }
}

/// BN -> ReLU -> 1x1 conv (C -> floor(compression * C)) -> average pool / 2.
#[derive(Module, Debug)]
struct Transition {
    norm: BatchNorm,
    conv: Conv1d,
    pool: AvgPool1d,
}

impl Transition {
    /// `[batch, c, length]` -> `[batch, floor(compression * c), length / 2]`.
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        avg_pool_half(
            &self.pool,
            conv1d(&self.conv, batch_norm_relu(&self.norm, x)),
        )
    }
}

/// Parameters of `module` that receive gradients (on an autodiff device).
pub fn trainable_params<M: Module>(module: &M) -> usize {
    struct Count(usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            if value.is_require_grad() {
                self.0 += value.shape().num_elements();
            }
        }
    }
    let mut count = Count(0);
    module.visit(&mut count);
    count.0
}

/// Dense layers followed, except after the last block, by a transition.
#[derive(Module, Debug)]
struct DenseBlock {
    layers: Vec<DenseLayer>,
    transition: Option<Transition>,
}

#[derive(Module, Debug)]
pub struct DenseNet {
    stem: Conv1d,
    blocks: Vec<DenseBlock>,
    final_norm: BatchNorm,
    integration: Conv1d,
    hidden: Linear,
    dropout: Dropout,
    output: Linear,
}

impl DenseNetConfig {
    /// Channels and length after the last dense block.
    pub fn feature_shape(&self) -> (usize, usize) {
        let mut c = self.stem_channels;
        let mut len = self.length;
        for (b, &n) in self.block_layers.iter().enumerate() {
            c += n * self.kernels.len() * self.growth;
            if b + 1 < self.block_layers.len() {
                c = (c as f64 * self.compression).floor() as usize;
                len /= 2;
            }
        }
        (c, len)
    }

    /// Floating-point operations of one spectrum's forward pass: 2 per multiply-add
    /// of the convolutions and fully connected layers (batch norm, ReLU, pooling and
    /// concatenation are not counted), as PyTorch's `FlopCounterMode` counts them.
    pub fn forward_flops(&self) -> u64 {
        let conv =
            |cin: usize, cout: usize, k: usize, len: usize| 2 * (cin * cout * k * len) as u64;
        let width = self.bottleneck * self.growth;
        let mut len = self.length;
        let mut c = self.stem_channels;
        let mut flops = conv(self.in_channels, c, self.stem_kernel, len);
        for (b, &n) in self.block_layers.iter().enumerate() {
            for _ in 0..n {
                flops += conv(c, width, 1, len);
                flops += self
                    .kernels
                    .iter()
                    .map(|&k| conv(width, self.growth, k, len))
                    .sum::<u64>();
                c += self.kernels.len() * self.growth;
            }
            if b + 1 < self.block_layers.len() {
                let out = (c as f64 * self.compression).floor() as usize;
                flops += conv(c, out, 1, len);
                c = out;
                len /= 2;
            }
        }
        flops += conv(c, self.integration, 1, len);
        flops += 2 * (self.integration * len * self.hidden) as u64;
        flops + 2 * (self.hidden * self.outputs) as u64
    }

    pub fn init(&self, device: &Device) -> DenseNet {
        let mut c = self.stem_channels;
        let width = self.bottleneck * self.growth;
        let mut blocks = Vec::new();
        for (b, &n) in self.block_layers.iter().enumerate() {
            let mut layers = Vec::new();
            for _ in 0..n {
                layers.push(DenseLayer {
                    norm: BatchNormConfig::new(c).init(device),
                    bottleneck: conv(c, width, 1, false, device),
                    branches: self
                        .kernels
                        .iter()
                        .map(|&k| Branch {
                            norm: BatchNormConfig::new(width).init(device),
                            conv: conv(width, self.growth, k, false, device),
                        })
                        .collect(),
                    dropout: DropoutConfig::new(self.layer_dropout).init(),
                });
                c += self.kernels.len() * self.growth;
            }
            let transition = (b + 1 < self.block_layers.len()).then(|| {
                let out = (c as f64 * self.compression).floor() as usize;
                let t = Transition {
                    norm: BatchNormConfig::new(c).init(device),
                    conv: conv(c, out, 1, false, device),
                    pool: AvgPool1dConfig::new(2).init(),
                };
                c = out;
                t
            });
            blocks.push(DenseBlock { layers, transition });
        }
        let (_, len) = self.feature_shape();
        DenseNet {
            stem: conv(
                self.in_channels,
                self.stem_channels,
                self.stem_kernel,
                false,
                device,
            ),
            blocks,
            final_norm: BatchNormConfig::new(c).init(device),
            integration: conv(c, self.integration, 1, true, device),
            hidden: linear(self.integration * len, self.hidden, device),
            dropout: DropoutConfig::new(self.head_dropout).init(),
            output: linear(self.hidden, self.outputs, device),
        }
    }
}

impl DenseNet {
    /// Trainable parameters: those that receive gradients. burn's `num_params`
    /// also counts batch-norm running statistics. Meaningful on an autodiff device.
    pub fn trainable_params(&self) -> usize {
        trainable_params(self)
    }

    /// Freezes the convolutional features (stem, dense blocks, final norm and
    /// integration convolution, batch-norm statistics included): only the fully
    /// connected head trains.
    pub fn freeze_features(self) -> Self {
        Self {
            stem: self.stem.freeze(),
            blocks: self.blocks.into_iter().map(Module::freeze).collect(),
            final_norm: self.final_norm.freeze(),
            integration: self.integration.freeze(),
            hidden: self.hidden,
            dropout: self.dropout,
            output: self.output,
        }
    }

    /// Input channels the stem expects.
    pub fn in_channels(&self) -> usize {
        self.stem.weight.dims()[1]
    }

    /// `x`: `[batch, in_channels, length]` (`[B, 64, 64]`) -> `[batch, outputs]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        let mut x = conv1d(&self.stem, x); // [B, stem, L]
        for block in &self.blocks {
            for layer in &block.layers {
                x = layer.forward(x); // [B, c + 3g, L]
            }
            if let Some(t) = &block.transition {
                x = t.forward(x); // [B, floor(0.4 c), L / 2]
            }
        }
        let x = conv1d(&self.integration, batch_norm_relu(&self.final_norm, x)); // [B, 32, L_end]
        let x: Tensor<2> = x.flatten(1, 2); // [B, 32 * L_end]
        let x = self.dropout.forward(relu(self.hidden.forward(x))); // [B, hidden]
        self.output.forward(x) // [B, outputs]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_defaults_have_the_published_parameter_counts() {
        // METHOD section 4, and `sum(p.numel() for p in model.parameters())` of the
        // independent PyTorch implementation in shared/reference/densenet_ref.py.
        let device = Device::flex().autodiff();
        for (outputs, expected) in [(1, 368_761), (2, 368_890), (3, 369_019)] {
            let model = DenseNetConfig {
                outputs,
                ..Default::default()
            }
            .init(&device);
            assert_eq!(model.trainable_params(), expected, "{outputs} outputs");
        }
    }

    #[test]
    fn forward_flops_match_pytorchs_flop_counter() {
        // torch.utils.flop_counter.FlopCounterMode on the independent reference network
        // (shared/reference/densenet_ref.py), recorded by scripts/make_conv_golden.py.
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/conv_golden.json"
        ))
        .unwrap();
        let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
        let counted = &golden["densenet_forward_flops_per_spectrum"];
        for outputs in 1..=3 {
            let config = DenseNetConfig {
                outputs,
                ..Default::default()
            };
            let want = counted[outputs.to_string()].as_u64().unwrap();
            assert_eq!(config.forward_flops(), want, "{outputs} outputs");
        }
    }

    #[test]
    fn frozen_features_stay_put_while_the_head_trains() {
        use burn::optim::{AdamConfig, GradientsParams};
        let device = Device::flex().autodiff();
        device.seed(7);
        let config = DenseNetConfig {
            stem_channels: 8,
            growth: 4,
            bottleneck: 2,
            block_layers: vec![1, 1],
            integration: 4,
            hidden: 16,
            outputs: 2,
            ..Default::default()
        };
        let model = config.init(&device).freeze_features();
        // Hidden (integration channels x final length -> 16) and output (16 -> 2) layers.
        let head = 4 * config.feature_shape().1 * 16 + 16 + 16 * 2 + 2;
        assert_eq!(model.trainable_params(), head);
        let values = |t: Tensor<3>| t.into_data().try_to_vec::<f32>().unwrap();
        let (stem0, out0) = (
            values(model.stem.weight.val()),
            model
                .output
                .weight
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
        );
        let mut optim = AdamConfig::new().init();
        let x = Tensor::<3>::random(
            [4, 64, 64],
            burn::tensor::Distribution::Uniform(0.0, 1.0),
            &device,
        );
        let loss = model.forward(x).powf_scalar(2.0).mean();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = optim.step(1e-2, model, grads);
        assert_eq!(values(model.stem.weight.val()), stem0);
        let out1 = model
            .output
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_ne!(out1, out0);
    }

    #[test]
    fn forward_maps_batches_to_outputs() {
        let device = Device::flex();
        let config = DenseNetConfig {
            outputs: 3,
            ..Default::default()
        };
        // 48 + 4*36 = 192 -> 76; 76 + 144 = 220 -> 88; 88 + 144 = 232 channels, 64 / 4 pixels.
        assert_eq!(config.feature_shape(), (232, 16));
        let model = config.init(&device);
        let x = Tensor::<3>::ones([2, 64, 64], &device);
        assert_eq!(model.forward(x).dims(), [2, 3]);
    }
}
