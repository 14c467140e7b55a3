//! A multilayer perceptron for catalog features (METHOD section 8): each hidden
//! layer is linear, batch norm, LeakyReLU and dropout.

use burn::module::Module;
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, LeakyRelu, LeakyReluConfig, Linear,
    LinearConfig,
};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Depth, widths and regularisation of the MLP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MlpConfig {
    /// Input features (set from the dataset).
    pub inputs: usize,
    /// Width of each hidden layer; its length is the depth.
    pub hidden: Vec<usize>,
    /// Dropout after each hidden layer.
    pub dropout: f64,
    /// Slope of LeakyReLU for negative inputs.
    pub negative_slope: f64,
    /// Batch norm after each hidden linear layer.
    pub batch_norm: bool,
    /// Outputs: labels for regression, classes for classification (set from the labels).
    pub outputs: usize,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            inputs: 2,
            hidden: vec![128, 128, 64],
            dropout: 0.1,
            negative_slope: 0.01,
            batch_norm: true,
            outputs: 1,
        }
    }
}

impl MlpConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.hidden.contains(&0) {
            return Err("mlp hidden widths must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!(
                "mlp dropout must be in [0, 1), got {}",
                self.dropout
            ));
        }
        Ok(())
    }

    pub fn init(&self, device: &Device) -> Mlp {
        let mut width = self.inputs;
        let layers = self
            .hidden
            .iter()
            .map(|&w| {
                let layer = MlpLayer {
                    linear: LinearConfig::new(width, w).init(device),
                    norm: self
                        .batch_norm
                        .then(|| BatchNormConfig::new(w).init(device)),
                    activation: LeakyReluConfig::new()
                        .with_negative_slope(self.negative_slope)
                        .init(),
                    dropout: DropoutConfig::new(self.dropout).init(),
                };
                width = w;
                layer
            })
            .collect();
        Mlp {
            layers,
            output: LinearConfig::new(width, self.outputs).init(device),
        }
    }
}

#[derive(Module, Debug)]
struct MlpLayer {
    linear: Linear,
    norm: Option<BatchNorm>,
    activation: LeakyRelu,
    dropout: Dropout,
}

#[derive(Module, Debug)]
pub struct Mlp {
    layers: Vec<MlpLayer>,
    output: Linear,
}

impl Mlp {
    /// `x`: `[batch, inputs]` -> `[batch, outputs]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mut x = x;
        for layer in &self.layers {
            x = layer.linear.forward(x);
            if let Some(norm) = &layer.norm {
                x = norm.forward(x);
            }
            x = layer.dropout.forward(layer.activation.forward(x));
        }
        self.output.forward(x)
    }

    /// Freezes every hidden layer (weights and batch-norm statistics): only the
    /// output layer trains.
    pub fn freeze_features(self) -> Self {
        Self {
            layers: self.layers.into_iter().map(Module::freeze).collect(),
            output: self.output,
        }
    }
}
