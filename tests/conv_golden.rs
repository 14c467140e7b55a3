//! The CPU convolution op (`spectrain::model::conv::conv1d`: forward, input, weight
//! and bias gradients) against PyTorch fixtures (`scripts/make_conv_golden.py`) and
//! against burn's own `Conv1d::forward` on the same inputs; likewise the fused
//! batch norm + ReLU, and the transitions' average pooling against burn's own.

mod common;

use burn::module::Param;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::PaddingConfig1d;
use burn::tensor::{Device, Tensor, TensorData};
use common::*;
use serde_json::Value;
use spectrain::model::conv::conv1d;

fn f32s(v: &Value) -> Vec<f32> {
    floats(v).into_iter().map(|x| x as f32).collect()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

/// y, grad x, grad weight, grad bias of `sum(forward(x) * grad_output)`.
struct Outputs {
    y: Vec<f64>,
    dx: Vec<f64>,
    dw: Vec<f64>,
    db: Option<Vec<f64>>,
}

fn run(case: &Value, forward: impl Fn(&Conv1d, Tensor<3>) -> Tensor<3>) -> Outputs {
    let device = Device::flex().autodiff();
    let dim = |k: &str| case[k].as_u64().unwrap() as usize;
    let (b, ci, co, l, k) = (
        dim("batch"),
        dim("cin"),
        dim("cout"),
        dim("length"),
        dim("kernel"),
    );
    let has_bias = !case["bias"].is_null();
    let mut conv = Conv1dConfig::new(ci, co, k)
        .with_padding(PaddingConfig1d::Same)
        .with_bias(has_bias)
        .init(&device);
    conv.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(f32s(&case["weight"]), [co, ci, k]),
        &device,
    ));
    if has_bias {
        conv.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(f32s(&case["bias"]), [co]),
            &device,
        )));
    }
    let x = Tensor::<3>::from_data(TensorData::new(f32s(&case["x"]), [b, ci, l]), &device)
        .require_grad();
    let g = Tensor::<3>::from_data(
        TensorData::new(f32s(&case["grad_output"]), [b, co, l]),
        &device,
    );
    let y = forward(&conv, x.clone());
    assert_eq!(y.dims(), [b, co, l]);
    let grads = (y.clone() * g).sum().backward();
    Outputs {
        y: values(y),
        dx: values(x.grad(&grads).expect("grad x")),
        dw: values(conv.weight.val().grad(&grads).expect("grad weight")),
        db: conv
            .bias
            .as_ref()
            .map(|p| values(p.val().grad(&grads).expect("grad bias"))),
    }
}

/// Tolerance for float32 sums of `terms` products of magnitude up to `scale`.
fn tol(scale: f64, terms: usize) -> f64 {
    1e-6 * scale.max(1.0) * (terms as f64).sqrt().max(1.0) * 4.0
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

fn compare(what: &str, got: &Outputs, want: &Outputs, case: &Value) {
    let dim = |k: &str| case[k].as_u64().unwrap() as usize;
    let (b, ci, co, l, k) = (
        dim("batch"),
        dim("cin"),
        dim("cout"),
        dim("length"),
        dim("kernel"),
    );
    assert_close(
        &format!("{what} y"),
        &got.y,
        &want.y,
        tol(max_abs(&want.y), ci * k),
    );
    assert_close(
        &format!("{what} grad x"),
        &got.dx,
        &want.dx,
        tol(max_abs(&want.dx), co * k),
    );
    assert_close(
        &format!("{what} grad weight"),
        &got.dw,
        &want.dw,
        tol(max_abs(&want.dw), b * l),
    );
    match (&got.db, &want.db) {
        (Some(g), Some(w)) => {
            assert_close(&format!("{what} grad bias"), g, w, tol(max_abs(w), b * l))
        }
        (None, None) => {}
        _ => panic!("{what}: bias gradient present on one side only"),
    }
}

#[test]
fn cpu_conv_op_matches_pytorch_and_burns_reference_conv() {
    let golden = fixture("conv_golden.json");
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 7);
    let mut kernels = std::collections::BTreeSet::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        kernels.insert(case["kernel"].as_u64().unwrap());
        let torch = Outputs {
            y: floats(&case["y"]),
            dx: floats(&case["grad_x"]),
            dw: floats(&case["grad_weight"]),
            db: (!case["grad_bias"].is_null()).then(|| floats(&case["grad_bias"])),
        };
        let ours = run(case, conv1d);
        let burn = run(case, |conv, x| conv.forward(x));
        compare(&format!("{name}: ours vs torch"), &ours, &torch, case);
        compare(&format!("{name}: ours vs burn conv1d"), &ours, &burn, case);
        compare(
            &format!("{name}: burn conv1d vs torch"),
            &burn,
            &torch,
            case,
        );
    }
    assert!(kernels.contains(&15) && kernels.contains(&1) && kernels.contains(&3));
}

/// The fused CPU batch norm + ReLU against PyTorch (float64 fixtures) and burn's
/// `relu(BatchNorm::forward)`: training mode (output, gradients of x, gamma and
/// beta, running statistics) and inference mode, on real spectrum pixels.
#[test]
fn fused_batch_norm_relu_matches_pytorch_and_burns_batch_norm_then_relu() {
    use burn::module::Module;
    use burn::nn::BatchNormConfig;
    use burn::tensor::activation::relu;
    use spectrain::model::norm::batch_norm_relu;

    let golden = fixture("conv_golden.json");
    let cases = golden["batch_norm_relu_cases"].as_array().unwrap();
    assert!(cases.len() >= 7);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let dim = |k: &str| case[k].as_u64().unwrap() as usize;
        let (b, c, l) = (dim("batch"), dim("channels"), dim("length"));
        let device = Device::flex().autodiff();
        let run = |fused: bool| {
            let mut norm = BatchNormConfig::new(c).init(&device);
            norm.gamma = Param::from_tensor(Tensor::from_data(
                TensorData::new(f32s(&case["gamma"]), [c]),
                &device,
            ));
            norm.beta = Param::from_tensor(Tensor::from_data(
                TensorData::new(f32s(&case["beta"]), [c]),
                &device,
            ));
            let x = TensorData::new(f32s(&case["x"]), [b, c, l]);
            let xt = Tensor::<3>::from_data(x.clone(), &device).require_grad();
            let g = TensorData::new(f32s(&case["grad_output"]), [b, c, l]);
            let y = if fused {
                batch_norm_relu(&norm, xt.clone())
            } else {
                relu(norm.forward(xt.clone()))
            };
            let grads = (y.clone() * Tensor::<3>::from_data(g, &device))
                .sum()
                .backward();
            let train = vec![
                values(y),
                values(xt.grad(&grads).unwrap()),
                values(norm.gamma.val().grad(&grads).unwrap()),
                values(norm.beta.val().grad(&grads).unwrap()),
            ];
            let running = vec![
                values(norm.running_mean.value_sync()),
                values(norm.running_var.value_sync()),
            ];
            // Inference mode (no autodiff), with the running statistics just updated.
            let valid = norm.valid();
            let xi = Tensor::<3>::from_data(x, &Device::flex());
            let yi = if fused {
                batch_norm_relu(&valid, xi)
            } else {
                relu(valid.forward(xi))
            };
            (train, running, values(yi))
        };
        let (ours, ours_running, ours_eval) = run(true);
        let (burn, burn_running, burn_eval) = run(false);
        let torch: Vec<Vec<f64>> = ["y", "grad_x", "grad_gamma", "grad_beta"]
            .iter()
            .map(|k| floats(&case[*k]))
            .collect();
        let what = ["y", "grad x", "grad gamma", "grad beta"];
        for (i, w) in what.iter().enumerate() {
            let scale = max_abs(&torch[i]);
            assert_close(
                &format!("{name}: {w} vs torch"),
                &ours[i],
                &torch[i],
                tol(scale, b * l),
            );
            // burn's own f32 batch-norm backward is less accurate (up to ~5e-4
            // relative here, against ~3e-5 for the fused op): a looser bound.
            assert_close(
                &format!("{name}: burn {w} vs torch"),
                &burn[i],
                &torch[i],
                1e-3 * scale.max(1.0),
            );
        }
        // Running statistics: momentum 0.1 from mean 0 and variance 1 (burn's rule,
        // with the biased batch variance).
        let mean: Vec<f64> = floats(&case["mean"]).iter().map(|m| 0.1 * m).collect();
        let var: Vec<f64> = floats(&case["variance"])
            .iter()
            .map(|v| 0.9 + 0.1 * v)
            .collect();
        assert_close(
            &format!("{name}: running mean"),
            &ours_running[0],
            &mean,
            1e-5,
        );
        assert_close(
            &format!("{name}: running var"),
            &ours_running[1],
            &var,
            1e-5,
        );
        assert_close(
            &format!("{name}: burn running mean"),
            &burn_running[0],
            &mean,
            1e-5,
        );
        assert_close(
            &format!("{name}: burn running var"),
            &burn_running[1],
            &var,
            1e-5,
        );
        assert_close(
            &format!("{name}: inference y"),
            &ours_eval,
            &burn_eval,
            tol(max_abs(&burn_eval), 1),
        );
        assert!(ours[0].contains(&0.0), "{name}: the ReLU cut nothing");
    }
}

#[test]
fn cpu_average_pool_matches_burns_pooling_forward_and_backward() {
    use burn::nn::pool::AvgPool1dConfig;
    use spectrain::model::pool::avg_pool_half;

    let pool = AvgPool1dConfig::new(2).init();
    // Odd lengths (a trailing value dropped), length 2, one channel, batch 1.
    for (b, c, l) in [(2, 3, 9), (1, 1, 2), (3, 5, 16), (1, 4, 33), (4, 1, 7)] {
        let device = Device::flex().autodiff();
        let n = b * c * l;
        // Distinct, irregular values: a pooling that paired the wrong neighbours
        // or the wrong rows would not agree.
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 37 + 11) % 53) as f32 / 7.0 - 3.0)
            .collect();
        let g: Vec<f32> = (0..b * c * (l / 2))
            .map(|i| ((i * 29 + 5) % 31) as f32 / 5.0 - 2.5)
            .collect();
        let run = |ours: bool| {
            let xt = Tensor::<3>::from_data(TensorData::new(x.clone(), [b, c, l]), &device)
                .require_grad();
            let y = if ours {
                avg_pool_half(&pool, xt.clone())
            } else {
                pool.forward(xt.clone())
            };
            assert_eq!(y.dims(), [b, c, l / 2]);
            let gt = Tensor::<3>::from_data(TensorData::new(g.clone(), [b, c, l / 2]), &device);
            let grads = (y.clone() * gt).sum().backward();
            (values(y), values(xt.grad(&grads).unwrap()))
        };
        let (y, dx) = run(true);
        let (y_burn, dx_burn) = run(false);
        let what = format!("{b}x{c}x{l}");
        // And the definition, in case both took the same path.
        let h = l / 2;
        let want: Vec<f64> = (0..b * c * h)
            .map(|k| {
                let (r, i) = (k / h, k % h);
                (x[r * l + 2 * i] as f64 + x[r * l + 2 * i + 1] as f64) / 2.0
            })
            .collect();
        assert_close(&format!("{what}: y vs definition"), &y, &want, 1e-6);
        assert_close(&format!("{what}: y"), &y, &y_burn, 1e-6);
        assert_close(&format!("{what}: grad x"), &dx, &dx_burn, 1e-6);
        // Inference mode (no autodiff) as well.
        let xi = Tensor::<3>::from_data(TensorData::new(x.clone(), [b, c, l]), &Device::flex());
        assert_close(
            &format!("{what}: inference y"),
            &values(avg_pool_half(&pool, xi.clone())),
            &values(pool.forward(xi)),
            1e-6,
        );
    }
}
