//! The architectures a model directory can hold, behind one type: the spectrum
//! DenseNet-BC and the catalog-feature MLP. Training, fine-tuning, evaluation
//! and prediction work on [`Network`] and never ask which one it is, except to
//! shape the input.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::densenet::{trainable_params, DenseNet, DenseNetConfig};
use super::mlp::{Mlp, MlpConfig};

/// Which network to train (`train --arch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// 1D DenseNet-BC on 64x64 spectra (METHOD section 4).
    Densenet,
    /// Multilayer perceptron on catalog features (METHOD section 8).
    Mlp,
}

/// A network's configuration, as stored in `spec.json`
/// (`{"densenet": {...}}` or `{"mlp": {...}}`; a bare DenseNet config, as
/// written by spectrain 0.1 before the MLP existed, is read as a DenseNet).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelConfig {
    Densenet(DenseNetConfig),
    Mlp(MlpConfig),
}

impl<'de> Deserialize<'de> for ModelConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "kebab-case", deny_unknown_fields)]
        enum Tagged {
            Densenet(DenseNetConfig),
            Mlp(MlpConfig),
        }
        let value = serde_json::Value::deserialize(d)?;
        let tagged = value
            .as_object()
            .is_some_and(|o| o.len() == 1 && (o.contains_key("densenet") || o.contains_key("mlp")));
        if tagged {
            match serde_json::from_value::<Tagged>(value).map_err(serde::de::Error::custom)? {
                Tagged::Densenet(c) => Ok(Self::Densenet(c)),
                Tagged::Mlp(c) => Ok(Self::Mlp(c)),
            }
        } else {
            serde_json::from_value::<DenseNetConfig>(value)
                .map(Self::Densenet)
                .map_err(serde::de::Error::custom)
        }
    }
}

impl ModelConfig {
    /// Outputs of the network.
    pub fn outputs(&self) -> usize {
        match self {
            Self::Densenet(c) => c.outputs,
            Self::Mlp(c) => c.outputs,
        }
    }

    pub fn init(&self, device: &Device) -> Network {
        match self {
            Self::Densenet(c) => Network::Densenet(c.init(device)),
            Self::Mlp(c) => Network::Mlp(c.init(device)),
        }
    }

    /// Loads weights saved by [`Network::save`] into a fresh network.
    pub fn load(&self, path: &Path, device: &Device) -> Result<Network, String> {
        let err = |e: burn::store::RecordError| e.to_string();
        Ok(match self {
            Self::Densenet(c) => {
                Network::Densenet(c.init(device).try_load_file(path).map_err(err)?)
            }
            Self::Mlp(c) => Network::Mlp(c.init(device).try_load_file(path).map_err(err)?),
        })
    }
}

// A handful of networks live for a whole run; boxing the DenseNet would only
// complicate burn's derived module traits.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Network {
    Densenet(DenseNet),
    Mlp(Mlp),
}

impl Network {
    /// `x`: `[batch, input_len]` (a flattened 64x64 spectrum, or the
    /// standardised features) -> `[batch, outputs]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Densenet(n) => {
                let [b, len] = x.dims();
                let c = n.in_channels();
                n.forward(x.reshape([b, c, len / c]))
            }
            Self::Mlp(n) => n.forward(x),
        }
    }

    /// Freezes everything but the fully connected head (see each architecture).
    pub fn freeze_features(self) -> Self {
        match self {
            Self::Densenet(n) => Self::Densenet(n.freeze_features()),
            Self::Mlp(n) => Self::Mlp(n.freeze_features()),
        }
    }

    pub fn trainable_params(&self) -> usize {
        trainable_params(self)
    }

    /// Saves the weights (the inner architecture's record, so files written
    /// before the MLP existed still load).
    pub fn save(self, path: &Path) -> Result<(), String> {
        let r = match self {
            Self::Densenet(n) => n.save_file(path),
            Self::Mlp(n) => n.save_file(path),
        };
        r.map_err(|e| e.to_string())
    }
}
