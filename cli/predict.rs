//! `chainrule predict`: a saved model's class and probability (a regression's values) for every example of an IDX
//! image file, a CSV of feature rows, or PNG/PGM images, prepared exactly as the model's
//! saved normalization says.

use crate::device;
use anyhow::{bail, Context};
use chainrule::data::{
    csv::parse_rows,
    idx::{has_idx_magic, parse_idx, shape_text},
    picture,
    regression_csv::TargetColumns,
};
use chainrule::io::Snapshot;
use chainrule::train::evaluate::probabilities;
use chainrule::train::Trainer;
use clap::Args;
use ndarray::Array2;
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Model saved by `chainrule train --save` (or --save-best)
    #[arg(long, value_name = "FILE")]
    model: PathBuf,
    /// Inputs: IDX files of any element type (plain or .gz, known by their magic number), CSV files of feature rows (a first column more than the model's inputs is taken as a label and ignored), or PNG/PGM images (gray, the model's input size, white on black as in MNIST); `-` reads standard input (any of these, known by its bytes)
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    /// One JSON object per example, with every class's probability and logit
    #[arg(long)]
    json: bool,
    /// Device: auto, cpu, or cuda[:N]
    #[arg(long, default_value = "auto")]
    device: String,
    /// Arithmetic: f32, bf16, f16 or fp8 [default: the dtype the model was trained in, so the figures are those its run reported]. In fp8 each product scales its operands by the whole batch's largest value, so a row's outputs depend on the rows predicted with it (and a batch whose row count is not a multiple of 16 runs in bf16): --dtype bf16 for outputs that depend on each row alone
    #[arg(long, value_name = "DTYPE")]
    dtype: Option<String>,
}

/// What a file holds.
enum Kind {
    Image,
    Csv,
    Idx,
}

/// By its name's extension where it has a known one (under a `.gz`), else by its first
/// bytes, decompressed when gzipped (a FIFO, a process substitution, a file without an
/// extension): PNG or netpbm magic, IDX magic, else CSV text.
fn kind(path: &Path, bytes: &[u8]) -> Kind {
    let name = path
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().to_ascii_lowercase());
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    match name.rsplit_once('.').map_or("", |(_, ext)| ext) {
        "png" | "pgm" | "pnm" | "ppm" | "pbm" => Kind::Image,
        "csv" | "tsv" | "txt" => Kind::Csv,
        // idx3-ubyte, idx1-ubyte, idx2-float, ...
        ext if ext.starts_with("idx") => Kind::Idx,
        _ if picture::is_picture(bytes) => Kind::Image,
        _ if has_idx_magic(bytes) => Kind::Idx,
        _ => Kind::Csv,
    }
}

/// The examples of one input file, raw (before normalization), as rows of `features`.
/// `image`: the (height, width) the model trained on, when it trained on images (a picture
/// of another shape with as many pixels would be read as the wrong pixels).
/// `targets`: a regression's target columns, dropped from CSV rows that hold them.
fn examples(
    path: &Path,
    features: usize,
    image: Option<(usize, usize)>,
    targets: Option<&TargetColumns>,
) -> anyhow::Result<Array2<f32>> {
    let shaped = |h: usize, w: usize| match image {
        Some((th, tw)) if (h, w) != (th, tw) => Err(anyhow::anyhow!(
            "{}: {h}x{w} images, the model was trained on {th}x{tw} images",
            path.display()
        )),
        _ => Ok(()),
    };
    let whole = targets.map_or(String::new(), |t| {
        format!(
            " (or {} with its target columns {})",
            features + t.count(),
            t.canonical()
        )
    });
    let wrong = |got: usize| {
        anyhow::anyhow!(
            "{}: {got} values an example, the model takes {features}{whole}",
            path.display()
        )
    };
    let bytes = chainrule::data::input_file::read_input_or_stdin(path).with_context(|| path.display().to_string())?;
    match kind(path, &bytes) {
        Kind::Image => {
            let (pixels, h, w) = picture::decode_gray(path, &bytes)?;
            if pixels.len() == features {
                shaped(h, w)?;
            }
            if pixels.len() != features {
                bail!(
                    "{}: a {h}x{w} image ({} pixels), the model takes {features} values",
                    path.display(),
                    pixels.len()
                );
            }
            Ok(Array2::from_shape_vec((1, features), pixels).expect("one row of pixels"))
        }
        Kind::Csv => {
            let rows = parse_rows(&bytes).map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?;
            let width = rows[0].1.len();
            // Rows of features alone, or whole rows as the model trained on them: a class
            // label first, or a regression's targets where its columns say.
            let dropped: Vec<usize> = match (width, targets) {
                (w, _) if w == features => Vec::new(),
                (w, None) if w == features + 1 => vec![0],
                (w, Some(t)) => match t.resolve(w) {
                    Ok(at) if w == features + at.len() => at,
                    _ => return Err(wrong(w)),
                },
                (w, None) => return Err(wrong(w)),
            };
            let values: Vec<f32> = rows
                .iter()
                .flat_map(|(_, r)| {
                    r.iter()
                        .enumerate()
                        .filter(|(c, _)| !dropped.contains(c))
                        .map(|(_, &v)| v)
                })
                .collect();
            Ok(Array2::from_shape_vec((rows.len(), features), values).expect("rows of one width"))
        }
        Kind::Idx => {
            let idx = parse_idx(path, &bytes)?;
            let n = idx.dims.first().copied().unwrap_or(0);
            if n == 0 {
                bail!(
                    "{}: an IDX file of no examples ({})",
                    path.display(),
                    shape_text(&idx.dims)
                );
            }
            let per: usize = idx.dims.iter().skip(1).product();
            if idx.dims.len() < 2 || per != features {
                return Err(wrong(per));
            }
            if let [_, h, w] = idx.dims[..] {
                shaped(h, w)?;
            }
            let values = idx.values().map(|v| v as f32).collect();
            Ok(Array2::from_shape_vec((n, features), values).expect("length checked against the header"))
        }
    }
}

pub fn run(a: PredictArgs) -> anyhow::Result<i32> {
    let snapshot = Snapshot::load(&a.model)?;
    let (features, image) = (snapshot.model.inputs(), snapshot.state.image_shape);
    let regression = snapshot.model.loss.is_regression();
    let targets = crate::eval_rows::target_columns(&snapshot)?;
    let normalization = snapshot.normalization.clone();
    let (device, _) = device::for_saved(&a.device, a.dtype.as_deref(), &snapshot)?;
    if device.precision() == chainrule::backend::Precision::Fp8 {
        eprintln!(
            "note: in fp8 each product scales its operands by the batch's largest value, so a \
             row's outputs depend on the rows predicted with it; --dtype bf16 gives outputs that depend on each row alone"
        );
    }
    let mut trainer = Trainer::for_evaluation(snapshot, &device)?;
    for input in &a.inputs {
        let mut x = examples(input, features, image, targets.as_ref())?;
        normalization.apply(&mut x);
        let logits = trainer.predict(&x)?;
        if regression {
            print_values(input, &logits, a.json);
            continue;
        }
        let probabilities = probabilities(&logits);
        for (row, (p, z)) in probabilities.outer_iter().zip(logits.outer_iter()).enumerate() {
            // From the logits: probabilities of a row of NaN and -infinity are all NaN.
            let class = chainrule::ops::loss::argmax(z.iter().copied());
            let probability = class.map(|c| p[c]);
            if a.json {
                println!(
                    "{}",
                    json!({"input": input.display().to_string(), "row": row, "class": class,
                           "probability": probability, "probabilities": p.to_vec(), "logits": z.to_vec()})
                );
            } else {
                match (class, probability) {
                    (Some(c), Some(q)) => println!("{}:{row}  class {c}  probability {q:.4}", input.display()),
                    _ => println!(
                        "{}:{row}  no class (the logits are NaN or infinite: the model's output overflowed or diverged)",
                        input.display()
                    ),
                }
            }
        }
    }
    Ok(0)
}

/// A regression's predicted targets, a line (or a JSON object) a row; rows with a value
/// that is not finite (JSON writes them as null) are counted in a warning.
fn print_values(input: &Path, values: &Array2<f32>, json: bool) {
    let overflowed = values
        .rows()
        .into_iter()
        .filter(|r| r.iter().any(|v| !v.is_finite()))
        .count();
    if overflowed > 0 {
        eprintln!(
            "warning: {}: {overflowed} of {} rows have NaN or infinite values (the model's output overflowed or diverged)",
            input.display(),
            values.nrows()
        );
    }
    for (row, v) in values.outer_iter().enumerate() {
        match json {
            true => println!(
                "{}",
                json!({"input": input.display().to_string(), "row": row, "values": v.to_vec()})
            ),
            false => {
                let text: Vec<String> = v.iter().map(|x| format!("{x:.6}")).collect();
                println!("{}:{row}  values {}", input.display(), text.join(", "));
            }
        }
    }
}
